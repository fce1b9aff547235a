//! Incidents (failures grouped by signature, with their lifecycle) and the product's success
//! metrics (`GET /metrics/summary`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::runs::{ErrorClass, string_enum};

string_enum!(
    /// Where an incident is: `open` from its first failure, `resolved` once the failing step
    /// succeeded again after its last failure and none of its dead letters is still open,
    /// `regressed` when it failed again after it was resolved (same incident, history kept).
    IncidentState {
        Open => "open",
        Resolved => "resolved",
        Regressed => "regressed",
    }
);

string_enum!(
    /// Which incidents `GET /incidents?state=` lists: `active` (open or regressed) or one
    /// state.
    IncidentFilter {
        Active => "active",
        Open => "open",
        Regressed => "regressed",
        Resolved => "resolved",
    }
);

impl IncidentState {
    /// True for `open` and `regressed`.
    pub fn is_active(self) -> bool {
        self != Self::Resolved
    }
}

/// What an incident's failures have in common.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct SignatureView {
    /// Stable id of the signature: `v{version}:{16 hex digits}`.
    pub key: String,
    /// The version of the algorithm that made it (see the README).
    pub version: u32,
    pub workflow: String,
    /// The failing step's id (empty when the workflow itself could not be loaded).
    pub step: String,
    pub class: ErrorClass,
    /// The destination host of the failing call, for outside calls.
    #[serde(default)]
    pub host: Option<String>,
    /// The error message with ids, numbers, e-mails, UUIDs and timestamps masked.
    pub message: String,
}

/// A publish or rollback of the incident's workflow shortly before it opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IncidentCause {
    /// `published` or `rolled_back`.
    pub change: String,
    /// The version that became live.
    pub version: i64,
    pub actor: String,
    pub at: DateTime<Utc>,
    /// From the change to the incident's first failure (or its regression), in seconds.
    pub after_s: i64,
    /// The version live before the change (what a rollback would go back to); none when
    /// the change was the workflow's first publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<i64>,
}

impl IncidentCause {
    /// "began 4 minutes after version 7 was published by ana".
    pub fn sentence(&self) -> String {
        let minutes = self.after_s / 60;
        let when = match (minutes, self.after_s) {
            (_, ..=0) => "right".to_owned(),
            (0, s) => format!("{s} s"),
            (1, _) => "1 minute".to_owned(),
            (n, _) => format!("{n} minutes"),
        };
        let verb = match self.change.as_str() {
            "rolled_back" => "rolled back to",
            _ => "published",
        };
        let actor = if self.actor.is_empty() {
            "someone"
        } else {
            &self.actor
        };
        match verb {
            "published" => format!(
                "began {when} after version {} was published by {actor}",
                self.version
            ),
            _ => format!(
                "began {when} after a rollback to version {} by {actor}",
                self.version
            ),
        }
    }
}

/// One incident, as `GET /incidents` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IncidentView {
    pub id: i64,
    pub signature: SignatureView,
    pub team: String,
    pub state: IncidentState,
    /// Failed runs it covers.
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// When it last opened (its first failure, or the failure that made it regress).
    pub opened_at: DateTime<Utc>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// The latest raw error message (redacted as the run log keeps it).
    pub example: String,
    /// Its dead letters still open.
    pub open_dead_letters: i64,
    /// Distinct records among its failed runs.
    pub records: i64,
    /// The versions its failed runs ran, ascending.
    pub versions: Vec<i64>,
    /// A publish or rollback within an hour before it opened.
    #[serde(default)]
    pub cause: Option<IncidentCause>,
    /// Holds on its host (placed by a person, a window, or the host's own 429/503) while it
    /// was open: "host:api.example.com held: ...".
    #[serde(default)]
    pub held: Vec<String>,
}

/// One failed run of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IncidentRun {
    pub run_id: i64,
    pub version: i64,
    #[serde(default)]
    pub record_id: Option<i64>,
    pub at: DateTime<Utc>,
    /// Its dead-letter entry, and whether that is still open.
    #[serde(default)]
    pub dlq_id: Option<i64>,
    #[serde(default)]
    pub dlq_open: bool,
}

