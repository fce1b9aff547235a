//! `acp serve`: the engine on a SQLite file until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;

use super::ServeArgs;
use acp::actions::Actions;
use acp::engine::{Engine, EngineConfig};
use acp::store::{SqliteStore, Store};

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = Arc::new(
        SqliteStore::open(&args.db, args.durability)
            .with_context(|| format!("opening {}", args.db.display()))?,
    );
    let actions =
        Actions::new(args.ai_url, std::env::var("ACP_AI_KEY").ok()).map_err(anyhow::Error::msg)?;
    let config = EngineConfig {
        workers: args.workers,
        ..EngineConfig::default()
    };
    let engine = Engine::start(store.clone() as Arc<dyn Store>, config, actions).await?;
    if let Some(dir) = &args.workflows {
        let report = engine
            .load_dir(dir, "acp serve")
            .await
            .with_context(|| format!("loading workflows from {}", dir.display()))?;
        for (key, version) in &report.published {
            tracing::info!(workflow = %key, version, "published");
        }
        for key in &report.unchanged {
            tracing::info!(workflow = %key, "unchanged");
        }
    }
    tracing::info!(db = %args.db.display(), durability = ?args.durability, "ACP engine running; Ctrl-C stops it");
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight attempts");
    engine.shutdown().await;
    store.close();
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
