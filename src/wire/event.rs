//! The run log's events: every state change, numbered by a gap-free sequence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One persisted state change. `seq` is gap-free and strictly increasing across the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Event {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub run_id: Option<i64>,
    /// Kind-specific details (step id, attempt number, error summary, version, ...).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// What changed. Serialized as dotted names such as `run.queued` or `step.retry_scheduled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum EventKind {
    RunQueued,
    RunStarted,
    RunResumed,
    RunWaiting,
    RunSucceeded,
    RunFailed,
    RunCancelRequested,
    RunCancelled,
    RunRetried,
    StepStarted,
    StepSucceeded,
    StepFailed,
    StepRetryScheduled,
    StepSkipped,
    DlqAdded,
    DlqReplayed,
    DlqDiscarded,
    WorkflowDraftSaved,
    WorkflowPublished,
    WorkflowRolledBack,
    RecordCreated,
    RecordUpdated,
    AlertPending,
    AlertFiring,
    AlertResolved,
    AlertAcked,
    AlertSilenced,
    ControlDegraded,
    ControlRecovered,
}

const NAMES: &[(EventKind, &str)] = &[
    (EventKind::RunQueued, "run.queued"),
    (EventKind::RunStarted, "run.started"),
    (EventKind::RunResumed, "run.resumed"),
    (EventKind::RunWaiting, "run.waiting"),
    (EventKind::RunSucceeded, "run.succeeded"),
    (EventKind::RunFailed, "run.failed"),
    (EventKind::RunCancelRequested, "run.cancel_requested"),
    (EventKind::RunCancelled, "run.cancelled"),
    (EventKind::RunRetried, "run.retried"),
    (EventKind::StepStarted, "step.started"),
    (EventKind::StepSucceeded, "step.succeeded"),
    (EventKind::StepFailed, "step.failed"),
    (EventKind::StepRetryScheduled, "step.retry_scheduled"),
    (EventKind::StepSkipped, "step.skipped"),
    (EventKind::DlqAdded, "dlq.added"),
    (EventKind::DlqReplayed, "dlq.replayed"),
    (EventKind::DlqDiscarded, "dlq.discarded"),
    (EventKind::WorkflowDraftSaved, "workflow.draft_saved"),
    (EventKind::WorkflowPublished, "workflow.published"),
    (EventKind::WorkflowRolledBack, "workflow.rolled_back"),
    (EventKind::RecordCreated, "record.created"),
    (EventKind::RecordUpdated, "record.updated"),
    (EventKind::AlertPending, "alert.pending"),
    (EventKind::AlertFiring, "alert.firing"),
    (EventKind::AlertResolved, "alert.resolved"),
    (EventKind::AlertAcked, "alert.acked"),
    (EventKind::AlertSilenced, "alert.silenced"),
    (EventKind::ControlDegraded, "control.degraded"),
    (EventKind::ControlRecovered, "control.recovered"),
];

impl EventKind {
    /// The dotted name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("unknown", |(_, n)| n)
    }

    /// Parses a dotted name such as `run.failed`.
    pub fn parse(name: &str) -> Option<Self> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }
}

/// The schema is the list of dotted names, as serialized.
#[cfg(feature = "server")]
impl utoipa::PartialSchema for EventKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = NAMES.iter().map(|(_, name)| *name);
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(names))
            .into()
    }
}

#[cfg(feature = "server")]
impl utoipa::ToSchema for EventKind {}

impl From<EventKind> for &'static str {
    fn from(kind: EventKind) -> Self {
        kind.as_str()
    }
}

impl TryFrom<String> for EventKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or_else(|| format!("unknown event kind `{name}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for (kind, name) in NAMES {
            assert_eq!(EventKind::parse(name), Some(*kind));
            assert_eq!(kind.as_str(), *name);
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
        assert_eq!(EventKind::parse("run.exploded"), None);
    }
}
