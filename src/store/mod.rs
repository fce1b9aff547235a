//! Persistence: the `Store` trait and its SQLite implementation.
//!
//! The store keeps no business rules. It applies what the engine decides, atomically, and
//! appends one event per state change in the same transaction, numbered by a gap-free
//! sequence; after the commit the events go out on a broadcast bus. A PostgreSQL store
//! (several servers, one database, claims with `FOR UPDATE SKIP LOCKED`) implements the same
//! trait.

mod follow;
mod sqlite;
mod url;

pub use crate::domain::alert::AlertChange;

pub use follow::Follower;
pub use url::{Location, commit_baseline, open, tally};

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::domain::delivery::{Class, Next};
use crate::domain::incident::{Book, BookQuery, Change};
use crate::domain::link::{KEY_BYTES, LinkKey};
use crate::domain::policy::NewHold;
use crate::domain::rollup::{Bucket, Span};
use crate::domain::{NewRun, PreparedWrite, RecordWriteOutcome, Transition};
use crate::wire::{
    AlertState, AlertView, AttemptStatus, AttemptView, AuditEntry, DeliveryView, DlqView, Event,
    EventBody, FieldChange, HoldView, IncidentDetail, IncidentQuery, IncidentView, JobState,
    JobView, NotificationView, Page, RecordView, ReplayOn, ReplayPlan, Role, RunDetail, RunQuery,
    RunStatus, RunView, StepError, TokenView, VersionView, WebhookView, WorkflowView,
};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The run was claimed by another worker after this one's lease expired.
    #[error("lease on run {0} lost")]
    LeaseLost(i64),
    /// What a prepared write was computed from changed meanwhile; read again and retry.
    #[error("stale: {0}")]
    Stale(String),
    /// A caller's argument is malformed (a bad cursor, say).
    #[error("{0}")]
    Invalid(String),
    #[error("store: {0}")]
    Other(String),
}

/// A crate-local result for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A run handed to a worker, with everything needed to resume it.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub run: RunView,
    /// The idempotency-key prefix this run inherited from the run it replays with carried
    /// results (see [`crate::domain::run::idempotency_prefix`]); `None` for a run of its own.
    pub inherited_prefix: Option<String>,
    /// Attempts with an id at or below this do not count toward retry budgets (set by retry).
    pub budget_floor: i64,
    /// What the run was held on until this claim (`host:...`, `workflow:...`, `hold:...`):
    /// a run coming back to a limit it waited for keeps its place in the queue.
    pub held_on: Option<String>,
    pub attempts: Vec<AttemptView>,
}

/// A workflow's runs held now.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRuns {
    pub workflow: String,
    pub runs: i64,
    /// When the longest-held of them was held.
    pub since: DateTime<Utc>,
}

/// One step of a test run as it is stored when the test ends.
#[derive(Debug, Clone)]
pub struct TestAttempt {
    pub step_index: usize,
    pub step_id: String,
    pub status: AttemptStatus,
    /// The idempotency key a live attempt would have sent.
    pub idempotency_key: String,
    /// Redacted and capped, as a live attempt stores it.
    pub input: serde_json::Value,
    pub output: serde_json::Value,
    pub detail: serde_json::Value,
    pub error: Option<StepError>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// How a test run ended: its status and every step, stored at once.
#[derive(Debug, Clone)]
pub struct TestRunEnd {
    pub status: RunStatus,
    pub failed_step: Option<String>,
    pub error: Option<StepError>,
    pub attempts: Vec<TestAttempt>,
}

/// The last successful live answer of a step, for test runs that replay recorded responses.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub run_id: i64,
    /// The attempt's stored (redacted) output and detail.
    pub output: serde_json::Value,
    pub detail: serde_json::Value,
}

/// What one step of a retention pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunedRuns {
    /// Runs deleted.
    pub deleted: usize,
    /// The id to continue after; `None` when the pass reached recent runs or the end.
    pub next: Option<i64>,
}

