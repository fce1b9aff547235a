//! `acp bench scale`: how the server's costs grow with the run log.
//!
//! Loads `--runs` runs through the engine in `--stages` equal stages (3 no-op `http` steps by
//! default, every tenth run's second step failing once, payloads with e-mails and ids). At the
//! start of each stage, while that stage's runs are draining (a steady background load), it
//! times the reads the console and scripts make (and a test-mode comparison), five times each; after the last stage it
//! times them once more at the full size under a small extra load. It samples the WAL and
//! reports the drain rate of the first and the last stage, the reads at full size, the WAL's
//! peak, the process's RSS and the bytes on disk per run. Last, it drains once more while a
//! retention pass deletes every finished run, to show what pruning costs the engine.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Workload, WorkloadArgs, file_size, wal_watch};
use acp::domain::clock::Heartbeat;
use acp::runtime::prune_pass;
use acp::server::{Retention, ServerConfig, auth};
use acp::wire::Role;

#[derive(clap::Args)]
pub struct ScaleArgs {
    #[arg(long, default_value_t = 1_000_000)]
    runs: usize,
    /// Equal stages the runs are loaded in; reads are timed at the start of each.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    stages: u32,
    /// Keep the database in `--dir` afterwards (its path is printed), to open it with
    /// `acp serve --db` and the console.
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    workload: WorkloadArgs,
}

/// A trigger payload like a CRM's: a lead with an e-mail, an id and a company.
fn lead(i: usize) -> Value {
    json!({
        "lead_id": format!("L-{i:08}"),
        "email": format!("lead{i}@example{}.com", i % 97),
        "company": format!("Company {}", i % 1013),
        "score": i % 100,
    })
}

/// The reads timed, by name: what the console, scripts and Prometheus ask for. Each is a GET
/// under `/api/v1` (`@` marks a path outside it), or a POST of the body given: a test of the published version on the last 20 runs' triggers,
/// compared with itself, answered from recorded responses (40 test runs a call).
fn reads(runs: usize) -> Vec<(&'static str, String, Option<Value>)> {
    let test = json!({"version": "published", "recent": 20, "compare": "published", "responses": "recorded"});
    vec![
        ("runs_page", "/runs?limit=50".into(), None),
        ("runs_failed", "/runs?status=failed&limit=50".into(), None),
        ("search", format!("/runs?q=lead{}@example", runs / 2), None),
        ("health_1h", "/health?window=1h".into(), None),
        ("health_24h", "/health?window=24h".into(), None),
        ("workflows", "/workflows".into(), None),
        ("dlq", "/dlq?limit=50".into(), None),
        ("events", "/events?since=0&limit=500".into(), None),
        ("test_runs", "/runs?mode=test&limit=50".into(), None),
        ("holds", "/holds".into(), None),
        ("incidents", "/incidents".into(), None),
        ("summary_7d", "/metrics/summary?window=7d".into(), None),
        ("summary_30d", "/metrics/summary?window=30d".into(), None),
        ("prometheus", "@/metrics".into(), None),
        (
            "test_compare_20",
            "/workflows/bench/test".into(),
            Some(test),
        ),
    ]
}

/// Each read five times; answers the median milliseconds of each, in order.
async fn time_reads(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    runs: usize,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let mut medians = Vec::new();
    for (name, path, body) in reads(runs) {
        let url = match path.strip_prefix('@') {
            Some(outside) => format!("{}{outside}", base.trim_end_matches("/api/v1")),
            None => format!("{base}{path}"),
        };
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let request = match &body {
                Some(body) => http.post(&url).json(body),
                None => http.get(&url),
            };
            let response = request.bearer_auth(token).send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.bytes().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        medians.push((name, times[times.len() / 2]));
    }
    Ok(medians)
}

