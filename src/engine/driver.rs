//! Drives one claimed run through its remaining steps, persisting each transition.

use std::panic::AssertUnwindSafe;

use chrono::{DateTime, Utc};
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::bounds;
use super::catalog::Compiled;
use super::policy::Permit;
use super::step::{self, Control};
use super::{EngineError, Inner};
use crate::domain::redact::Redactor;
use crate::domain::run::idempotency_prefix;
use crate::domain::template::{is_true, render_value};
use crate::domain::{ActionDef, Held, RetryAt, StepFailure, Transition};
use crate::store::ClaimedRun;
use crate::wire::{AttemptStatus, RunMode, RunStatus, RunView};

/// What earlier attempts of a run tell: which steps are done, their outputs, attempts used.
struct Progress {
    done: Vec<bool>,
    attempts: Vec<u32>,
    steps: Map<String, Value>,
}

impl Progress {
    fn new(claimed: &ClaimedRun, compiled: &Compiled) -> Self {
        let n = compiled.workflow.steps.len();
        let mut progress = Self {
            done: vec![false; n],
            attempts: vec![0; n],
            steps: Map::new(),
        };
        for attempt in &claimed.attempts {
            let Some(index) = usize::try_from(attempt.step_index).ok().filter(|i| *i < n) else {
                continue;
            };
            let finished = matches!(
                attempt.status,
                AttemptStatus::Succeeded | AttemptStatus::Skipped
            );
            progress.done[index] = finished;
            if finished {
                let state = json!({"status": attempt.status, "output": attempt.output, "detail": attempt.detail});
                progress.steps.insert(attempt.step_id.clone(), state);
            }
            // A skip is no attempt, and a call the host throttled is not charged.
            let counts = attempt.id > claimed.budget_floor
                && attempt.carried_from.is_none()
                && !matches!(
                    attempt.status,
                    AttemptStatus::Skipped | AttemptStatus::Throttled
                );
            progress.attempts[index] += u32::from(counts);
        }
        progress
    }
}

/// What templates read: the trigger payload, earlier steps' states and the run.
pub(super) fn context(run: &RunView, steps: &Map<String, Value>) -> minijinja::Value {
    minijinja::Value::from_serialize(json!({
        "trigger": run.trigger,
        "steps": steps,
        "run": {"id": run.id, "workflow": run.workflow, "version": run.version, "team": run.team, "mode": run.mode},
    }))
}

/// Evaluates a step's `when` and renders its input on a blocking thread (templates are
/// bounded, but they are CPU work that must not hold up the engine's other tasks, such as
/// lease heartbeats); `None` when `cancel` fires meanwhile.
pub(super) async fn evaluate(
    env: Arc<minijinja::Environment<'static>>,
    step: crate::domain::Step,
    ctx: minijinja::Value,
    cancel: &CancellationToken,
) -> Option<Evaluated> {
    let work = tokio::task::spawn_blocking(move || {
        let when = step.when.as_deref().map(|when| {
            is_true(&env, when, &ctx)
                .map_err(|e| StepFailure::permanent(format!("`when` could not be evaluated: {e}")))
        });
        let rendered = match &when {
            Some(Ok(false)) => Ok(Value::Null),
            Some(Err(failure)) => Err(failure.clone()),
            _ => step::render(&env, &step, &ctx),
        };
        (when.map(|w| w.unwrap_or(true)), rendered)
    });
    tokio::select! {
        done = work => Some(done.unwrap_or_else(|e| {
            (None, Err(StepFailure::permanent(format!("rendering the step failed: {e}"))))
        })),
        _ = cancel.cancelled() => None,
    }
}

/// A step's rendered input as the run log keeps it (secrets redacted; the templates
/// themselves when rendering failed). Values derived from secrets (a `b64encode` of one...)
/// join `redactor`, since what the step answers or fails with may quote them.
pub(super) fn redacted_input(
    redactor: &mut Redactor,
    step: &crate::domain::Step,
    rendered: &Result<Value, StepFailure>,
) -> Value {
    let templates = step::templates(step);
    match rendered {
        Ok(input) => {
            let (safe, derived) = redactor.rendered(&templates, input);
            if !derived.is_empty() {
                *redactor = redactor.with(derived);
            }
            safe
        }
        Err(_) => redactor.value(&templates),
    }
}

