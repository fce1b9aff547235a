//! What a test runs and on what: the version, the inputs made ready, the mocks checked.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::super::catalog::Compiled;
use super::super::{EngineError, Inner};
use crate::domain::template;
use crate::domain::workflow::RecordOn;
use crate::domain::{RecordChange, RecordEvent, Trigger, parse_workflow};
use crate::store::StoreError;
use crate::wire::{
    MAX_TEST_INPUTS, RunMode, RunQuery, TestInput, TestRequest, TestVersion, TriggerKind,
};

/// One input made ready: what the report shows and what the run gets.
pub(super) struct Input {
    pub(super) shown: TestInput,
    pub(super) kind: TriggerKind,
    pub(super) trigger: Value,
    pub(super) record_id: Option<i64>,
}

impl Inner {
    /// The version a test runs: a file sent along and a draft are version 0; without either,
    /// the draft when there is one, else the published version.
    pub(super) async fn subject(
        &self,
        key: &str,
        version: Option<TestVersion>,
        source: Option<&str>,
    ) -> Result<Arc<Compiled>, EngineError> {
        if let Some(source) = source {
            if version.is_some() {
                return Err(EngineError::Invalid(
                    "give `version` or `source`, not both (`source` is tested as it is)".into(),
                ));
            }
            let workflow = parse_workflow(source).map_err(EngineError::Problems)?;
            if workflow.key() != key {
                return Err(EngineError::Invalid(format!(
                    "the file's key is `{}` but the URL names `{key}`",
                    workflow.key()
                )));
            }
            return Ok(self.catalog.compile(workflow, 0));
        }
        let draft = match version {
            None | Some(TestVersion::Draft) => self.store.draft(key).await?,
            Some(_) => None,
        };
        match (version, draft) {
            (None | Some(TestVersion::Draft), Some(source)) => {
                let workflow = parse_workflow(&source).map_err(EngineError::Problems)?;
                Ok(self.catalog.compile(workflow, 0))
            }
            (Some(TestVersion::Draft), None) => Err(EngineError::NotFound(format!(
                "a draft of workflow `{key}` (test \"published\" or a version number)"
            ))),
            (None | Some(TestVersion::Published), _) => self.catalog.published_of(key),
            (Some(TestVersion::Number(n)), _) => self.catalog.get(key, n).await,
        }
    }

    /// The request's inputs, then the trigger payloads of the workflow's most recent live runs.
    pub(super) async fn test_inputs(
        &self,
        subject: &Compiled,
        request: &TestRequest,
    ) -> Result<Vec<Input>, EngineError> {
        let recent = request.recent.unwrap_or(0);
        let total = request.inputs.len().saturating_add(recent);
        if total == 0 {
            return Err(EngineError::Invalid(
                "a test needs inputs: `inputs` ({\"record_id\": ID} or {\"payload\": {...}}) or `recent`".into(),
            ));
        }
        if total > MAX_TEST_INPUTS {
            return Err(EngineError::Invalid(format!(
                "a test takes at most {MAX_TEST_INPUTS} inputs (inputs and recent together), not {total}"
            )));
        }
        let kind = trigger_kind(&subject.workflow.trigger);
        let mut inputs = Vec::with_capacity(total);
        for (at, input) in request.inputs.iter().enumerate() {
            inputs.push(match input {
                TestInput::Record { record_id } => self
                    .record_input(subject, *record_id)
                    .await
                    .map_err(|e| match e {
                        EngineError::Store(StoreError::NotFound(_)) => EngineError::Invalid(
                            format!("inputs[{at}]: record {record_id} not found"),
                        ),
                        EngineError::Invalid(why) => {
                            EngineError::Invalid(format!("inputs[{at}]: {why}"))
                        }
                        other => other,
                    })?,
                TestInput::Payload { payload } => Input {
                    shown: input.clone(),
                    kind,
                    record_id: payload
                        .pointer("/record/id")
                        .and_then(Value::as_i64)
                        .filter(|id| *id > 0),
                    trigger: payload.clone(),
                },
            });
        }
        if recent > 0 {
            let query = RunQuery {
                workflow: Some(subject.workflow.key().to_owned()),
                mode: Some(RunMode::Live.as_str().to_owned()),
                limit: Some(recent),
                ..RunQuery::default()
            };
            for run in self.store.runs(&query).await?.items {
                inputs.push(Input {
                    shown: TestInput::Payload {
                        payload: run.trigger.clone(),
                    },
                    kind,
                    trigger: run.trigger,
                    record_id: run.record_id,
                });
            }
        }
        Ok(inputs)
    }

