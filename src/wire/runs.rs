//! Runs, attempts and dead-letter entries as clients see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    /// Where a run is in its life. `waiting` means a `delay` step is sleeping.
    RunStatus {
        Queued => "queued",
        Running => "running",
        Retrying => "retrying",
        Waiting => "waiting",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

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
    /// The outcome of one attempt of one step.
    AttemptStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
        Abandoned => "abandoned",
        Cancelled => "cancelled",
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
