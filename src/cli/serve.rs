//! `acp serve`: the engine on a SQLite file until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::ServeArgs;
use acp::actions::Actions;
use acp::domain::config::{Policy, parse_config};
use acp::engine::EngineConfig;
use acp::runtime::Runtime;
use acp::server::auth;
use acp::server::{Retention, ServerConfig};

/// Locks the database file itself (`flock`, which SQLite's own `fcntl` locks do not touch)
/// for as long as the server runs: one server owns a SQLite file, whatever path (symlink,
/// hard link) names it, which is what lets it resume every run left `running` at once after
/// a crash. The OS drops the lock when the process dies, however it dies.
fn own_database(db: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(db)
        .with_context(|| format!("opening {}", db.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another `acp serve` is using {}: one server owns a SQLite database",
            db.display()
        )
    })?;
    Ok(file)
}

/// The store URL of a database file with a durability (`normal` or `full`).
pub fn store_url(db: &std::path::Path, durability: &str) -> String {
    format!("sqlite://{}?durability={durability}", db.display())
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut policy = match &args.config {
        Some(path) => load_policy(path)?,
        None => Policy::default(),
    };
    // The address first: a typo in it must not leave a new database and token behind.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let metrics_listener = match &args.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening for metrics on {address}"))?,
        ),
        None => None,
    };
    let _owner = own_database(&args.db)?;
    let url = format!(
        "{}&cache_mb={}",
        store_url(&args.db, &args.durability),
        args.cache_mb
    );
    let store = acp::store::open(&url).with_context(|| format!("opening {}", args.db.display()))?;
    let actions =
        Actions::new(args.ai_url, std::env::var("ACP_AI_KEY").ok()).map_err(anyhow::Error::msg)?;
    let config = EngineConfig {
        workers: args.workers as usize,
        lease: args.lease,
        max_stored_bytes: args.max_stored_bytes as usize,
        policies: policy.policies.clone(),
        ..EngineConfig::default()
    };
    let runtime = Runtime::start(store.clone(), config, actions).await?;
    let engine = runtime.engine();
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
    if let Some(token) =
        auth::bootstrap_admin(store.as_ref(), std::env::var("ACP_ADMIN_TOKEN").ok()).await?
    {
        println!("First start: created the admin token (shown once, keep it safe):\n  {token}");
    }
    let address = listener.local_addr()?;
    policy
        .public_url
        .get_or_insert_with(|| format!("http://{address}"));
    if !policy.channels.is_empty() {
        let names: Vec<&str> = policy.channels.keys().map(String::as_str).collect();
        tracing::info!("alert notifications go to: {}", names.join(", "));
    }
    if args.keep_events > args.keep_runs {
        tracing::warn!(
            "--keep-events {} is longer than --keep-runs {}: events go with their runs, after {}",
            humantime::format_duration(args.keep_events),
            humantime::format_duration(args.keep_runs),
            humantime::format_duration(args.keep_runs),
        );
    }
    let config = ServerConfig {
        alerting: Arc::new(policy),
        retention: Some(Retention {
            keep_runs: args.keep_runs,
            keep_events: args.keep_events,
            keep_test_runs: args.keep_test_runs,
            every: Duration::from_secs(3600),
        }),
        ..ServerConfig::default()
    };
    let state = runtime.serve(listener, config);
    if let Some(listener) = metrics_listener {
        let address = listener.local_addr()?;
        let shutdown = state.shutdown.clone();
        let app = acp::server::metrics_router(state);
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!("the metrics listener stopped: {e}");
            }
        });
        tracing::info!("Prometheus metrics at http://{address}/metrics (no token)");
    }
    tracing::info!(db = %args.db.display(), durability = ?args.durability, "ACP serving http://{address}/api/v1; Ctrl-C stops it");
    shutdown_signal().await;
    tracing::info!("shutting down: closing streams, finishing in-flight attempts");
    runtime.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads the alerting config; every problem is reported as file:line:col.
fn load_policy(path: &std::path::Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    parse_config(&text, |name| std::env::var(name).ok()).map_err(|problems| {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("  {}:{p}", path.display()))
            .collect();
        anyhow::anyhow!("the config file has problems:\n{}", lines.join("\n"))
    })
}

pub async fn shutdown_signal() {
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

/// `acp token create`: a token straight into the database.
/// `acp token rotate-links`: a new link key; every older one is retired, in one transaction,
/// and the rotation is written to the audit log.
pub async fn rotate_links(db: &std::path::Path) -> anyhow::Result<()> {
    if !db.exists() {
        anyhow::bail!(
            "{} does not exist: point --db at the server's database",
            db.display()
        );
    }
    let store = acp::store::open(&store_url(db, "normal"))
        .with_context(|| format!("opening {}", db.display()))?;
    let secret = acp::domain::link::LinkKey::new_secret()
        .map_err(|e| anyhow::anyhow!("no randomness for a new key: {e}"))?;
    let key = store.add_link_key(secret, true).await?;
    store
        .audit(acp::store::NewAudit {
            actor: "cli".into(),
            role: acp::wire::Role::Admin,
            action: "link.rotated".into(),
            target: format!("link_key:{}", key.id),
            reason: None,
            outcome: "ok".into(),
        })
        .await?;
    store.close();
    println!(
        "rotated the link key: every alert and run link handed out before now answers 403 \
         (revoked); notifications sent from now on carry new links"
    );
    Ok(())
}

pub async fn create_token(
    db: &std::path::Path,
    name: &str,
    role: acp::wire::Role,
) -> anyhow::Result<()> {
    let store = acp::store::open(&store_url(db, "normal"))
        .with_context(|| format!("opening {}", db.display()))?;
    let created = auth::create_token(store.as_ref(), name, role, None).await?;
    store.close();
    println!("{}", created.token);
    eprintln!(
        "created {} token `{}` (id {}); it is shown only this once",
        created.view.role, created.view.name, created.view.id
    );
    Ok(())
}
