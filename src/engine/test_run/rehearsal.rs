//! One test run, step by step: rendered as live, performed against mocks and the copy.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::super::bounds;
use super::super::catalog::Compiled;
use super::super::driver::{context, evaluate, redacted_input};
use super::super::step::{self, Control, Done};
use super::super::triggers::triggered;
use super::super::{EngineError, Inner};
use super::answers::{Answering, Answers};
use super::sim::Sim;
use crate::domain::redact::Redactor;
use crate::domain::run::idempotency_prefix;
use crate::domain::template;
use crate::domain::{ActionDef, RecordChange, Step, StepFailure, Trigger};
use crate::store::{TestAttempt, TestRunEnd};
use crate::wire::{
    AttemptStatus, FieldDiff, PlannedWrite, RunStatus, RunView, TestResponse, TestStep,
    TestStepStatus, WouldCall, WouldTrigger,
};

/// One test run in progress.
pub(super) struct Rehearsal<'a> {
    inner: &'a Arc<Inner>,
    compiled: &'a Compiled,
    redactor: Redactor,
    run: RunView,
    records: Sim,
    /// What templates see as `steps`.
    states: Map<String, Value>,
    attempts: Vec<TestAttempt>,
    steps: Vec<TestStep>,
    would_trigger: Vec<WouldTrigger>,
}

/// How a test step went, before it is recorded.
pub(super) struct Outcome {
    result: Result<Done, StepFailure>,
    would_call: Option<WouldCall>,
    response: Option<TestResponse>,
    writes: Vec<PlannedWrite>,
}

impl Outcome {
    fn of(result: Result<Done, StepFailure>) -> Self {
        Self {
            result,
            would_call: None,
            response: None,
            writes: Vec::new(),
        }
    }
}

/// What a finished rehearsal leaves: the steps as shown, each record's net change, the
/// workflows the writes would start, and the attempts to store.
pub(super) struct Rehearsed {
    pub(super) steps: Vec<TestStep>,
    pub(super) writes: Vec<PlannedWrite>,
    pub(super) would_trigger: Vec<WouldTrigger>,
    pub(super) attempts: Vec<TestAttempt>,
}

impl<'a> Rehearsal<'a> {
    /// A rehearsal of `run` (a stored test run) on `compiled`, redacting the secrets its
    /// templates read.
    pub(super) fn new(inner: &'a Arc<Inner>, compiled: &'a Compiled, run: RunView) -> Self {
        let secrets = compiled.secrets.iter();
        Self {
            inner,
            compiled,
            redactor: Redactor::new(secrets.filter_map(|name| (inner.config.secrets)(name))),
            run,
            records: Sim::default(),
            states: Map::new(),
            attempts: Vec::new(),
            steps: Vec::new(),
            would_trigger: Vec::new(),
        }
    }

    /// What the rehearsal leaves once it ran (or stopped).
    pub(super) fn into_parts(self) -> Rehearsed {
        Rehearsed {
            writes: self.records.net(|value| self.stored(value)),
            steps: self.steps,
            would_trigger: self.would_trigger,
            attempts: self.attempts,
        }
    }
}

