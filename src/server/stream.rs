//! `GET /api/v1/stream?since=SEQ`: the run log over a websocket, with no gap and no duplicate.
//!
//! The handler subscribes to the event bus *before* reading the backlog from the store, so an
//! event committed while the backlog is sent is either in the backlog or on the bus; events
//! at or below the last sequence sent are dropped as duplicates. A client that falls behind
//! the bus is told `lagged` and disconnected (the engine never waits for it) and resumes with
//! its last `seq`. A `since` older than the oldest kept event gets `reset` first. Clients that
//! ask with `batch=true` get the events that are ready at once in one `batch` frame.

use crate::wire::ErrorBody;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::Utf8Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use futures_util::{FutureExt, SinkExt};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::AppState;
use super::auth::{authenticate, bearer_token};
use super::error::{ApiError, ApiQuery};
use crate::wire::{Event, EventKind, StreamMessage};

/// Events read from the store per backlog query.
const BACKLOG_PAGE: usize = 1000;
/// Most live frames queued before one flush.
const BATCH: usize = 512;
/// How long one frame may take to send before the client counts as stuck.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new().route("/stream", get(upgrade))
}

/// The stream's query; `token` is for clients that cannot set a header (browsers) and is
/// kept out of `Debug`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    #[serde(default)]
    since: i64,
    workflow: Option<String>,
    team: Option<String>,
    token: Option<String>,
    /// Send the events that are ready together as one `batch` frame.
    #[serde(default)]
    batch: bool,
}

impl std::fmt::Debug for StreamQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamQuery")
            .field("since", &self.since)
            .field("workflow", &self.workflow)
            .field("team", &self.team)
            .field("token", &self.token.as_ref().map(|_| crate::wire::REDACTED))
            .field("batch", &self.batch)
            .finish()
    }
}

#[utoipa::path(get, path = "/api/v1/stream", params(("since" = Option<i64>, Query), ("workflow" = Option<String>, Query), ("team" = Option<String>, Query), ("token" = Option<String>, Query), ("batch" = Option<bool>, Query)), responses((status = 101, description = "websocket of JSON text frames", body = StreamMessage), (status = "4XX", description = "an error", body = ErrorBody)), tag = "stream", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn upgrade(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = bearer_token(&headers)
        .or(q.token.as_deref())
        .ok_or_else(|| {
            ApiError::unauthorized("send `Authorization: Bearer <token>` or `?token=`")
        })?;
    authenticate(s.store.as_ref(), token).await?;
    let ws = ws.map_err(|r| {
        ApiError::new(
            r.status(),
            "not_a_websocket",
            format!("the stream is a websocket: {}", r.body_text()),
        )
    })?;
    Ok(ws.on_upgrade(move |socket| async move {
        if let Err(e) = serve(s, socket, q).await {
            tracing::debug!("stream ended: {e}");
        }
    }))
}

/// Which events a client asked for.
struct Filter {
    workflow: Option<String>,
    /// The workflows of the requested team (refreshed when workflows change).
    team: Option<(String, HashSet<String>)>,
}

impl Filter {
    async fn new(s: &AppState, q: &StreamQuery) -> Result<Self, ApiError> {
        let mut filter = Self {
            workflow: q.workflow.clone(),
            team: q.team.clone().map(|t| (t, HashSet::new())),
        };
        filter.refresh(s).await?;
        Ok(filter)
    }

    async fn refresh(&mut self, s: &AppState) -> Result<(), ApiError> {
        if let Some((team, keys)) = &mut self.team {
            *keys = s
                .store
                .workflows()
                .await?
                .into_iter()
                .filter(|w| &w.team == team)
                .map(|w| w.key)
                .collect();
        }
        Ok(())
    }

    fn wants(&self, event: &Event) -> bool {
        let workflow = event.workflow.as_deref();
        let by_workflow = self.workflow.as_deref().is_none_or(|w| workflow == Some(w));
        let by_team = self
            .team
            .as_ref()
            .is_none_or(|(_, keys)| workflow.is_some_and(|w| keys.contains(w)));
        by_workflow && by_team
    }
}

/// One event, serialized once for every client.
pub struct Frame {
    event: Arc<Event>,
    text: Utf8Bytes,
}

