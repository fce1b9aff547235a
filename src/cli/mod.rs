//! Subcommands. Each lives in its own module; this one parses and dispatches.

mod bench;
mod client;
mod demo;
mod remote;
mod serve;
mod tail;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use acp::wire::Role;

/// ACP, the Automation Control Plane.
#[derive(Parser)]
#[command(name = "acp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    remote: client::Remote,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the engine on a SQLite file, with the workflows of a folder.
    Serve(ServeArgs),
    /// Workflows: check files locally; list, push, publish, roll back and diff on a server.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Runs on a server: list, show, retry, re-run, cancel.
    #[command(subcommand)]
    Runs(remote::RunsCommand),
    /// The dead-letter queue on a server: list, show, replay, discard.
    #[command(subcommand)]
    Dlq(remote::DlqCommand),
    /// Holds on a server: list (with maintenance windows), place, release.
    #[command(subcommand)]
    Holds(remote::HoldsCommand),
    /// Alerts on a server: list, ack, silence.
    #[command(subcommand)]
    Alerts(remote::AlertsCommand),
    /// Incidents on a server (failures grouped by signature): list, show, replay.
    #[command(subcommand)]
    Incidents(remote::IncidentsCommand),
    /// The success metrics on a server: runs per week, MTTR, MTTA, unnotified failures,
    /// healthy workflows.
    Metrics(remote::MetricsArgs),
    /// Records on a server: put, get, history.
    #[command(subcommand)]
    Records(remote::RecordsCommand),
    /// The event stream of a server.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Manage API tokens directly in the database (no server needed).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The terminal console: live runs, step inspector, DLQ replay, health, alerts.
    #[cfg(feature = "console")]
    Console(acp::console::Args),
    /// The whole product in one command: a server, sample workflows, a sandbox outside world,
    /// live traffic and a scripted incident, opened in the console.
    Demo(acp::demo::DemoArgs),
}

