//! Alerts as clients see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::runs::string_enum;

string_enum!(
    /// `pending` (condition true, waiting out the rule's `after`), `firing`, `resolved`.
    AlertState {
        Pending => "pending",
        Firing => "firing",
        Resolved => "resolved",
    }
);

/// One alert: a rule's condition on one workflow, from when it started to when it cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AlertView {
    pub id: i64,
    pub rule: String,
    pub workflow: String,
    /// `warning` or `critical`.
    pub severity: String,
    pub state: AlertState,
    pub opened_at: DateTime<Utc>,
    #[serde(default)]
    pub fired_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub acked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub acked_by: Option<String>,
    #[serde(default)]
    pub silenced_until: Option<DateTime<Utc>>,
    /// What the evaluator saw last: counts, rate, the most frequent error.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// `POST /alerts/{id}/silence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct SilenceRequest {
    /// How long, e.g. `1h`.
    #[serde(rename = "for")]
    pub duration: String,
    #[serde(default)]
    pub reason: Option<String>,
}
