//! The run log's events: every state change, numbered by a gap-free sequence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AlertState, AttemptStatus, ErrorClass, RunMode, RunStatus, Source, StepError, TriggerKind,
};

/// One persisted state change. `seq` is gap-free and strictly increasing across the database.
///
/// On the wire the body is two fields, `kind` (a dotted name such as `run.failed`) and `data`
/// (that kind's payload, one of the shapes of [`EventBody`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Event {
    pub seq: i64,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub run_id: Option<i64>,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// What changed.
    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }
}

/// A run was queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunQueued {
    pub trigger_kind: TriggerKind,
    pub version: i64,
    #[serde(default)]
    pub team: String,
    #[serde(default)]
    pub mode: RunMode,
    #[serde(default)]
    pub record_id: Option<i64>,
    /// The run this one replays or re-runs.
    #[serde(default)]
    pub origin_run: Option<i64>,
    /// Not taken before this time (a bulk replay spreads its runs out); at once when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

/// A worker shutting down handed a running run back; it is queued again at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunReleased {}

/// A worker took a run (`run.started` the first time, `run.resumed` after that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunClaimed {
    /// The status the run had: `running` when its last worker's lease expired.
    pub from: RunStatus,
    /// Attempts the previous worker left running, now marked `abandoned`.
    #[serde(default)]
    pub abandoned_attempts: u64,
}

/// A `delay` step put the run to sleep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunWaiting {
    pub until: DateTime<Utc>,
}

/// A run waits on a policy or a hold: `on` names what it waits for (`hold:12`,
/// `host:api.attio.com`, `workflow:lead_routing`), `reason` says it for people, and `until` is
/// the earliest time it may continue (none while a hold without an end lasts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunHeld {
    pub on: String,
    pub reason: String,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

/// A hold was placed or released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct HoldChanged {
    pub hold_id: i64,
    /// `workflow:KEY`, `team:NAME` or `host:HOST`.
    pub scope: String,
    pub reason: String,
    pub source: super::HoldSource,
    /// When the hold ends by itself.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Who placed or released it (`window:NAME`, `backpressure` for automatic holds).
    #[serde(default)]
    pub actor: String,
    /// At release: the runs it held, now draining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_runs: Option<i64>,
}

/// A run ended (succeeded, failed or cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RunEnded {
    /// The step that failed or was running when the run was cancelled.
    #[serde(default)]
    pub step_id: Option<String>,
    #[serde(default)]
    pub error: Option<StepError>,
}

/// A person's action with no other details (cancel requested, retried, draft saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ByActor {
    #[serde(default)]
    pub actor: String,
}

/// An attempt of a step started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StepStarted {
    pub step_id: String,
    /// The step's position in the workflow, from 0.
    pub index: usize,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// An attempt of a step ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StepEnded {
    pub step_id: String,
    pub attempt: u32,
    pub status: AttemptStatus,
    #[serde(default)]
    pub error: Option<StepError>,
}

/// A failed attempt will be tried again at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RetryScheduled {
    pub step_id: String,
    /// The attempt that failed.
    pub attempt: u32,
    /// Milliseconds from the failure to the next attempt.
    pub delay_ms: i64,
    pub at: DateTime<Utc>,
}

/// A step did not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StepSkipped {
    pub step_id: String,
    pub reason: String,
}

/// A failed run's dead-letter entry was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DlqAdded {
    pub dlq_id: i64,
    pub step_id: String,
    pub class: ErrorClass,
    pub message: String,
}

/// A dead-letter entry was replayed as a new run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DlqReplayed {
    pub dlq_id: i64,
    pub replay_run: i64,
    #[serde(default)]
    pub actor: String,
}

/// A dead-letter entry was discarded, with the reason a person gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DlqDiscarded {
    pub dlq_id: i64,
    pub reason: String,
    #[serde(default)]
    pub actor: String,
}

/// A workflow's draft became a new published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WorkflowPublished {
    pub version: i64,
    #[serde(default)]
    pub actor: String,
}

