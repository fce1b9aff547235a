//! The HTTP API under `/api/v1` (axum): REST handlers, the websocket stream, auth and roles.
//!
//! Handlers translate between wire types and engine or store calls and hold no business
//! rules. Every error leaves through [`error::ApiError`].

pub mod auth;
mod error;
pub mod openapi;
mod routes;
mod stream;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
    /// Time limit of one webhook delivery.
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
    /// The alert evaluator's last round.
    pub heartbeat: Arc<crate::alerts::Heartbeat>,
}

impl AppState {
    pub fn new(engine: Engine, store: Arc<dyn Store>, config: ServerConfig) -> Self {
        let (frames, _) = tokio::sync::broadcast::channel(config.stream_buffer.max(1));
        Self {
            engine,
            store,
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            frames,
            heartbeat: Arc::default(),
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
                .merge(openapi::routes()),
        )
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::no_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            routes::panicked,
        ))
        .with_state(state)
}

/// Serves the API on `listener`, evaluates alert rules, and delivers outbound webhooks and
/// notifications, until `state.shutdown` is
/// cancelled; open streams are closed with a close frame first.
pub async fn launch(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    tokio::spawn(stream::fan_out(state.clone(), state.frames.clone()));
    tokio::spawn(webhooks::dispatch(state.clone()));
    let evaluator = crate::alerts::Evaluator::new(
        state.engine.clone(),
        state.store.clone(),
        state.heartbeat.clone(),
    )
    .with_policy(state.config.alerting.clone());
    tokio::spawn(crate::alerts::deliver(
        state.store.clone(),
        state.config.alerting.clone(),
        crate::alerts::Delivery {
            timeout: state.config.webhook_timeout,
            retry_initial: state.config.webhook_retry_initial,
            retry_max: state.config.webhook_retry_max,
            poll: state.config.webhook_poll,
        },
        shutdown.clone(),
    ));
    tokio::spawn(crate::alerts::watchdog(
        state.heartbeat.clone(),
        state.store.clone(),
        state.config.evaluator_stale_after,
        shutdown.clone(),
    ));
    tokio::spawn(crate::alerts::run(
        evaluator,
        state.config.alert_every,
        shutdown.clone(),
    ));
    tokio::spawn(webhooks::deliver(state.clone()));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
