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
        let _ = Cli::parse();
        std::process::ExitCode::SUCCESS
    }
}

/// Without the `server` feature the binary has no commands yet (the console lands later).
#[cfg(not(feature = "server"))]
#[derive(Parser)]
#[command(name = "acp", version)]
struct Cli {}