/// An earlier version of a workflow was published again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WorkflowRolledBack {
    /// The version published before (none when nothing was).
    #[serde(default)]
    pub from: Option<i64>,
    pub to: i64,
    #[serde(default)]
    pub actor: String,
}

/// A record was created or some of its fields changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RecordChanged {
    pub record_id: i64,
    pub object: String,
    /// The fields whose value changed (every field written, for a new record).
    pub changed: Vec<String>,
    pub source: Source,
}

/// An alert changed state, was acknowledged or was silenced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AlertChanged {
    pub alert_id: i64,
    pub rule: String,
    /// The alert's state after the change.
    pub state: AlertState,
    /// Set when the alert opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The rule's numbers (as in `AlertView.detail`) when the alert opened or fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// Who acknowledged or silenced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The end of a silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// A part of the control plane stopped or resumed doing its work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ControlChanged {
    /// Which part (`alert evaluator`).
    pub part: String,
    /// When it last finished a round.
    #[serde(default)]
    pub last_run: Option<DateTime<Utc>>,
}

/// What changed and its details: one payload shape per kind, tagged by the kind's dotted name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "data")]
pub enum EventBody {
    #[serde(rename = "run.queued")]
    RunQueued(RunQueued),
    #[serde(rename = "run.started")]
    RunStarted(RunClaimed),
    #[serde(rename = "run.resumed")]
    RunResumed(RunClaimed),
    #[serde(rename = "run.waiting")]
    RunWaiting(RunWaiting),
    #[serde(rename = "run.held")]
    RunHeld(RunHeld),
    #[serde(rename = "run.succeeded")]
    RunSucceeded(RunEnded),
    #[serde(rename = "run.failed")]
    RunFailed(RunEnded),
    #[serde(rename = "run.cancel_requested")]
    RunCancelRequested(ByActor),
    #[serde(rename = "run.cancelled")]
    RunCancelled(RunEnded),
    #[serde(rename = "run.retried")]
    RunRetried(ByActor),
    #[serde(rename = "run.released")]
    RunReleased(RunReleased),
    #[serde(rename = "step.started")]
    StepStarted(StepStarted),
    #[serde(rename = "step.succeeded")]
    StepSucceeded(StepEnded),
    #[serde(rename = "step.failed")]
    StepFailed(StepEnded),
    #[serde(rename = "step.retry_scheduled")]
    StepRetryScheduled(RetryScheduled),
    #[serde(rename = "step.skipped")]
    StepSkipped(StepSkipped),
    #[serde(rename = "dlq.added")]
    DlqAdded(DlqAdded),
    #[serde(rename = "dlq.replayed")]
    DlqReplayed(DlqReplayed),
    #[serde(rename = "dlq.discarded")]
    DlqDiscarded(DlqDiscarded),
    #[serde(rename = "workflow.draft_saved")]
    WorkflowDraftSaved(ByActor),
    #[serde(rename = "workflow.published")]
    WorkflowPublished(WorkflowPublished),
    #[serde(rename = "workflow.rolled_back")]
    WorkflowRolledBack(WorkflowRolledBack),
    #[serde(rename = "record.created")]
    RecordCreated(RecordChanged),
    #[serde(rename = "record.updated")]
    RecordUpdated(RecordChanged),
    #[serde(rename = "alert.pending")]
    AlertPending(AlertChanged),
    #[serde(rename = "alert.firing")]
    AlertFiring(AlertChanged),
    #[serde(rename = "alert.resolved")]
    AlertResolved(AlertChanged),
    #[serde(rename = "alert.acked")]
    AlertAcked(AlertChanged),
    #[serde(rename = "alert.silenced")]
    AlertSilenced(AlertChanged),
    #[serde(rename = "hold.created")]
    HoldCreated(HoldChanged),
    #[serde(rename = "hold.released")]
    HoldReleased(HoldChanged),
    #[serde(rename = "control.degraded")]
    ControlDegraded(ControlChanged),
    #[serde(rename = "control.recovered")]
    ControlRecovered(ControlChanged),
}