/// One rollup row: a workflow's sums over one bucket (a minute or an hour) from `start`.
#[derive(Debug, Clone)]
pub struct RollupRow {
    pub workflow: String,
    pub team: String,
    pub start: DateTime<Utc>,
    pub bucket: Bucket,
}

/// A webhook subscription with its signing secret (kept out of `Debug`).
#[derive(Clone, PartialEq)]
pub struct WebhookRow {
    pub view: WebhookView,
    pub secret: String,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("view", &self.view)
            .field("secret", &crate::wire::REDACTED)
            .finish()
    }
}

/// A message to queue for a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub webhook_id: i64,
    pub event_seq: i64,
    pub kind: String,
    pub payload: serde_json::Value,
}

/// Where an outbox message goes: a webhook subscription or an alert channel of `acp.ron`.
/// Each target's messages are delivered in order, one at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Webhook(i64),
    Channel(String),
}

impl Target {
    /// The stored name: `webhook:<id>` or `channel:<name>`.
    pub fn key(&self) -> String {
        match self {
            Self::Webhook(id) => format!("webhook:{id}"),
            Self::Channel(name) => format!("channel:{name}"),
        }
    }

    /// Reads a stored name back.
    pub fn parse(key: &str) -> Option<Self> {
        match key.split_once(':')? {
            ("webhook", id) => id.parse().ok().map(Self::Webhook),
            ("channel", name) => Some(Self::Channel(name.to_owned())),
            _ => None,
        }
    }
}

/// A queued outbox message: an event for a webhook subscription, or an alert notification
/// for a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: i64,
    pub target: Target,
    /// The `webhook-id` it was first sent under, for messages queued before the one outbox
    /// (`msg_N`, `ntf_N`); `None` means `msg_<id>`.
    pub external_id: Option<String>,
    /// The event kind, or `notification`.
    pub kind: String,
    /// The event a webhook message carries.
    pub event_seq: Option<i64>,
    /// The alert a notification is about, and why it was sent (`firing`, `update`, ...).
    pub alert_id: Option<i64>,
    pub reason: Option<String>,
    pub payload: serde_json::Value,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Of them, the ones refused permanently.
    pub permanent: i64,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// How one delivery attempt went and what follows (decided by [`crate::domain::delivery`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub class: Class,
    /// The answer's first bytes, secrets redacted.
    pub answer: Option<String>,
    pub next: Next,
}

/// A target that could not be delivered to over a window: its given-up messages and the
/// latest reason.
#[derive(Debug, Clone, PartialEq)]
pub struct GivenUp {
    pub target: Target,
    pub count: i64,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// An alert rule created through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    pub id: i64,
    /// `global` or `team:NAME`.
    pub scope: String,
    pub name: String,
    /// The rule as written (a serialized `RuleDef`).
    pub definition: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// A notification to queue: one per channel, covering the given failed runs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotice {
    pub alert_id: i64,
    pub reason: String,
    pub channels: Vec<String>,
    pub payload: serde_json::Value,
    pub runs: Vec<i64>,
}

/// Failed runs of one workflow and how many of them nobody was told about in time.
#[derive(Debug, Clone, PartialEq)]
pub struct UnnotifiedCount {
    pub workflow: String,
    pub failed: i64,
    pub unnotified: i64,
}

/// A control action for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    pub actor: String,
    pub role: Role,
    pub action: String,
    pub target: String,
    pub reason: Option<String>,
    pub outcome: String,
}

/// A replay of a dead-letter entry, decided by the engine.
#[derive(Debug, Clone)]
pub struct Replay {
    pub dlq_id: i64,
    pub run: NewRun,
    pub actor: String,
    /// The bulk replay job that starts it, if any, and the job's entries done with this one
    /// (recorded in the same transaction, so a crash never replays an entry twice or loses
    /// count).
    pub job: Option<(i64, usize)>,
}

