//! The `acp` command line: a thin layer over the library.

#[cfg(feature = "server")]
mod cli;

use std::io::IsTerminal;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    #[cfg(feature = "server")]
    {
        cli::run(cli::Cli::parse())
    }
    #[cfg(not(feature = "server"))]
    {
        console_only(Cli::parse())
    }
}

/// Without the `server` feature the binary is the console alone.
#[cfg(not(feature = "server"))]
#[derive(Parser)]
#[command(name = "acp", version)]
struct Cli {
    #[command(subcommand)]
    command: ConsoleOnly,
    /// The ACP server.
    #[arg(long, global = true, env = "ACP_SERVER")]
    server: Option<String>,
    /// An API token.
    #[arg(long, global = true, env = "ACP_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[cfg(not(feature = "server"))]
#[derive(clap::Subcommand)]
enum ConsoleOnly {
    /// The terminal console.
    Console(acp::console::Args),
}

#[cfg(not(feature = "server"))]
fn console_only(cli: Cli) -> std::process::ExitCode {
    let ConsoleOnly::Console(args) = cli.command;
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(acp::console::run(cli.server, cli.token, args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
