//! The executor: one claim loop hands due runs to a bounded pool of run tasks; a heartbeat
//! keeps their leases and notices cancel requests.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::catalog::Compiled;
use super::redact::Redactor;
use super::step::{self, Control};
use super::{EngineError, Inner};
use crate::domain::{RetryAt, StepFailure, Transition};
use crate::store::ClaimedRun;
use crate::wire::{AttemptStatus, RunStatus, RunView};

/// Claims due runs whenever a worker is free and something may be due.
pub async fn claim_loop(inner: Arc<Inner>) {
    while !inner.shutdown.is_cancelled() {
        let free = inner.slots.available_permits();
        let mut more = false;
        if free > 0 {
            let lease_until = Utc::now() + inner.lease();
            match inner
                .store
                .claim_runs(&inner.owner, free, lease_until)
                .await
            {
                Ok(runs) => {
                    more = runs.len() == free;
                    for run in runs {
                        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
                            break;
                        };
                        inner.tasks.spawn(execute(inner.clone(), run, permit));
                    }
                }
                Err(e) => tracing::warn!("claiming runs failed: {e}"),
            }
        }
        if more {
            continue;
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(inner.config.poll) => {}
            _ = inner.shutdown.cancelled() => {}
        }
    }
}

/// Extends this engine's leases and cancels runs someone asked to stop.
pub async fn heartbeat_loop(inner: Arc<Inner>) {
    let every = inner.config.lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = inner.shutdown.cancelled() => return,
        }
        match inner
            .store
            .heartbeat(&inner.owner, Utc::now() + inner.lease())
            .await
        {
            Ok(ids) => {
                for id in ids {
                    inner.cancel_local(id);
                }
            }
            Err(e) => tracing::warn!("lease heartbeat failed: {e}"),
        }
    }
}

async fn execute(inner: Arc<Inner>, claimed: ClaimedRun, permit: OwnedSemaphorePermit) {
    let run_id = claimed.run.id;
    let token = inner.register_cancel(run_id);
    if let Err(e) = drive(&inner, claimed, &token).await {
        tracing::warn!(run_id, "run paused: {e}; it resumes when its lease expires");
    }
    inner.unregister_cancel(run_id);
    drop(permit);
    inner.wake.notify_one();
}

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
            let counts = attempt.id > claimed.budget_floor
                && attempt.carried_from.is_none()
                && attempt.status != AttemptStatus::Skipped;
            progress.attempts[index] += u32::from(counts);
        }
        progress
    }

    fn context(&self, run: &RunView) -> minijinja::Value {
        minijinja::Value::from_serialize(json!({
            "trigger": run.trigger,
            "steps": self.steps,
            "run": {"id": run.id, "workflow": run.workflow, "version": run.version, "team": run.team, "mode": run.mode},
        }))
    }
}

