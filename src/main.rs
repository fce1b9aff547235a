//! The `acp` command line: a thin layer over the library.

#[cfg(feature = "server")]
mod cli;

use std::io::IsTerminal;

use clap::Parser;

/// Logs go to stderr, except under a full-screen console, where they would tear the screen.
fn logs(full_screen: bool) {
    let filter = match full_screen {
        true => tracing_subscriber::EnvFilter::new("off"),
        false => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> std::process::ExitCode {
    #[cfg(feature = "server")]
    {
        let cli = cli::Cli::parse();
        logs(cli.full_screen());
        cli::run(cli)
    }
    #[cfg(not(feature = "server"))]
    {
        logs(true);
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
