//! What the engine asks the store to persist about runs.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::wire::{
    AttemptStatus, ByActor, EventBody, RetryScheduled, RunClaimed, RunEnded, RunHeld, RunMode,
    RunQueued, RunReleased, RunStatus, RunWaiting, StepEnded, StepError, StepSkipped, StepStarted,
    TriggerKind,
};

/// A run to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub workflow: String,
    pub version: i64,
    pub team: String,
    pub mode: RunMode,
    pub trigger_kind: TriggerKind,
    pub trigger: Value,
    pub record_id: Option<i64>,
    /// The run this one re-runs or replays.
    pub origin_run: Option<i64>,
    /// When set, step results of `origin_run` that succeeded are carried over and its
    /// idempotency keys are reused (a replay on the same version and payload).
    pub carry_from_origin: bool,
    /// A second run with the same key is not created (schedule fire times, webhook delivery ids).
    pub dedupe_key: Option<String>,
    /// When the run falls due, in the engine's clock (a bulk replay spreads its runs out);
    /// the store's now when `None`.
    pub not_before: Option<DateTime<Utc>>,
}

/// A retry the engine has scheduled after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryAt {
    pub at: DateTime<Utc>,
    pub delay_ms: i64,
}

/// One state change of a claimed run. The store applies a list of them atomically, appends
/// the matching events and refuses them if the caller no longer holds the run's lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// An attempt starts; the store answers with its id.
    StepStarted {
        index: usize,
        step_id: String,
        number: u32,
        input: Value,
        idempotency_key: String,
    },
    /// An attempt ended (succeeded, failed, cancelled). A failure with `retry` puts the run in
    /// `retrying` until then and releases its lease.
    StepEnded {
        attempt: i64,
        step_id: String,
        number: u32,
        status: AttemptStatus,
        output: Value,
        error: Option<StepError>,
        detail: Value,
        retry: Option<RetryAt>,
    },
    /// A step did not run (`when` was false, or a condition ended the run early).
    StepSkipped {
        index: usize,
        step_id: String,
        reason: String,
    },
    /// A `delay` step: the run sleeps until then without holding a worker or a lease.
    Wait { until: DateTime<Utc> },
    /// A policy or a hold makes the run wait, without a worker or a lease, until `until`
    /// (none: until what it waits `on` lets it go, e.g. a hold's release).
    Hold(Held),
    /// The run ended.
    Finish {
        status: RunStatus,
        failed_step: Option<String>,
        error: Option<StepError>,
    },
    /// The failed run goes to the dead-letter queue.
    DeadLetter { step_id: String, error: StepError },
    /// The engine is shutting down: the run may be claimed again at once.
    Release,
}

/// Why and until when a run is held.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// What it waits for: `hold:<id>`, `host:<host>`, `workflow:<key>` (a workflow's own
    /// limits, `workflow:<key>#<value>` per key). A release wakes the runs held on it.
    pub on: String,
    /// For people: `api.attio.com asked to wait until 10:02:03Z (429)`.
    pub reason: String,
    pub until: Option<DateTime<Utc>>,
}

impl NewRun {
    /// A live run of `workflow` at `version` started by `trigger_kind` with `trigger`: no
    /// record, origin or dedupe key, due at once (the store's now).
    pub fn live(
        workflow: &str,
        version: i64,
        team: &str,
        trigger_kind: TriggerKind,
        trigger: Value,
    ) -> Self {
        Self {
            workflow: workflow.to_owned(),
            version,
            team: team.to_owned(),
            mode: RunMode::Live,
            trigger_kind,
            trigger,
            record_id: None,
            origin_run: None,
            carry_from_origin: false,
            dedupe_key: None,
            not_before: None,
        }
    }

    /// The `run.queued` event of this run.
    pub fn queued_event(&self) -> EventBody {
        EventBody::RunQueued(RunQueued {
            trigger_kind: self.trigger_kind,
            version: self.version,
            team: self.team.clone(),
            mode: self.mode,
            record_id: self.record_id,
            origin_run: self.origin_run,
            not_before: self.not_before,
        })
    }
}

/// The prefix of a run's idempotency keys (`<prefix>:<step id>`): `run-<id>`, or the prefix
/// it `inherited` from the run it replays with carried results, so a replay sends the same
/// keys as the original and the outside system applies each call once.
pub fn idempotency_prefix(run_id: i64, inherited: Option<&str>) -> String {
    inherited.map_or_else(|| format!("run-{run_id}"), str::to_owned)
}