/// A bulk replay to keep as a job: the open entries to replay, in order.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub actor: String,
    /// The rate its runs start at, as written (`5/s`).
    pub rate: String,
    pub on: ReplayOn,
    pub entries: Vec<i64>,
    pub plan: ReplayPlan,
}

/// A running job as its runner needs it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub actor: String,
    pub rate: String,
    pub on: ReplayOn,
    pub entries: Vec<i64>,
    /// Entries done (replayed or skipped) so far: the runner continues from here.
    pub next: usize,
}

/// How long something took, with the workflow (and its team) it belongs to: an incident's
/// cycle (opened or regressed → resolved), a run-level outage, an alert's fired → acked.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub workflow: String,
    pub team: String,
    pub seconds: f64,
}

/// The stored facts MTTR and MTTA come from, for intervals that ended in a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentFacts {
    /// Incident cycles resolved in the window.
    pub resolutions: Vec<Interval>,
    /// Run-level outages (first failed run after a success → next success) ended in it.
    pub outages: Vec<Interval>,
    /// Alerts acknowledged in it (fired → acked).
    pub acknowledgements: Vec<Interval>,
    /// Incidents not resolved, per workflow (whatever the window).
    pub open: Vec<(String, i64)>,
}

/// Everything the engine and the API need from persistence: one trait per concern, and
/// [`Store`] for a backend that has them all (what the server, the engine and the tests
/// hold, as `Arc<dyn Store>`).
///
/// Every method can also answer [`StoreError::Other`] when the database itself fails (I/O,
/// a closed store); the `# Errors` of each method list the answers it gives on purpose.
pub trait Store:
    EventLog
    + WorkflowStore
    + RunStore
    + HoldStore
    + JobStore
    + RecordStore
    + AlertStore
    + OutboxStore
    + AccessStore
    + IncidentStore
{
    /// Finishes pending writes and releases the database (the store answers nothing after).
    fn close(&self);
    /// How long the last write batch took to commit (none before the first).
    fn last_commit(&self) -> Option<std::time::Duration>;
}

/// Incidents as the incident tracker keeps them. The tracker decides (see
/// [`crate::domain::incident`]); the store loads what a fold needs and applies what it
/// changed, with the tracker's cursor, atomically.
#[async_trait]
pub trait IncidentStore: Send + Sync + 'static {
    /// What the fold of a batch needs to know of the past.
    async fn incident_book(&self, query: BookQuery) -> Result<Book>;
    /// Applies a batch's changes and moves the tracker's cursor to `seq`, in one transaction.
    async fn apply_incidents(&self, changes: Vec<Change>, seq: i64) -> Result<()>;
    /// Incidents matching `query`, active first, then by last failure, newest first.
    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentView>>;
    /// One incident with its runs, records, history and alerts.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    async fn incident(&self, id: i64) -> Result<IncidentDetail>;
    /// The incident's open dead-letter entries, oldest first.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    async fn incident_dead_letters(&self, id: i64) -> Result<Vec<i64>>;
    /// Incidents not resolved (open or regressed), per workflow.
    async fn open_incidents(&self) -> Result<Vec<(String, i64)>>;
    /// The MTTR and MTTA facts of intervals that ended at or after `since`.
    async fn incident_facts(&self, since: DateTime<Utc>) -> Result<IncidentFacts>;
}