pub async fn drive(
    inner: &Arc<Inner>,
    claimed: ClaimedRun,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let compiled = match inner
        .catalog
        .get(&claimed.run.workflow, claimed.run.version)
        .await
    {
        Ok(compiled) => compiled,
        Err(e) => {
            let error = StepFailure::permanent(e.to_string()).error;
            let transitions = vec![
                Transition::Finish {
                    status: RunStatus::Failed,
                    failed_step: None,
                    error: Some(error.clone()),
                },
                Transition::DeadLetter {
                    step_id: String::new(),
                    error,
                },
            ];
            inner
                .store
                .apply(claimed.run.id, &inner.owner, transitions)
                .await?;
            return Ok(());
        }
    };
    if claimed.run.mode == RunMode::Test {
        // Test runs are run by the request that made them; driving one would apply it.
        let error = StepFailure::permanent("a test run is never run by a worker").error;
        let finish = Transition::Finish {
            status: RunStatus::Failed,
            failed_step: None,
            error: Some(error),
        };
        inner
            .store
            .apply(claimed.run.id, &inner.owner, vec![finish])
            .await?;
        return Ok(());
    }
    let driver = Driver {
        redactor: Redactor::new(
            compiled
                .secrets
                .iter()
                .filter_map(|name| (inner.config.secrets)(name)),
        ),
        progress: Progress::new(&claimed, &compiled),
        pending: Vec::new(),
        permit: None,
        inner,
        claimed: &claimed,
        compiled: &compiled,
        cancel,
    };
    driver.run().await
}

/// A step's `when` (`None` without one, or when it could not be evaluated) and its rendered
/// input.
pub(super) type Evaluated = (Option<bool>, Result<Value, StepFailure>);

/// Whether the run goes on after a step.
enum Next {
    Continue,
    Stop,
}

/// Drives one claimed run through its remaining steps.
///
/// Transitions that need not be durable before anything else happens (a step's end, a
/// skip) wait in `pending` and commit together with the next step's start: the next step
/// still never starts before the previous one is persisted, and each step costs one commit.
struct Driver<'a> {
    inner: &'a Arc<Inner>,
    claimed: &'a ClaimedRun,
    compiled: &'a Compiled,
    cancel: &'a CancellationToken,
    redactor: Redactor,
    progress: Progress,
    pending: Vec<Transition>,
    /// The run's slot under its workflow's concurrency, once admitted.
    permit: Option<Permit>,
}