/// What happens to a run, as its lifecycle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStep {
    /// A worker takes the run (due, or its last worker's lease expired).
    Claim,
    /// An attempt starts, ends or is skipped while the run is running.
    Progress,
    /// A `delay` step: the run sleeps without a lease.
    Wait,
    /// A policy or a hold makes the run wait without a lease.
    Hold,
    /// A failed attempt will be tried again later; the lease is released.
    ScheduleRetry,
    /// The engine is shutting down and hands the run back.
    Release,
    /// The worker finished it: succeeded, failed or cancelled while running.
    Finish(RunStatus),
    /// The failed run goes to the dead-letter queue.
    DeadLetter,
    /// A person cancels it; a running run is asked to stop and stays running until its
    /// worker does.
    Cancel,
    /// A person queues a failed run again, to resume at its failed step.
    Retry,
}

/// A step the run's status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RunRefused {
    #[error("is already {0}")]
    Final(RunStatus),
    #[error("is {0}, only failed runs can be retried")]
    NotFailed(RunStatus),
    #[error("is {status}: {step:?} does not apply to a {status} run")]
    NotAllowed { status: RunStatus, step: RunStep },
    #[error(
        "is {0}, not due: only queued, retrying, waiting or held runs (or expired leases) are claimed"
    )]
    NotClaimable(RunStatus),
}

/// The run lifecycle: the status after `step`, or why not.
///
/// | step | queued, retrying, waiting, held | running | succeeded, cancelled | failed |
/// |---|---|---|---|---|
/// | claim | running | running (lease expired) | — | — |
/// | progress | — | running | — | — |
/// | wait / hold / schedule retry / release | — | waiting / held / retrying / queued | — | — |
/// | finish(s) | — | s | — | — |
/// | dead letter | — | — | — | failed |
/// | cancel | cancelled | running (asked to stop) | — | — |
/// | retry | — | — | — | queued |
///
/// # Errors
/// [`RunRefused`] naming the status when the lifecycle does not allow the step.
pub fn run_next(status: RunStatus, step: RunStep) -> Result<RunStatus, RunRefused> {
    use RunStatus::{Cancelled, Failed, Held, Queued, Retrying, Running, Succeeded, Waiting};
    match (status, step) {
        (Queued | Retrying | Waiting | Held | Running, RunStep::Claim) => Ok(Running),
        (Running, RunStep::Progress) => Ok(Running),
        (Running, RunStep::Wait) => Ok(Waiting),
        (Running, RunStep::Hold) => Ok(Held),
        (Running, RunStep::ScheduleRetry) => Ok(Retrying),
        (Running, RunStep::Release) => Ok(Queued),
        (Running, RunStep::Finish(end @ (Succeeded | Failed | Cancelled))) => Ok(end),
        (Failed, RunStep::DeadLetter) => Ok(Failed),
        (Queued | Retrying | Waiting | Held, RunStep::Cancel) => Ok(Cancelled),
        (Running, RunStep::Cancel) => Ok(Running),
        (Failed, RunStep::Retry) => Ok(Queued),
        (Succeeded | Failed | Cancelled, RunStep::Cancel) => Err(RunRefused::Final(status)),
        (_, RunStep::Retry) => Err(RunRefused::NotFailed(status)),
        (_, RunStep::Claim) => Err(RunRefused::NotClaimable(status)),
        _ => Err(RunRefused::NotAllowed { status, step }),
    }
}

impl Transition {
    /// The lifecycle step this transition is.
    pub fn step(&self) -> RunStep {
        match self {
            Self::StepStarted { .. } | Self::StepSkipped { .. } => RunStep::Progress,
            Self::StepEnded { retry: Some(_), .. } => RunStep::ScheduleRetry,
            Self::StepEnded { .. } => RunStep::Progress,
            Self::Wait { .. } => RunStep::Wait,
            Self::Hold(_) => RunStep::Hold,
            Self::Finish { status, .. } => RunStep::Finish(*status),
            Self::DeadLetter { .. } => RunStep::DeadLetter,
            Self::Release => RunStep::Release,
        }
    }