/// Holds and the runs they hold. The engine decides what is held and when a hold ends; the
/// store keeps the holds and moves held runs' due times atomically with a release.
#[async_trait]
pub trait HoldStore: Send + Sync + 'static {
    /// Places a hold (with its `hold.created` event). A known `dedupe_key` answers the hold
    /// placed with it and places nothing.
    async fn create_hold(&self, hold: NewHold) -> Result<HoldView>;
    /// Releases a hold (with its `hold.released` event): its runs fall due from `at`, oldest
    /// first, one every `interval` (all at once without one).
    ///
    /// # Errors
    /// `NotFound` for an unknown hold; `Conflict` for one released already.
    async fn release_hold(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
        interval: Option<std::time::Duration>,
    ) -> Result<HoldView>;
    /// One hold.
    ///
    /// # Errors
    /// `NotFound` for an unknown hold.
    async fn hold(&self, id: i64) -> Result<HoldView>;
    /// The holds not released yet, oldest first; with `released`, also the newest `limit`
    /// released ones.
    async fn holds(&self, released: bool, limit: usize) -> Result<Vec<HoldView>>;
    /// Makes the `n` oldest runs held on `on` due at `at` (a limit freed a slot); answers how
    /// many.
    async fn wake_held(&self, on: &str, n: usize, at: DateTime<Utc>) -> Result<usize>;
    /// Runs held now per workflow (whatever holds them), by workflow key.
    async fn held_runs(&self) -> Result<Vec<HeldRuns>>;
}

/// Bulk replay jobs and their progress.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Keeps a new job, `running`, with nothing done.
    async fn create_job(&self, job: NewJob) -> Result<JobView>;
    /// A job with its progress (runs started, succeeded and failed, counted from its runs).
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    async fn job(&self, id: i64) -> Result<JobView>;
    /// The jobs still running, oldest first.
    async fn running_jobs(&self) -> Result<Vec<JobRow>>;
    /// Records that the first `next` entries are done, `skipped` more of them not replayed.
    async fn advance_job(&self, id: i64, next: usize, skipped: i64) -> Result<()>;
    /// Ends a running job as `finished` or `cancelled`.
    ///
    /// # Errors
    /// `NotFound` for an unknown job, `Conflict` for one that already ended.
    async fn end_job(&self, id: i64, state: JobState) -> Result<JobView>;
}

/// The run log: events numbered by a gap-free sequence, committed with their change.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Subscribes to events committed from now on, in `seq` order. A receiver that falls more
    /// than the bus's capacity behind gets `Lagged` and should read the gap with
    /// [`EventLog::events_since`].
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>>;
    /// Up to `limit` events with `seq > after`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Other`] also when a stored event cannot be read as its kind's payload.
    async fn events_since(&self, after: i64, limit: usize) -> Result<Vec<Event>>;
    /// Appends an event that comes with no other change (the control plane's own state).
    async fn record_event(&self, body: EventBody) -> Result<()>;
    /// The oldest event still kept (0 when there is none).
    async fn oldest_seq(&self) -> Result<i64>;
    /// The newest event (0 when there is none).
    async fn newest_seq(&self) -> Result<i64>;
    /// Deletes, among the `limit` oldest events, those older than `before` that every cursor
    /// has passed, always keeping the newest; answers how many were deleted (fewer than
    /// `limit`: there is nothing more to delete now).
    async fn prune_events(&self, before: DateTime<Utc>, limit: usize) -> Result<usize>;
}

/// Workflow drafts and their immutable published versions.
#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    /// Saves the draft of a workflow, creating the workflow or replacing an earlier draft.
    async fn save_draft(
        &self,
        key: &str,
        name: &str,
        team: &str,
        source: &str,
        actor: &str,
    ) -> Result<()>;
    /// Turns the draft into version N+1 and publishes it; answers N+1.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown workflow; [`StoreError::Conflict`] when it has
    /// no draft.
    async fn publish(&self, key: &str, actor: &str) -> Result<i64>;
    /// Publishes an earlier version again (nothing is deleted).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown workflow or version; [`StoreError::Conflict`]
    /// when that version is the published one.
    async fn rollback(&self, key: &str, version: i64, actor: &str) -> Result<()>;
    /// Every workflow, by key.
    async fn workflows(&self) -> Result<Vec<WorkflowView>>;
    /// A workflow's versions, oldest first (empty for an unknown workflow).
    async fn versions(&self, key: &str) -> Result<Vec<VersionView>>;
    /// One version with its source.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown workflow or version.
    async fn version(&self, key: &str, version: i64) -> Result<VersionView>;
    /// The draft's source, if there is one.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown workflow.
    async fn draft(&self, key: &str) -> Result<Option<String>>;
}

