//! What the engine asks the store to persist about runs.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::wire::{AttemptStatus, RunMode, RunStatus, StepError, TriggerKind};

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
    /// Not claimed before this time (a bulk replay spreads its runs out); now when `None`.
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
