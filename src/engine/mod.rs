//! The engine: turns triggers into runs and runs them durably.
//!
//! ```text
//!  trigger ──► queued ──claim──► running ──step ok──► … ──► succeeded
//!                ▲                 │  │
//!                │   retry (op)    │  └─ transient error, budget left ─► retrying ──due──► (claim)
//!                │                 │  └─ delay step ─────────────────► waiting  ──due──► (claim)
//!                │                 │  └─ a hold or a limit ──────────► held ──due/released──► (claim)
//!             failed ◄── permanent error / budget spent (+ DLQ entry)
//!  lease expired while running ──► claimed again, in-flight attempt marked abandoned and re-run
//! ```
//!
//! Every transition is persisted by the store (with its event) before the next step starts.
//! The engine knows no HTTP server and no terminal; step kinds reach the outside world through
//! [`crate::actions`].

mod bounds;
mod catalog;
mod clock;
mod driver;
mod health;
mod holds;
mod incidents;
mod jobs;
mod ops;
mod policy;
mod replay;
mod step;
mod test_run;
mod triggers;
mod worker;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actions::Actions;
use crate::domain::clock::{Clock, Loop, SystemClock};
use crate::domain::policy::PolicyConfig;
use crate::domain::template::SecretLookup;
use crate::store::{Store, StoreError};
use catalog::Catalog;

pub use clock::TokioClock;
pub use incidents::IncidentReplayed;
pub use ops::{LoadReport, Watched};

/// What can go wrong in an engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// An idempotency key (or inbound webhook id) seen before with another body.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// A workflow file with problems, each with its line and column.
    #[error("the workflow has {} problem(s), the first at {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Problems(Vec<crate::domain::Problem>),
}

/// Tuning and wiring.
#[derive(Clone)]
pub struct EngineConfig {
    /// Runs executed at once.
    pub workers: usize,
    /// How long a claimed run stays ours without a heartbeat.
    pub lease: Duration,
    /// How often to look for due runs and expired leases when nothing wakes the engine.
    pub poll: Duration,
    /// How long shutdown waits for in-flight attempts.
    pub grace: Duration,
    pub secrets: SecretLookup,
    /// This engine is the only one on its store (SQLite: one server owns the file). At start
    /// every `running` run was then abandoned by a crash, so it resumes at once (same
    /// idempotency keys) instead of after its lease. Engines sharing a store (PostgreSQL,
    /// later) leave this off and wait for leases.
    pub sole_owner: bool,
    /// Cap on one stored step input, output or detail, in bytes of JSON; larger values are
    /// stored as a `truncated` marker with their original size (the run's later steps still
    /// see the whole value while the run is driven without a pause).
    pub max_stored_bytes: usize,
    /// Where the engine reads the time (due runs, leases, retry and delay times, schedules).
    pub clock: Arc<dyn Clock>,
    /// Host limits and maintenance windows (from `acp.ron`).
    pub policies: PolicyConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 32,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(10),
            secrets: Arc::new(|name| std::env::var(name).ok()),
            sole_owner: true,
            max_stored_bytes: bounds::DEFAULT_MAX_STORED,
            clock: Arc::new(SystemClock),
            policies: PolicyConfig::default(),
        }
    }
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: EngineConfig,
    actions: Actions,
    catalog: Catalog,
    /// This engine's identity on leases.
    owner: String,
    /// Wakes the claim loop: new runs, a retry falling due, a worker freed.
    wake: Notify,
    slots: Arc<Semaphore>,
    cancels: Mutex<std::collections::HashMap<i64, CancellationToken>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The claim loop and the lease heartbeat, as the runtime's watchdog and health see them.
    claims: Loop,
    leases: Loop,
    /// Holds and limits: what runs and calls may do now.
    gate: policy::Gate,
    /// The bulk replay jobs this engine runs, with their cancel tokens.
    jobs: Mutex<std::collections::HashMap<i64, CancellationToken>>,
}

impl Engine {
    /// The engine's time (its configured clock: the system's, or a test's).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.config.clock.now()
    }

    /// Starts the claim, heartbeat and schedule loops on the current tokio runtime.
    pub async fn start(
        store: Arc<dyn Store>,
        config: EngineConfig,
        actions: Actions,
    ) -> Result<Self, EngineError> {
        let catalog = Catalog::new(store.clone(), config.secrets.clone());
        catalog.refresh().await?;
        if config.sole_owner {
            let abandoned = store.expire_leases().await?;
            if abandoned > 0 {
                tracing::info!(runs = abandoned, "resuming runs left running by a crash");
            }
            test_run::end_abandoned(store.as_ref()).await?;
        }
        let (config_poll, config_lease) = (config.poll, config.lease);
        let gate = policy::Gate::new(config.clock.clone(), &config.policies);
        gate.set_holds(store.holds(false, 0).await?);
        let inner = Arc::new(Inner {
            gate,
            jobs: Mutex::default(),
            owner: format!("engine-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            slots: Arc::new(Semaphore::new(config.workers.max(1))),
            store,
            config,
            actions,
            catalog,
            wake: Notify::new(),
            cancels: Mutex::new(Default::default()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            claims: Loop::new(
                "engine claims",
                (config_poll * 10).max(std::time::Duration::from_secs(30)),
            ),
            leases: Loop::new("lease heartbeat", config_lease),
        });
        inner.tasks.spawn(worker::claim_loop(inner.clone()));
        inner.tasks.spawn(worker::heartbeat_loop(inner.clone()));
        inner.tasks.spawn(triggers::schedule_loop(inner.clone()));
        inner.tasks.spawn(holds::holds_loop(inner.clone()));
        if inner.config.sole_owner {
            inner.spawn_jobs().await?;
        }
        Ok(Self { inner })
    }

    /// The store this engine persists to (for reads).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Stops claiming, lets in-flight attempts finish (up to the grace period) and releases
    /// every run it held, so a restart resumes them at once.
    /// The engine's own loops (claims, lease heartbeat) with their heartbeats.
    pub fn loops(&self) -> Vec<Loop> {
        vec![self.inner.claims.clone(), self.inner.leases.clone()]
    }

    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.wake.notify_waiters();
        self.inner.tasks.close();
        if tokio::time::timeout(self.inner.config.grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown grace period over; unfinished attempts resume after their lease expires"
            );
        }
    }
}
