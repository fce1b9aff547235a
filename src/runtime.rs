//! The composition root: the one place ACP's parts are started and stopped, used by
//! `acp serve`, `acp demo`, the stream benchmark and the tests' API harness.
//!
//! [`Runtime::start`] starts the engine on a store. [`Runtime::serve`] then starts, as peers
//! sharing one shutdown, the background loops (the alert evaluator, outbox dispatch and
//! delivery, the incident tracker, retention, and a watchdog over them all) and the HTTP API, which only serves.
//! Each loop has a name and a [`Heartbeat`]; the watchdog appends `control.degraded` to the
//! run log when one stalls (and `control.recovered` when it comes back), and `GET /health`
//! shows every loop. [`Runtime::stop`] closes streams, stops the loops, lets in-flight
//! attempts finish and closes the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::alerts::Evaluator;
use crate::domain::alert::EVALUATOR_LOOP;
use crate::domain::clock::{Heartbeat, Loop, earlier_or_min};
use crate::domain::rollup::MINUTE_ROWS_KEPT;
use crate::engine::{Engine, EngineConfig, EngineError};
use crate::outbox::Pace;
use crate::server::{AppState, Retention, ServerConfig};
use crate::store::{Store, StoreError};
use crate::wire::{ControlChanged, EventBody};

/// How long the outbox loops may go without a round.
const OUTBOX_STALE: Duration = Duration::from_secs(60);
/// Runs one retention write looks at.
const PRUNE_RUNS: usize = 500;
/// Events one retention write looks at (an event is one row with no index besides its key).
const PRUNE_EVENTS: usize = 5_000;
/// The shortest pause between two retention writes; a write that took longer is followed by
/// a pause as long as it took, so pruning never takes more than about half of the writer.
const PRUNE_PAUSE: Duration = Duration::from_millis(20);

/// ACP running: the engine, and once [`Runtime::serve`] is called the loops and the API.
pub struct Runtime {
    engine: Engine,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    http: Mutex<Vec<JoinHandle<std::io::Result<()>>>>,
}