impl Rehearsal<'_> {
    /// A value as the run log keeps it: secrets redacted, then capped in size.
    fn stored(&self, value: &Value) -> Value {
        bounds::cap(
            self.redactor.value(value),
            self.inner.config.max_stored_bytes,
        )
    }

    /// A planned write with its values as the run log would keep them (capped in size).
    fn capped(&self, write: PlannedWrite) -> PlannedWrite {
        let changes = write
            .changes
            .into_iter()
            .map(|change| FieldDiff {
                before: self.stored(&change.before),
                after: self.stored(&change.after),
                ..change
            })
            .collect();
        PlannedWrite { changes, ..write }
    }

    /// Runs every step; answers how the run ended (its attempts are still in `self`).
    pub(super) async fn run(&mut self, answers: &Answers) -> Result<TestRunEnd, EngineError> {
        let steps = &self.compiled.workflow.steps;
        let never = CancellationToken::new();
        let mut end = TestRunEnd {
            status: RunStatus::Succeeded,
            failed_step: None,
            error: None,
            attempts: Vec::new(),
        };
        for (index, step) in steps.iter().enumerate() {
            if end.status != RunStatus::Succeeded || end.failed_step.is_some() {
                self.not_run(step);
                continue;
            }
            let started = Utc::now();
            let ctx = context(&self.run, &self.states);
            let env = self.inner.catalog.env.clone();
            let Some((when, rendered)) = evaluate(env, step.clone(), ctx, &never).await else {
                continue;
            };
            if when == Some(false) {
                let reason = format!(
                    "`when` was false: {}",
                    step.when.as_deref().unwrap_or_default()
                );
                self.skipped(index, step, started, reason);
                continue;
            }
            let key = format!("{}:{}", idempotency_prefix(self.run.id, None), step.id);
            let safe_input = redacted_input(&mut self.redactor, step, &rendered);
            let outcome = match rendered {
                Err(failure) => Outcome::of(Err(failure)),
                Ok(input) => {
                    self.perform(step, index, input, safe_input.clone(), &key, answers)
                        .await?
                }
            };
            let input = bounds::cap(safe_input, self.inner.config.max_stored_bytes);
            match self.record(index, step, started, key, input, outcome) {
                Some(Control::SkipRest) => {
                    for (later, skipped) in steps.iter().enumerate().skip(index + 1) {
                        let reason = format!("condition `{}` was false", step.id);
                        self.skipped(later, skipped, Utc::now(), reason);
                    }
                    break;
                }
                Some(_) => {}
                None => {
                    let last = self.steps.last();
                    end.status = RunStatus::Failed;
                    end.failed_step = Some(step.id.clone());
                    end.error = last.and_then(|s| s.error.clone());
                }
            }
        }
        Ok(end)
    }

    /// Performs one step in test mode.
    async fn perform(
        &mut self,
        step: &Step,
        index: usize,
        input: Value,
        safe_input: Value,
        key: &str,
        answers: &Answers,
    ) -> Result<Outcome, EngineError> {
        let inner = self.inner;
        match &step.action {
            ActionDef::UpdateRecord { .. } | ActionDef::CreateRecord { .. } => {
                // A record is storage too: what a step writes there is the redacted input.
                let write =
                    match step::record_write(&self.run, self.compiled, step, safe_input, key) {
                        Ok(write) => write,
                        Err(failure) => return Ok(Outcome::of(Err(failure))),
                    };
                match self.records.write(inner, write).await {
                    Ok(captured) => {
                        if let Some(change) = &captured.change {
                            self.note_triggers(change);
                        }
                        Ok(Outcome {
                            writes: vec![self.capped(captured.write)],
                            ..Outcome::of(Ok(captured.done))
                        })
                    }
                    Err(failure) => Ok(Outcome::of(Err(failure))),
                }
            }
            ActionDef::Condition { .. } | ActionDef::Delay { .. } => Ok(Outcome::of(step::local(
                step,
                &input,
                inner.config.clock.now(),
            ))),
            ActionDef::Http { .. } | ActionDef::Notify { .. } | ActionDef::Ai { .. } => {
                let out =
                    match step::outbound(&inner.actions.default_ai, &self.run, step, &input, key) {
                        Ok(out) => out,
                        Err(failure) => return Ok(Outcome::of(Err(failure))),
                    };
                // Shown from the input as the run log keeps it: a secret reshaped by a filter
                // (`| list`, `| upper`) is masked there, where redacting the sent value could
                // miss it.
                let default_ai = &inner.actions.default_ai;
                let shown = step::outbound(default_ai, &self.run, step, &safe_input, key)
                    .map(|shown| shown.would_call())
                    .unwrap_or_else(|_| out.would_call());
                let shown = serde_json::to_value(shown).unwrap_or(Value::Null);
                let would_call = serde_json::from_value::<WouldCall>(self.redactor.value(&shown))
                    .ok()
                    .map(|call| WouldCall {
                        body: self.stored(&call.body),
                        ..call
                    });
                // A request no client could send fails here as it would live, answered or not.
                if let step::Outbound::Http(request) | step::Outbound::Notify(request) = &out
                    && let Err(failure) = crate::actions::http::check(request)
                {
                    return Ok(Outcome {
                        would_call,
                        ..Outcome::of(Err(failure))
                    });
                }
                let Some(answer) = answers
                    .find(inner, self.compiled.workflow.key(), step)
                    .await?
                else {
                    let result = match self.read_later(index) {
                        Some(reader) => Err(StepFailure::permanent(format!(
                            "step `{}` would call out and has no response: give it a mock (step `{reader}` reads its output)",
                            step.id
                        ))),
                        None => Ok(Done {
                            output: Value::Null,
                            detail: json!({"test": "not sent: no mock or recorded response"}),
                            control: Control::Continue,
                        }),
                    };
                    return Ok(Outcome {
                        would_call,
                        ..Outcome::of(result)
                    });
                };
                let response = TestResponse {
                    source: answer.source,
                    status: answer.status,
                    body: self.redactor.value(&answer.body),
                    run_id: answer.run_id,
                };
                let reach = Answering {
                    answer: &answer,
                    providers: &inner.actions,
                };
                let result = step::call_out(out, step, &reach).await;
                Ok(Outcome {
                    result,
                    would_call,
                    response: Some(response),
                    writes: Vec::new(),
                })
            }
        }
    }

    /// The first later step whose templates read `steps.<id>` of the step at `index`.
    fn read_later(&self, index: usize) -> Option<String> {
        let steps = &self.compiled.workflow.steps;
        let id = &steps[index].id;
        let env = &self.inner.catalog.env;
        steps.iter().skip(index + 1).find_map(|later| {
            let expression = matches!(later.action, ActionDef::Condition { .. });
            let mut texts: Vec<(&str, bool)> = later
                .action
                .templates()
                .into_iter()
                .map(|t| (t, expression))
                .collect();
            texts.extend(later.when.as_deref().map(|w| (w, true)));
            let reads = texts.into_iter().any(|(text, expression)| {
                template::references(env, text, expression)
                    .is_ok_and(|refs| refs.steps.contains(id))
            });
            reads.then(|| later.id.clone())
        })
    }

    /// Adds the published workflows `change` would start.
    fn note_triggers(&mut self, change: &RecordChange) {
        let now = self.inner.config.clock.now();
        let published = self.inner.catalog.published();
        let record_id = (change.record.id > 0).then_some(change.record.id);
        for hit in triggered(&published, &self.inner.catalog.env, change, now) {
            // The fields its trigger watches among those changed (all of them when it watches
            // every field).
            let watched = published
                .iter()
                .find(|c| c.workflow.key() == hit.workflow)
                .and_then(|c| match &c.workflow.trigger {
                    Trigger::Record { fields, .. } if !fields.is_empty() => Some(fields.clone()),
                    _ => None,
                });
            let fields: Vec<String> = change
                .changed
                .iter()
                .filter(|f| watched.as_ref().is_none_or(|w| w.contains(f)))
                .cloned()
                .collect();
            let seen = self
                .would_trigger
                .iter_mut()
                .find(|t| t.workflow == hit.workflow && t.record_id == record_id);
            match seen {
                Some(seen) => {
                    let all: BTreeSet<String> = seen.fields.drain(..).chain(fields).collect();
                    seen.fields = all.into_iter().collect();
                }
                None => self.would_trigger.push(WouldTrigger {
                    workflow: hit.workflow,
                    version: hit.version,
                    record_id,
                    fields,
                }),
            }
        }
    }

    /// Records a step that ran; answers how the run goes on (`None`: it stops, failed).
    fn record(
        &mut self,
        index: usize,
        step: &Step,
        started: chrono::DateTime<Utc>,
        key: String,
        input: Value,
        outcome: Outcome,
    ) -> Option<Control> {
        let Outcome {
            result,
            would_call,
            response,
            writes,
        } = outcome;
        let (status, shown, output, detail, error, control) = match result {
            Ok(done) => {
                let not_sent = would_call.is_some() && response.is_none();
                let state = json!({
                    "status": if not_sent { "skipped" } else { "succeeded" },
                    "output": done.output, "detail": done.detail,
                });
                self.states.insert(step.id.clone(), state);
                let (output, detail) = (self.stored(&done.output), self.stored(&done.detail));
                if not_sent {
                    (
                        AttemptStatus::Skipped,
                        TestStepStatus::NotSent,
                        output,
                        detail,
                        None,
                        Some(done.control),
                    )
                } else {
                    (
                        AttemptStatus::Succeeded,
                        TestStepStatus::Succeeded,
                        output,
                        detail,
                        None,
                        Some(done.control),
                    )
                }
            }
            Err(mut failure) => {
                failure.error.message = self
                    .redactor
                    .text_cut(&failure.error.message, bounds::MAX_ERROR_CHARS);
                let error = failure.error;
                (
                    AttemptStatus::Failed,
                    TestStepStatus::Failed,
                    Value::Null,
                    Value::Null,
                    Some(error),
                    None,
                )
            }
        };
        self.attempts.push(TestAttempt {
            step_index: index,
            step_id: step.id.clone(),
            status,
            idempotency_key: key,
            input,
            output: output.clone(),
            detail,
            error: error.clone(),
            started_at: started,
            finished_at: Utc::now(),
        });
        self.steps.push(TestStep {
            id: step.id.clone(),
            status: shown,
            would_call,
            response,
            writes,
            output,
            error,
        });
        control
    }

    fn skipped(&mut self, index: usize, step: &Step, at: chrono::DateTime<Utc>, reason: String) {
        self.states.insert(
            step.id.clone(),
            json!({"status": "skipped", "output": null}),
        );
        self.attempts.push(TestAttempt {
            step_index: index,
            step_id: step.id.clone(),
            status: AttemptStatus::Skipped,
            idempotency_key: String::new(),
            input: Value::Null,
            output: json!({"reason": reason}),
            detail: Value::Null,
            error: None,
            started_at: at,
            finished_at: at,
        });
        self.steps.push(TestStep {
            id: step.id.clone(),
            status: TestStepStatus::Skipped,
            would_call: None,
            response: None,
            writes: Vec::new(),
            output: json!({"reason": reason}),
            error: None,
        });
    }

    fn not_run(&mut self, step: &Step) {
        self.steps.push(TestStep {
            id: step.id.clone(),
            status: TestStepStatus::NotRun,
            would_call: None,
            response: None,
            writes: Vec::new(),
            output: Value::Null,
            error: None,
        });
    }
}
