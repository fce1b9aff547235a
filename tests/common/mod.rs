//! Shared test fixtures: a scripted "outside world" HTTP server on 127.0.0.1 and an engine on a
//! temporary SQLite file.
#![allow(dead_code)]

pub mod sinks;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use acp::actions::Actions;
use acp::engine::{Engine, EngineConfig};
use acp::runtime::Runtime;
use acp::store::Store;
use acp::wire::RunDetail;

/// The secret every test workflow may read; it must never show up in stored data.
pub const SECRET: &str = "sk-test-5f3c9a7e1b";

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: json!({"error": format!("scripted {status}")}),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the world received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub query: String,
    pub key: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
    pub status: u16,
    /// When it arrived.
    pub at: tokio::time::Instant,
}

#[derive(Default)]
struct WorldState {
    /// Requests being answered now, and the most ever at once.
    open: usize,
    max_open: usize,
    scripts: HashMap<String, VecDeque<Reply>>,
    hits: Vec<Hit>,
    /// First successful answer per Idempotency-Key: a repeated key is answered from here and
    /// not applied again, as an idempotent API does.
    applied: HashMap<String, Reply>,
}

/// A local HTTP server that fails the way real APIs do, as scripted per path.
#[derive(Clone)]
pub struct World {
    pub url: String,
    state: Arc<Mutex<WorldState>>,
}

impl World {
    pub async fn start() -> Self {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// The world on a listener the test prepared (an address that refused connections until
    /// now, say).
    pub fn start_on(listener: tokio::net::TcpListener) -> Self {
        let state = Arc::new(Mutex::new(WorldState::default()));
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { answer(state, method, uri, headers, body).await }
            },
        );
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Answers requests to `path` with these replies in order; the last one repeats.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(path.to_owned(), replies.into());
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.state
            .lock()
            .unwrap()
            .hits
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// The most requests the world was answering at once.
    pub fn max_open(&self) -> usize {
        self.state.lock().unwrap().max_open
    }

    /// How many distinct idempotency keys were applied (answered 2xx the first time).
    pub fn applied_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.state.lock().unwrap().applied.keys().cloned().collect();
        keys.sort();
        keys
    }
}