/// A state an incident entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IncidentTransition {
    pub state: IncidentState,
    pub at: DateTime<Utc>,
}

/// `GET /incidents/{id}`: the incident, its runs (newest first, at most 200), its records and
/// its state history (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct IncidentDetail {
    pub incident: IncidentView,
    pub runs: Vec<IncidentRun>,
    pub record_ids: Vec<i64>,
    pub history: Vec<IncidentTransition>,
    /// Its workflow's alerts that were open while it was active, or opened within the hour
    /// after it (at most 50, newest first).
    #[serde(default)]
    pub alerts: Vec<i64>,
}

/// `GET /incidents?state=&workflow=&team=&alert=&limit=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    #[serde(default)]
    pub state: Option<IncidentFilter>,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    /// Only the incidents of this alert's workflow that were active while it was open or in
    /// the hour before it opened.
    #[serde(default)]
    pub alert: Option<i64>,
    /// At most this many, newest `last_seen` first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /metrics/summary?window=7d&team=`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// `7d` (default) or `30d`, or any duration of at least an hour.
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
}

/// The success metrics over a window, for everything asked or for one workflow. Times in
/// seconds; none when nothing was measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct MetricsSummary {
    /// Runs queued in the window.
    pub runs: i64,
    /// `runs` scaled to seven days.
    pub runs_per_week: f64,
    /// Incident opened (or regressed) → resolved, for resolutions in the window.
    pub mttr_p50_s: Option<f64>,
    pub mttr_p90_s: Option<f64>,
    /// Run level: first failed run after a success → the next succeeded run.
    pub run_mttr_p50_s: Option<f64>,
    pub run_mttr_p90_s: Option<f64>,
    /// Alert fired → acknowledged, for alerts fired in the window.
    pub mtta_p50_s: Option<f64>,
    pub mtta_p90_s: Option<f64>,
    /// Failed runs no notification covered within the alerting policy's time, over failed
    /// runs (the same rate `/health` shows).
    pub unnotified_rate: f64,
    pub healthy_workflows: i64,
    pub workflows: i64,
    /// `healthy_workflows / workflows` in percent (100 when there are none).
    pub healthy_pct: f64,
}

/// One workflow's line of the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WorkflowSummary {
    pub workflow: String,
    pub team: String,
    pub healthy: bool,
    /// Why not, when not: "2 open incidents", "failure rate 12% over 5%", "SLA breached".
    #[serde(default)]
    pub unhealthy_because: Vec<String>,
    pub open_incidents: i64,
    pub failure_rate: f64,
    #[serde(flatten)]
    pub metrics: MetricsSummary,
}

/// `GET /metrics/summary`: the totals, and the same per workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct SummaryReport {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[serde(flatten)]
    pub totals: MetricsSummary,
    pub per_workflow: Vec<WorkflowSummary>,
}

/// `POST /incidents/{id}/replay`: replay the incident's open dead letters, through the same
/// preview (`dry_run`) and replay job as `POST /dlq/replay`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncidentReplay {
    #[serde(default)]
    pub version: super::ReplayOn,
    /// Only answer what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// Replayed runs start at most this fast (default 10 per second).
    #[serde(default)]
    pub rate: Option<super::ReplayRate>,
    /// Also replay entries that failed permanently and would run the very same version again.
    #[serde(default)]
    pub include_permanent: bool,
}

#[cfg(test)]
mod tests {
    use super::IncidentCause;

    fn cause(change: &str, after_s: i64) -> String {
        IncidentCause {
            change: change.into(),
            version: 7,
            actor: "ana".into(),
            at: chrono::DateTime::UNIX_EPOCH,
            after_s,
            previous: Some(6),
        }
        .sentence()
    }

    #[test]
    fn the_cause_reads_as_a_sentence() {
        assert_eq!(
            cause("published", 0),
            "began right after version 7 was published by ana"
        );
        assert_eq!(
            cause("published", 40),
            "began 40 s after version 7 was published by ana"
        );
        assert_eq!(
            cause("published", 60),
            "began 1 minute after version 7 was published by ana"
        );
        assert_eq!(
            cause("rolled_back", 600),
            "began 10 minutes after a rollback to version 7 by ana"
        );
    }
}
