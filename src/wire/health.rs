//! The health dashboard's numbers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `GET /health`: what happened over a window, per workflow and per team.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(default)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// How far back, e.g. `1h` (default), `15m`, `24h`; at least `1m`. The answer's `since`
    /// is the start of the window's first whole minute (or hour, past the two days kept per
    /// minute).
    pub window: Option<String>,
    /// Number of time buckets for the sparklines, 1 to 240 and at most one per minute of the
    /// window (default 12, or one per minute of a shorter window).
    pub buckets: Option<usize>,
    pub team: Option<String>,
    pub workflow: Option<String>,
}

/// The health dashboard's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Health {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket_secs: i64,
    pub workflows: Vec<WorkflowHealth>,
    pub teams: Vec<TeamHealth>,
    /// Failure reasons over the window, most frequent first.
    pub failure_reasons: Vec<FailureReason>,
    /// Open dead-letter entries (all time).
    pub dlq_depth: i64,
    /// Runs held now.
    #[serde(default)]
    pub held: i64,
    /// The control plane's own health.
    #[serde(default)]
    pub control: ControlStatus,
    /// Failed runs nobody was told about, over the window.
    #[serde(default)]
    pub unnotified: Unnotified,
}

/// Failed live runs with no delivered notification within `within_ms` milliseconds of failing.
/// Runs that failed more recently are not counted yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Unnotified {
    pub within_ms: i64,
    /// Failed runs old enough to count.
    pub failed: i64,
    pub unnotified: i64,
    /// unnotified / failed; 0 when nothing failed.
    pub rate: f64,
}

/// Whether the parts that watch the workflows are themselves alive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ControlStatus {
    /// When the alert evaluator last finished a round.
    #[serde(default)]
    pub evaluator_last_run: Option<DateTime<Utc>>,
    /// False when the evaluator has not finished a round for longer than expected.
    pub evaluator_healthy: bool,
    /// Every background loop of the server (the evaluator, outbox dispatch and delivery,
    /// retention).
    #[serde(default)]
    pub loops: Vec<LoopStatus>,
    /// Destinations ACP could not deliver to: disabled subscriptions, and every target with
    /// messages given up over the window. A failure nobody hears of starts here.
    #[serde(default)]
    pub deliveries: Vec<DeliveryWarning>,
}

/// A destination that cannot be delivered to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DeliveryWarning {
    /// `webhook:<id>` or `channel:<name>`.
    pub target: String,
    /// True for a subscription disabled after `410 Gone`.
    pub disabled: bool,
    /// Messages given up over the window.
    pub given_up: i64,
    /// The latest reason (why it was disabled, or why the last message was given up).
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// One background loop and whether it is keeping up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct LoopStatus {
    pub name: String,
    /// When it last finished a round.
    #[serde(default)]
    pub last_round: Option<DateTime<Utc>>,
    /// False when it has not finished a round for longer than it may.
    pub healthy: bool,
}

/// Counts shared by workflows and teams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Counts {
    pub runs: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// failed / (succeeded + failed); 0 when nothing finished.
    pub failure_rate: f64,
    pub dlq_depth: i64,
    /// Runs held now (by a hold, a limit or a host that asked to wait); never failures.
    #[serde(default)]
    pub held: i64,
}

/// One workflow over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WorkflowHealth {
    pub workflow: String,
    pub team: String,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(default)]
    pub p50_ms: Option<i64>,
    #[serde(default)]
    pub p95_ms: Option<i64>,
    /// Runs started per bucket, oldest first.
    pub throughput: Vec<i64>,
    /// Runs failed per bucket, oldest first.
    pub failures: Vec<i64>,
    #[serde(default)]
    pub unnotified: Unnotified,
}

/// One team over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TeamHealth {
    pub team: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// Failures that share an error signature (ids, numbers and times masked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct FailureReason {
    pub signature: String,
    pub workflow: String,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// One full message with this signature.
    pub example: String,
}