    /// A record as it is now, as if the trigger's fields had just been written with their
    /// current values.
    async fn record_input(&self, subject: &Compiled, id: i64) -> Result<Input, EngineError> {
        let Trigger::Record {
            object, on, fields, ..
        } = &subject.workflow.trigger
        else {
            return Err(EngineError::Invalid(format!(
                "`{}` is not started by record changes: give it a payload ({{\"payload\": {{...}}}})",
                subject.workflow.key()
            )));
        };
        let record = self.store.record(id).await?;
        if *object != record.object {
            return Err(EngineError::Invalid(format!(
                "record {id} is a `{}` record; `{}` is triggered by `{object}` records",
                record.object,
                subject.workflow.key()
            )));
        }
        // The event the workflow listens for: a workflow started only by new records sees
        // this one as just created (every field written), others as just updated.
        let change = if on.contains(&RecordOn::Updated) {
            RecordChange {
                event: RecordEvent::Updated,
                previous: record.values.clone(),
                changed: match fields.is_empty() {
                    true => record.values.keys().cloned().collect(),
                    false => fields.clone(),
                },
                record,
                by_workflow: None,
            }
        } else {
            RecordChange {
                event: RecordEvent::Created,
                previous: Map::new(),
                changed: record.values.keys().cloned().collect(),
                record,
                by_workflow: None,
            }
        };
        Ok(Input {
            shown: TestInput::Record { record_id: id },
            kind: TriggerKind::Record,
            trigger: change.payload(),
            record_id: Some(id),
        })
    }

    /// Why a live change like `trigger` would not start this workflow's record trigger: the
    /// payload's object, event or changed fields (where it names them) are not the ones it
    /// listens for, or its filter is false (or cannot be evaluated); `None` when it would.
    pub(super) fn trigger_note(&self, compiled: &Compiled, trigger: &Value) -> Option<String> {
        let Trigger::Record {
            object,
            on,
            fields,
            filter,
        } = &compiled.workflow.trigger
        else {
            return None;
        };
        let why = |reason: String| {
            Some(format!(
                "a live change like this would not start the workflow: {reason}"
            ))
        };
        if let Some(named) = trigger.get("object").and_then(Value::as_str)
            && named != object
        {
            return why(format!(
                "it is a `{named}` change, the trigger reads `{object}`"
            ));
        }
        if let Some(event) = trigger.get("event").and_then(Value::as_str) {
            let listens = match event {
                "created" => on.contains(&RecordOn::Created),
                "updated" => on.contains(&RecordOn::Updated),
                _ => false,
            };
            if !listens {
                return why(format!("the trigger does not listen for `{event}` changes"));
            }
        }
        if let Some(changed) = trigger.get("changed").and_then(Value::as_array)
            && !fields.is_empty()
            && !changed
                .iter()
                .filter_map(Value::as_str)
                .any(|f| fields.iter().any(|w| w == f))
        {
            return why(format!(
                "none of its fields ({}) changed",
                fields.join(", ")
            ));
        }
        let filter = filter.as_ref()?;
        let ctx = minijinja::Value::from_serialize(json!({ "trigger": trigger }));
        match template::is_true(&self.catalog.env, filter, &ctx) {
            Ok(true) => None,
            Ok(false) => why(format!("its filter `{filter}` is false")),
            Err(e) => why(format!("its filter `{filter}` fails ({e})")),
        }
    }
}

/// The trigger kind a workflow's runs get.
fn trigger_kind(trigger: &Trigger) -> TriggerKind {
    match trigger {
        Trigger::Record { .. } => TriggerKind::Record,
        Trigger::Schedule { .. } => TriggerKind::Schedule,
        Trigger::Webhook { .. } => TriggerKind::Webhook,
        Trigger::Manual => TriggerKind::Manual,
    }
}

/// Refuses mocks for steps the workflow does not have or that do not call out.
pub(super) fn check_mocks(subject: &Compiled, request: &TestRequest) -> Result<(), EngineError> {
    let steps = &subject.workflow.steps;
    for id in request.mocks.keys() {
        match steps.iter().find(|s| &s.id == id) {
            Some(step) if step.action.is_external() => {}
            Some(_) => {
                return Err(EngineError::Invalid(format!(
                    "mocks.{id}: step `{id}` does not call out (only http, notify and ai steps take mocks)"
                )));
            }
            None => {
                let known: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
                return Err(EngineError::Invalid(format!(
                    "mocks.{id}: the workflow has no step `{id}` (its steps: {})",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(())
}
