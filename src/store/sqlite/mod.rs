//! The SQLite store: one writer thread with group commit, a small pool of reader connections.

mod access;
mod alerts;
mod connection;
mod dlq;
mod events;
mod holds;
mod incidents;
mod jobs;
mod notify;
mod queue;
mod records;
mod retention;
mod rollups;
mod rows;
mod runs;
mod schema;
mod test_runs;
mod webhooks;
mod workflows;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, oneshot};

use super::{
    AccessStore, AlertChange, AlertStore, Attempt, ClaimedRun, EventLog, GivenUp, HeldRuns,
    HoldStore, IncidentFacts, IncidentStore, JobRow, JobStore, Message, NewAudit, NewJob,
    NewMessage, NewNotice, OutboxStore, PrunedRuns, RecordStore, Recorded, Replay, Result,
    RollupRow, RunStore, Store, StoreError, StoredRule, Target, TestRunEnd, UnnotifiedCount,
    WebhookRow, WorkflowStore,
};
use crate::domain::incident::{Book, BookQuery, Change};
use crate::domain::link::{KEY_BYTES, LinkKey};
use crate::domain::policy::NewHold;
use crate::domain::rollup::Span;
use crate::domain::{NewRun, PreparedWrite, RecordWriteOutcome, Transition};
use crate::wire::{
    AlertState, AlertView, AuditEntry, DeliveryView, DlqView, Event, EventBody, FieldChange,
    HoldView, IncidentDetail, IncidentQuery, IncidentView, JobState, JobView, NotificationView,
    Page, RecordView, Role, RunDetail, RunQuery, RunStatus, RunView, TokenView, VersionView,
    WorkflowView,
};
pub use connection::Durability;
use connection::{Readers, checkpoint_loop, open};
use writer::{Job, Tx, Typed};

/// The writer's page cache in MiB unless the store URL says (`cache_mb=`; SQLite's default is
/// 2): every transition touches the newest pages of a dozen tables and indexes, which stay
/// cached as the file grows.
pub const WRITER_CACHE_MIB: u32 = 32;

/// Events kept on the in-process bus for slow subscribers before they lag.
pub const BUS_CAPACITY: usize = 65_536;