    /// The events this transition appends to the run log, in order. A dead letter's event
    /// needs the entry's id and comes from [`super::dead_letter::added_event`].
    pub fn events(&self) -> Vec<EventBody> {
        match self {
            Self::StepStarted {
                index,
                step_id,
                number,
                ..
            } => vec![EventBody::StepStarted(StepStarted {
                step_id: step_id.clone(),
                index: *index,
                attempt: *number,
            })],
            Self::StepEnded {
                step_id,
                number,
                status,
                error,
                retry,
                ..
            } => {
                let ended = StepEnded {
                    step_id: step_id.clone(),
                    attempt: *number,
                    status: *status,
                    error: error.clone(),
                };
                let mut events = vec![match status {
                    AttemptStatus::Succeeded => EventBody::StepSucceeded(ended),
                    _ => EventBody::StepFailed(ended),
                }];
                if let Some(retry) = retry {
                    events.push(EventBody::StepRetryScheduled(RetryScheduled {
                        step_id: step_id.clone(),
                        attempt: *number,
                        delay_ms: retry.delay_ms,
                        at: retry.at,
                    }));
                }
                events
            }
            Self::StepSkipped {
                step_id, reason, ..
            } => vec![EventBody::StepSkipped(StepSkipped {
                step_id: step_id.clone(),
                reason: reason.clone(),
            })],
            Self::Wait { until } => vec![EventBody::RunWaiting(RunWaiting { until: *until })],
            Self::Hold(held) => vec![EventBody::RunHeld(RunHeld {
                on: held.on.clone(),
                reason: held.reason.clone(),
                until: held.until,
            })],
            Self::Finish {
                status,
                failed_step,
                error,
            } => vec![ended_event(*status, failed_step.clone(), error.clone())],
            Self::Release => vec![EventBody::RunReleased(RunReleased {})],
            Self::DeadLetter { .. } => Vec::new(),
        }
    }
}

/// The event of a run that ended with `status` (a failure or cancellation names its step
/// and error).
pub fn ended_event(
    status: RunStatus,
    failed_step: Option<String>,
    error: Option<StepError>,
) -> EventBody {
    let ended = RunEnded {
        step_id: failed_step,
        error,
    };
    match status {
        RunStatus::Succeeded => EventBody::RunSucceeded(ended),
        RunStatus::Cancelled => EventBody::RunCancelled(ended),
        _ => EventBody::RunFailed(ended),
    }
}

/// The event of a claim: `run.started` the first time a worker takes the run, `run.resumed`
/// after that; `abandoned` counts attempts a previous worker left running.
pub fn claimed_event(first: bool, from: RunStatus, abandoned: u64) -> EventBody {
    let claimed = RunClaimed {
        from,
        abandoned_attempts: abandoned,
    };
    if first {
        EventBody::RunStarted(claimed)
    } else {
        EventBody::RunResumed(claimed)
    }
}

/// The error of an attempt whose worker stopped before it ended (a crash or a lost lease):
/// transient, so the attempt runs again with the same idempotency key.
pub fn abandoned_error() -> StepError {
    crate::domain::StepFailure::transient("the worker running this attempt stopped").error
}

/// The error a run cancelled by a person (before it ran again) ends with.
pub fn cancelled_error(actor: &str) -> StepError {
    crate::domain::StepFailure::permanent(format!("cancelled by {actor}")).error
}

/// The event of a person's cancel of a running run (its worker stops it).
pub fn cancel_requested_event(actor: &str) -> EventBody {
    EventBody::RunCancelRequested(ByActor {
        actor: actor.to_owned(),
    })
}

