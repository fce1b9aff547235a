//! Test mode: a workflow version run on live data that applies nothing.
//!
//! A test run reads records as they are now and renders every step exactly as a live run
//! would, but:
//! - record writes are captured as planned changes over a private copy of the records they
//!   touch, so later steps see the would-be values (a record it would create gets a negative
//!   placeholder id, marked `placeholder` in the step's output);
//! - `http`, `notify` and `ai` steps send nothing: they are answered by the request's mock for
//!   the step, else (when asked) the step's last successful live answer, else not at all
//!   (`not_sent`; the run stops there when a later step reads that step);
//! - `delay` steps do not wait, failures are not retried and nothing is dead-lettered.
//!
//! The run is stored (mode `test`) without events or rollup tallies, so nothing counts it,
//! alerts on it or sends anything about it; retention removes it after a short while.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::bounds;
use super::catalog::Compiled;
use super::driver::{context, evaluate, redacted_input};
use super::redact::Redactor;
use super::step::{self, Control, Done, Reach};
use super::triggers::{change_of, triggered};
use super::{Engine, EngineError, Inner};
use crate::actions::{AiCompletion, AiProvider, AiRequest, HttpRequest, HttpResponse, HttpSend};
use crate::domain::run::idempotency_prefix;
use crate::domain::template;
use crate::domain::{
    ActionDef, NewRun, RecordChange, RecordEvent, RecordWrite, Step, StepFailure, Trigger,
    parse_workflow,
};
use crate::store::{StoreError, TestAttempt, TestRunEnd};
use crate::wire::{
    AttemptStatus, Comparison, FieldDiff, InputComparison, MAX_TEST_INPUTS, MockResponse,
    PlannedWrite, RecordView, ResponseSource, Responses, RunMode, RunQuery, RunStatus, RunView,
    TestInput, TestReport, TestRequest, TestResponse, TestResult, TestStep, TestStepStatus,
    TestVersion, TriggerKind, WouldCall, WouldTrigger, WriteOp,
};

impl Engine {
    /// Runs a version of workflow `key` in test mode on every input of `request` (and, with
    /// `compare`, another version on the same inputs), storing each as a test run.
    ///
    /// # Errors
    /// [`EngineError::NotFound`] for an unknown workflow, version or draft;
    /// [`EngineError::Problems`] for a draft or file that does not parse;
    /// [`EngineError::Invalid`] for a request that names no input, too many, an unknown
    /// record, or mocks a step the workflow does not have or that does not call out, and when
    /// the engine shuts down before the last input ran.
    pub async fn test(&self, key: &str, request: TestRequest) -> Result<TestReport, EngineError> {
        // A task of the engine's own: the test runs to its end (each test run ended in the
        // store) even when the caller gives up waiting, and shutdown waits for it.
        let (inner, key) = (self.inner.clone(), key.to_owned());
        self.inner
            .tasks
            .spawn(async move { inner.test(&key, request).await })
            .await
            .map_err(|e| StoreError::Other(format!("the test stopped: {e}")))?
    }
}

impl Inner {
    /// [`Engine::test`], on the engine's task.
    async fn test(
        self: &Arc<Self>,
        key: &str,
        request: TestRequest,
    ) -> Result<TestReport, EngineError> {
        let inner = self;
        let subject = inner
            .subject(key, request.version, request.source.as_deref())
            .await?;
        let compared = match request.compare {
            Some(version) => Some(inner.subject(key, Some(version), None).await?),
            None => None,
        };
        check_mocks(&subject, &request)?;
        let inputs = inner.test_inputs(&subject, &request).await?;
        let answers = Answers {
            mocks: request.mocks,
            recorded: request.responses == Responses::Recorded,
        };
        let results = inner.rehearse_all(&subject, &inputs, &answers).await?;
        let compare = match compared {
            Some(other) => {
                let theirs = inner.rehearse_all(&other, &inputs, &answers).await?;
                Some(compare(&results, theirs, other.version))
            }
            None => None,
        };
        Ok(TestReport {
            workflow: key.to_owned(),
            version: subject.version,
            results,
            compare,
        })
    }
}

/// Inputs of one test run at once.
const TESTS_AT_ONCE: usize = 8;

