//! `acp bench stream`: the engine workload with websocket subscribers attached.
//!
//! The same workload runs twice on fresh databases, each with the API serving: once with no
//! subscriber, once with `--subscribers` clients following the stream from a child process
//! (so their own CPU does not count). It reports the events committed per second, the latency
//! from an event's commit to its receipt by a client (p50/p99 over every client and event),
//! and the extra CPU the serving process spent with subscribers attached.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use super::{Workload, WorkloadArgs};
use acp::server::{AppState, ServerConfig, auth};
use acp::store::Store;
use acp::wire::{Role, StreamMessage};

#[derive(clap::Args)]
pub struct StreamArgs {
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    #[arg(long, default_value_t = 5_000)]
    runs: usize,
    #[command(flatten)]
    workload: WorkloadArgs,
    /// Events a second to offer (runs are started at the pace that makes about this many;
    /// a run of N steps makes 2N+3 events); default: as fast as the engine goes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
}

/// The child process's side: `acp bench stream-clients`.
#[derive(clap::Args)]
pub struct ClientsArgs {
    #[arg(long)]
    url: String,
    #[arg(long)]
    token: String,
    #[arg(long)]
    subscribers: usize,
    /// Stop after this long without an event (once events have come).
    #[arg(long, default_value_t = 2000)]
    idle_ms: u64,
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (Linux; the kernel
/// reports clock ticks of 1/100 s).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .context("reading /proc/self/stat (Linux only)")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((ticks(11) + ticks(12)) / 100.0)
}

async fn serve(workload: &Workload) -> anyhow::Result<(String, String, AppState)> {
    let store: Arc<dyn Store> = workload.store.clone();
    let token = auth::create_token(store.as_ref(), "bench", Role::Viewer, None)
        .await?
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "ws://{}/api/v1/stream?since=0&batch=true",
        listener.local_addr()?
    );
    let state = workload.runtime.serve(listener, ServerConfig::default());
    Ok((url, token, state))
}

pub async fn stream(args: StreamArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(&args.workload.dir)
        .with_context(|| format!("temporary folder in {}", args.workload.dir.display()))?;
    let per_s = args
        .rate
        .map(|rate| f64::from(rate) / (2 * args.workload.steps + 3) as f64);
    let quiet = Workload::start(dir.path(), "quiet", &args.workload).await?;
    let (_, _, quiet_api) = serve(&quiet).await?;
    let before = cpu_seconds()?;
    quiet
        .drain_paced(args.runs, per_s, |i| serde_json::json!({"n": i}))
        .await?;
    let cpu_quiet = cpu_seconds()? - before;
    drop(quiet_api);
    quiet.stop().await?;
    println!(
        "without subscribers: {} runs, {cpu_quiet:.2} CPU seconds",
        args.runs
    );

    let watched = Workload::start(dir.path(), "watched", &args.workload).await?;
    let (url, token, api) = serve(&watched).await?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "bench",
            "stream-clients",
            "--url",
            &url,
            "--token",
            &token,
            "--subscribers",
        ])
        .arg(args.subscribers.to_string())
        .stdout(Stdio::piped())
        .spawn()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds()?;
    let drained = watched
        .drain_paced(args.runs, per_s, |i| serde_json::json!({"n": i}))
        .await?;
    let mut report = String::new();
    child
        .stdout
        .take()
        .context("child stdout")?
        .read_to_string(&mut report)
        .await?;
    child.wait().await?;
    let cpu_watched = cpu_seconds()? - before;
    let events = watched.store.events_since(0, usize::MAX).await?.len();
    api.shutdown.cancel();
    watched.stop().await?;

    let report: serde_json::Value =
        serde_json::from_str(report.trim()).context("the clients' report")?;
    let events_per_s = events as f64 / drained.as_secs_f64();
    let overhead = (cpu_watched - cpu_quiet) / cpu_quiet * 100.0;
    println!(
        "with {} subscribers: {events} events in {:.2}s, {} deliveries, {cpu_watched:.2} CPU seconds",
        args.subscribers,
        drained.as_secs_f64(),
        report["received"]
    );
    println!(
        "events_per_s={events_per_s:.0} p50_ms={:.1} p99_ms={:.1} cpu_overhead_pct={overhead:.1}",
        report["p50_ms"].as_f64().unwrap_or(f64::NAN),
        report["p99_ms"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Follows the stream with `subscribers` connections and prints one JSON line of latencies.
pub async fn clients(args: ClientsArgs) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..args.subscribers {
        let url = format!("{}&token={}", args.url, args.token);
        let idle = Duration::from_millis(args.idle_ms);
        tasks.push(tokio::spawn(async move { follow(&url, idle).await }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
    };
    let report =
        serde_json::json!({"received": latencies.len(), "p50_ms": at(0.50), "p99_ms": at(0.99)});
    println!("{report}");
    Ok(())
}

async fn follow(url: &str, idle: Duration) -> anyhow::Result<Vec<f64>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let mut latencies = Vec::new();
    loop {
        let wait = if latencies.is_empty() {
            Duration::from_secs(60)
        } else {
            idle
        };
        let Ok(Some(message)) = tokio::time::timeout(wait, socket.next()).await else {
            break;
        };
        let Message::Text(text) = message? else {
            continue;
        };
        let now = chrono::Utc::now();
        for message in serde_json::from_str::<StreamMessage>(&text)?.flatten() {
            if let StreamMessage::Event(event) = message {
                let ms = (now - event.at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                latencies.push(ms);
            }
        }
    }
    Ok(latencies)
}
