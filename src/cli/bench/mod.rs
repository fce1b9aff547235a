//! `acp bench engine`: how fast the engine drains runs, against what SQLite commits allow.
//! `acp bench stream` (in `stream.rs`): the same workload watched by websocket subscribers.
//! `acp bench scale` (in `scale.rs`): how read, write and disk costs grow with the run log.
//!
//! The baseline is single-row commits per second on the same file system and durability mode.
//! The engine run uses no-op `http` steps answered in process; every `fail_every`-th run's
//! second step fails once with a 503 and is retried.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod scale;
pub mod stream;

use anyhow::Context;
use async_trait::async_trait;
use serde_json::{Value, json};

use acp::actions::{Actions, HttpRequest, HttpResponse, HttpSend};
use acp::domain::StepFailure;
use acp::engine::EngineConfig;
use acp::runtime::Runtime;
use acp::store::Store;
use acp::wire::{Event, EventKind, TriggerKind};
use tokio::sync::broadcast;

#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    #[arg(long, default_value_t = 100_000)]
    pub runs: usize,
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// The workload every benchmark drains: its workflow, failures, durability, workers, folder.
#[derive(clap::Args, Clone)]
pub struct WorkloadArgs {
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Every n-th run's second step fails once (0: never).
    #[arg(long, default_value_t = 10)]
    pub fail_every: i64,
    /// `full`: every commit on disk before it is acknowledged; `normal`: WAL without an fsync
    /// per commit.
    #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
    pub durability: String,
    #[arg(long, default_value_t = 256)]
    pub workers: usize,
    /// Folder for the temporary database files.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// Answers every request with 200, except the first try of a failing run's second step.
struct NoopHttp {
    fail_every: i64,
    failed: Mutex<HashSet<String>>,
}

#[async_trait]
impl HttpSend for NoopHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure> {
        let run: i64 = request
            .idempotency_key
            .strip_prefix("run-")
            .and_then(|rest| rest.split(':').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or(1);
        let second = request.idempotency_key.ends_with(":s2");
        let fail = self.fail_every > 0 && run % self.fail_every == 0 && second;
        let first_try = fail
            && self
                .failed
                .lock()
                .map(|mut f| f.insert(request.idempotency_key))
                .unwrap_or(false);
        let status = if first_try { 503 } else { 200 };
        Ok(HttpResponse {
            status,
            headers: Default::default(),
            body: json!({"ok": !first_try}),
            latency_ms: 0,
        })
    }
}

fn workflow(steps: usize) -> String {
    let steps: Vec<String> = (1..=steps)
        .map(|i| {
            format!(
                r#"(id: "s{i}", action: Http(method: "POST", url: "http://bench.invalid/s{i}"),
                    retry: (max_attempts: 3, initial_delay: "1ms", max_delay: "1ms"))"#
            )
        })
        .collect();
    format!(
        r#"(key: "bench", name: "Bench", team: "perf", trigger: Manual, steps: [{}])"#,
        steps.join(",\n")
    )
}

/// An engine on a fresh database in `dir`, with the benchmark workflow published.
pub struct Workload {
    pub db: PathBuf,
    pub store: Arc<dyn Store>,
    pub runtime: Runtime,
}

impl Workload {
    pub async fn start(
        dir: &std::path::Path,
        name: &str,
        args: &WorkloadArgs,
    ) -> anyhow::Result<Self> {
        let db = dir.join(format!("{name}.db"));
        let store = acp::store::open(&crate::cli::serve::store_url(&db, &args.durability))?;
        let http = Arc::new(NoopHttp {
            fail_every: args.fail_every,
            failed: Mutex::new(HashSet::new()),
        });
        let config = EngineConfig {
            workers: args.workers,
            ..EngineConfig::default()
        };
        let runtime = Runtime::start(store.clone(), config, Actions::with_http(http)).await?;
        let engine = runtime.engine();
        engine.save_draft(&workflow(args.steps), "bench").await?;
        engine.publish("bench", "bench").await?;
        Ok(Self { db, store, runtime })
    }

    /// Queues `runs` runs and waits until all have finished; answers the time it took.
    pub async fn drain(&self, runs: usize) -> anyhow::Result<Duration> {
        self.drain_paced(runs, None, |i| json!({"n": i})).await
    }

