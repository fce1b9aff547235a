//! The Prometheus (OpenMetrics text) exposition of ACP: counters and histograms fed by
//! following the run log from the moment the server started, gauges read from the store at
//! each scrape. Labels are bounded sets (workflow keys, step ids, kinds, statuses, channel
//! names, severities): never a run, record or user id.
//!
//! Counters and histograms reset when the server restarts (their HELP says so); Prometheus'
//! `rate()` and `increase()` handle resets. The totals that must outlive restarts are in
//! `GET /metrics/summary` and `GET /health`, read from stored facts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::store::{Follower, Store, StoreError, Target};
use crate::wire::{AlertState, Event, EventBody, RunMode};

/// The content type of the exposition (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Events read per round.
const BATCH: usize = 1000;
/// Runs and steps whose start is remembered for their duration; past this the oldest go
/// (their durations are not observed).
const MAX_CLOCKS: usize = 100_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowTrigger {
    workflow: String,
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowStatus {
    workflow: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    workflow: String,
    step: String,
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelResult {
    channel: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowLabel {
    workflow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkflowKind {
    workflow: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 5 ms to about 23 hours.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 24))
}

/// Registers `metric` and answers it (metrics are shared handles: the registry's clone and
/// this one count into the same values).
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: impl Into<String>,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// When runs and steps in flight started, for their durations.
#[derive(Default)]
struct Clocks {
    queued: HashMap<i64, DateTime<Utc>>,
    started: HashMap<i64, DateTime<Utc>>,
    steps: HashMap<(i64, String), DateTime<Utc>>,
}

impl Clocks {
    fn bound(&mut self) {
        for map in [&mut self.queued, &mut self.started] {
            if map.len() > MAX_CLOCKS {
                map.clear();
            }
        }
        if self.steps.len() > MAX_CLOCKS {
            self.steps.clear();
        }
    }
}

/// ACP's metrics: create one per server with [`Metrics::new`], run [`Metrics::follow`], and
/// answer scrapes with [`Metrics::render`].
pub struct Metrics {
    registry: Registry,
    runs_started: Family<WorkflowTrigger, Counter>,
    runs_finished: Family<WorkflowStatus, Counter>,
    step_attempts: Family<StepLabels, Counter>,
    notifications: Family<ChannelResult, Counter>,
    run_duration: Histograms<WorkflowLabel>,
    step_duration: Histograms<WorkflowKind>,
    queue_wait: Histogram,
    dlq_open: Family<WorkflowLabel, Gauge>,
    incidents_open: Family<WorkflowLabel, Gauge>,
    alerts_firing: Family<SeverityLabel, Gauge>,
    runs_held: Gauge,
    writer_commit: Gauge<f64, AtomicU64>,
    clocks: Mutex<Clocks>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let since = "since this server started (resets on restart)";
        let mut r = Registry::default();
        let runs_started = registered(
            &mut r,
            "acp_runs_started",
            format!("Runs created by a trigger (test runs excluded), {since}"),
            Family::<WorkflowTrigger, Counter>::default(),
        );
        let runs_finished = registered(
            &mut r,
            "acp_runs_finished",
            format!("Runs that ended (succeeded, failed or cancelled), {since}"),
            Family::<WorkflowStatus, Counter>::default(),
        );
        let step_attempts = registered(
            &mut r,
            "acp_step_attempts",
            format!(
                "Step attempts that ended, by the step's kind and the attempt's result, {since}"
            ),
            Family::<StepLabels, Counter>::default(),
        );
        let notifications = registered(
            &mut r,
            "acp_notifications",
            format!(
                "Delivery attempts of alert notifications (channel name) and webhook messages (channel \"webhook\") by result (delivered, failed, given_up), {since}"
            ),
            Family::<ChannelResult, Counter>::default(),
        );
        let run_duration: Histograms<WorkflowLabel> = registered(
            &mut r,
            "acp_run_duration_seconds",
            format!("Time from a run's start to its end, {since}"),
            Family::new_with_constructor(seconds),
        );
        let step_duration: Histograms<WorkflowKind> = registered(
            &mut r,
            "acp_step_duration_seconds",
            format!("Time of one step attempt, {since}"),
            Family::new_with_constructor(seconds),
        );
        let queue_wait = registered(
            &mut r,
            "acp_queue_wait_seconds",
            format!("Time from a run's creation to its first start (held time included), {since}"),
            seconds(),
        );
        let dlq_open = registered(
            &mut r,
            "acp_dlq_open",
            "Open dead-letter entries",
            Family::default(),
        );
        let incidents_open = registered(
            &mut r,
            "acp_incidents_open",
            "Incidents open or regressed",
            Family::default(),
        );
        let alerts_firing = registered(
            &mut r,
            "acp_alerts_firing",
            "Alerts firing",
            Family::default(),
        );
        let runs_held = registered(
            &mut r,
            "acp_runs_held",
            "Runs held now (by holds, limits or host backpressure)",
            Gauge::default(),
        );
        let writer_commit = registered(
            &mut r,
            "acp_writer_commit_seconds",
            "How long the store writer's last batch took to commit",
            Gauge::<f64, AtomicU64>::default(),
        );
        Self {
            registry: r,
            runs_started,
            runs_finished,
            step_attempts,
            notifications,
            run_duration,
            step_duration,
            queue_wait,
            dlq_open,
            incidents_open,
            alerts_firing,
            runs_held,
            writer_commit,
            clocks: Mutex::default(),
        }
    }

    /// Counts one delivery attempt to `target`; `result` is `delivered`, `failed` (tried
    /// again later) or `given_up`.
    pub fn delivery(&self, target: &Target, result: &str) {
        let channel = match target {
            Target::Channel(name) => name.clone(),
            Target::Webhook(_) => "webhook".to_owned(),
        };
        self.notifications
            .get_or_create(&ChannelResult {
                channel,
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one committed event.
    pub fn observe(&self, engine: &Engine, event: &Event) {
        let Some(workflow) = event.workflow.clone() else {
            return;
        };
        let mut clocks = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        let run = event.run_id.unwrap_or_default();
        let since = |from: Option<DateTime<Utc>>| {
            from.map(|at| (event.at - at).num_milliseconds().max(0) as f64 / 1000.0)
        };
        match &event.body {
            EventBody::RunQueued(queued) if queued.mode != RunMode::Test => {
                self.runs_started
                    .get_or_create(&WorkflowTrigger {
                        workflow,
                        trigger: queued.trigger_kind.to_string(),
                    })
                    .inc();
                clocks.queued.insert(run, event.at);
            }
            EventBody::RunStarted(_) => {
                if let Some(wait) = since(clocks.queued.remove(&run)) {
                    self.queue_wait.observe(wait);
                }
                clocks.started.entry(run).or_insert(event.at);
            }
            EventBody::RunSucceeded(_) | EventBody::RunFailed(_) | EventBody::RunCancelled(_) => {
                let status = match &event.body {
                    EventBody::RunSucceeded(_) => "succeeded",
                    EventBody::RunFailed(_) => "failed",
                    _ => "cancelled",
                };
                if let Some(took) = since(clocks.started.remove(&run)) {
                    self.run_duration
                        .get_or_create(&WorkflowLabel {
                            workflow: workflow.clone(),
                        })
                        .observe(took);
                }
                clocks.queued.remove(&run);
                self.runs_finished
                    .get_or_create(&WorkflowStatus {
                        workflow,
                        status: status.to_owned(),
                    })
                    .inc();
            }
            EventBody::StepStarted(step) => {
                clocks.steps.insert((run, step.step_id.clone()), event.at);
            }
            EventBody::StepSucceeded(ended) | EventBody::StepFailed(ended) => {
                let kind = engine.step_kind(&workflow, &ended.step_id);
                if let Some(took) = since(clocks.steps.remove(&(run, ended.step_id.clone()))) {
                    self.step_duration
                        .get_or_create(&WorkflowKind {
                            workflow: workflow.clone(),
                            kind: kind.to_owned(),
                        })
                        .observe(took);
                }
                self.step_attempts
                    .get_or_create(&StepLabels {
                        workflow,
                        step: ended.step_id.clone(),
                        kind: kind.to_owned(),
                        result: ended.status.to_string(),
                    })
                    .inc();
            }
            _ => {}
        }
        clocks.bound();
    }

    /// Follows the run log from the first event `bus` (subscribed when the server started)
    /// carries until shutdown, counting each committed event once, in order (by sequence
    /// number, so a lagging bus loses nothing), at most one read per
    /// [`crate::incidents::PACE`] while events keep coming.
    pub async fn follow(
        self: std::sync::Arc<Self>,
        engine: Engine,
        store: std::sync::Arc<dyn Store>,
        mut bus: broadcast::Receiver<std::sync::Arc<Event>>,
        shutdown: CancellationToken,
    ) {
        let mut cursor = loop {
            let first = tokio::select! {
                first = bus.recv() => first,
                _ = shutdown.cancelled() => return,
            };
            match first {
                Ok(event) => {
                    self.observe(&engine, &event);
                    break event.seq;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => match store.newest_seq().await {
                    Ok(seq) => break seq,
                    Err(e) => tracing::warn!("metrics: reading the log's end: {e}"),
                },
                Err(broadcast::error::RecvError::Closed) => return,
            }
        };
        let mut log = Follower::new(bus);
        loop {
            match log.next(store.as_ref(), cursor, BATCH).await {
                Ok(events) => {
                    for event in &events {
                        self.observe(&engine, event);
                        cursor = event.seq;
                    }
                    if events.len() == BATCH {
                        continue;
                    }
                }
                Err(e) => tracing::warn!("metrics: reading the log: {e}"),
            }
            if !log.wait(Duration::from_secs(1), &shutdown).await {
                return;
            }
            tokio::time::sleep(crate::incidents::PACE).await;
        }
    }

    /// The exposition: the gauges read from `store` now, then everything encoded.
    ///
    /// # Errors
    /// A store error reading the gauges.
    pub async fn render(&self, store: &dyn Store) -> Result<String, StoreError> {
        let depths = store.dlq_depths().await?;
        let open = store.open_incidents().await?;
        let alerts = store.active_alerts().await?;
        let held: i64 = store.held_runs().await?.iter().map(|h| h.runs).sum();
        self.dlq_open.clear();
        for (workflow, depth) in depths {
            self.dlq_open
                .get_or_create(&WorkflowLabel { workflow })
                .set(depth);
        }
        self.incidents_open.clear();
        for (workflow, n) in open {
            self.incidents_open
                .get_or_create(&WorkflowLabel { workflow })
                .set(n);
        }
        self.alerts_firing.clear();
        for severity in ["warning", "critical"] {
            let firing = alerts
                .iter()
                .filter(|a| a.state == AlertState::Firing && a.severity == severity)
                .count();
            self.alerts_firing
                .get_or_create(&SeverityLabel {
                    severity: severity.to_owned(),
                })
                .set(firing as i64);
        }
        self.runs_held.set(held);
        self.writer_commit
            .set(store.last_commit().map_or(0.0, |d| d.as_secs_f64()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| StoreError::Other(format!("encoding the metrics: {e}")))?;
        Ok(text)
    }
}