async fn drive(
    inner: &Arc<Inner>,
    claimed: ClaimedRun,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let run = &claimed.run;
    let apply = |transitions: Vec<Transition>| inner.store.apply(run.id, &inner.owner, transitions);
    let compiled = match inner.catalog.get(&run.workflow, run.version).await {
        Ok(compiled) => compiled,
        Err(e) => {
            let error = StepFailure::permanent(e.to_string()).error;
            apply(vec![
                Transition::Finish {
                    status: RunStatus::Failed,
                    failed_step: None,
                    error: Some(error.clone()),
                },
                Transition::DeadLetter {
                    step_id: String::new(),
                    error,
                },
            ])
            .await?;
            return Ok(());
        }
    };
    let redactor = Redactor::new(
        compiled
            .secrets
            .iter()
            .filter_map(|name| (inner.config.secrets)(name)),
    );
    let mut progress = Progress::new(&claimed, &compiled);
    for (index, step) in compiled.workflow.steps.iter().enumerate() {
        if progress.done[index] {
            continue;
        }
        if inner.shutdown.is_cancelled() {
            apply(vec![Transition::Release]).await?;
            return Ok(());
        }
        let ctx = progress.context(run);
        if let Some(when) = &step.when {
            let run_it =
                crate::domain::template::is_true(&inner.catalog.env, when, &ctx).unwrap_or(true);
            if !run_it {
                let reason = format!("`when` was false: {when}");
                apply(vec![Transition::StepSkipped {
                    index,
                    step_id: step.id.clone(),
                    reason,
                }])
                .await?;
                progress.steps.insert(
                    step.id.clone(),
                    json!({"status": "skipped", "output": null}),
                );
                continue;
            }
        }
        let number = progress.attempts[index] + 1;
        let key = format!("{}:{}", claimed.idempotency_prefix, step.id);
        let rendered = step::render(inner, step, &ctx);
        let stored_input = match &rendered {
            Ok(input) => redactor.value(input),
            Err(_) => redactor.value(&serde_json::to_value(&step.action).unwrap_or_default()),
        };
        let started = Transition::StepStarted {
            index,
            step_id: step.id.clone(),
            number,
            input: stored_input,
            idempotency_key: key.clone(),
        };
        let attempt = apply(vec![started])
            .await?
            .first()
            .copied()
            .unwrap_or_default();
        let outcome = match rendered {
            Err(failure) => Err(failure),
            Ok(input) => tokio::select! {
                result = tokio::time::timeout(step.timeout, step::perform(inner, run, &compiled, step, &input, &key)) => {
                    result.unwrap_or_else(|_| Err(StepFailure::transient(format!("timed out after {}", humantime::format_duration(step.timeout)))))
                }
                _ = cancel.cancelled() => {
                    let error = StepFailure::permanent("cancelled while running").error;
                    apply(vec![
                        ended(attempt, AttemptStatus::Cancelled, Value::Null, Value::Null, Some(error.clone()), None),
                        Transition::Finish { status: RunStatus::Cancelled, failed_step: Some(step.id.clone()), error: Some(error) },
                    ]).await?;
                    return Ok(());
                }
            },
        };
        match outcome {
            Ok(done) => {
                let (output, detail) = (redactor.value(&done.output), redactor.value(&done.detail));
                let state =
                    json!({"status": "succeeded", "output": done.output, "detail": done.detail});
                progress.steps.insert(step.id.clone(), state);
                let mut transitions = vec![ended(
                    attempt,
                    AttemptStatus::Succeeded,
                    output,
                    detail,
                    None,
                    None,
                )];
                match done.control {
                    Control::Continue => {}
                    Control::Wait(until) => {
                        transitions.push(Transition::Wait { until });
                        apply(transitions).await?;
                        inner.wake_at(until);
                        return Ok(());
                    }
                    Control::SkipRest => {
                        for (later, skipped) in
                            compiled.workflow.steps.iter().enumerate().skip(index + 1)
                        {
                            let reason = format!("condition `{}` was false", step.id);
                            transitions.push(Transition::StepSkipped {
                                index: later,
                                step_id: skipped.id.clone(),
                                reason,
                            });
                        }
                        transitions.push(Transition::Finish {
                            status: RunStatus::Succeeded,
                            failed_step: None,
                            error: None,
                        });
                        apply(transitions).await?;
                        return Ok(());
                    }
                }
                apply(transitions).await?;
            }
            Err(mut failure) => {
                failure.error.message = redactor.text(&failure.error.message);
                let error = failure.error.clone();
                if failure.is_retryable() && step.retry.allows_another(number) {
                    let delay = step
                        .retry
                        .delay(number, failure.retry_after, fastrand::f64());
                    let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    let retry = RetryAt {
                        at,
                        delay_ms: delay.as_millis() as i64,
                    };
                    apply(vec![ended(
                        attempt,
                        AttemptStatus::Failed,
                        Value::Null,
                        Value::Null,
                        Some(error),
                        Some(retry),
                    )])
                    .await?;
                    inner.wake_at(at);
                } else {
                    apply(vec![
                        ended(
                            attempt,
                            AttemptStatus::Failed,
                            Value::Null,
                            Value::Null,
                            Some(error.clone()),
                            None,
                        ),
                        Transition::Finish {
                            status: RunStatus::Failed,
                            failed_step: Some(step.id.clone()),
                            error: Some(error.clone()),
                        },
                        Transition::DeadLetter {
                            step_id: step.id.clone(),
                            error,
                        },
                    ])
                    .await?;
                }
                return Ok(());
            }
        }
    }
    apply(vec![Transition::Finish {
        status: RunStatus::Succeeded,
        failed_step: None,
        error: None,
    }])
    .await?;
    Ok(())
}

fn ended(
    attempt: i64,
    status: AttemptStatus,
    output: Value,
    detail: Value,
    error: Option<crate::wire::StepError>,
    retry: Option<RetryAt>,
) -> Transition {
    Transition::StepEnded {
        attempt,
        status,
        output,
        error,
        detail,
        retry,
    }
}