impl Driver<'_> {
    /// A value as the run log keeps it: secrets redacted, then capped in size.
    fn stored(&self, value: &Value) -> Value {
        bounds::cap(
            self.redactor.value(value),
            self.inner.config.max_stored_bytes,
        )
    }

    async fn run(mut self) -> Result<(), EngineError> {
        for index in 0..self.compiled.workflow.steps.len() {
            if self.progress.done[index] {
                continue;
            }
            if self.inner.shutdown.is_cancelled() {
                return self.commit(Transition::Release).await;
            }
            if let Err(held) = self.admit() {
                return self.hold(held).await;
            }
            if let Next::Stop = self.step(index).await? {
                return Ok(());
            }
        }
        self.commit(Transition::Finish {
            status: RunStatus::Succeeded,
            failed_step: None,
            error: None,
        })
        .await
    }

    /// Before each step: a hold on the workflow or its team stops the run here (the attempt
    /// before finished); before the first step it takes, the workflow's own limits admit it.
    fn admit(&mut self) -> Result<(), Held> {
        let run = &self.claimed.run;
        if let Some(held) = self.inner.gate.run_hold(&run.workflow, &run.team) {
            return Err(held);
        }
        if self.permit.is_some() {
            return Ok(());
        }
        let policy = self.compiled.workflow.policy.as_ref();
        let key = policy
            .and_then(|p| p.key.as_deref())
            .map(|template| self.policy_key(template));
        // A run that has made no attempt of its own yet starts now: that is what the rate counts.
        let fresh = !self
            .claimed
            .attempts
            .iter()
            .any(|a| a.carried_from.is_none());
        let permit = self.inner.gate.admit_run(
            &run.workflow,
            policy,
            key.as_deref(),
            fresh,
            self.claimed.held_on.as_deref(),
        )?;
        self.permit = Some(permit);
        Ok(())
    }

    /// The value of the policy's key template for this run (empty when it does not render:
    /// a limit never fails a run).
    fn policy_key(&self, template: &str) -> String {
        let ctx = context(&self.claimed.run, &self.progress.steps);
        let text = Value::String(template.to_owned());
        match render_value(&self.inner.catalog.env, &text, &ctx) {
            Ok(Value::String(value)) => value,
            Ok(value) => value.to_string(),
            Err(e) => {
                tracing::warn!(
                    run_id = self.claimed.run.id,
                    "policy key did not render: {e}"
                );
                String::new()
            }
        }
    }

    /// Holds the run (with the transitions pending) and wakes the claim loop when it is due.
    async fn hold(&mut self, held: Held) -> Result<(), EngineError> {
        let until = held.until;
        self.commit(Transition::Hold(held)).await?;
        if let Some(until) = until {
            self.inner.wake_at(until);
        }
        Ok(())
    }

    /// Applies the pending transitions and `last`; answers the ids of attempts started.
    async fn flush(&mut self, last: Transition) -> Result<Vec<i64>, EngineError> {
        let mut transitions = std::mem::take(&mut self.pending);
        transitions.push(last);
        Ok(self
            .inner
            .store
            .apply(self.claimed.run.id, &self.inner.owner, transitions)
            .await?)
    }

    async fn commit(&mut self, last: Transition) -> Result<(), EngineError> {
        self.flush(last).await.map(drop)
    }

    async fn step(&mut self, index: usize) -> Result<Next, EngineError> {
        let ctx = context(&self.claimed.run, &self.progress.steps);
        let env = self.inner.catalog.env.clone();
        let step = self.compiled.workflow.steps[index].clone();
        let Some((when, rendered)) = evaluate(env, step, ctx, self.cancel).await else {
            let step_id = self.compiled.workflow.steps[index].id.clone();
            let error = StepFailure::permanent("cancelled before the step started").error;
            self.commit(Transition::Finish {
                status: RunStatus::Cancelled,
                failed_step: Some(step_id),
                error: Some(error),
            })
            .await?;
            return Ok(Next::Stop);
        };
        let step = &self.compiled.workflow.steps[index];
        let run = &self.claimed.run;
        if when == Some(false) {
            let reason = format!(
                "`when` was false: {}",
                step.when.as_deref().unwrap_or_default()
            );
            let step_id = step.id.clone();
            self.pending.push(Transition::StepSkipped {
                index,
                step_id,
                reason,
            });
            let state = json!({"status": "skipped", "output": null});
            self.progress.steps.insert(step.id.clone(), state);
            return Ok(Next::Continue);
        }
        // An outside call waits for its host: holds, backpressure, the host's limits.
        let host = match &rendered {
            Ok(input) if step.action.is_external() => self.host(step, input),
            _ => None,
        };
        let held_on = self.claimed.held_on.as_deref();
        let _call = match host
            .as_deref()
            .map(|h| self.inner.gate.admit_call(h, held_on))
        {
            Some(Err(held)) => {
                self.hold(held).await?;
                return Ok(Next::Stop);
            }
            Some(Ok(permit)) => Some(permit),
            None => None,
        };
        let number = self.progress.attempts[index] + 1;
        let prefix = idempotency_prefix(
            self.claimed.run.id,
            self.claimed.inherited_prefix.as_deref(),
        );
        let key = format!("{prefix}:{}", step.id);
        let safe_input = redacted_input(&mut self.redactor, step, &rendered);
        let stored_input = bounds::cap(safe_input.clone(), self.inner.config.max_stored_bytes);
        let started = Transition::StepStarted {
            index,
            step_id: step.id.clone(),
            number,
            input: stored_input,
            idempotency_key: key.clone(),
        };
        let attempt = Attempt {
            id: self
                .flush(started)
                .await?
                .first()
                .copied()
                .unwrap_or_default(),
            step_id: step.id.clone(),
            number,
        };
        let outcome = match rendered {
            Err(failure) => Err(failure),
            Ok(input) => {
                // A record is storage too: what a step writes there is the redacted input.
                let input = match step.action {
                    ActionDef::UpdateRecord { .. } | ActionDef::CreateRecord { .. } => safe_input,
                    _ => input,
                };
                let perform = AssertUnwindSafe(step::perform(
                    self.inner,
                    run,
                    self.compiled,
                    step,
                    &input,
                    &key,
                ))
                .catch_unwind()
                .map(|result| result.unwrap_or_else(|panic| Err(StepFailure::panicked(&*panic))));
                tokio::select! {
                    result = tokio::time::timeout(step.timeout, perform) => result.unwrap_or_else(|_| {
                        Err(StepFailure::transient(format!("timed out after {}", humantime::format_duration(step.timeout))))
                    }),
                    _ = self.cancel.cancelled() => return self.cancelled(attempt).await,
                }
            }
        };
        let mut failure = match outcome {
            Ok(done) => return self.succeeded(index, attempt, done).await,
            Err(failure) => failure,
        };
        failure.error.host.clone_from(&host);
        match (
            host,
            throttled_until(&failure, self.inner.config.clock.now()),
        ) {
            (Some(host), Some((until, status))) => {
                self.throttled(attempt, failure, &host, until, status).await
            }
            _ => self.failed(index, attempt, failure).await,
        }
    }

    /// The host an outside step calls, from its rendered input (an `ai` step's provider
    /// knows its own).
    fn host(&self, step: &crate::domain::Step, input: &Value) -> Option<String> {
        let actions = &self.inner.actions;
        let out = step::outbound(&actions.default_ai, &self.claimed.run, step, input, "").ok()?;
        match out {
            step::Outbound::Http(request) | step::Outbound::Notify(request) => {
                crate::actions::http::host_of(&request.url)
            }
            step::Outbound::Ai { provider, .. } => actions.ai.get(&provider)?.host(),
        }
    }

    /// The host answered 429 or 503 with `Retry-After`: every call to it waits until then,
    /// this attempt is recorded as `throttled` (not charged to the retry budget) and the run
    /// is held until then.
    async fn throttled(
        &mut self,
        attempt: Attempt,
        mut failure: StepFailure,
        host: &str,
        until: DateTime<Utc>,
        status: u16,
    ) -> Result<Next, EngineError> {
        failure.error.message = self
            .redactor
            .text_cut(&failure.error.message, bounds::MAX_ERROR_CHARS);
        let held = self.inner.gate.pause_host(host, until, status);
        self.inner.backpressure(host, &held).await;
        self.pending.push(attempt.ended(
            AttemptStatus::Throttled,
            Value::Null,
            Value::Null,
            Some(failure.error),
            None,
        ));
        self.hold(held).await?;
        Ok(Next::Stop)
    }

    async fn succeeded(
        &mut self,
        index: usize,
        attempt: Attempt,
        done: step::Done,
    ) -> Result<Next, EngineError> {
        let step = &self.compiled.workflow.steps[index];
        let (output, detail) = (self.stored(&done.output), self.stored(&done.detail));
        self.pending
            .push(attempt.ended(AttemptStatus::Succeeded, output, detail, None, None));
        let state = json!({"status": "succeeded", "output": done.output, "detail": done.detail});
        self.progress.steps.insert(step.id.clone(), state);
        match done.control {
            Control::Continue => Ok(Next::Continue),
            Control::Wait(until) => {
                self.commit(Transition::Wait { until }).await?;
                self.inner.wake_at(until);
                Ok(Next::Stop)
            }
            Control::SkipRest => {
                for (later, skipped) in self
                    .compiled
                    .workflow
                    .steps
                    .iter()
                    .enumerate()
                    .skip(index + 1)
                {
                    let reason = format!("condition `{}` was false", step.id);
                    self.pending.push(Transition::StepSkipped {
                        index: later,
                        step_id: skipped.id.clone(),
                        reason,
                    });
                }
                self.commit(Transition::Finish {
                    status: RunStatus::Succeeded,
                    failed_step: None,
                    error: None,
                })
                .await?;
                Ok(Next::Stop)
            }
        }
    }

    async fn failed(
        &mut self,
        index: usize,
        attempt: Attempt,
        mut failure: StepFailure,
    ) -> Result<Next, EngineError> {
        let number = attempt.number;
        let step = &self.compiled.workflow.steps[index];
        failure.error.message = self
            .redactor
            .text_cut(&failure.error.message, bounds::MAX_ERROR_CHARS);
        let error = failure.error.clone();
        if failure.is_retryable() && step.retry.allows_another(number) {
            let delay = step
                .retry
                .delay(number, failure.retry_after, fastrand::f64());
            let at = crate::domain::clock::later_or_max(self.inner.config.clock.now(), delay);
            let retry = RetryAt {
                at,
                delay_ms: delay.as_millis() as i64,
            };
            self.commit(attempt.ended(
                AttemptStatus::Failed,
                Value::Null,
                Value::Null,
                Some(error),
                Some(retry),
            ))
            .await?;
            self.inner.wake_at(at);
        } else {
            self.pending.push(attempt.ended(
                AttemptStatus::Failed,
                Value::Null,
                Value::Null,
                Some(error.clone()),
                None,
            ));
            let failed_step = Some(step.id.clone());
            self.pending.push(Transition::Finish {
                status: RunStatus::Failed,
                failed_step,
                error: Some(error.clone()),
            });
            self.commit(Transition::DeadLetter {
                step_id: step.id.clone(),
                error,
            })
            .await?;
        }
        Ok(Next::Stop)
    }

    async fn cancelled(&mut self, attempt: Attempt) -> Result<Next, EngineError> {
        let error = StepFailure::permanent("cancelled while running").error;
        let step_id = attempt.step_id.clone();
        self.pending.push(attempt.ended(
            AttemptStatus::Cancelled,
            Value::Null,
            Value::Null,
            Some(error.clone()),
            None,
        ));
        let finish = Transition::Finish {
            status: RunStatus::Cancelled,
            failed_step: Some(step_id),
            error: Some(error),
        };
        self.commit(finish).await?;
        Ok(Next::Stop)
    }
}

