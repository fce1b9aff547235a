//! The HTTP API under `/api/v1` (axum): REST handlers, the websocket stream, auth and roles;
//! and the signed read-only pages notifications link to (`/a/{token}`, `/r/{token}`).
//!
//! Handlers translate between wire types and engine or store calls and hold no business
//! rules. Every error leaves through [`error::ApiError`]. The server only serves: the
//! background loops are started beside it by [`crate::runtime`].

pub mod auth;
mod error;
pub mod openapi;
mod pages;
mod routes;
mod stream;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::domain::clock::Loop;
use crate::domain::config::Policy;
use crate::engine::Engine;
use crate::store::Store;
pub use error::ApiError;

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body; larger ones get 413.
    pub body_limit: usize,
    /// How often the stream pings idle clients.
    pub ping: Duration,
    /// Events a stream client may fall behind before it is told it lagged.
    pub stream_buffer: usize,
    /// Time limit of one outbox delivery (webhook messages and notifications).
    pub webhook_timeout: Duration,
    /// First and longest wait before delivering a refused webhook message again.
    pub webhook_retry_initial: Duration,
    pub webhook_retry_max: Duration,
    /// How often the deliverer looks for due messages when idle.
    pub webhook_poll: Duration,
    /// How often alert rules are evaluated.
    pub alert_every: Duration,
    /// How long the evaluator may go without finishing a round before the control plane counts
    /// as degraded.
    pub evaluator_stale_after: Duration,
    /// Global and team rules, notification channels, routes and timing (`acp.ron`).
    pub alerting: Arc<Policy>,
    /// What the retention loop prunes and how often; `None` keeps everything.
    pub retention: Option<Retention>,
}

/// How long the run log keeps what (`acp serve --keep-runs 90d --keep-events 30d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished runs older than this go, with their attempts and closed dead letters; runs
    /// with an open dead letter stay. Rollups (health, weekly counts) outlive them.
    pub keep_runs: Duration,
    /// Events older than this go (never past a webhook cursor, never the newest); at most
    /// `keep_runs`, so a pruned run's events go with it.
    pub keep_events: Duration,
    /// Test runs older than this go, whatever their status (`acp serve --keep-test-runs`).
    pub keep_test_runs: Duration,
    /// How often a pass runs (the first at start).
    pub every: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            ping: Duration::from_secs(15),
            stream_buffer: 65_536,
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_initial: Duration::from_secs(1),
            webhook_retry_max: Duration::from_secs(300),
            webhook_poll: Duration::from_millis(500),
            alert_every: Duration::from_secs(5),
            evaluator_stale_after: Duration::from_secs(30),
            alerting: Arc::default(),
            retention: None,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    /// Cancelled on shutdown: streams send a close frame and end.
    pub shutdown: CancellationToken,
    /// Events serialized once for every stream client (see `stream::fan_out`).
    frames: tokio::sync::broadcast::Sender<Arc<stream::Frame>>,
    /// The background loops, for the health numbers.
    pub loops: Arc<[Loop]>,
    /// What `GET /metrics` exposes.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// What handlers see: `loops` are the runtime's background loops (for `GET /health`),
    /// `metrics` what `GET /metrics` exposes, `shutdown` its shutdown.
    pub fn new(
        engine: Engine,
        store: Arc<dyn Store>,
        config: ServerConfig,
        loops: Vec<Loop>,
        metrics: Arc<crate::metrics::Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let (frames, _) = tokio::sync::broadcast::channel(config.stream_buffer.max(1));
        Self {
            engine,
            store,
            config: Arc::new(config),
            shutdown,
            frames,
            loops: loops.into(),
            metrics,
        }
    }
}

/// The whole API as a router.
pub fn router(state: AppState) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .nest(
            "/api/v1",
            routes::api()
                .merge(stream::routes())
                .merge(webhooks::routes())
                .merge(openapi::routes())
                .route_layer(axum::middleware::from_fn(error::no_unknown_query)),
        )
        .route("/metrics", axum::routing::get(metrics_with_token))
        .merge(pages::routes())
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::no_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            routes::panicked,
        ))
        .with_state(state)
}

/// `GET /metrics` on the API port: the Prometheus exposition, for any valid token.
async fn metrics_with_token(
    axum::extract::State(s): axum::extract::State<AppState>,
    _: auth::Caller,
) -> Response {
    exposition(&s).await
}

async fn exposition(s: &AppState) -> Response {
    use axum::response::IntoResponse;
    match s.metrics.render(s.store.as_ref()).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::exposition::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => error::ApiError::from(e).into_response(),
    }
}

/// The metrics alone, without authentication, for a separate `--metrics-listen` address
/// that only the monitoring network reaches: `GET /metrics`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(s): axum::extract::State<AppState>| async move {
                    exposition(&s).await
                },
            ),
        )
        .with_state(state)
}

/// Serves the API on `listener` until `state.shutdown` is cancelled; open streams are closed
/// with a close frame first. The background loops are the runtime's
/// ([`crate::runtime::Runtime::serve`]).
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    tokio::spawn(stream::fan_out(state.clone(), state.frames.clone()));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
