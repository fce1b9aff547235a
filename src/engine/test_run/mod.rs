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

mod answers;
mod compare;
mod inputs;
mod rehearsal;
mod sim;

use std::sync::Arc;

use chrono::Utc;

use super::catalog::Compiled;
use super::{Engine, EngineError, Inner};
use crate::domain::{NewRun, StepFailure};
use crate::store::{StoreError, TestAttempt, TestRunEnd};
use crate::wire::{
    Responses, RunMode, RunQuery, RunStatus, RunView, TestReport, TestRequest, TestResult,
};

use answers::Answers;
use compare::compare;
use inputs::{Input, check_mocks};
use rehearsal::Rehearsal;

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
        let subject = self
            .subject(key, request.version, request.source.as_deref())
            .await?;
        let compared = match request.compare {
            Some(version) => Some(self.subject(key, Some(version), None).await?),
            None => None,
        };
        check_mocks(&subject, &request)?;
        let inputs = self.test_inputs(&subject, &request).await?;
        let answers = Answers {
            mocks: request.mocks,
            recorded: request.responses == Responses::Recorded,
        };
        let results = self.rehearse_all(&subject, &inputs, &answers).await?;
        let compare = match compared {
            Some(other) => {
                let theirs = self.rehearse_all(&other, &inputs, &answers).await?;
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

/// The end of a test run that could not finish, saying why (with the steps it got through).
fn failed(why: String, attempts: Vec<TestAttempt>) -> TestRunEnd {
    TestRunEnd {
        status: RunStatus::Failed,
        failed_step: None,
        error: Some(StepFailure::permanent(why).error),
        attempts,
    }
}

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
            let end = failed("the server stopped while this test ran".into(), Vec::new());
            store.end_test_run(run.id, end).await?;
        }
        if page.items.len() < ABANDONED_PAGE {
            return Ok(());
        }
    }
}

impl Inner {
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
            held_reason: None,
        };
        let mut rehearsal = Rehearsal::new(self, compiled, run);
        let ran = rehearsal.run(answers).await;
        let rehearsed = rehearsal.into_parts();
        let end = match ran {
            Ok(end) => end,
            Err(e) => {
                // Ended as failed, so it is not left `running`; the caller hears why.
                let end = failed(
                    format!("the test could not finish: {e}"),
                    rehearsed.attempts,
                );
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
            writes: rehearsed.writes,
            steps: rehearsed.steps,
            would_trigger: rehearsed.would_trigger,
        };
        let attempts = rehearsed.attempts;
        self.store
            .end_test_run(run_id, TestRunEnd { attempts, ..end })
            .await?;
        Ok(result)
    }
}