/// Serializes each committed event once and hands it to every stream client.
pub async fn fan_out(s: AppState, frames: broadcast::Sender<Arc<Frame>>) {
    let mut bus = s.store.subscribe();
    loop {
        let event = tokio::select! {
            received = bus.recv() => match received {
                Ok(event) => event,
                // Clients fill any gap from the store; nothing is lost here.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            _ = s.shutdown.cancelled() => return,
        };
        match serde_json::to_string(&StreamMessage::Event((*event).clone())) {
            Ok(text) => {
                let _ = frames.send(Arc::new(Frame {
                    event,
                    text: text.into(),
                }));
            }
            Err(e) => tracing::error!("serializing event {}: {e}", event.seq),
        }
    }
}

/// Why a stream connection ended before the client or the server closed it.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("websocket: {0}")]
    Socket(#[from] axum::Error),
    /// A send or a batch did not finish within the send time limit.
    #[error("the client stopped reading")]
    SlowClient,
    #[error("encoding a message: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("reading the run log: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The stream's filter could not be (re)built; the message is the API's.
    #[error("filter: {0}")]
    Filter(String),
}

struct Sender {
    socket: WebSocket,
    last: i64,
    /// Batching clients: the events queued since the last flush.
    pending: Option<Vec<Utf8Bytes>>,
}

impl Sender {
    async fn send(&mut self, message: &StreamMessage) -> Result<(), StreamError> {
        let text = serde_json::to_string(message)?;
        self.raw(Message::Text(text.into())).await
    }

    async fn raw(&mut self, message: Message) -> Result<(), StreamError> {
        self.timed(|socket| socket.send(message)).await
    }

    /// Runs a socket operation under the send time limit.
    async fn timed<'a, F, Fut>(&'a mut self, operation: F) -> Result<(), StreamError>
    where
        F: FnOnce(&'a mut WebSocket) -> Fut,
        Fut: std::future::Future<Output = Result<(), axum::Error>>,
    {
        match tokio::time::timeout(SEND_TIMEOUT, operation(&mut self.socket)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StreamError::SlowClient),
        }
    }

    /// Queues an event unless it was sent already (flushed by the caller); `wanted` is false
    /// for filtered-out events, which still move the position forward.
    async fn event(
        &mut self,
        event: &Event,
        text: Option<&Utf8Bytes>,
        wanted: bool,
    ) -> Result<(), StreamError> {
        if event.seq <= self.last {
            return Ok(());
        }
        if wanted {
            let text = match text {
                Some(text) => text.clone(),
                None => serde_json::to_string(&StreamMessage::Event(event.clone()))?.into(),
            };
            match &mut self.pending {
                Some(pending) => pending.push(text),
                // Feeding only buffers (or flushes a full buffer); the caller bounds the whole
                // batch with one time limit.
                None => self.socket.feed(Message::Text(text)).await?,
            }
        }
        self.last = event.seq;
        Ok(())
    }

    /// Sends what is queued: for batching clients one frame of every pending event (each one
    /// already serialized, so the frame is put together by copying).
    async fn flush(&mut self) -> Result<(), StreamError> {
        if let Some(pending) = self.pending.as_mut().filter(|p| !p.is_empty()) {
            let texts = std::mem::take(pending);
            let text = match texts.len() {
                1 => texts.into_iter().next().unwrap_or_default(),
                _ => {
                    let size = texts.iter().map(|t| t.len() + 1).sum::<usize>() + 32;
                    let mut frame = String::with_capacity(size);
                    frame.push_str(r#"{"type":"batch","messages":["#);
                    for (i, text) in texts.iter().enumerate() {
                        if i > 0 {
                            frame.push(',');
                        }
                        frame.push_str(text.as_str());
                    }
                    frame.push_str("]}");
                    frame.into()
                }
            };
            self.socket.feed(Message::Text(text)).await?;
        }
        Ok(self.socket.flush().await?)
    }

    /// True when the client has closed (its Close frame, an error, or the end of the
    /// stream), looking only at what has arrived already. A Close frame is answered with
    /// our own (RFC 6455 §5.5.1: tungstenite queues the reply; flushing sends it) and
    /// nothing is sent after it.
    async fn client_closed(&mut self) -> bool {
        match self.socket.recv().now_or_never() {
            None | Some(Some(Ok(Message::Text(_) | Message::Binary(_)))) => false,
            Some(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => false,
            Some(Some(Ok(Message::Close(_)))) => {
                self.answer_close().await;
                true
            }
            Some(None | Some(Err(_))) => true,
        }
    }

    /// Sends the reply tungstenite queued for the client's Close frame, then waits (briefly)
    /// for the client to end the connection.
    async fn answer_close(&mut self) {
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.flush()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = self.socket.recv().await {}
        })
        .await;
    }

    async fn close(&mut self, code: u16, reason: &str) -> Result<(), StreamError> {
        self.raw(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
    }
}

async fn serve(s: AppState, socket: WebSocket, q: StreamQuery) -> Result<(), StreamError> {
    let mut bus = s.frames.subscribe();
    let mut filter = Filter::new(&s, &q)
        .await
        .map_err(|e| StreamError::Filter(e.message))?;
    let mut out = Sender {
        socket,
        last: q.since.max(0),
        pending: q.batch.then(Vec::new),
    };
    let oldest = s.store.oldest_seq().await?;
    if oldest > 0 && out.last + 1 < oldest {
        out.last = oldest - 1;
        out.send(&StreamMessage::Reset { seq: out.last }).await?;
    }
    backlog(&s, &mut out, &filter, i64::MAX).await?;
    let mut ping = tokio::time::interval(s.config.ping);
    ping.tick().await;
    loop {
        tokio::select! {
            received = bus.recv() => match received {
                Ok(frame) => {
                    let batch = batch(&s, &mut out, &mut filter, &mut bus, &frame);
                    let lagged = tokio::time::timeout(SEND_TIMEOUT, batch)
                        .await
                        .map_err(|_| StreamError::SlowClient)??;
                    if lagged {
                        out.send(&StreamMessage::Lagged { seq: out.last }).await?;
                        return out.close(close_code::POLICY, "lagged; reconnect with since=seq").await;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    out.send(&StreamMessage::Lagged { seq: out.last }).await?;
                    return out.close(close_code::POLICY, "lagged; reconnect with since=seq").await;
                }
                Err(RecvError::Closed) => return out.close(close_code::AWAY, "server stopping").await,
            },
            incoming = out.socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) => {
                    out.answer_close().await;
                    return Ok(());
                }
                None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => out.raw(Message::Ping(Vec::new().into())).await?,
            _ = s.shutdown.cancelled() => return out.close(close_code::AWAY, "server stopping").await,
        }
    }
}

/// Queues `first` and every frame already waiting (up to [`BATCH`]), then flushes once.
/// Answers true when the client lagged behind the fan-out.
async fn batch(
    s: &AppState,
    out: &mut Sender,
    filter: &mut Filter,
    bus: &mut broadcast::Receiver<Arc<Frame>>,
    first: &Frame,
) -> Result<bool, StreamError> {
    live(s, out, filter, first).await?;
    for _ in 0..BATCH {
        match bus.try_recv() {
            Ok(frame) => live(s, out, filter, &frame).await?,
            Err(TryRecvError::Lagged(_)) => return Ok(true),
            Err(_) => break,
        }
    }
    out.flush().await?;
    Ok(false)
}

/// Sends stored events after `out.last` up to `until` (inclusive), a page at a time.
async fn backlog(
    s: &AppState,
    out: &mut Sender,
    filter: &Filter,
    until: i64,
) -> Result<(), StreamError> {
    loop {
        if out.client_closed().await {
            return Ok(());
        }
        let page = s.store.events_since(out.last, BACKLOG_PAGE).await?;
        for event in page.iter().take_while(|e| e.seq <= until) {
            out.event(event, None, filter.wants(event)).await?;
        }
        tokio::time::timeout(SEND_TIMEOUT, out.flush())
            .await
            .map_err(|_| StreamError::SlowClient)??;
        if page.len() < BACKLOG_PAGE || out.last >= until {
            return Ok(());
        }
    }
}

/// Queues a live frame, first filling from the store any gap the fan-out let through.
async fn live(
    s: &AppState,
    out: &mut Sender,
    filter: &mut Filter,
    frame: &Frame,
) -> Result<(), StreamError> {
    let event = &frame.event;
    if matches!(
        event.kind(),
        EventKind::WorkflowDraftSaved | EventKind::WorkflowPublished
    ) {
        filter
            .refresh(s)
            .await
            .map_err(|e| StreamError::Filter(e.message))?;
    }
    if event.seq > out.last + 1 {
        backlog(s, out, filter, event.seq - 1).await?;
    }
    out.event(event, Some(&frame.text), filter.wants(event))
        .await
}