/// Runs and their attempts (queueing, claims with leases, transitions), and the dead-letter
/// queue they fail into.
#[async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Queues runs; answers their ids in order. A run whose dedupe key exists already yields
    /// the existing run's id and queues nothing.
    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<Vec<i64>>;
    /// Claims up to `limit` runs that are due at `now` (or whose lease expired by then) for
    /// `owner` until `lease_until`; two claimers never get the same run. `now` is the
    /// caller's clock (the engine's), so due times and leases are read in one time.
    async fn claim_runs(
        &self,
        owner: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedRun>>;
    /// Ends the lease of every `running` run now, so the next claim takes them at once;
    /// answers how many. For an engine that knows it is the store's only one (SQLite) and
    /// so knows, at start, that every running run was abandoned by a crash.
    async fn expire_leases(&self) -> Result<u64>;
    /// Extends `owner`'s leases; answers the ids of its runs that were asked to cancel.
    async fn heartbeat(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<Vec<i64>>;
    /// Applies transitions of one run atomically, each allowed by the run lifecycle
    /// ([`crate::domain::run::run_next`]); answers the ids of attempts started.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown run; [`StoreError::LeaseLost`] when `owner`
    /// no longer holds its lease (nothing is applied); [`StoreError::Conflict`] when the
    /// lifecycle refuses a transition.
    async fn apply(
        &self,
        run_id: i64,
        owner: &str,
        transitions: Vec<Transition>,
    ) -> Result<Vec<i64>>;
    /// Cancels a run that is not running (answers `cancelled`), or asks its worker to stop it
    /// (answers `running`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown run; [`StoreError::Conflict`] for a finished one.
    async fn cancel_run(&self, run_id: i64, actor: &str) -> Result<RunStatus>;
    /// Queues a failed run again to resume at its failed step with a fresh retry budget;
    /// closes its open dead-letter entry as `retried`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown run; [`StoreError::Conflict`] unless it failed.
    async fn retry_run(&self, run_id: i64, actor: &str) -> Result<()>;
    /// One run with every attempt, oldest first.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown run.
    async fn run(&self, run_id: i64) -> Result<RunDetail>;
    /// One page of runs matching `query`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a malformed cursor or a search text with control characters.
    async fn runs(&self, query: &RunQuery) -> Result<Page<RunView>>;
    /// Per workflow, its runs still queued and never started that were queued before `before`
    /// (workflows with none are left out); cost grows with the queue, not the log.
    async fn queued_before(&self, before: DateTime<Utc>) -> Result<Vec<(String, i64)>>;
    /// One step of a retention pass: looks at the `limit` runs after id `after` and deletes
    /// those that finished before `before` and have no open dead letter, with their attempts,
    /// closed dead letters and alert coverage (rollups keep their sums). Call again from
    /// `next` until it is `None`.
    async fn prune_runs(
        &self,
        before: DateTime<Utc>,
        after: i64,
        limit: usize,
    ) -> Result<PrunedRuns>;
    /// Stores a test run (its `mode` is `test`) as `running`, with no lease, no event and
    /// no rollup tally: no claim ever takes it, nothing counts it, nothing is sent about it.
    /// Answers its id.
    async fn begin_test_run(&self, run: NewRun) -> Result<i64>;
    /// Stores the end of a test run and its steps at once (no event, no tally, no dead
    /// letter).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] unless `run_id` is a running test run.
    async fn end_test_run(&self, run_id: i64, end: TestRunEnd) -> Result<()>;
    /// The newest successful attempt of step `step_id` among the last 1,000 live runs of
    /// `workflow`, if any.
    async fn recorded(&self, workflow: &str, step_id: &str) -> Result<Option<Recorded>>;
    /// Deletes up to `limit` test runs queued before `before` (whatever their status: no
    /// worker ever drives one) with their attempts; answers how many.
    async fn prune_test_runs(&self, before: DateTime<Utc>, limit: usize) -> Result<usize>;
    /// Deletes minute rollups that started before `before` (hour rows are kept); answers how
    /// many.
    async fn prune_rollups(&self, before: DateTime<Utc>) -> Result<usize>;
    /// The rollup rows of every workflow in `spans` (see [`crate::domain::rollup::spans`]),
    /// in no particular order: cost grows with the number of buckets, not of runs.
    async fn rollups(&self, spans: Vec<Span>) -> Result<Vec<RollupRow>>;

    /// One dead-letter entry.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown entry.
    async fn dlq_entry(&self, id: i64) -> Result<DlqView>;
    /// One page of dead-letter entries matching `query`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] as for [`RunStore::runs`].
    async fn dlq(&self, query: &RunQuery) -> Result<Page<DlqView>>;
    /// Queues the replay run and closes the entry as replayed, atomically; answers the run.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown entry; [`StoreError::Conflict`] when it is not
    /// open ([`crate::domain::dead_letter::dlq_next`]).
    async fn replay(&self, replay: Replay) -> Result<i64>;
    /// Closes an open entry as discarded, with a reason.
    ///
    /// # Errors
    /// As for [`RunStore::replay`].
    async fn discard_dlq(&self, id: i64, reason: &str, actor: &str) -> Result<()>;
    /// Open dead-letter entries per workflow.
    async fn dlq_depths(&self) -> Result<Vec<(String, i64)>>;
}

/// Records, their field history and idempotent writes.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Applies a prepared record write (its merge, one history row per changed field, its
    /// event) and queues the runs it triggers ([`crate::domain::RecordChange::run_for`]), atomically. A
    /// write whose idempotency key was applied before changes nothing and answers the first
    /// result (`duplicate`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown record id; [`StoreError::Stale`] when the
    /// record's values are no longer the ones the write was prepared from.
    async fn write_record(&self, prepared: PreparedWrite) -> Result<RecordWriteOutcome>;
    /// One record.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown record.
    async fn record(&self, id: i64) -> Result<RecordView>;
    /// Every change of a record's fields, oldest first (empty for an unknown record).
    async fn field_history(&self, record_id: i64) -> Result<Vec<FieldChange>>;
}

