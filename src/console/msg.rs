//! The console's messages: everything that happens (a key, a reply, a stream event, the
//! connection changing) becomes a [`Msg`]; `update` answers with [`Effect`]s to carry out.

use crossterm::event::KeyEvent;

use crate::wire::{
    AlertView, AuditEntry, BulkReplay, Diff, DlqView, FieldChange, Health, HoldList, HoldRequest,
    IncidentDetail, IncidentReplay, IncidentView, JobView, Me, Page, RecordView, ReplayPlan,
    RunDetail, RunView, StreamMessage, SummaryReport, TestReport, TestRequest, VersionView,
    WorkflowView,
};

use super::state::Conn;

/// A call to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Me,
    /// A page of runs, newest first; `cursor` for older ones.
    Runs {
        cursor: Option<String>,
    },
    Run(i64),
    /// Failed runs (up to 500, newest first), so the header's open-failure count is whole
    /// even when older pages of the run list are not loaded.
    Failures,
    Dlq,
    Health {
        team: Option<String>,
    },
    /// The last 24 hours' outcomes from the server's rollups, for the header.
    Totals,
    Alerts,
    Workflows,
    Versions(String),
    Diff {
        workflow: String,
        from: i64,
        to: i64,
    },
    /// A page of the audit log, newest first; `cursor` for older entries.
    Audit {
        cursor: Option<String>,
    },
    Record(i64),
    Retry(i64),
    Rerun(i64),
    Cancel(i64),
    /// A bulk replay; with `dry_run` only the plan, else a job.
    Replay(Box<BulkReplay>),
    /// A replay job's progress.
    Job(i64),
    Holds,
    /// Incidents, active first.
    Incidents,
    Incident(i64),
    /// An incident's open dead letters replayed; with `dry_run` only the plan, else a job.
    ReplayIncident {
        id: i64,
        request: Box<IncidentReplay>,
    },
    /// The success metrics over 7 days, for a team or all.
    Summary {
        team: Option<String>,
    },
    PlaceHold(Box<HoldRequest>),
    ReleaseHold(i64),
    ReplayEdited {
        dlq: i64,
        payload: serde_json::Value,
    },
    Discard {
        ids: Vec<i64>,
        reason: String,
    },
    Ack(i64),
    Publish(String),
    Rollback {
        workflow: String,
        version: i64,
    },
    /// The trigger payloads of a workflow's 100 most recent live runs, to test on.
    Triggers(String),
    /// A test of a workflow (`POST /workflows/{key}/test`).
    Test {
        workflow: String,
        request: Box<TestRequest>,
    },
    /// The demo's sandbox: end the incident.
    FixSandbox(String),
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Me(Me),
    Runs(Page<RunView>),
    Run(Box<RunDetail>),
    Dlq(Page<DlqView>),
    Health(Box<Health>),
    Totals(Box<Health>),
    Alerts(Vec<AlertView>),
    Workflows(Vec<WorkflowView>),
    Versions(Vec<VersionView>),
    Diff(Diff),
    Audit(Page<AuditEntry>),
    Record(Box<RecordView>, Vec<FieldChange>),
    Plan(Box<ReplayPlan>),
    /// A replay job, started or as it is now.
    Job(Box<JobView>),
    Holds(Box<HoldList>),
    Incidents(Vec<IncidentView>),
    Incident(Box<IncidentDetail>),
    Summary(Box<SummaryReport>),
    Triggers(Vec<RunView>),
    Test(Box<TestReport>),
    /// A change went through; what to tell the user.
    Done(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Key(KeyEvent),
    /// A timer: reload what the stream marked stale.
    Tick,
    Reply(Request, Box<Result<Reply, super::client::CallError>>),
    Stream(StreamMessage),
    Conn(Conn),
    /// The terminal's new width and height.
    Resize(u16, u16),
}

/// What `update` asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Request(Request),
    /// Start following the stream after `since` (once; it reconnects by itself).
    Stream {
        since: i64,
    },
    /// Put text on the clipboard with OSC 52.
    Copy(String),
}