impl Cli {
    /// True when the command draws a full-screen terminal UI (logs would tear it).
    pub fn full_screen(&self) -> bool {
        match &self.command {
            #[cfg(feature = "console")]
            Command::Console(_) => true,
            Command::Demo(args) => !args.headless && cfg!(feature = "console"),
            _ => false,
        }
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value = "acp.db", env = "ACP_DB")]
        db: PathBuf,
    },
    /// Replace the key that signs alert and run page links: every link handed out before
    /// stops opening (it answers 403 saying it was revoked); later notifications carry new ones.
    RotateLinks {
        #[arg(long, default_value = "acp.db", env = "ACP_DB")]
        db: PathBuf,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("`{text}` is not a role: viewer, operator or admin"))
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The SQLite database file (created if missing).
    #[arg(long, default_value = "acp.db", env = "ACP_DB")]
    db: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:7700", env = "ACP_LISTEN")]
    listen: String,
    /// Also serve the Prometheus metrics, without authentication, at `/metrics` on this
    /// address (one only the monitoring network reaches). The API port serves them too, at
    /// `/metrics` with a token.
    #[arg(long, env = "ACP_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// A folder of `*.ron` workflow files to load and publish at start.
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// `normal` survives a process crash; `full` also survives a power cut (one fsync per commit batch).
    #[arg(long, default_value = "normal", value_parser = ["normal", "full"])]
    durability: String,
    /// Runs executed at once (1 or more).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    workers: u32,
    /// How long a run stays with this server without a heartbeat; after a crash, its runs
    /// resume (here or on another server) once this has passed.
    #[arg(long, default_value = "30s", value_parser = parse_lease)]
    lease: std::time::Duration,
    /// Cap on one stored step input, output or detail, in bytes of JSON; larger values are
    /// kept as `{"truncated": true, "original_bytes": N, "preview": "..."}`.
    #[arg(long, default_value_t = 256 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    max_stored_bytes: u32,
    /// How long finished runs stay (with their attempts); runs with an open dead letter stay
    /// until it is replayed or discarded. Health and weekly counts outlive them (rollups).
    #[arg(long, default_value = "90d", value_parser = parse_keep)]
    keep_runs: std::time::Duration,
    /// The store writer's page cache in MiB: the newest pages of every table stay in memory
    /// as the database grows (memory does not otherwise grow with the runs kept).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    cache_mb: u32,
    /// How long events stay in the run log (at most `--keep-runs`); a stream client asking for
    /// older ones gets `reset`.
    #[arg(long, default_value = "30d", value_parser = parse_keep)]
    keep_events: std::time::Duration,
    /// How long test runs (`POST /workflows/{key}/test`, `acp workflow test`) stay.
    #[arg(long, default_value = "7d", value_parser = parse_keep)]
    keep_test_runs: std::time::Duration,
    /// Base URL of an OpenAI-compatible API for `ai` steps (else the built-in provider).
    #[arg(long, env = "ACP_AI_URL")]
    ai_url: Option<String>,
    /// Alerting config (RON): global and team rules, channels (Slack, email, webhook), routes,
    /// re-notify interval and the public URL notifications link to.
    #[arg(long, env = "ACP_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Check workflow files; prints every problem as file:line:col and exits 1 if any.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    #[command(flatten)]
    Remote(remote::RemoteWorkflowCommand),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print events as they happen (reconnects and resumes by sequence number).
    Tail {
        /// Start after this sequence number (0: from the oldest kept event).
        #[arg(long, default_value_t = 0)]
        since: i64,
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        team: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Drain many runs of no-op steps through the engine and compare with plain SQLite commits.
    Engine(bench::EngineArgs),
    /// The engine workload with websocket subscribers: throughput, latency, CPU overhead.
    Stream(bench::stream::StreamArgs),
    /// The subscribers of `bench stream` (run by it as a child process).
    #[command(hide = true)]
    StreamClients(bench::stream::ClientsArgs),
    /// Load a large run log in stages and time the API's reads, the drain rate, WAL, RSS
    /// and bytes on disk as it grows.
    Scale(bench::scale::ScaleArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    client::UTC.store(cli.remote.utc, std::sync::atomic::Ordering::Relaxed);
    #[cfg(feature = "console")]
    acp::console::views::UTC.store(cli.remote.utc, std::sync::atomic::Ordering::Relaxed);
    let result = match cli.command {
        Command::Workflow(WorkflowCommand::Validate { files }) => {
            return workflow::validate(&files);
        }
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve::serve(args))),
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(demo::demo(args))),
        #[cfg(feature = "console")]
        Command::Console(args) => {
            let (server, token) = (cli.remote.server.clone(), cli.remote.token.clone());
            runtime().and_then(|rt| rt.block_on(acp::console::run(server, token, args)))
        }
        Command::Bench(BenchCommand::Engine(args)) => {
            runtime().and_then(|rt| rt.block_on(bench::engine(args)))
        }
        Command::Bench(BenchCommand::Stream(args)) => {
            runtime().and_then(|rt| rt.block_on(bench::stream::stream(args)))
        }
        Command::Bench(BenchCommand::StreamClients(args)) => {
            runtime().and_then(|rt| rt.block_on(bench::stream::clients(args)))
        }
        Command::Bench(BenchCommand::Scale(args)) => {
            runtime().and_then(|rt| rt.block_on(bench::scale::scale(args)))
        }
        Command::Workflow(WorkflowCommand::Remote(command)) => {
            remote_call(&cli.remote, |c| async move {
                remote::workflow(&c, command).await
            })
        }
        Command::Runs(command) => {
            remote_call(
                &cli.remote,
                |c| async move { remote::runs(&c, command).await },
            )
        }
        Command::Alerts(command) => {
            remote_call(
                &cli.remote,
                |c| async move { remote::alerts(&c, command).await },
            )
        }
        Command::Incidents(command) => remote_call(&cli.remote, |c| async move {
            remote::incidents(&c, command).await
        }),
        Command::Metrics(args) => {
            remote_call(
                &cli.remote,
                |c| async move { remote::metrics(&c, args).await },
            )
        }
        Command::Holds(command) => {
            remote_call(
                &cli.remote,
                |c| async move { remote::holds(&c, command).await },
            )
        }
        Command::Dlq(command) => {
            remote_call(
                &cli.remote,
                |c| async move { remote::dlq(&c, command).await },
            )
        }
        Command::Records(command) => remote_call(&cli.remote, |c| async move {
            remote::records(&c, command).await
        }),
        Command::Events(EventsCommand::Tail {
            since,
            workflow,
            team,
        }) => remote_call(&cli.remote, |c| async move {
            tail::tail(&c, since, workflow, team).await
        }),
        Command::Token(TokenCommand::Create { name, role, db }) => {
            runtime().and_then(|rt| rt.block_on(serve::create_token(&db, &name, role)))
        }
        Command::Token(TokenCommand::RotateLinks { db }) => {
            runtime().and_then(|rt| rt.block_on(serve::rotate_links(&db)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", acp::wire::printable(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Runs a command against a server through the API client.
fn remote_call<F, Fut>(remote: &client::Remote, call: F) -> anyhow::Result<()>
where
    F: FnOnce(client::Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let client = client::Client::new(remote)?;
    runtime()?.block_on(call(client))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A lease of at least a second (heartbeats come every third of it).
/// A retention (`--keep-runs`, `--keep-events`): at least a minute, since health and history
/// are summed per minute and a shorter one would delete runs as they end.
fn parse_keep(text: &str) -> Result<std::time::Duration, String> {
    let keep = acp::domain::clock::parse_duration(text).map_err(|e| e.to_string())?;
    if keep < std::time::Duration::from_secs(60) {
        return Err(format!(
            "`{text}` is shorter than the shortest retention (1m)"
        ));
    }
    Ok(keep)
}

fn parse_lease(text: &str) -> Result<std::time::Duration, String> {
    let lease = acp::domain::clock::parse_duration(text).map_err(|e| e.to_string())?;
    if lease < std::time::Duration::from_secs(1) {
        return Err(format!("`{text}` is shorter than the shortest lease (1s)"));
    }
    Ok(lease)
}