/// Test runs ended per page at start.
const ABANDONED_PAGE: usize = 500;

/// Ends the test runs a crash left `running` (their request is gone, so nothing will finish
/// them) as failed, saying why. For an engine that owns its store, at start.
///
/// # Errors
/// The store's.
pub(super) async fn end_abandoned(store: &dyn crate::store::Store) -> Result<(), EngineError> {
    let query = RunQuery {
        mode: Some(RunMode::Test.as_str().to_owned()),
        status: Some(RunStatus::Running.as_str().to_owned()),
        limit: Some(ABANDONED_PAGE),
        ..RunQuery::default()
    };
    loop {
        let page = store.runs(&query).await?;
        for run in &page.items {
            let error = StepFailure::permanent("the server stopped while this test ran").error;
            let end = TestRunEnd {
                status: RunStatus::Failed,
                failed_step: None,
                error: Some(error),
                attempts: Vec::new(),
            };
            store.end_test_run(run.id, end).await?;
        }
        if page.items.len() < ABANDONED_PAGE {
            return Ok(());
        }
    }
}

/// One input made ready: what the report shows and what the run gets.
struct Input {
    shown: TestInput,
    kind: TriggerKind,
    trigger: Value,
    record_id: Option<i64>,
}

impl Inner {
    /// The version a test runs: a file sent along and a draft are version 0; without either,
    /// the draft when there is one, else the published version.
    async fn subject(
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
    async fn test_inputs(
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
        if !matches!(subject.workflow.trigger, Trigger::Record { .. }) {
            return Err(EngineError::Invalid(format!(
                "`{}` is not started by record changes: give it a payload ({{\"payload\": {{...}}}})",
                subject.workflow.key()
            )));
        }
        let record = self.store.record(id).await?;
        let fields = match &subject.workflow.trigger {
            Trigger::Record { object, .. } if *object != record.object => {
                return Err(EngineError::Invalid(format!(
                    "record {id} is a `{}` record; `{}` is triggered by `{object}` records",
                    record.object,
                    subject.workflow.key()
                )));
            }
            Trigger::Record { fields, .. } if !fields.is_empty() => fields.clone(),
            _ => record.values.keys().cloned().collect(),
        };
        let change = RecordChange {
            event: RecordEvent::Updated,
            previous: record.values.clone(),
            changed: fields,
            record,
            by_workflow: None,
        };
        Ok(Input {
            shown: TestInput::Record { record_id: id },
            kind: TriggerKind::Record,
            trigger: change.payload(),
            record_id: Some(id),
        })
    }

    /// Why a live change like `trigger` would not start this workflow: its record trigger's
    /// filter is false (or cannot be evaluated) for it; `None` when it would.
    fn trigger_note(&self, compiled: &Compiled, trigger: &Value) -> Option<String> {
        let Trigger::Record {
            filter: Some(filter),
            ..
        } = &compiled.workflow.trigger
        else {
            return None;
        };
        let ctx = minijinja::Value::from_serialize(json!({ "trigger": trigger }));
        match template::is_true(&self.catalog.env, filter, &ctx) {
            Ok(true) => None,
            Ok(false) => Some(format!(
                "a live change like this would not start the workflow: its filter `{filter}` is false"
            )),
            Err(e) => Some(format!(
                "a live change like this would not start the workflow: its filter `{filter}` fails ({e})"
            )),
        }
    }

    /// Runs every input in test mode, [`TESTS_AT_ONCE`] at a time (their writes then share
    /// the store's group commits); answers the results in the inputs' order.
    async fn rehearse_all(
        self: &Arc<Self>,
        compiled: &Compiled,
        inputs: &[Input],
        answers: &Answers,
    ) -> Result<Vec<TestResult>, EngineError> {
        let mut results = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(TESTS_AT_ONCE) {
            if self.shutdown.is_cancelled() {
                return Err(EngineError::Invalid(format!(
                    "the engine is shutting down: the test stopped after {} of {} inputs",
                    results.len(),
                    inputs.len()
                )));
            }
            let runs = chunk
                .iter()
                .map(|input| self.rehearse(compiled, input, answers));
            results.extend(futures_util::future::try_join_all(runs).await?);
        }
        Ok(results)
    }

    /// Runs one input in test mode and stores the test run.
    async fn rehearse(
        self: &Arc<Self>,
        compiled: &Compiled,
        input: &Input,
        answers: &Answers,
    ) -> Result<TestResult, EngineError> {
        let new = NewRun {
            workflow: compiled.workflow.key().to_owned(),
            version: compiled.version,
            team: compiled.workflow.team().to_owned(),
            mode: RunMode::Test,
            trigger_kind: input.kind,
            trigger: input.trigger.clone(),
            record_id: input.record_id,
            origin_run: None,
            carry_from_origin: false,
            dedupe_key: None,
            not_before: None,
        };
        let run_id = self.store.begin_test_run(new.clone()).await?;
        let now = Utc::now();
        let run = RunView {
            id: run_id,
            workflow: new.workflow,
            version: new.version,
            team: new.team,
            status: RunStatus::Running,
            mode: RunMode::Test,
            trigger_kind: new.trigger_kind,
            trigger: new.trigger,
            record_id: new.record_id,
            origin_run: None,
            queued_at: now,
            started_at: Some(now),
            finished_at: None,
            next_attempt_at: None,
            attempts: 0,
            error: None,
            failed_step: None,
            dead_letter: None,
            replayed_as: None,
        };
        let secrets = compiled.secrets.iter();
        let mut rehearsal = Rehearsal {
            inner: self,
            compiled,
            redactor: Redactor::new(secrets.filter_map(|name| (self.config.secrets)(name))),
            run,
            records: Sim::default(),
            states: Map::new(),
            attempts: Vec::new(),
            steps: Vec::new(),
            would_trigger: Vec::new(),
        };
        let end = match rehearsal.run(answers).await {
            Ok(end) => end,
            Err(e) => {
                // Ended as failed, so it is not left `running`; the caller hears why.
                let error = StepFailure::permanent(format!("the test could not finish: {e}"));
                let end = TestRunEnd {
                    status: RunStatus::Failed,
                    failed_step: None,
                    error: Some(error.error),
                    attempts: rehearsal.attempts,
                };
                if let Err(also) = self.store.end_test_run(run_id, end).await {
                    tracing::warn!(run_id, "test run left unfinished: {also}");
                }
                return Err(e);
            }
        };
        let result = TestResult {
            run_id,
            input: input.shown.clone(),
            note: self.trigger_note(compiled, &input.trigger),
            status: end.status,
            error: end.error.clone(),
            writes: rehearsal.records.net(|value| rehearsal.stored(value)),
            steps: rehearsal.steps,
            would_trigger: rehearsal.would_trigger,
        };
        self.store
            .end_test_run(
                run_id,
                TestRunEnd {
                    attempts: rehearsal.attempts,
                    ..end
                },
            )
            .await?;
        Ok(result)
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
fn check_mocks(subject: &Compiled, request: &TestRequest) -> Result<(), EngineError> {
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

/// Where answers for steps that would call out come from.
struct Answers {
    mocks: BTreeMap<String, MockResponse>,
    recorded: bool,
}

impl Answers {
    /// The answer for `step`: its mock, else (when asked) its last successful live answer,
    /// else none.
    async fn find(
        &self,
        inner: &Inner,
        workflow: &str,
        step: &Step,
    ) -> Result<Option<Answer>, EngineError> {
        if let Some(mock) = self.mocks.get(&step.id) {
            return Ok(Some(Answer {
                source: ResponseSource::Mock,
                status: mock.status,
                headers: mock.headers.clone(),
                body: mock.body.clone(),
                run_id: None,
            }));
        }
        if !self.recorded {
            return Ok(None);
        }
        let Some(recorded) = inner.store.recorded(workflow, &step.id).await? else {
            return Ok(None);
        };
        let detail = &recorded.detail;
        let status = detail
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(200);
        let headers = detail
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        // A notify step keeps only the status of its answer.
        let body = match step.action {
            ActionDef::Notify { .. } => Value::Null,
            _ => recorded.output,
        };
        Ok(Some(Answer {
            source: ResponseSource::Recorded,
            status,
            headers,
            body,
            run_id: Some(recorded.run_id),
        }))
    }
}

/// A made-up or recorded answer; it stands in for the HTTP client and the AI provider, so the
/// answer is read exactly as a live one would be.
struct Answer {
    source: ResponseSource,
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
    run_id: Option<i64>,
}

#[async_trait]
impl HttpSend for Answer {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure> {
        crate::actions::http::check(&request)?;
        Ok(HttpResponse {
            status: self.status,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body: self.body.clone(),
            latency_ms: 0,
        })
    }
}

#[async_trait]
impl AiProvider for Answer {
    async fn complete(&self, request: AiRequest) -> Result<AiCompletion, StepFailure> {
        if !(200..300).contains(&self.status) {
            return Err(StepFailure::from_status(
                self.status,
                format!("HTTP {}: {}", self.status, self.body),
                None,
            ));
        }
        Ok(AiCompletion {
            content: self.body.clone(),
            model: request.model,
            prompt_tokens: 0,
            completion_tokens: 0,
        })
    }
}

/// An answer reached through the AI providers this server has (an unknown provider fails as
/// it would live).
struct Answering<'a> {
    answer: &'a Answer,
    providers: &'a crate::actions::Actions,
}

impl Reach for Answering<'_> {
    fn http(&self) -> &dyn HttpSend {
        self.answer
    }

    fn ai(&self, provider: &str) -> Option<&dyn AiProvider> {
        self.providers
            .ai
            .contains_key(provider)
            .then_some(self.answer as &dyn AiProvider)
    }
}

/// The records a test run touched, as it left them.
#[derive(Default)]
struct Sim {
    records: BTreeMap<i64, SimRecord>,
    /// Ids in the order first touched.
    order: Vec<i64>,
    /// The placeholder id of the last record created (-1, -2...).
    last_new: i64,
}

struct SimRecord {
    object: String,
    /// The values before the run; `None` for a record the run creates.
    before: Option<Map<String, Value>>,
    values: Map<String, Value>,
    /// Fields written, in the order first written.
    written: Vec<String>,
}

/// A write captured by a test run.
struct Captured {
    done: Done,
    write: PlannedWrite,
    change: Option<RecordChange>,
}

impl Sim {
    /// Applies `write` to the records as this run left them (read from the store the first
    /// time), failing as a live write would.
    async fn write(&mut self, inner: &Inner, write: RecordWrite) -> Result<Captured, StepFailure> {
        let now = Utc::now();
        let existing = match write.id {
            Some(id) => match self.records.get(&id) {
                Some(record) => Some(RecordView {
                    id,
                    object: record.object.clone(),
                    values: record.values.clone(),
                    created_at: now,
                    updated_at: now,
                }),
                None if id < 0 => {
                    let missing = StoreError::NotFound(format!("record {id}"));
                    return Err(step::write_failure(missing.into()));
                }
                None => Some(
                    inner
                        .store
                        .record(id)
                        .await
                        .map_err(|e| step::write_failure(e.into()))?,
                ),
            },
            None => None,
        };
        let merge = write.merge(existing.as_ref()).map_err(|refused| {
            step::write_failure(StoreError::Conflict(refused.to_string()).into())
        })?;
        let before = existing
            .as_ref()
            .map(|r| r.values.clone())
            .unwrap_or_default();
        let id = match &existing {
            Some(record) => record.id,
            None => {
                self.last_new -= 1;
                self.last_new
            }
        };
        let object = existing
            .as_ref()
            .map_or_else(|| write.object.clone(), |r| r.object.clone());
        let changes = write
            .values
            .iter()
            .map(|(field, after)| FieldDiff {
                field: field.clone(),
                before: before.get(field).cloned().unwrap_or(Value::Null),
                after: after.clone(),
                changed: merge.changed.contains(field),
                note: self.placeholder(after),
            })
            .collect();
        let change = change_of(existing.clone(), &write, &merge, now);
        let op = match existing {
            None => WriteOp::Create,
            Some(_) => WriteOp::Update,
        };
        let record = self.records.entry(id).or_insert_with(|| SimRecord {
            object: object.clone(),
            before: existing.as_ref().map(|r| r.values.clone()),
            values: Map::new(),
            written: Vec::new(),
        });
        if !self.order.contains(&id) {
            self.order.push(id);
        }
        record.values = merge.values;
        for field in write.values.keys() {
            if !record.written.contains(field) {
                record.written.push(field.clone());
            }
        }
        let mut output = json!({
            "record_id": id, "changed": merge.changed, "duplicate": false, "runs": [],
            "test": "not written: test run",
        });
        if id < 0 {
            output["placeholder"] = json!(true);
        }
        Ok(Captured {
            done: Done {
                output,
                detail: Value::Null,
                control: Control::Continue,
            },
            write: PlannedWrite {
                object,
                record_id: (id > 0).then_some(id),
                op,
                changes,
            },
            change,
        })
    }

    /// What a value is when it is the placeholder id of a record this run would create (a
    /// number, or text holding one, as templates render ids).
    fn placeholder(&self, value: &Value) -> Option<String> {
        let id = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }?;
        let record = self.records.get(&id).filter(|_| id < 0)?;
        Some(format!("placeholder for the new {} record", record.object))
    }

    /// Every record's net change: each field written, from its value before the run to its
    /// value at the end.
    /// `shown` makes a value fit to show (redacted, capped).
    fn net(&self, shown: impl Fn(&Value) -> Value) -> Vec<PlannedWrite> {
        self.order
            .iter()
            .filter_map(|id| Some((*id, self.records.get(id)?)))
            .map(|(id, record)| {
                let empty = Map::new();
                let before = record.before.as_ref().unwrap_or(&empty);
                let changes = record
                    .written
                    .iter()
                    .map(|field| {
                        let was = before.get(field).cloned().unwrap_or(Value::Null);
                        let now = record.values.get(field).cloned().unwrap_or(Value::Null);
                        FieldDiff {
                            field: field.clone(),
                            changed: record.before.is_none()
                                || before.get(field) != record.values.get(field),
                            note: self.placeholder(&now),
                            before: shown(&was),
                            after: shown(&now),
                        }
                    })
                    .collect();
                PlannedWrite {
                    object: record.object.clone(),
                    record_id: (id > 0).then_some(id),
                    op: match record.before {
                        None => WriteOp::Create,
                        Some(_) => WriteOp::Update,
                    },
                    changes,
                }
            })
            .collect()
    }
}

/// One test run in progress.
struct Rehearsal<'a> {
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
struct Outcome {
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
    async fn run(&mut self, answers: &Answers) -> Result<TestRunEnd, EngineError> {
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

/// Which calls a result makes, without the idempotency keys (they name the run).
fn calls(result: &TestResult) -> Vec<(String, WouldCall)> {
    result
        .steps
        .iter()
        .filter_map(|s| {
            let mut call = s.would_call.clone()?;
            call.headers.remove("Idempotency-Key");
            Some((s.id.clone(), call))
        })
        .collect()
}

/// Compares each input's run on the tested version (`ours`) with its run on another.
fn compare(ours: &[TestResult], theirs: Vec<TestResult>, version: i64) -> Comparison {
    let inputs: Vec<InputComparison> = ours
        .iter()
        .zip(&theirs)
        .enumerate()
        .map(|(input, (a, b))| InputComparison {
            input,
            status: a.status,
            compared_status: b.status,
            same_status: a.status == b.status,
            same_writes: a.writes == b.writes,
            same_calls: calls(a) == calls(b),
        })
        .collect();
    let n = inputs.len();
    let differ = inputs
        .iter()
        .filter(|c| !(c.same_status && c.same_writes && c.same_calls))
        .count();
    let now_fail = inputs
        .iter()
        .filter(|c| c.status == RunStatus::Failed && c.compared_status == RunStatus::Succeeded)
        .count();
    let same_writes = inputs.iter().filter(|c| c.same_writes).count();
    let same_calls = inputs.iter().filter(|c| c.same_calls).count();
    Comparison {
        version,
        results: theirs,
        summary: format!(
            "{now_fail} of {n} would now fail; {same_writes} write the same fields; {same_calls} make the same calls"
        ),
        inputs,
        differ,
        now_fail,
    }
}