/// The event of a person's retry of a failed run.
pub fn retried_event(actor: &str) -> EventBody {
    EventBody::RunRetried(ByActor {
        actor: actor.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [RunStatus; 8] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Retrying,
        RunStatus::Waiting,
        RunStatus::Held,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    #[test]
    fn every_step_from_every_status_is_decided() {
        use RunStatus::{Cancelled, Failed, Held, Queued, Retrying, Running, Succeeded, Waiting};
        let steps = [
            RunStep::Claim,
            RunStep::Progress,
            RunStep::Wait,
            RunStep::Hold,
            RunStep::ScheduleRetry,
            RunStep::Release,
            RunStep::Finish(Succeeded),
            RunStep::Finish(Failed),
            RunStep::Finish(Cancelled),
            RunStep::DeadLetter,
            RunStep::Cancel,
            RunStep::Retry,
        ];
        // Columns follow STATUSES: queued, running, retrying, waiting, held, succeeded, failed,
        // cancelled.
        let r = Some(Running);
        let table: [[Option<RunStatus>; 8]; 12] = [
            [r, r, r, r, r, None, None, None],
            [None, r, None, None, None, None, None, None],
            [None, Some(Waiting), None, None, None, None, None, None],
            [None, Some(Held), None, None, None, None, None, None],
            [None, Some(Retrying), None, None, None, None, None, None],
            [None, Some(Queued), None, None, None, None, None, None],
            [None, Some(Succeeded), None, None, None, None, None, None],
            [None, Some(Failed), None, None, None, None, None, None],
            [None, Some(Cancelled), None, None, None, None, None, None],
            [None, None, None, None, None, None, Some(Failed), None],
            [
                Some(Cancelled),
                r,
                Some(Cancelled),
                Some(Cancelled),
                Some(Cancelled),
                None,
                None,
                None,
            ],
            [None, None, None, None, None, None, Some(Queued), None],
        ];
        for (step, row) in steps.iter().zip(table) {
            for (status, next) in STATUSES.iter().zip(row) {
                assert_eq!(run_next(*status, *step).ok(), next, "{status} {step:?}");
            }
        }
        assert_eq!(
            run_next(Running, RunStep::Finish(Queued)),
            Err(RunRefused::NotAllowed {
                status: Running,
                step: RunStep::Finish(Queued)
            })
        );
    }

    #[test]
    fn a_replay_keeps_the_keys_of_the_run_it_inherited_them_from() {
        assert_eq!(idempotency_prefix(7, None), "run-7");
        let replay = idempotency_prefix(7, None);
        assert_eq!(idempotency_prefix(9, Some(&replay)), "run-7");
    }

    #[test]
    fn refusals_say_why_in_the_words_the_api_answers() {
        let says = |status, step| run_next(status, step).unwrap_err().to_string();
        assert_eq!(
            says(RunStatus::Succeeded, RunStep::Cancel),
            "is already succeeded"
        );
        assert_eq!(
            says(RunStatus::Queued, RunStep::Retry),
            "is queued, only failed runs can be retried"
        );
        assert!(says(RunStatus::Failed, RunStep::Claim).starts_with("is failed, not due"));
    }

    #[test]
    fn the_events_of_a_transition_set_the_status_the_lifecycle_answers() {
        let at = Utc::now();
        let transitions = [
            Transition::StepStarted {
                index: 0,
                step_id: "a".into(),
                number: 1,
                input: Value::Null,
                idempotency_key: "run-1:a".into(),
            },
            Transition::StepEnded {
                attempt: 1,
                step_id: "a".into(),
                number: 1,
                status: AttemptStatus::Failed,
                output: Value::Null,
                error: None,
                detail: Value::Null,
                retry: Some(RetryAt { at, delay_ms: 10 }),
            },
            Transition::StepSkipped {
                index: 1,
                step_id: "b".into(),
                reason: "when was false".into(),
            },
            Transition::Wait { until: at },
            Transition::Hold(Held {
                on: "host:api.example.com".into(),
                reason: "api.example.com asked to wait".into(),
                until: Some(at),
            }),
            Transition::Finish {
                status: RunStatus::Succeeded,
                failed_step: None,
                error: None,
            },
            Transition::Finish {
                status: RunStatus::Cancelled,
                failed_step: Some("a".into()),
                error: None,
            },
            Transition::Release,
        ];
        for transition in transitions {
            let next = run_next(RunStatus::Running, transition.step()).unwrap();
            // The last event that sets a status sets the one the lifecycle answers.
            let shown = transition
                .events()
                .iter()
                .rev()
                .find_map(EventBody::run_status)
                .unwrap_or(RunStatus::Running);
            assert_eq!(shown, next, "{transition:?}");
        }
        assert_eq!(
            claimed_event(true, RunStatus::Queued, 0).run_status(),
            run_next(RunStatus::Queued, RunStep::Claim).ok()
        );
        assert_eq!(
            retried_event("ops").run_status(),
            run_next(RunStatus::Failed, RunStep::Retry).ok()
        );
    }
}