async fn answer(
    state: Arc<Mutex<WorldState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = uri.path().to_owned();
    let reply = {
        let mut s = state.lock().unwrap();
        let replayed = key.as_ref().and_then(|k| s.applied.get(k).cloned());
        replayed.unwrap_or_else(|| match s.scripts.get_mut(&path) {
            Some(queue) if queue.len() > 1 => queue.pop_front().unwrap(),
            Some(queue) => queue
                .front()
                .cloned()
                .unwrap_or_else(|| Reply::ok(json!({}))),
            None => Reply::ok(json!({"ok": true, "path": path})),
        })
    };
    {
        // The effect is applied on arrival, before the (possibly slow) answer: a client that
        // gives up or dies before the answer arrives must not apply it again.
        let mut s = state.lock().unwrap();
        if let (Some(k), true) = (&key, (200..300).contains(&reply.status)) {
            s.applied
                .entry(k.clone())
                .or_insert_with(|| reply.clone().after(Duration::ZERO));
        }
        s.hits.push(Hit {
            method: method.to_string(),
            path,
            query: uri.query().unwrap_or_default().to_owned(),
            key,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            status: reply.status,
            at: tokio::time::Instant::now(),
        });
        s.open += 1;
        s.max_open = s.max_open.max(s.open);
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    state.lock().unwrap().open -= 1;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        axum::Json(reply.body),
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

/// An engine on a temporary database, wired to a world.
pub struct Harness {
    /// Events a slow subscriber may fall behind (the store's bus and the stream's buffer).
    pub bus_capacity: usize,
    /// The composition root the API is served from (`serve_api*`).
    pub runtime: Arc<Runtime>,
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub world: World,
    pub dir: tempfile::TempDir,
}

pub fn config() -> EngineConfig {
    EngineConfig {
        workers: 8,
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        grace: Duration::from_secs(2),
        secrets: Arc::new(|name| match name {
            "API_KEY" => Some(SECRET.to_owned()),
            _ => None,
        }),
        sole_owner: true,
        ..EngineConfig::default()
    }
}

/// Starts a world and an engine, and publishes the workflows (`{world}` is replaced by the
/// world's base URL).
pub async fn harness(workflows: &[&str]) -> Harness {
    harness_with_bus(workflows, 65_536).await
}

/// A harness whose event bus keeps only `bus_capacity` events for slow subscribers.
pub async fn harness_with_bus(workflows: &[&str], bus_capacity: usize) -> Harness {
    let actions = Actions::new(None, None).unwrap();
    build(workflows, bus_capacity, config(), actions).await
}

/// A harness whose engine has its own settings and outside-world implementations.
pub async fn harness_custom(workflows: &[&str], config: EngineConfig, actions: Actions) -> Harness {
    build(workflows, 65_536, config, actions).await
}

async fn build(
    workflows: &[&str],
    bus_capacity: usize,
    config: EngineConfig,
    actions: Actions,
) -> Harness {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acp.db");
    let store =
        acp::store::open(&format!("sqlite://{}?bus={bus_capacity}", path.display())).unwrap();
    let runtime = Arc::new(
        Runtime::start(store.clone(), config, actions)
            .await
            .unwrap(),
    );
    let engine = runtime.engine().clone();
    for source in workflows {
        let key = engine
            .save_draft(&source.replace("{world}", &world.url), "test")
            .await
            .unwrap();
        engine.publish(&key, "test").await.unwrap();
    }
    Harness {
        bus_capacity,
        runtime,
        engine,
        store,
        world,
        dir,
    }
}

pub async fn start_engine(store: Arc<dyn Store>) -> Engine {
    let actions = Actions::new(None, None).unwrap();
    Engine::start(store, config(), actions).await.unwrap()
}

/// Waits until a run is succeeded, failed or cancelled.
pub async fn wait_final(store: &Arc<dyn Store>, run_id: i64) -> RunDetail {
    wait_until(store, run_id, |d| d.run.status.is_final()).await
}

/// Waits until `done` holds for a run (up to 30 s).
pub async fn wait_until(
    store: &Arc<dyn Store>,
    run_id: i64,
    done: impl Fn(&RunDetail) -> bool,
) -> RunDetail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let detail = store.run(run_id).await.unwrap();
        if done(&detail) {
            return detail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run_id} stuck: {detail:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to 20 s) until `done` holds.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The API served over a harness's engine on 127.0.0.1:0, with one token per role.
pub struct Api {
    pub url: String,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
    pub http: reqwest::Client,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// What the handlers see (to serve more routers from it).
    pub state: acp::server::AppState,
}

pub async fn serve_api(h: &Harness) -> Api {
    serve_api_on(
        h,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
}

/// The API on a listener the test prepared (small socket buffers, say).
pub async fn serve_api_on(h: &Harness, listener: tokio::net::TcpListener) -> Api {
    serve_api_with(h, listener, |_| {}).await
}

/// The API with test settings adjusted by `tweak`.
pub async fn serve_api_with(
    h: &Harness,
    listener: tokio::net::TcpListener,
    tweak: impl FnOnce(&mut acp::server::ServerConfig),
) -> Api {
    use acp::server::{ServerConfig, auth};
    use acp::wire::Role;
    let store: Arc<dyn Store> = h.store.clone();
    let mut tokens = Vec::new();
    for (name, role) in [
        ("admin", Role::Admin),
        ("oncall", Role::Operator),
        ("watcher", Role::Viewer),
    ] {
        tokens.push(
            auth::create_token(store.as_ref(), name, role, None)
                .await
                .unwrap()
                .token,
        );
    }
    let url = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let mut config = ServerConfig {
        body_limit: 64 * 1024,
        stream_buffer: h.bus_capacity,
        webhook_retry_initial: Duration::from_millis(50),
        webhook_retry_max: Duration::from_millis(200),
        webhook_poll: Duration::from_millis(20),
        // Tests evaluate alerts themselves, at the moments they choose.
        alert_every: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    tweak(&mut config);
    let state = h.runtime.serve(listener, config);
    let shutdown = state.shutdown.clone();
    let [admin, operator, viewer] = tokens.try_into().unwrap();
    Api {
        url,
        admin,
        operator,
        viewer,
        http: reqwest::Client::new(),
        shutdown,
        state,
    }
}

/// The API served with an alerting policy, and an evaluator of that policy (tests evaluate
/// at the moments they choose).
pub async fn serve_alerting(
    h: &Harness,
    listener: tokio::net::TcpListener,
    policy: Arc<acp::domain::config::Policy>,
) -> (Api, acp::alerts::Evaluator) {
    let for_server = policy.clone();
    let api = serve_api_with(h, listener, move |c| c.alerting = for_server).await;
    let ev = acp::alerts::Evaluator::new(h.engine.clone(), h.store.clone(), Arc::default())
        .with_policy(policy);
    (api, ev)
}

impl Api {
    /// GETs `path` and reads its JSON answer (panics on a transport error or other JSON).
    pub async fn json<T: serde::de::DeserializeOwned>(&self, path: &str, token: &str) -> T {
        self.get(path, token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
    }
    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
    }
    pub fn delete(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.url))
            .bearer_auth(token)
    }
}

/// A websocket to the stream.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `GET /stream?{query}` as the viewer.
pub async fn stream(api: &Api, query: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/stream?{query}", api.url.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", api.viewer).parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The text of up to `n` frames, stopping early when none comes for a second.
pub async fn next_frames(socket: &mut Socket, n: usize) -> String {
    use futures_util::StreamExt;
    let mut text = String::new();
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(1), socket.next()).await {
            Ok(Some(Ok(message))) => text.push_str(&message.to_string()),
            _ => break,
        }
    }
    text
}
