//! Subcommands. Each lives in its own module; this one parses and dispatches.

mod bench;
mod serve;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use acp::store::Durability;
use acp::wire::Role;

/// ACP, the Automation Control Plane.
#[derive(Parser)]
#[command(name = "acp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the engine on a SQLite file, with the workflows of a folder.
    Serve(ServeArgs),
    /// Work with workflow files.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Manage API tokens directly in the database (no server needed).
    #[command(subcommand)]
    Token(TokenCommand),
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
    /// A folder of `*.ron` workflow files to load and publish at start.
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// `normal` survives a process crash; `full` also survives a power cut (one fsync per commit batch).
    #[arg(long, value_enum, default_value_t = Durability::Normal)]
    durability: Durability,
    /// Runs executed at once.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Base URL of an OpenAI-compatible API for `ai` steps (else the built-in provider).
    #[arg(long, env = "ACP_AI_URL")]
    ai_url: Option<String>,
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Check workflow files; prints every problem as file:line:col and exits 1 if any.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Drain many runs of no-op steps through the engine and compare with plain SQLite commits.
    Engine(bench::EngineArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Workflow(WorkflowCommand::Validate { files }) => {
            return workflow::validate(&files);
        }
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve::serve(args))),
        Command::Bench(BenchCommand::Engine(args)) => {
            runtime().and_then(|rt| rt.block_on(bench::engine(args)))
        }
        Command::Token(TokenCommand::Create { name, role, db }) => {
            runtime().and_then(|rt| rt.block_on(serve::create_token(&db, &name, role)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
