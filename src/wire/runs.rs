//! Runs, attempts and dead-letter entries as clients see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Event, EventBody};

/// Declares a fieldless enum that serializes as snake_case text, with `as_str` and `parse`
/// so the same names serve the wire, the database and the command line.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a snake_case name.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// Where a run is in its life. `waiting` means a `delay` step is sleeping; `held` that a
    /// policy or a hold makes it wait (with a reason and, when known, until when).
    RunStatus {
        Queued => "queued",
        Running => "running",
        Retrying => "retrying",
        Waiting => "waiting",
        Held => "held",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

/// A run is live unless it says otherwise.
impl Default for RunMode {
    fn default() -> Self {
        Self::Live
    }
}

impl RunStatus {
    /// True once the run can no longer change by itself.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

string_enum!(
    /// `live` runs apply their effects; `test` runs are simulations.
    RunMode {
        Live => "live",
        Test => "test",
    }
);

string_enum!(
    /// What started a run.
    TriggerKind {
        Record => "record",
        Schedule => "schedule",
        Webhook => "webhook",
        Manual => "manual",
        Replay => "replay",
        Rerun => "rerun",
    }
);

string_enum!(
    /// The outcome of one attempt of one step. `throttled`: the host answered 429 or 503 with
    /// `Retry-After`; the attempt is not charged to the step's retry budget and the run is
    /// held until then.
    AttemptStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
        Abandoned => "abandoned",
        Cancelled => "cancelled",
        Throttled => "throttled",
    }
);

string_enum!(
    /// `transient` errors are retried per the step's policy; `permanent` ones fail at once.
    ErrorClass {
        Transient => "transient",
        Permanent => "permanent",
    }
);

string_enum!(
    /// A dead-letter entry is open until it is retried, replayed or discarded.
    DlqStatus {
        Open => "open",
        Retried => "retried",
        Replayed => "replayed",
        Discarded => "discarded",
    }
);

/// A step failure as stored and shown: its class, a plain message, and whether it may be retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StepError {
    pub class: ErrorClass,
    pub message: String,
    pub retryable: bool,
    /// The HTTP status that caused it, for `http`, `ai` and `notify` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The destination host of the call that failed, for `http`, `ai` and `notify` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One run, without its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunView {
    pub id: i64,
    pub workflow: String,
    pub version: i64,
    pub team: String,
    pub status: RunStatus,
    pub mode: RunMode,
    pub trigger_kind: TriggerKind,
    pub trigger: serde_json::Value,
    #[serde(default)]
    pub record_id: Option<i64>,
    /// The run this one re-runs or replays.
    #[serde(default)]
    pub origin_run: Option<i64>,
    pub queued_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When a retrying or waiting run will continue.
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    #[serde(default)]
    pub error: Option<StepError>,
    /// The step that failed, for failed runs.
    #[serde(default)]
    pub failed_step: Option<String>,
    /// The state of this run's dead-letter entry, for runs that were dead-lettered: a failed
    /// run whose entry is no longer `open` was replayed, retried or discarded.
    #[serde(default)]
    pub dead_letter: Option<DlqStatus>,
    /// The run that replayed this one's dead-letter entry.
    #[serde(default)]
    pub replayed_as: Option<i64>,
    /// Why a held run waits (`next_attempt_at` says until when, when that is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_reason: Option<String>,
}

impl RunView {
    /// True for a failed run nobody has handled yet: its dead-letter entry (if any) is still
    /// open, so it still needs someone.
    pub fn is_open_failure(&self) -> bool {
        self.status == RunStatus::Failed
            && self
                .dead_letter
                .is_none_or(|status| status == DlqStatus::Open)
    }
}

impl RunView {
    /// The row a `run.queued` event describes, as far as events tell (the trigger payload is
    /// not in the log: it is `null` until the run is read over REST). `None` for any other
    /// event, or one without a run id and workflow.
    pub fn queued(event: &Event) -> Option<RunView> {
        let (EventBody::RunQueued(queued), Some(id), Some(workflow)) =
            (&event.body, event.run_id, &event.workflow)
        else {
            return None;
        };
        Some(RunView {
            id,
            workflow: workflow.clone(),
            version: queued.version,
            team: queued.team.clone(),
            status: RunStatus::Queued,
            mode: queued.mode,
            trigger_kind: queued.trigger_kind,
            trigger: serde_json::Value::Null,
            record_id: queued.record_id,
            origin_run: queued.origin_run,
            queued_at: event.at,
            started_at: None,
            finished_at: None,
            next_attempt_at: Some(queued.not_before.unwrap_or(event.at)),
            attempts: 0,
            error: None,
            failed_step: None,
            dead_letter: None,
            replayed_as: None,
            held_reason: None,
        })
    }

