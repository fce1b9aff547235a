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
    /// When a notification about this alert was last queued for the channels.
    #[serde(default)]
    pub notified_at: Option<DateTime<Utc>>,
    /// What the evaluator saw last: counts, rate, the most frequent error.
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl AlertView {
    /// One sentence on how bad it is, from what the evaluator saw last (`42 of 167 runs
    /// failed (25%)`): what the Slack message, the email and the console say.
    pub fn summary(&self) -> String {
        let detail = &self.detail;
        let n = |key: &str| detail.get(key).and_then(serde_json::Value::as_i64);
        if let (Some(failed), Some(finished)) = (n("failed"), n("finished")) {
            let rate = detail
                .get("rate")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0);
            return format!("{failed} of {finished} runs failed ({:.0}%)", rate * 100.0);
        }
        if let Some(failed) = n("failed") {
            return format!("{failed} run{} failed", if failed == 1 { "" } else { "s" });
        }
        if let (Some(slow), Some(waiting)) = (n("slower_than_sla"), n("queued_too_long")) {
            return format!("{slow} runs slower than the SLA, {waiting} queued too long");
        }
        if let Some(secs) = n("silent_for_secs") {
            let needs = detail
                .get("needs")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("started");
            let window =
                humantime::format_duration(std::time::Duration::from_secs(secs.max(0) as u64));
            return format!("no run {needs} in {window}");
        }
        if let Some(depth) = n("dlq_depth") {
            let entries = if depth == 1 { "entry" } else { "entries" };
            return format!("{depth} dead-letter {entries} open");
        }
        "the condition cleared".into()
    }

    /// The most frequent error with its count (`HTTP 503 for lead 7 (40x)`), if the rule
    /// looks at errors.
    pub fn top_error(&self) -> Option<String> {
        top_error_line(self.detail.get("top_error")?)
    }
}

/// `{"example": "...", "count": 40}` as `example (40x)`; `None` for null or no example.
pub fn top_error_line(top: &serde_json::Value) -> Option<String> {
    let example = top.get("example").and_then(serde_json::Value::as_str)?;
    let count = top
        .get("count")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(1);
    Some(format!("{example} ({count}x)"))
}

/// `POST /alerts/{id}/silence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// How long, e.g. `1h`; or give `until`.
    #[serde(rename = "for", default)]
    pub duration: Option<String>,
    /// The end of a maintenance window, e.g. `2026-12-01T06:00:00Z`; or give `for`.
    #[serde(default, deserialize_with = "super::api::rfc3339")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One notification of an alert to one channel, with every delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NotificationView {
    pub id: i64,
    pub alert_id: i64,
    pub channel: String,
    /// `firing`, `update` (new failures grouped into a firing alert), `reminder` (still firing,
    /// nobody acknowledged it) or `resolved`.
    pub reason: String,
    /// `pending` (queued or being retried), `delivered` or `given_up` (see
    /// `give_up_reason`; its runs count as unnotified).
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub given_up_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub give_up_reason: Option<String>,
    /// Failed runs this notification told someone about.
    pub runs_covered: i64,
    /// The message as the channels render it.
    pub payload: serde_json::Value,
    /// Delivery attempts, oldest first.
    pub attempts: Vec<NotificationAttempt>,
}

/// One try at delivering a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct NotificationAttempt {
    pub at: DateTime<Utc>,
    /// The HTTP status, or the SMTP reply code.
    #[serde(default)]
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    #[serde(default)]
    pub error: Option<String>,
    /// `delivered`, `transient`, `permanent` or `gone` (unset for attempts made before ACP
    /// classified them).
    #[serde(default)]
    pub class: Option<String>,
    /// The first bytes of the receiver's answer (or the SMTP reply), secrets redacted.
    #[serde(default)]
    pub answer: Option<String>,
    /// When it is tried again; unset when this attempt delivered it or gave it up.
    #[serde(default)]
    pub retry_at: Option<DateTime<Utc>>,
}

/// `GET /notifications`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(default)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    pub alert: Option<i64>,
    pub limit: Option<usize>,
}

/// An alert rule and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RuleView {
    /// Set for rules created through the API (the id to delete them by).
    #[serde(default)]
    pub id: Option<i64>,
    /// `global`, `team:NAME` or `workflow:KEY`.
    pub scope: String,
    /// `workflow_file`, `config` (acp.ron), `api` or `default`.
    pub source: String,
    pub name: String,
    /// The rule as written: `{"name", "severity", "when": {...}, "after"}`.
    pub rule: serde_json::Value,
}

/// `POST /rules`: creates or replaces a global or team rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// `global` or `team:NAME`.
    pub scope: String,
    /// e.g. `{"name": "burst", "severity": "Critical", "when": {"FailureRate": {"above": 0.2, "min_runs": 10, "window": "15m"}}}`.
    pub rule: serde_json::Value,
}