impl EventBody {
    /// The kind, which names the payload's shape.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::RunQueued(_) => EventKind::RunQueued,
            Self::RunStarted(_) => EventKind::RunStarted,
            Self::RunResumed(_) => EventKind::RunResumed,
            Self::RunWaiting(_) => EventKind::RunWaiting,
            Self::RunHeld(_) => EventKind::RunHeld,
            Self::RunSucceeded(_) => EventKind::RunSucceeded,
            Self::RunFailed(_) => EventKind::RunFailed,
            Self::RunCancelRequested(_) => EventKind::RunCancelRequested,
            Self::RunCancelled(_) => EventKind::RunCancelled,
            Self::RunRetried(_) => EventKind::RunRetried,
            Self::RunReleased(_) => EventKind::RunReleased,
            Self::StepStarted(_) => EventKind::StepStarted,
            Self::StepSucceeded(_) => EventKind::StepSucceeded,
            Self::StepFailed(_) => EventKind::StepFailed,
            Self::StepRetryScheduled(_) => EventKind::StepRetryScheduled,
            Self::StepSkipped(_) => EventKind::StepSkipped,
            Self::DlqAdded(_) => EventKind::DlqAdded,
            Self::DlqReplayed(_) => EventKind::DlqReplayed,
            Self::DlqDiscarded(_) => EventKind::DlqDiscarded,
            Self::WorkflowDraftSaved(_) => EventKind::WorkflowDraftSaved,
            Self::WorkflowPublished(_) => EventKind::WorkflowPublished,
            Self::WorkflowRolledBack(_) => EventKind::WorkflowRolledBack,
            Self::RecordCreated(_) => EventKind::RecordCreated,
            Self::RecordUpdated(_) => EventKind::RecordUpdated,
            Self::AlertPending(_) => EventKind::AlertPending,
            Self::AlertFiring(_) => EventKind::AlertFiring,
            Self::AlertResolved(_) => EventKind::AlertResolved,
            Self::AlertAcked(_) => EventKind::AlertAcked,
            Self::AlertSilenced(_) => EventKind::AlertSilenced,
            Self::HoldCreated(_) => EventKind::HoldCreated,
            Self::HoldReleased(_) => EventKind::HoldReleased,
            Self::ControlDegraded(_) => EventKind::ControlDegraded,
            Self::ControlRecovered(_) => EventKind::ControlRecovered,
        }
    }

    /// The payload alone, as JSON (what the database keeps beside the kind's name).
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.remove("data").unwrap_or(serde_json::Value::Null)
            }
            _ => serde_json::Value::Null,
        }
    }

    /// Reads a body back from its kind's dotted name and its payload.
    ///
    /// # Errors
    /// The serde error when the name is unknown or the payload does not have the kind's shape.
    pub fn from_parts(kind: &str, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"kind": kind, "data": data}))
    }

    /// The status a run has after this event, for the events that set one.
    pub fn run_status(&self) -> Option<RunStatus> {
        Some(match self {
            Self::RunQueued(_) | Self::RunRetried(_) | Self::RunReleased(_) => RunStatus::Queued,
            Self::RunStarted(_) | Self::RunResumed(_) | Self::StepStarted(_) => RunStatus::Running,
            Self::RunWaiting(_) => RunStatus::Waiting,
            Self::RunHeld(_) => RunStatus::Held,
            Self::StepRetryScheduled(_) => RunStatus::Retrying,
            Self::RunSucceeded(_) => RunStatus::Succeeded,
            Self::RunFailed(_) => RunStatus::Failed,
            Self::RunCancelled(_) => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

/// What changed. Serialized as dotted names such as `run.queued` or `step.retry_scheduled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum EventKind {
    RunQueued,
    RunStarted,
    RunResumed,
    RunWaiting,
    RunHeld,
    RunSucceeded,
    RunFailed,
    RunCancelRequested,
    RunCancelled,
    RunRetried,
    RunReleased,
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
    HoldCreated,
    HoldReleased,
    ControlDegraded,
    ControlRecovered,
}

const NAMES: &[(EventKind, &str)] = &[
    (EventKind::RunQueued, "run.queued"),
    (EventKind::RunStarted, "run.started"),
    (EventKind::RunResumed, "run.resumed"),
    (EventKind::RunWaiting, "run.waiting"),
    (EventKind::RunHeld, "run.held"),
    (EventKind::RunSucceeded, "run.succeeded"),
    (EventKind::RunFailed, "run.failed"),
    (EventKind::RunCancelRequested, "run.cancel_requested"),
    (EventKind::RunCancelled, "run.cancelled"),
    (EventKind::RunRetried, "run.retried"),
    (EventKind::RunReleased, "run.released"),
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
    (EventKind::HoldCreated, "hold.created"),
    (EventKind::HoldReleased, "hold.released"),
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

    /// Every kind's dotted name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(_, name)| *name)
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

    /// One body of every kind.
    pub(crate) fn samples() -> Vec<EventBody> {
        let at: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let ended = RunEnded {
            step_id: Some("enrich".into()),
            error: Some(StepError {
                class: ErrorClass::Transient,
                message: "HTTP 503".into(),
                retryable: true,
                status: Some(503),
                host: None,
            }),
        };
        let step = StepEnded {
            step_id: "enrich".into(),
            attempt: 2,
            status: AttemptStatus::Failed,
            error: ended.error.clone(),
        };
        let claimed = RunClaimed {
            from: RunStatus::Queued,
            abandoned_attempts: 0,
        };
        let actor = ByActor {
            actor: "ops".into(),
        };
        let record = RecordChanged {
            record_id: 7,
            object: "deal".into(),
            changed: vec!["stage".into()],
            source: Source::Api,
        };
        let alert = AlertChanged {
            alert_id: 3,
            rule: "failure_rate".into(),
            state: AlertState::Firing,
            severity: Some("critical".into()),
            detail: Some(serde_json::json!({"failed": 4})),
            actor: None,
            until: None,
        };
        let control = ControlChanged {
            part: "alert evaluator".into(),
            last_run: Some(at),
        };
        let hold = HoldChanged {
            hold_id: 4,
            scope: "workflow:lead_routing".into(),
            reason: "vendor maintenance".into(),
            source: super::super::HoldSource::Api,
            until: Some(at),
            actor: "ops".into(),
            released_runs: None,
        };
        vec![
            EventBody::RunQueued(RunQueued {
                trigger_kind: TriggerKind::Record,
                version: 2,
                team: "revops".into(),
                mode: RunMode::Live,
                record_id: Some(7),
                origin_run: None,
                not_before: None,
            }),
            EventBody::RunReleased(RunReleased {}),
            EventBody::RunStarted(claimed.clone()),
            EventBody::RunResumed(RunClaimed {
                from: RunStatus::Running,
                abandoned_attempts: 1,
            }),
            EventBody::RunWaiting(RunWaiting { until: at }),
            EventBody::RunSucceeded(RunEnded {
                step_id: None,
                error: None,
            }),
            EventBody::RunFailed(ended.clone()),
            EventBody::RunCancelRequested(actor.clone()),
            EventBody::RunCancelled(ended),
            EventBody::RunRetried(actor.clone()),
            EventBody::StepStarted(StepStarted {
                step_id: "enrich".into(),
                index: 1,
                attempt: 2,
            }),
            EventBody::StepSucceeded(StepEnded {
                status: AttemptStatus::Succeeded,
                error: None,
                ..step.clone()
            }),
            EventBody::StepFailed(step),
            EventBody::StepRetryScheduled(RetryScheduled {
                step_id: "enrich".into(),
                attempt: 2,
                delay_ms: 4000,
                at,
            }),
            EventBody::StepSkipped(StepSkipped {
                step_id: "notify".into(),
                reason: "when was false".into(),
            }),
            EventBody::DlqAdded(DlqAdded {
                dlq_id: 5,
                step_id: "enrich".into(),
                class: ErrorClass::Permanent,
                message: "HTTP 400".into(),
            }),
            EventBody::DlqReplayed(DlqReplayed {
                dlq_id: 5,
                replay_run: 90,
                actor: "ops".into(),
            }),
            EventBody::DlqDiscarded(DlqDiscarded {
                dlq_id: 5,
                reason: "duplicate lead".into(),
                actor: "ops".into(),
            }),
            EventBody::WorkflowDraftSaved(actor),
            EventBody::WorkflowPublished(WorkflowPublished {
                version: 3,
                actor: "ops".into(),
            }),
            EventBody::WorkflowRolledBack(WorkflowRolledBack {
                from: Some(3),
                to: 2,
                actor: "ops".into(),
            }),
            EventBody::RecordCreated(record.clone()),
            EventBody::RecordUpdated(record),
            EventBody::AlertPending(AlertChanged {
                state: AlertState::Pending,
                ..alert.clone()
            }),
            EventBody::AlertFiring(alert.clone()),
            EventBody::AlertResolved(AlertChanged {
                state: AlertState::Resolved,
                severity: None,
                detail: None,
                ..alert.clone()
            }),
            EventBody::AlertAcked(AlertChanged {
                actor: Some("ops".into()),
                ..alert.clone()
            }),
            EventBody::AlertSilenced(AlertChanged {
                actor: Some("ops".into()),
                until: Some(at),
                ..alert
            }),
            EventBody::RunHeld(RunHeld {
                on: "host:api.attio.com".into(),
                reason: "api.attio.com asked to wait until 10:02:03Z (429)".into(),
                until: Some(at),
            }),
            EventBody::HoldCreated(hold.clone()),
            EventBody::HoldReleased(HoldChanged {
                released_runs: Some(12),
                ..hold
            }),
            EventBody::ControlDegraded(control.clone()),
            EventBody::ControlRecovered(control),
        ]
    }

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

    #[test]
    fn every_kind_has_a_typed_body_that_round_trips_on_the_wire_and_in_parts() {
        let samples = samples();
        let kinds: Vec<EventKind> = samples.iter().map(EventBody::kind).collect();
        for (kind, _) in NAMES {
            assert!(kinds.contains(kind), "no sample body for {kind:?}");
        }
        for (seq, body) in samples.into_iter().enumerate() {
            let kind = body.kind();
            let event = Event {
                seq: seq as i64 + 1,
                at: "2026-12-01T00:00:00Z".parse().unwrap(),
                workflow: Some("lead_routing".into()),
                run_id: Some(42),
                body,
            };
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["kind"], kind.as_str(), "{json}");
            assert_eq!(json["data"], event.body.data(), "{json}");
            assert_eq!(json["seq"], seq as i64 + 1);
            let back: Event = serde_json::from_value(json).unwrap();
            assert_eq!(back, event);
            let parts = EventBody::from_parts(kind.as_str(), event.body.data()).unwrap();
            assert_eq!(parts, event.body);
        }
    }

    #[test]
    fn optional_fields_may_be_missing_and_unknown_kinds_are_refused() {
        // An alert event as stored before payloads were typed (details nested under `data`).
        let old = serde_json::json!({"alert_id": 1, "rule": "dlq_depth", "state": "resolved", "data": {}});
        let body = EventBody::from_parts("alert.resolved", old).unwrap();
        assert_eq!(body.kind(), EventKind::AlertResolved);
        let queued = serde_json::json!({"trigger_kind": "manual", "version": 1});
        let EventBody::RunQueued(queued) = EventBody::from_parts("run.queued", queued).unwrap()
        else {
            panic!("not a run.queued body");
        };
        assert_eq!((queued.mode, queued.record_id), (RunMode::Live, None));
        let error = EventBody::from_parts("run.exploded", serde_json::json!({})).unwrap_err();
        assert!(error.to_string().contains("run.exploded"), "{error}");
        let error = EventBody::from_parts("step.started", serde_json::json!({})).unwrap_err();
        assert!(error.to_string().contains("step_id"), "{error}");
    }
}