    /// Like [`Workload::drain`], starting at most `per_s` runs a second (in ticks of 10 ms)
    /// when given, else queueing them all at once in chunks of 1,000; run `i` gets
    /// `payload(i)` as its trigger.
    pub async fn drain_paced(
        &self,
        runs: usize,
        per_s: Option<f64>,
        payload: fn(usize) -> Value,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let finished = tokio::spawn(wait_for_runs(self.store.subscribe(), runs));
        let tick = Duration::from_millis(10);
        let mut ticks = tokio::time::interval(tick);
        let mut queued = 0;
        while queued < runs {
            // Paced: as many as are due by the end of this tick, fractions carried over.
            let due = match per_s {
                Some(rate) => {
                    ticks.tick().await;
                    let elapsed = started.elapsed().as_secs_f64() + tick.as_secs_f64();
                    ((rate * elapsed) as usize).min(runs)
                }
                None => (queued + 1000).min(runs),
            };
            if due <= queued {
                continue;
            }
            let payloads: Vec<Value> = (queued..due).map(payload).collect();
            self.runtime
                .engine()
                .start_runs("bench", TriggerKind::Manual, payloads)
                .await?;
            queued = due;
        }
        finished.await??;
        Ok(started.elapsed())
    }

    pub async fn stop(&self) -> std::io::Result<()> {
        self.runtime.stop().await
    }
}

pub async fn engine(engine: EngineArgs) -> anyhow::Result<()> {
    let (runs, args) = (engine.runs, &engine.workload);
    let dir = tempfile::tempdir_in(&args.dir)
        .with_context(|| format!("temporary folder in {}", args.dir.display()))?;
    let baseline = acp::store::commit_baseline(
        &crate::cli::serve::store_url(&dir.path().join("baseline.db"), &args.durability),
        Duration::from_secs(2),
    )?;
    println!(
        "commit baseline: {baseline:.0} single-row commits/s ({})",
        args.durability
    );
    let workload = Workload::start(dir.path(), "bench", args).await?;
    let wal = wal_watch(&workload.db);
    let elapsed = workload.drain(runs).await?.as_secs_f64();
    let wal_peak = wal.stop().await;
    let (failed, attempts) = acp::store::tally(&crate::cli::serve::store_url(
        &workload.db,
        &args.durability,
    ))?;
    workload.stop().await?;
    let bytes_per_run = file_size(&workload.db) / runs.max(1) as u64;

    let runs_per_s = runs as f64 / elapsed;
    let steps_per_s = attempts as f64 / elapsed;
    println!(
        "drained {} runs ({} steps each, {} attempts, {failed} failed) in {elapsed:.2}s with {} workers",
        runs, args.steps, attempts, args.workers
    );
    println!(
        "runs_per_s={runs_per_s:.0} steps_per_s={steps_per_s:.0} commit_baseline_per_s={baseline:.0} ratio={:.2} \
         wal_peak_mb={:.1} bytes_per_run={bytes_per_run}",
        runs_per_s / baseline,
        wal_peak as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The WAL file beside a database file.
fn wal_path(db: &std::path::Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Samples the WAL's size every 20 ms until aborted; answers the largest seen.
fn wal_watch(db: &std::path::Path) -> WalWatch {
    let wal = wal_path(db);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            seen.fetch_max(file_size(&wal), std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    WalWatch { task, peak }
}

/// A running WAL sampler.
struct WalWatch {
    task: tokio::task::JoinHandle<()>,
    peak: Arc<std::sync::atomic::AtomicU64>,
}

impl WalWatch {
    /// Stops sampling; answers the largest size seen, in bytes.
    async fn stop(self) -> u64 {
        self.task.abort();
        let _ = self.task.await;
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Counts finished runs on the event bus until there are `runs` of them.
async fn wait_for_runs(
    mut events: broadcast::Receiver<Arc<Event>>,
    runs: usize,
) -> anyhow::Result<()> {
    let mut finished = 0;
    while finished < runs {
        match events.recv().await {
            Ok(event) if matches!(event.kind(), EventKind::RunSucceeded | EventKind::RunFailed) => {
                finished += 1
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                anyhow::bail!("the benchmark fell {n} events behind the bus")
            }
            Err(broadcast::error::RecvError::Closed) => anyhow::bail!("the store closed"),
        }
    }
    Ok(())
}