/// A SQLite database file in WAL mode.
pub struct SqliteStore {
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    readers: Arc<Readers>,
    bus: broadcast::Sender<Arc<Event>>,
    /// Callers wait for their writes on a blocking-pool thread (see `store::open`'s `wait`).
    blocking_wait: bool,
    /// How long the writer's last batch took to commit, in nanoseconds (0: none yet).
    last_commit_ns: Arc<std::sync::atomic::AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`, keeping
    /// `bus_capacity` events for slow subscribers before they lag and a writer page cache of
    /// `cache_mib` MiB.
    ///
    /// # Errors
    /// The file cannot be opened or migrated.
    pub fn open_with(
        path: &Path,
        durability: Durability,
        bus_capacity: usize,
        cache_mib: u32,
    ) -> Result<Self> {
        let mut conn = open(path, OpenFlags::default(), durability)?;
        schema::migrate(&mut conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "cache_size", -(i64::from(cache_mib) * 1024))?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        let checkpoints = open(path, OpenFlags::default(), durability)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        let checkpointer = std::thread::Builder::new()
            .name("acp-store-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpoints, &stopped))
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let (jobs, queue) = mpsc::channel();
        let (bus, _) = broadcast::channel(bus_capacity.max(1));
        let publish = bus.clone();
        let last_commit_ns = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let timing = last_commit_ns.clone();
        let writer = std::thread::Builder::new()
            .name("acp-store-writer".into())
            .spawn(move || writer::run(conn, queue, publish, &wal, &timing))
            .map_err(|e| StoreError::Other(e.to_string()))?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(Some((stop_checkpoints, checkpointer))),
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                closed: Default::default(),
            }),
            bus,
            blocking_wait: false,
            last_commit_ns,
        })
    }

    /// With `blocking`, callers wait for their writes on a blocking-pool thread.
    pub fn waiting_blocking(mut self, blocking: bool) -> Self {
        self.blocking_wait = blocking;
        self
    }

    /// Stops the writer after the jobs already sent have committed and releases every
    /// connection. Later reads and writes fail.
    pub fn close(&self) {
        self.readers
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        if let Ok(mut idle) = self.readers.idle.lock() {
            idle.clear();
        }
        drop(self.jobs.lock().ok().and_then(|mut j| j.take()));
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
        if let Some((stop, handle)) = self.checkpointer.lock().ok().and_then(|mut c| c.take()) {
            drop(stop);
            let _ = handle.join();
        }
    }

    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let sender = self.jobs.lock().ok().and_then(|j| j.clone());
        let sent = sender.map(|s| s.send(Box::new(Typed::new(work, reply))));
        if !matches!(sent, Some(Ok(()))) {
            return Err(StoreError::Other("the store is closed".into()));
        }
        let stopped = |_| StoreError::Other("the store writer stopped".into());
        if self.blocking_wait {
            return tokio::task::spawn_blocking(move || answer.blocking_recv())
                .await
                .map_err(|e| StoreError::Other(e.to_string()))?
                .map_err(stopped)?;
        }
        answer.await.map_err(stopped)?
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            if readers.closed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(StoreError::Other("the store is closed".into()));
            }
            let pooled = readers.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => open(
                    &readers.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY,
                    Durability::Normal,
                )?,
            };
            let result = work(&conn);
            if let Ok(mut idle) = readers.idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for SqliteStore {
    fn close(&self) {
        SqliteStore::close(self);
    }

    fn last_commit(&self) -> Option<std::time::Duration> {
        match self
            .last_commit_ns
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => None,
            ns => Some(std::time::Duration::from_nanos(ns)),
        }
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.bus.subscribe()
    }

    async fn events_since(&self, after: i64, limit: usize) -> Result<Vec<Event>> {
        self.read(move |c| events::events_since(c, after, limit))
            .await
    }

    async fn prune_events(&self, before: DateTime<Utc>, limit: usize) -> Result<usize> {
        self.write(move |tx| retention::prune_events(tx, before, limit))
            .await
    }

    async fn record_event(&self, body: EventBody) -> Result<()> {
        self.write(move |tx| tx.emit(body.clone(), None, None))
            .await
    }

    async fn oldest_seq(&self) -> Result<i64> {
        self.read(events::oldest_seq).await
    }

    async fn newest_seq(&self) -> Result<i64> {
        self.read(events::newest_seq).await
    }
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn save_draft(
        &self,
        key: &str,
        name: &str,
        team: &str,
        source: &str,
        actor: &str,
    ) -> Result<()> {
        let args = [key, name, team, source, actor].map(str::to_owned);
        self.write(move |tx| workflows::save_draft(tx, &args)).await
    }

    async fn publish(&self, key: &str, actor: &str) -> Result<i64> {
        let (key, actor) = (key.to_owned(), actor.to_owned());
        self.write(move |tx| workflows::publish(tx, &key, &actor))
            .await
    }

    async fn rollback(&self, key: &str, version: i64, actor: &str) -> Result<()> {
        let (key, actor) = (key.to_owned(), actor.to_owned());
        self.write(move |tx| workflows::rollback(tx, &key, version, &actor))
            .await
    }

    async fn workflows(&self) -> Result<Vec<WorkflowView>> {
        self.read(workflows::list).await
    }

    async fn versions(&self, key: &str) -> Result<Vec<VersionView>> {
        let key = key.to_owned();
        self.read(move |c| workflows::versions(c, &key)).await
    }

    async fn version(&self, key: &str, version: i64) -> Result<VersionView> {
        let key = key.to_owned();
        self.read(move |c| workflows::version_view(c, &key, version))
            .await
    }

    async fn draft(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.read(move |c| workflows::draft(c, &key)).await
    }
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_runs(&self, new: Vec<NewRun>) -> Result<Vec<i64>> {
        self.write(move |tx| new.iter().map(|run| queue::create(tx, run)).collect())
            .await
    }

    async fn claim_runs(
        &self,
        owner: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedRun>> {
        let owner = owner.to_owned();
        self.write(move |tx| runs::claim(tx, &owner, limit, now, lease_until))
            .await
    }

    async fn expire_leases(&self) -> Result<u64> {
        self.write(runs::expire_leases).await
    }

    async fn heartbeat(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<Vec<i64>> {
        let owner = owner.to_owned();
        self.write(move |tx| runs::heartbeat(tx, &owner, lease_until))
            .await
    }

    async fn apply(
        &self,
        run_id: i64,
        owner: &str,
        transitions: Vec<Transition>,
    ) -> Result<Vec<i64>> {
        let owner = owner.to_owned();
        self.write(move |tx| runs::apply(tx, run_id, &owner, &transitions))
            .await
    }

    async fn cancel_run(&self, run_id: i64, actor: &str) -> Result<RunStatus> {
        let actor = actor.to_owned();
        self.write(move |tx| runs::cancel(tx, run_id, &actor)).await
    }

    async fn retry_run(&self, run_id: i64, actor: &str) -> Result<()> {
        let actor = actor.to_owned();
        self.write(move |tx| runs::retry(tx, run_id, &actor)).await
    }

    async fn run(&self, run_id: i64) -> Result<RunDetail> {
        self.read(move |c| queue::detail(c, run_id)).await
    }

    async fn runs(&self, query: &RunQuery) -> Result<Page<RunView>> {
        let query = query.clone();
        self.read(move |c| queue::list(c, &query)).await
    }

    async fn dlq_entry(&self, id: i64) -> Result<DlqView> {
        self.read(move |c| dlq::get(c, id)).await
    }

    async fn dlq(&self, query: &RunQuery) -> Result<Page<DlqView>> {
        let query = query.clone();
        self.read(move |c| dlq::list(c, &query)).await
    }

    async fn queued_before(&self, before: DateTime<Utc>) -> Result<Vec<(String, i64)>> {
        self.read(move |c| queue::queued_before(c, before)).await
    }

    async fn prune_runs(
        &self,
        before: DateTime<Utc>,
        after: i64,
        limit: usize,
    ) -> Result<PrunedRuns> {
        self.write(move |tx| retention::prune_runs(tx, before, after, limit))
            .await
    }

    async fn begin_test_run(&self, run: NewRun) -> Result<i64> {
        self.write(move |tx| test_runs::begin(tx, &run)).await
    }

    async fn end_test_run(&self, run_id: i64, end: TestRunEnd) -> Result<()> {
        self.write(move |tx| test_runs::end(tx, run_id, &end)).await
    }

    async fn recorded(&self, workflow: &str, step_id: &str) -> Result<Option<Recorded>> {
        let (workflow, step_id) = (workflow.to_owned(), step_id.to_owned());
        self.read(move |c| test_runs::recorded(c, &workflow, &step_id))
            .await
    }

    async fn prune_test_runs(&self, before: DateTime<Utc>, limit: usize) -> Result<usize> {
        self.write(move |tx| retention::prune_test_runs(tx, before, limit))
            .await
    }

    async fn prune_rollups(&self, before: DateTime<Utc>) -> Result<usize> {
        self.write(move |tx| retention::prune_minutes(tx, before))
            .await
    }

    async fn rollups(&self, spans: Vec<Span>) -> Result<Vec<RollupRow>> {
        self.read(move |c| rollups::read(c, &spans)).await
    }

    async fn dlq_depths(&self) -> Result<Vec<(String, i64)>> {
        self.read(dlq::depths).await
    }

    async fn replay(&self, replay: Replay) -> Result<i64> {
        self.write(move |tx| dlq::replay(tx, &replay)).await
    }

    async fn discard_dlq(&self, id: i64, reason: &str, actor: &str) -> Result<()> {
        let (reason, actor) = (reason.to_owned(), actor.to_owned());
        self.write(move |tx| dlq::discard(tx, id, &reason, &actor))
            .await
    }
}

#[async_trait]
impl HoldStore for SqliteStore {
    async fn create_hold(&self, hold: NewHold) -> Result<HoldView> {
        self.write(move |tx| holds::create(tx, &hold)).await
    }

    async fn release_hold(
        &self,
        id: i64,
        actor: &str,
        at: DateTime<Utc>,
        interval: Option<std::time::Duration>,
    ) -> Result<HoldView> {
        let actor = actor.to_owned();
        self.write(move |tx| holds::release(tx, id, &actor, at, interval))
            .await
    }

    async fn hold(&self, id: i64) -> Result<HoldView> {
        self.read(move |c| holds::get(c, id)).await
    }

    async fn holds(&self, released: bool, limit: usize) -> Result<Vec<HoldView>> {
        self.read(move |c| holds::list(c, released, limit)).await
    }

    async fn wake_held(&self, on: &str, n: usize, at: DateTime<Utc>) -> Result<usize> {
        let on = on.to_owned();
        self.write(move |tx| holds::wake(tx, &on, n, at)).await
    }

    async fn held_runs(&self) -> Result<Vec<HeldRuns>> {
        self.read(holds::held_runs).await
    }
}

#[async_trait]
impl IncidentStore for SqliteStore {
    async fn incident_book(&self, query: BookQuery) -> Result<Book> {
        self.read(move |c| incidents::book(c, &query)).await
    }

    async fn apply_incidents(&self, changes: Vec<Change>, seq: i64) -> Result<()> {
        self.write(move |tx| incidents::apply(tx, &changes, seq))
            .await
    }

    async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentView>> {
        let query = query.clone();
        self.read(move |c| incidents::list(c, &query)).await
    }

    async fn incident(&self, id: i64) -> Result<IncidentDetail> {
        self.read(move |c| incidents::detail(c, id)).await
    }

    async fn incident_dead_letters(&self, id: i64) -> Result<Vec<i64>> {
        self.read(move |c| incidents::dead_letters(c, id)).await
    }

    async fn open_incidents(&self) -> Result<Vec<(String, i64)>> {
        self.read(incidents::open).await
    }

    async fn incident_facts(&self, since: DateTime<Utc>) -> Result<IncidentFacts> {
        self.read(move |c| incidents::facts(c, since)).await
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(&self, job: NewJob) -> Result<JobView> {
        self.write(move |tx| jobs::create(tx, &job)).await
    }

    async fn job(&self, id: i64) -> Result<JobView> {
        self.read(move |c| jobs::get(c, id)).await
    }

    async fn running_jobs(&self) -> Result<Vec<JobRow>> {
        self.read(jobs::running).await
    }

    async fn advance_job(&self, id: i64, next: usize, skipped: i64) -> Result<()> {
        self.write(move |tx| jobs::advance(tx, id, next, skipped))
            .await
    }

    async fn end_job(&self, id: i64, state: JobState) -> Result<JobView> {
        self.write(move |tx| jobs::end(tx, id, state)).await
    }
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn write_record(&self, prepared: PreparedWrite) -> Result<RecordWriteOutcome> {
        self.write(move |tx| records::write(tx, &prepared)).await
    }

    async fn record(&self, id: i64) -> Result<RecordView> {
        self.read(move |c| records::get(c, id)).await
    }

    async fn field_history(&self, record_id: i64) -> Result<Vec<FieldChange>> {
        self.read(move |c| records::history_of(c, record_id)).await
    }
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn alert_change(&self, change: AlertChange) -> Result<AlertView> {
        self.write(move |tx| alerts::apply(tx, &change)).await
    }

    async fn alert(&self, id: i64) -> Result<AlertView> {
        self.read(move |c| alerts::get(c, id)).await
    }

    async fn alerts(&self, state: Option<AlertState>, limit: usize) -> Result<Vec<AlertView>> {
        self.read(move |c| alerts::list(c, state, limit)).await
    }

    async fn active_alerts(&self) -> Result<Vec<AlertView>> {
        self.read(alerts::active).await
    }

    async fn alert_rules(&self) -> Result<Vec<StoredRule>> {
        self.read(notify::rules).await
    }

    async fn put_alert_rule(&self, rule: StoredRule) -> Result<StoredRule> {
        self.write(move |tx| notify::put_rule(tx, &rule)).await
    }

    async fn delete_alert_rule(&self, id: i64) -> Result<StoredRule> {
        self.write(move |tx| notify::delete_rule(tx, id)).await
    }

    async fn uncovered_failures(
        &self,
        alert_id: i64,
        workflow: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let workflow = workflow.to_owned();
        self.read(move |c| notify::uncovered(c, alert_id, &workflow, since))
            .await
    }

    async fn unnotified(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        within: std::time::Duration,
    ) -> Result<Vec<UnnotifiedCount>> {
        self.read(move |c| notify::unnotified(c, since, until, within))
            .await
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn create_webhook(&self, webhook: WebhookRow) -> Result<WebhookRow> {
        self.write(move |tx| webhooks::create(tx, &webhook)).await
    }

    async fn delete_webhook(&self, id: i64) -> Result<()> {
        self.write(move |tx| webhooks::delete(tx, id)).await
    }

    async fn webhooks(&self) -> Result<Vec<WebhookRow>> {
        self.read(webhooks::list).await
    }

    async fn cursor(&self, name: &str) -> Result<i64> {
        let name = name.to_owned();
        self.read(move |c| webhooks::cursor(c, &name)).await
    }

    async fn enqueue(&self, messages: Vec<NewMessage>, name: &str, seq: i64) -> Result<()> {
        let name = name.to_owned();
        self.write(move |tx| webhooks::enqueue(tx, &messages, &name, seq))
            .await
    }

    async fn enable_webhook(&self, id: i64) -> Result<WebhookRow> {
        self.write(move |tx| webhooks::enable(tx, id)).await
    }

    async fn given_up(&self, since: DateTime<Utc>) -> Result<Vec<GivenUp>> {
        self.read(move |c| webhooks::given_up(c, since)).await
    }

    async fn outbox_head(&self, target: &Target) -> Result<Option<Message>> {
        let target = target.clone();
        self.read(move |c| webhooks::head(c, &target)).await
    }

    async fn record_attempt(&self, id: i64, target: &Target, attempt: Attempt) -> Result<()> {
        let target = target.clone();
        self.write(move |tx| webhooks::attempt(tx, id, &target, &attempt))
            .await
    }

    async fn deliveries(&self, webhook_id: i64, limit: usize) -> Result<Vec<DeliveryView>> {
        self.read(move |c| webhooks::deliveries(c, webhook_id, limit))
            .await
    }

    async fn notify(&self, notice: NewNotice) -> Result<Vec<i64>> {
        self.write(move |tx| notify::notify(tx, &notice)).await
    }

    async fn notifications(
        &self,
        alert: Option<i64>,
        limit: usize,
    ) -> Result<Vec<NotificationView>> {
        self.read(move |c| notify::list(c, alert, limit)).await
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_token(&self, name: &str, role: Role, hash: &str) -> Result<TokenView> {
        let (name, hash) = (name.to_owned(), hash.to_owned());
        self.write(move |tx| access::create_token(tx, &name, role, &hash))
            .await
    }

    async fn revoke_token(&self, id: i64) -> Result<()> {
        self.write(move |tx| access::revoke_token(tx, id)).await
    }

    async fn link_key(&self, id: i64) -> Result<Option<LinkKey>> {
        self.read(move |c| access::link_key(c, id)).await
    }

    async fn current_link_key(&self) -> Result<Option<LinkKey>> {
        self.read(access::current_link_key).await
    }

    async fn add_link_key(&self, secret: [u8; KEY_BYTES], rotate: bool) -> Result<LinkKey> {
        self.write(move |tx| access::add_link_key(tx, &secret, rotate))
            .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<(TokenView, String)>> {
        let hash = hash.to_owned();
        self.read(move |c| access::token_by_hash(c, &hash)).await
    }

    async fn tokens(&self) -> Result<Vec<TokenView>> {
        self.read(access::tokens).await
    }

    async fn audit(&self, entry: NewAudit) -> Result<()> {
        self.write(move |tx| access::audit(tx, &entry)).await
    }

    async fn audit_log(&self, before: Option<i64>, limit: usize) -> Result<Page<AuditEntry>> {
        self.read(move |c| access::audit_log(c, before, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ControlChanged;

    /// Under sustained writes the WAL stays under its bound: the writer empties it between
    /// batches once it passes half (without that it grew without end).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_under_its_bound_while_writes_keep_coming() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acp.db");
        let store =
            SqliteStore::open_with(&path, Durability::Normal, BUS_CAPACITY, WRITER_CACHE_MIB)
                .unwrap();
        let wal = dir.path().join("acp.db-wal");
        let big = "x".repeat(256 * 1024);
        let mut peak = 0;
        for _ in 0..400 {
            let body = EventBody::ControlDegraded(ControlChanged {
                part: big.clone(),
                last_run: None,
            });
            store.record_event(body).await.unwrap();
            peak = peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert!(peak > 0, "writes went through the WAL");
        assert!(
            peak <= connection::WAL_LIMIT,
            "100 MB written; the WAL reached {peak} bytes"
        );
        store.close();
    }
}