    /// Folds one event of this run into the row: the one projection of the run log that
    /// clients keep their cached rows with. Events of other runs, and kinds that change
    /// nothing a row shows, leave it as it is.
    pub fn apply(&mut self, event: &Event) {
        if event.run_id != Some(self.id) {
            return;
        }
        if let Some(status) = event.body.run_status() {
            self.status = status;
        }
        match &event.body {
            EventBody::RunStarted(_) | EventBody::RunResumed(_) => {
                self.started_at.get_or_insert(event.at);
                self.next_attempt_at = None;
                self.held_reason = None;
            }
            EventBody::RunHeld(held) => {
                self.next_attempt_at = held.until;
                self.held_reason = Some(held.reason.clone());
            }
            EventBody::StepStarted(_) => self.attempts += 1,
            EventBody::RunWaiting(waiting) => self.next_attempt_at = Some(waiting.until),
            EventBody::StepRetryScheduled(retry) => self.next_attempt_at = Some(retry.at),
            EventBody::RunReleased(_) => self.next_attempt_at = Some(event.at),
            EventBody::RunRetried(_) => {
                self.next_attempt_at = Some(event.at);
                self.finished_at = None;
                self.error = None;
                self.failed_step = None;
                if self.dead_letter == Some(DlqStatus::Open) {
                    self.dead_letter = Some(DlqStatus::Retried);
                }
            }
            EventBody::RunSucceeded(ended)
            | EventBody::RunFailed(ended)
            | EventBody::RunCancelled(ended) => {
                self.next_attempt_at = None;
                self.held_reason = None;
                self.finished_at = Some(event.at);
                self.error = ended.error.clone();
                self.failed_step = ended.step_id.clone();
            }
            EventBody::DlqAdded(_) => self.dead_letter = Some(DlqStatus::Open),
            EventBody::DlqReplayed(replayed) => {
                self.dead_letter = Some(DlqStatus::Replayed);
                self.replayed_as = Some(replayed.replay_run);
            }
            EventBody::DlqDiscarded(_) => self.dead_letter = Some(DlqStatus::Discarded),
            _ => {}
        }
    }
}

/// One attempt of one step, with its redacted input and output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AttemptView {
    pub id: i64,
    pub step_index: i64,
    pub step_id: String,
    pub number: i64,
    pub status: AttemptStatus,
    pub idempotency_key: String,
    pub input: serde_json::Value,
    #[serde(default)]
    pub output: serde_json::Value,
    #[serde(default)]
    pub error: Option<StepError>,
    /// Response metadata for `http` steps, provenance for `ai` steps.
    #[serde(default)]
    pub detail: serde_json::Value,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when this result was carried over from the replayed run instead of executed again.
    #[serde(default)]
    pub carried_from: Option<i64>,
    /// The backoff chosen after this attempt failed, when a retry was scheduled.
    #[serde(default)]
    pub retry_delay_ms: Option<i64>,
}

/// A run with every attempt of every step, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunDetail {
    pub run: RunView,
    pub attempts: Vec<AttemptView>,
}

/// A dead-letter entry: one failed run waiting for a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DlqView {
    pub id: i64,
    pub run_id: i64,
    pub workflow: String,
    pub version: i64,
    pub team: String,
    pub step_id: String,
    pub error: StepError,
    pub status: DlqStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub closed_by: Option<String>,
    #[serde(default)]
    pub close_reason: Option<String>,
    /// The run that replayed this entry.
    #[serde(default)]
    pub replay_run: Option<i64>,
    /// The record the failed run was about.
    #[serde(default)]
    pub record_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The run log of three runs as a server wrote it (`tests/events.rs` records the same
    /// lifecycles): run 1 retried a transient failure and succeeded; run 5 failed into the
    /// DLQ and was replayed as run 8; run 7 failed into the DLQ and was retried in place.
    const RECORDED: &str = include_str!("testdata/recorded_runs.jsonl");

    fn fold(lines: &str) -> BTreeMap<i64, RunView> {
        let mut rows = BTreeMap::new();
        for line in lines.lines() {
            let event: Event = serde_json::from_str(line).expect("a recorded event");
            if let Some(row) = RunView::queued(&event) {
                rows.insert(row.id, row);
            }
            if let Some(row) = event.run_id.and_then(|id| rows.get_mut(&id)) {
                row.apply(&event);
            }
        }
        rows
    }

    #[test]
    fn a_recorded_log_folds_into_the_rows_the_server_showed() {
        let rows = fold(RECORDED);
        let retried = &rows[&1];
        assert_eq!(
            (retried.status, retried.attempts, retried.error.as_ref()),
            (RunStatus::Succeeded, 4, None)
        );
        assert!(retried.started_at.is_some() && retried.finished_at.is_some());
        assert_eq!(retried.next_attempt_at, None);
        let replayed = &rows[&5];
        assert_eq!(replayed.status, RunStatus::Failed);
        assert_eq!(replayed.failed_step.as_deref(), Some("bad"));
        assert_eq!(
            replayed.error.as_ref().map(|e| e.class),
            Some(ErrorClass::Permanent)
        );
        assert_eq!(
            (replayed.dead_letter, replayed.replayed_as),
            (Some(DlqStatus::Replayed), Some(8))
        );
        assert!(!replayed.is_open_failure());
        let in_place = &rows[&7];
        assert_eq!(
            (
                in_place.status,
                in_place.dead_letter,
                in_place.failed_step.as_deref()
            ),
            (RunStatus::Succeeded, Some(DlqStatus::Retried), None)
        );
        assert_eq!((in_place.team.as_str(), in_place.attempts), ("sales", 3));
    }

    #[test]
    fn each_prefix_of_a_recorded_log_shows_the_status_of_its_last_event() {
        let lines: Vec<&str> = RECORDED.lines().collect();
        for end in 1..=lines.len() {
            let rows = fold(&lines[..end].join("\n"));
            let last: Event = serde_json::from_str(lines[end - 1]).unwrap();
            let (Some(id), Some(status)) = (last.run_id, last.body.run_status()) else {
                continue;
            };
            assert_eq!(rows[&id].status, status, "after {}", lines[end - 1]);
        }
    }

    #[test]
    fn events_of_other_runs_change_nothing() {
        let rows = fold(RECORDED);
        let mut row = rows[&1].clone();
        let other: Event = serde_json::from_str(RECORDED.lines().nth(3).unwrap()).unwrap();
        assert_eq!(other.run_id, Some(5));
        row.apply(&other);
        assert_eq!(row, rows[&1]);
    }
}