/// This process's resident memory in MiB (`VmRSS` in /proc/self/status; Linux).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(&args.workload.dir)
        .with_context(|| format!("temporary folder in {}", args.workload.dir.display()))?;
    let workload = Workload::start(dir.path(), "scale", &args.workload).await?;
    let token = auth::create_token(workload.store.as_ref(), "bench", Role::Operator, None)
        .await?
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    workload.runtime.serve(listener, ServerConfig::default());
    let http = reqwest::Client::new();
    let wal = wal_watch(&workload.db);

    let stage = (args.runs / args.stages as usize).max(1);
    let mut loaded = 0;
    let mut rates = Vec::new();
    println!("runs_in_log  drain_per_s  rss_mb  reads (median ms of 5, under load)");
    while loaded < args.runs {
        let size = stage.min(args.runs - loaded);
        let drain = workload.drain_paced(size, None, lead);
        let (drained, timed) = tokio::join!(drain, async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            time_reads(&http, &base, &token, loaded.max(1)).await
        });
        let rate = size as f64 / drained?.as_secs_f64();
        let timed = timed?;
        println!(
            "{loaded:>11}  {rate:>11.0}  {:>6.0}  {}",
            rss_mb(),
            show(&timed)
        );
        rates.push(rate);
        loaded += size;
    }
    let extra = (args.runs / 50).max(500);
    let drain = workload.drain_paced(extra, None, lead);
    let (drained, at_full) = tokio::join!(drain, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        time_reads(&http, &base, &token, args.runs).await
    });
    drained?;
    // How far the incident tracker is behind the log when the load stops.
    let incident_lag = workload.store.newest_seq().await?
        - workload.store.cursor(acp::domain::incident::CURSOR).await?;
    let at_full = at_full?;
    let rss = rss_mb();
    println!(
        "{:>11}  {:>11}  {rss:>6.0}  {}",
        args.runs,
        "-",
        show(&at_full)
    );
    let held = held_backlog(&workload, &http, &base, &token, (args.runs / 20).max(500)).await?;
    println!("{held}");
    // Deleting every run would leave nothing to open: a kept database skips the retention step.
    let pruning = match args.keep {
        false => Some(prune_under_load(&workload, extra).await?),
        true => None,
    };
    let wal_peak = wal.stop().await;
    workload.stop().await?;
    let total = args.runs + extra * if args.keep { 1 } else { 3 };
    let bytes_per_run = file_size(&workload.db) / total.max(1) as u64;
    if args.keep {
        let kept = dir.keep();
        println!(
            "kept the database: {}",
            kept.join(workload.db.file_name().unwrap_or_default())
                .display()
        );
    }
    let read = |name: &str| {
        at_full
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(f64::NAN, |(_, ms)| *ms)
    };
    if let Some(line) = pruning {
        println!("{line}");
    }
    println!(
        "runs={total} drain_first_per_s={:.0} drain_last_per_s={:.0} health_24h_p50_ms={:.1} \
         search_p50_ms={:.1} workflows_p50_ms={:.1} runs_page_p50_ms={:.1} \
         test_compare_20_p50_ms={:.1} summary_30d_p50_ms={:.1} prometheus_p50_ms={:.1} \
         incident_lag_events={incident_lag} wal_peak_mb={:.1} rss_mb={rss:.0} bytes_per_run={bytes_per_run}",
        rates.first().copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
        read("health_24h"),
        read("search"),
        read("workflows"),
        read("runs_page"),
        read("test_compare_20"),
        read("summary_30d"),
        read("prometheus"),
        wal_peak as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}

/// A held backlog: a hold on the bench workflow, `runs` runs queued behind it (each claimed
/// and held), the reads that count held runs (`/holds`, `/health`) while they wait, the
/// release (one statement makes them all due), and the drain after it.
async fn held_backlog(
    workload: &Workload,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    runs: usize,
) -> anyhow::Result<String> {
    let engine = workload.runtime.engine();
    let request = serde_json::from_value(json!({"scope": "workflow:bench", "reason": "bench"}))?;
    let hold = engine.create_hold(request, "bench").await?;
    let started = Instant::now();
    for from in (0..runs).step_by(1000) {
        let payloads: Vec<Value> = (from..(from + 1000).min(runs)).map(lead).collect();
        engine
            .start_runs("bench", acp::wire::TriggerKind::Manual, payloads)
            .await?;
    }
    loop {
        let held: i64 = workload
            .store
            .held_runs()
            .await?
            .iter()
            .map(|h| h.runs)
            .sum();
        if held as usize >= runs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held_per_s = runs as f64 / started.elapsed().as_secs_f64();
    let mut timed = Vec::new();
    for (name, path) in [("holds", "/holds"), ("health_1h", "/health?window=1h")] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let at = Instant::now();
            http.get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            times.push(at.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        timed.push((name, times[2]));
    }
    let finished = tokio::spawn(super::wait_for_runs(workload.store.subscribe(), runs));
    let at = Instant::now();
    engine.release_hold(hold.id, "bench").await?;
    let release_ms = at.elapsed().as_secs_f64() * 1000.0;
    finished.await??;
    let drain_per_s = runs as f64 / at.elapsed().as_secs_f64();
    Ok(format!(
        "held backlog: {runs} runs held at {held_per_s:.0}/s; with them held {}; release \
         {release_ms:.0} ms (one statement); drained after it at {drain_per_s:.0} runs/s",
        show(&timed)
    ))
}

/// Retention under load: drains `runs` runs alone, then `runs` more while a retention pass
/// deletes every finished run (as `--keep-runs` would once they are old enough); answers a
/// line with both drain rates and the pass's.
async fn prune_under_load(workload: &Workload, runs: usize) -> anyhow::Result<String> {
    let alone = runs as f64 / workload.drain_paced(runs, None, lead).await?.as_secs_f64();
    let everything = Retention {
        keep_runs: Duration::ZERO,
        keep_events: Duration::ZERO,
        keep_test_runs: Duration::ZERO,
        every: Duration::from_secs(3600),
    };
    let heartbeat = Heartbeat::default();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let (drained, pruned) = tokio::join!(workload.drain_paced(runs, None, lead), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        prune_pass(workload.store.as_ref(), everything, &heartbeat, &shutdown).await
    });
    let took = started.elapsed().as_secs_f64();
    let beside = runs as f64 / drained?.as_secs_f64();
    let (deleted, _) = pruned?;
    Ok(format!(
        "retention: deleted {deleted} runs in {took:.1} s ({:.0}/s) in batches; drain {alone:.0} \
         runs/s alone, {beside:.0} runs/s beside it",
        deleted as f64 / took.max(1e-9),
    ))
}

fn show(timed: &[(&'static str, f64)]) -> String {
    timed
        .iter()
        .map(|(name, ms)| format!("{name} {ms:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}