/// The shortest `Retry-After` that holds a host: a shorter one (`0`, a date already past) is
/// retried like any transient failure, charged and backed off, so a host that keeps
/// answering "retry now" cannot keep runs calling it in a loop that spends nothing.
const MIN_THROTTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// When a failed call means its host asked everyone to wait: a 429 or 503 with
/// `Retry-After` of at least [`MIN_THROTTLE`] (capped like a retry's), as the time to wait
/// until and the status.
fn throttled_until(failure: &StepFailure, now: DateTime<Utc>) -> Option<(DateTime<Utc>, u16)> {
    let status = failure.error.status.filter(|s| matches!(s, 429 | 503))?;
    let wait = failure
        .retry_after
        .filter(|wait| *wait >= MIN_THROTTLE)?
        .min(crate::domain::retry::MAX_RETRY_AFTER);
    Some((crate::domain::clock::later_or_max(now, wait), status))
}

/// The attempt a driver is running.
struct Attempt {
    id: i64,
    step_id: String,
    number: u32,
}

impl Attempt {
    /// The transition that ends this attempt.
    fn ended(
        self,
        status: AttemptStatus,
        output: Value,
        detail: Value,
        error: Option<crate::wire::StepError>,
        retry: Option<RetryAt>,
    ) -> Transition {
        Transition::StepEnded {
            attempt: self.id,
            step_id: self.step_id,
            number: self.number,
            status,
            output,
            error,
            detail,
            retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_429_or_503_asking_for_a_second_or_more_holds_the_host() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let failure = |status, secs: Option<u64>| {
            StepFailure::from_status(status, "busy", secs.map(std::time::Duration::from_secs))
        };
        let until = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            throttled_until(&failure(429, Some(2)), now),
            Some((until("2026-12-01T10:00:02Z"), 429))
        );
        assert_eq!(
            throttled_until(&failure(503, Some(7200)), now),
            Some((until("2026-12-01T11:00:00Z"), 503)),
            "capped at an hour"
        );
        assert_eq!(throttled_until(&failure(429, Some(0)), now), None);
        assert_eq!(throttled_until(&failure(429, None), now), None);
        assert_eq!(throttled_until(&failure(500, Some(5)), now), None);
        assert_eq!(throttled_until(&failure(502, Some(5)), now), None);
    }
}