/// Alerts, their rules, and what their notifications covered.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Applies an alert change allowed by the alert lifecycle
    /// ([`crate::domain::alert::alert_next`]) with its event; answers the alert after it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown alert; [`StoreError::Conflict`] naming its
    /// state when the lifecycle refuses the change.
    async fn alert_change(&self, change: AlertChange) -> Result<AlertView>;
    /// One alert.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown alert.
    async fn alert(&self, id: i64) -> Result<AlertView>;
    /// Up to `limit` alerts newest first, optionally in one state.
    async fn alerts(&self, state: Option<AlertState>, limit: usize) -> Result<Vec<AlertView>>;
    /// Pending and firing alerts, oldest first.
    async fn active_alerts(&self) -> Result<Vec<AlertView>>;
    /// Alert rules created through the API.
    async fn alert_rules(&self) -> Result<Vec<StoredRule>>;
    /// Creates a rule or replaces the one with the same scope and name (`id` is ignored);
    /// answers it as stored.
    async fn put_alert_rule(&self, rule: StoredRule) -> Result<StoredRule>;
    /// Deletes a rule; answers it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown rule.
    async fn delete_alert_rule(&self, id: i64) -> Result<StoredRule>;
    /// Failed live runs of a workflow, finished since `since`, that the alert has not told
    /// anyone about yet.
    async fn uncovered_failures(
        &self,
        alert_id: i64,
        workflow: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<i64>>;
    /// Failed runs per workflow between `since` and `until - within`, and how many had no
    /// delivered notification within `within`.
    async fn unnotified(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        within: std::time::Duration,
    ) -> Result<Vec<UnnotifiedCount>>;
}