impl Runtime {
    /// Starts the engine (its claim, lease and schedule loops) on `store`.
    ///
    /// # Errors
    /// [`EngineError`] when the published workflows cannot be loaded, the crashed runs'
    /// leases cannot be released, or the link key cannot be made.
    pub async fn start(
        store: Arc<dyn Store>,
        config: EngineConfig,
        actions: Actions,
    ) -> Result<Self, EngineError> {
        let engine = Engine::start(store.clone(), config, actions).await?;
        // The key that signs alert and run links: made on the first start, kept after.
        let secret = crate::domain::link::LinkKey::new_secret()
            .map_err(|e| StoreError::Other(format!("no randomness for the link key: {e}")))?;
        store.add_link_key(secret, false).await?;
        Ok(Self {
            engine,
            store,
            shutdown: CancellationToken::new(),
            tasks: Mutex::default(),
            http: Mutex::default(),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Cancelled when the runtime stops (for tasks that live as long as it, such as the
    /// demo's traffic).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts the background loops and the HTTP API on `listener`; answers what handlers see.
    /// Its `shutdown` stops this API and these loops alone (a test's server going away);
    /// [`Runtime::stop`] stops everything.
    pub fn serve(&self, listener: TcpListener, config: ServerConfig) -> AppState {
        let shutdown = self.shutdown.child_token();
        let evaluator = Loop::new(EVALUATOR_LOOP, config.evaluator_stale_after);
        let dispatch = Loop::new("outbox dispatch", OUTBOX_STALE);
        let delivery = Loop::new(
            "outbox delivery",
            OUTBOX_STALE.max(config.webhook_poll * 10),
        );
        let retention = Loop::new(
            "retention",
            config.retention.map_or(Duration::MAX, |r| r.every * 2),
        );
        let tracker = Loop::new(crate::incidents::LOOP, OUTBOX_STALE);
        let mut loops = vec![
            evaluator.clone(),
            dispatch.clone(),
            delivery.clone(),
            tracker.clone(),
        ];
        loops.extend(self.engine.loops());
        if config.retention.is_some() {
            loops.push(retention.clone());
        }
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let state = AppState::new(
            self.engine.clone(),
            self.store.clone(),
            config,
            loops.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let config = state.config.clone();
        let store = self.store.clone();
        let pace = Pace {
            timeout: config.webhook_timeout,
            retry_initial: config.webhook_retry_initial,
            retry_max: config.webhook_retry_max,
            poll: config.webhook_poll,
        };
        let evaluate = Evaluator::new(self.engine.clone(), store.clone(), evaluator.heartbeat)
            .with_policy(config.alerting.clone());
        let mut tasks = vec![
            (
                EVALUATOR_LOOP,
                tokio::spawn(crate::alerts::run(
                    evaluate,
                    config.alert_every,
                    shutdown.clone(),
                )),
            ),
            (
                dispatch.name,
                tokio::spawn(crate::outbox::dispatch(
                    store.clone(),
                    dispatch.heartbeat,
                    shutdown.clone(),
                )),
            ),
            (
                delivery.name,
                tokio::spawn(crate::outbox::deliver(
                    store.clone(),
                    config.alerting.clone(),
                    pace,
                    metrics.clone(),
                    delivery.heartbeat,
                    shutdown.clone(),
                )),
            ),
            (
                tracker.name,
                tokio::spawn(crate::incidents::track(
                    store.clone(),
                    tracker.heartbeat,
                    shutdown.clone(),
                )),
            ),
            (
                "metrics",
                tokio::spawn(metrics.follow(
                    self.engine.clone(),
                    store.clone(),
                    store.subscribe(),
                    shutdown.clone(),
                )),
            ),
            (
                "watchdog",
                tokio::spawn(watchdog(loops, store.clone(), shutdown.clone())),
            ),
        ];
        if let Some(keep) = config.retention {
            tasks.push((
                retention.name,
                tokio::spawn(prune(
                    store.clone(),
                    keep,
                    retention.heartbeat,
                    shutdown.clone(),
                )),
            ));
        }
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tasks);
        let http = tokio::spawn(crate::server::serve(listener, state.clone()));
        self.http
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(http);
        state
    }

    /// Stops everything in order: the API (streams get a close frame), the loops, the engine
    /// (in-flight attempts finish within its grace period), then the store.
    ///
    /// # Errors
    /// The HTTP server's I/O error, if it failed; everything is stopped regardless.
    pub async fn stop(&self) -> std::io::Result<()> {
        self.shutdown.cancel();
        let servers = std::mem::take(&mut *self.http.lock().unwrap_or_else(|e| e.into_inner()));
        let mut served = Ok(());
        for task in servers {
            let result = task.await.unwrap_or(Ok(()));
            if served.is_ok() {
                served = result;
            }
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, task) in tasks {
            if let Err(e) = task.await {
                tracing::warn!("{name} did not stop cleanly: {e}");
            }
        }
        self.engine.shutdown().await;
        self.store.close();
        served
    }
}

/// Monitors the monitors: when a loop has not finished a round for its `stale_after`, appends
/// `control.degraded` naming it to the run log (so every stream client sees it), and
/// `control.recovered` once it runs again.
async fn watchdog(loops: Vec<Loop>, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let shortest = loops
        .iter()
        .map(|l| l.stale_after)
        .min()
        .unwrap_or(Duration::from_secs(30));
    let every = (shortest / 4).max(Duration::from_millis(10));
    let mut degraded = vec![false; loops.len()];
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = Utc::now();
        for (watched, was) in loops.iter().zip(degraded.iter_mut()) {
            let stale = watched.is_stale_at(now);
            if stale == *was {
                continue;
            }
            let change = ControlChanged {
                part: watched.name.into(),
                last_run: watched.heartbeat.last(),
            };
            let body = if stale {
                EventBody::ControlDegraded(change)
            } else {
                EventBody::ControlRecovered(change)
            };
            match store.record_event(body).await {
                Ok(()) => *was = stale,
                Err(e) => tracing::warn!("recording the state of the {} failed: {e}", watched.name),
            }
        }
    }
}

/// Retention: every `keep.every` (the first pass at start), prunes finished runs, then events,
/// then minute rollups, in bounded writes with a pause after each (see [`PRUNE_PAUSE`]), so
/// the writer keeps serving the engine while a large backlog goes.
async fn prune(
    store: Arc<dyn Store>,
    keep: Retention,
    heartbeat: Arc<Heartbeat>,
    shutdown: CancellationToken,
) {
    loop {
        match prune_pass(store.as_ref(), keep, &heartbeat, &shutdown).await {
            Ok((runs, events)) if runs + events > 0 => tracing::info!(
                "retention: dropped {runs} runs finished more than {} ago and {events} events",
                humantime::format_duration(keep.keep_runs)
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention failed (tried again next pass): {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(keep.every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One retention pass: finished runs, then events, then test runs, then minute rollups, each in bounded
/// writes with a pause between them; stops early (between writes) on `shutdown`. Answers how
/// many runs and events went.
///
/// # Errors
/// The first store error (the next pass starts over).
pub async fn prune_pass(
    store: &dyn Store,
    keep: Retention,
    heartbeat: &Heartbeat,
    shutdown: &CancellationToken,
) -> Result<(usize, usize), crate::store::StoreError> {
    let now = Utc::now();
    let runs_before = earlier_or_min(now, keep.keep_runs);
    let events_before = earlier_or_min(now, keep.keep_events.min(keep.keep_runs));
    let (mut runs, mut events, mut after) = (0, 0, 0);
    loop {
        let started = tokio::time::Instant::now();
        let step = store.prune_runs(runs_before, after, PRUNE_RUNS).await?;
        runs += step.deleted;
        heartbeat.beat(Utc::now());
        match step.next {
            Some(next) if !shutdown.is_cancelled() => after = next,
            _ => break,
        }
        tokio::time::sleep(started.elapsed().max(PRUNE_PAUSE)).await;
    }
    loop {
        let started = tokio::time::Instant::now();
        let deleted = store.prune_events(events_before, PRUNE_EVENTS).await?;
        events += deleted;
        heartbeat.beat(Utc::now());
        if deleted < PRUNE_EVENTS || shutdown.is_cancelled() {
            break;
        }
        tokio::time::sleep(started.elapsed().max(PRUNE_PAUSE)).await;
    }
    let tests_before = earlier_or_min(now, keep.keep_test_runs);
    loop {
        let started = tokio::time::Instant::now();
        let deleted = store.prune_test_runs(tests_before, PRUNE_RUNS).await?;
        runs += deleted;
        heartbeat.beat(Utc::now());
        if deleted < PRUNE_RUNS || shutdown.is_cancelled() {
            break;
        }
        tokio::time::sleep(started.elapsed().max(PRUNE_PAUSE)).await;
    }
    store
        .prune_rollups(earlier_or_min(
            now,
            MINUTE_ROWS_KEPT.to_std().unwrap_or_default(),
        ))
        .await?;
    heartbeat.beat(Utc::now());
    Ok((runs, events))
}