/// What leaves ACP: one outbox of messages per [`Target`] (events for webhook subscriptions,
/// notifications for alert channels) with one log of delivery attempts.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Creates a subscription (the row's `view.id` and counts are ignored); answers it stored.
    async fn create_webhook(&self, webhook: WebhookRow) -> Result<WebhookRow>;
    /// Deletes a subscription; its undelivered messages are dropped.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown subscription.
    async fn delete_webhook(&self, id: i64) -> Result<()>;
    /// Every subscription, with its secret.
    async fn webhooks(&self) -> Result<Vec<WebhookRow>>;
    /// A named position in the event log (0 when never set).
    async fn cursor(&self, name: &str) -> Result<i64>;
    /// Queues messages for webhook subscriptions and moves the cursor `name` to `seq`,
    /// atomically.
    async fn enqueue(&self, messages: Vec<NewMessage>, name: &str, seq: i64) -> Result<()>;
    /// Queues a notification per channel, recording the runs it covers; answers their ids.
    async fn notify(&self, notice: NewNotice) -> Result<Vec<i64>>;
    /// Enables a subscription disabled after `410 Gone`; answers it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown or deleted subscription,
    /// [`StoreError::Conflict`] when it is not disabled.
    async fn enable_webhook(&self, id: i64) -> Result<WebhookRow>;
    /// The oldest pending message of a target (given-up and delivered ones are not pending).
    async fn outbox_head(&self, target: &Target) -> Result<Option<Message>>;
    /// Records a delivery attempt of message `id` and applies what follows: delivered, due
    /// again, given up, or (a subscription's) given up with its subscription disabled and its
    /// other pending messages given up.
    async fn record_attempt(&self, id: i64, target: &Target, attempt: Attempt) -> Result<()>;
    /// Per target, the messages given up at or after `since`, with the latest reason.
    async fn given_up(&self, since: DateTime<Utc>) -> Result<Vec<GivenUp>>;
    /// Up to `limit` delivery attempts of a subscription's messages, newest first.
    async fn deliveries(&self, webhook_id: i64, limit: usize) -> Result<Vec<DeliveryView>>;
    /// Up to `limit` notifications newest first, optionally of one alert.
    async fn notifications(
        &self,
        alert: Option<i64>,
        limit: usize,
    ) -> Result<Vec<NotificationView>>;
}

/// API tokens and the audit log of control actions.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// Creates a token with the hash of its secret (never the secret); answers it.
    async fn create_token(&self, name: &str, role: Role, hash: &str) -> Result<TokenView>;
    /// Revokes an active token.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown or already revoked token.
    async fn revoke_token(&self, id: i64) -> Result<()>;
    /// The active token whose secret hashes to `hash`, with the stored hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<(TokenView, String)>>;
    /// Every token, active and revoked.
    async fn tokens(&self) -> Result<Vec<TokenView>>;
    /// The key of signed links with this id, retired or not (see [`crate::domain::link`]).
    async fn link_key(&self, id: i64) -> Result<Option<LinkKey>>;
    /// The newest key that is not retired: the one new links are signed with.
    async fn current_link_key(&self) -> Result<Option<LinkKey>>;
    /// Adds a link key made of `secret` and answers the current key. With `rotate`, every
    /// key before is retired in the same transaction (their links stop opening); without, an
    /// existing current key is kept and answered, so servers starting together agree on one.
    async fn add_link_key(&self, secret: [u8; KEY_BYTES], rotate: bool) -> Result<LinkKey>;
    /// Appends a control action to the audit log.
    async fn audit(&self, entry: NewAudit) -> Result<()>;
    /// One page of the audit log, newest first, before the entry `before`.
    async fn audit_log(&self, before: Option<i64>, limit: usize) -> Result<Page<AuditEntry>>;
}
