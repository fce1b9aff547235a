//! The only part of the console that touches the network: REST calls and the websocket stream,
//! each turned into a [`Msg`] for `update`. The stream reconnects with backoff forever and
//! resumes after the last sequence number it delivered.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::msg::{Msg, Reply, Request};
use super::state::Conn;
use crate::wire::{
    AlertView, AuditEntry, Diff, DlqView, ErrorBody, FieldChange, Health, HoldView, JobView, Me,
    Page, Reason, RecordView, ReplayPlan, ReplayRequest, RunDetail, RunView, StreamMessage,
    TestReport, VersionView, WorkflowView,
};

/// Why a call to the server (or the demo's sandbox) failed; `Display` is what the status line
/// says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// No answer: refused, timed out, the connection dropped.
    #[error("cannot reach {what}: {reason}")]
    Unreachable { what: &'static str, reason: String },
    /// The server answered with an error status; `code` and `message` from its error body
    /// when it sent one.
    #[error("{}", match .code { Some(code) => format!("{code}: {message}"), None => format!("HTTP {status}") })]
    Refused {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// An answer this client cannot read.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

impl CallError {
    /// True when the server refused the token (401): asking again cannot help.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Refused { status: 401, .. })
    }

    fn unreachable(reason: impl std::fmt::Display) -> Self {
        Self::Unreachable {
            what: "the server",
            reason: reason.to_string(),
        }
    }
}

/// Talks to one server with one token; replies go to `tx`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `http://host:port/api/v1`.
    base: String,
    token: String,
    tx: UnboundedSender<Msg>,
}

impl Client {
    pub fn new(server: &str, token: String, tx: UnboundedSender<Msg>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            base: format!("{}/api/v1", server.trim_end_matches('/')),
            token,
            tx,
        }
    }

    /// Sends a request in the background; its reply arrives as [`Msg::Reply`].
    pub fn send(&self, request: Request) {
        let client = self.clone();
        tokio::spawn(async move {
            let result = client.call(&request).await;
            let _ = client.tx.send(Msg::Reply(request, Box::new(result)));
        });
    }

    async fn call(&self, request: &Request) -> Result<Reply, CallError> {
        Ok(match request {
            Request::Me => Reply::Me(self.get::<Me>("/me").await?),
            Request::Runs { cursor } => {
                let mut path = "/runs?limit=200".to_owned();
                if let Some(cursor) = cursor {
                    path.push_str(&format!("&cursor={cursor}"));
                }
                Reply::Runs(self.get::<Page<RunView>>(&path).await?)
            }
            Request::Failures => Reply::Runs(
                self.get::<Page<RunView>>("/runs?status=failed&limit=500")
                    .await?,
            ),
            Request::Run(id) => Reply::Run(Box::new(
                self.get::<RunDetail>(&format!("/runs/{id}")).await?,
            )),
            Request::Dlq => Reply::Dlq(
                self.get::<Page<DlqView>>("/dlq?status=open&limit=500")
                    .await?,
            ),
            Request::Health { team } => {
                let mut path = "/health?window=1h&buckets=30".to_owned();
                if let Some(team) = team {
                    path.push_str(&format!("&team={}", encoded(team)));
                }
                Reply::Health(Box::new(self.get::<Health>(&path).await?))
            }
            Request::Totals => Reply::Totals(Box::new(
                self.get::<Health>("/health?window=24h&buckets=1").await?,
            )),
            Request::Alerts => {
                Reply::Alerts(self.get::<Vec<AlertView>>("/alerts?limit=200").await?)
            }
            Request::Workflows => {
                Reply::Workflows(self.get::<Vec<WorkflowView>>("/workflows").await?)
            }
            Request::Versions(key) => Reply::Versions(
                self.get::<Vec<VersionView>>(&format!("/workflows/{key}/versions"))
                    .await?,
            ),
            Request::Diff { workflow, from, to } => Reply::Diff(
                self.get::<Diff>(&format!("/workflows/{workflow}/diff?from={from}&to={to}"))
                    .await?,
            ),
            Request::Audit { cursor } => Reply::Audit(
                self.get::<Page<AuditEntry>>(&match cursor {
                    Some(cursor) => format!("/audit?limit=200&cursor={cursor}"),
                    None => "/audit?limit=200".to_owned(),
                })
                .await?,
            ),
            Request::Record(id) => {
                let record = self.get::<RecordView>(&format!("/records/{id}")).await?;
                let history = self
                    .get::<Vec<FieldChange>>(&format!("/records/{id}/history"))
                    .await?;
                Reply::Record(Box::new(record), history)
            }
            Request::Retry(id) => {
                self.done(
                    &format!("/runs/{id}/retry"),
                    &serde_json::json!({}),
                    format!("run {id} retried"),
                )
                .await?
            }
            Request::Rerun(id) => {
                self.done(
                    &format!("/runs/{id}/rerun"),
                    &serde_json::json!({}),
                    format!("run {id} re-run"),
                )
                .await?
            }
            Request::Cancel(id) => {
                self.done(
                    &format!("/runs/{id}/cancel"),
                    &Reason {
                        reason: Some("cancelled from the console".into()),
                    },
                    format!("run {id} cancelled"),
                )
                .await?
            }
            Request::Replay(bulk) if bulk.dry_run => {
                let plan: ReplayPlan = self.post("/dlq/replay", bulk).await?;
                Reply::Plan(Box::new(plan))
            }
            Request::Replay(bulk) => {
                let job: JobView = self.post("/dlq/replay", bulk).await?;
                Reply::Job(Box::new(job))
            }
            Request::Job(id) => Reply::Job(Box::new(self.get(&format!("/jobs/{id}")).await?)),
            Request::ReplayEdited { dlq, payload } => {
                let body = ReplayRequest {
                    payload: Some(payload.clone()),
                    ..ReplayRequest::default()
                };
                self.done(
                    &format!("/dlq/{dlq}/replay"),
                    &body,
                    format!("entry {dlq} replayed with the edited payload"),
                )
                .await?
            }
            Request::Discard { ids, reason } => {
                for id in ids {
                    let body = Reason {
                        reason: Some(reason.clone()),
                    };
                    self.post::<serde_json::Value, _>(&format!("/dlq/{id}/discard"), &body)
                        .await?;
                }
                Reply::Done(format!("{} entries discarded", ids.len()))
            }
            Request::Holds => Reply::Holds(Box::new(self.get("/holds").await?)),
            Request::Incidents => Reply::Incidents(self.get("/incidents?limit=1000").await?),
            Request::Incident(id) => {
                Reply::Incident(Box::new(self.get(&format!("/incidents/{id}")).await?))
            }
            Request::ReplayIncident { id, request } if request.dry_run => {
                let plan: ReplayPlan = self
                    .post(&format!("/incidents/{id}/replay"), request)
                    .await?;
                Reply::Plan(Box::new(plan))
            }
            Request::ReplayIncident { id, request } => {
                let job: JobView = self
                    .post(&format!("/incidents/{id}/replay"), request)
                    .await?;
                Reply::Job(Box::new(job))
            }
            Request::Summary { team } => {
                let mut path = "/metrics/summary?window=7d".to_owned();
                if let Some(team) = team {
                    path.push_str(&format!("&team={}", encoded(team)));
                }
                Reply::Summary(Box::new(self.get(&path).await?))
            }
            Request::PlaceHold(request) => {
                let hold: HoldView = self.post("/holds", request).await?;
                let until = hold.until.map_or("until released".to_owned(), |u| {
                    format!("until {}", u.format("%H:%M:%SZ"))
                });
                Reply::Done(format!("hold {} on {} {until}", hold.id, hold.scope))
            }
            Request::ReleaseHold(id) => {
                let request = self.http.delete(format!("{}/holds/{id}", self.base));
                let hold: HoldView = self.answer(request).await?;
                let drain = hold
                    .drain_rate
                    .map_or("at once".to_owned(), |r| format!("at {r}"));
                Reply::Done(format!(
                    "hold {id} on {} released: {} held runs continue {drain}",
                    hold.scope, hold.held_runs
                ))
            }
            Request::Ack(id) => {
                self.done(
                    &format!("/alerts/{id}/ack"),
                    &serde_json::json!({}),
                    format!("alert {id} acknowledged"),
                )
                .await?
            }
            Request::Publish(key) => {
                self.done(
                    &format!("/workflows/{key}/publish"),
                    &serde_json::json!({}),
                    format!("{key}: draft published"),
                )
                .await?
            }
            Request::Triggers(key) => Reply::Triggers(
                self.get::<Page<RunView>>(&format!("/runs?workflow={key}&limit=100"))
                    .await?
                    .items,
            ),
            Request::Test { workflow, request } => Reply::Test(Box::new(
                self.post::<TestReport, _>(&format!("/workflows/{workflow}/test"), request)
                    .await?,
            )),
            Request::FixSandbox(sandbox) => {
                let response = self
                    .http
                    .post(format!("{sandbox}/control/fix"))
                    .send()
                    .await
                    .map_err(|e| CallError::Unreachable {
                        what: "the sandbox",
                        reason: e.to_string(),
                    })?;
                let text = response.text().await.map_err(|e| CallError::Unreachable {
                    what: "the sandbox",
                    reason: e.to_string(),
                })?;
                Reply::Done(format!("sandbox: {}", text.trim()))
            }
            Request::Rollback { workflow, version } => {
                self.done(
                    &format!("/workflows/{workflow}/rollback"),
                    &serde_json::json!({"version": version}),
                    format!("{workflow} rolled back to version {version}"),
                )
                .await?
            }
        })
    }

    async fn done<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        said: String,
    ) -> Result<Reply, CallError> {
        self.post::<serde_json::Value, _>(path, body).await?;
        Ok(Reply::Done(said))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.answer(request).await
    }

    async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.answer(request).await
    }

    /// Sends with the token; a non-2xx answer becomes the server's own error message.
    async fn answer<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(CallError::unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(CallError::unreachable)?;
        if !status.is_success() {
            let body = serde_json::from_slice::<ErrorBody>(&bytes).ok();
            return Err(CallError::Refused {
                status: status.as_u16(),
                code: body.as_ref().map(|b| b.error.code.clone()),
                message: body.map(|b| b.error.message).unwrap_or_default(),
            });
        }
        if bytes.is_empty() {
            return serde_json::from_str("null").map_err(|e| CallError::Unexpected(e.to_string()));
        }
        serde_json::from_slice(&bytes).map_err(|e| CallError::Unexpected(e.to_string()))
    }

    /// Follows the stream from `since`, forever: every message becomes [`Msg::Stream`], the
    /// connection's state [`Msg::Conn`]. After a drop it reconnects with backoff and resumes
    /// after the last event it delivered.
    pub async fn stream(self, mut since: i64) {
        let url = format!("{}/stream", self.base.replacen("http", "ws", 1));
        let mut backoff = retry_delays();
        let mut attempt = 0u32;
        loop {
            let result = self
                .follow(&url, &mut since, &mut || {
                    attempt = 0;
                    backoff = retry_delays();
                })
                .await;
            if let Err(error) = &result
                && error.is_unauthorized()
            {
                let _ = self.tx.send(Msg::Conn(Conn::Rejected(error.to_string())));
                return;
            }
            attempt += 1;
            let delay = backoff.next().unwrap_or(Duration::from_secs(30));
            let _ = self.tx.send(Msg::Conn(Conn::Reconnecting {
                attempt,
                next_in_secs: delay.as_secs().max(1),
                error: result.err().map_or_else(
                    || "the server closed the stream".to_owned(),
                    |e| e.to_string(),
                ),
            }));
            if self.tx.is_closed() {
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// One connection: forwards messages until it ends.
    async fn follow(
        &self,
        url: &str,
        since: &mut i64,
        connected: &mut impl FnMut(),
    ) -> Result<(), CallError> {
        let mut request = format!("{url}?since={since}&batch=true")
            .into_client_request()
            .map_err(|e| CallError::Unexpected(e.to_string()))?;
        let auth = format!("Bearer {}", self.token).parse().map_err(|_| {
            CallError::Unexpected("the token is not a valid header value".to_owned())
        })?;
        request.headers_mut().insert("authorization", auth);
        let (mut socket, _) =
            tokio_tungstenite::connect_async(request)
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(response) => CallError::Refused {
                        status: response.status().as_u16(),
                        code: None,
                        message: "the stream was refused".into(),
                    },
                    e => CallError::Unreachable {
                        what: "the stream",
                        reason: e.to_string(),
                    },
                })?;
        connected();
        let _ = self.tx.send(Msg::Conn(Conn::Live));
        while let Some(frame) = socket.next().await {
            let text = match frame.map_err(|e| CallError::Unreachable {
                what: "the stream",
                reason: e.to_string(),
            })? {
                Message::Text(text) => text,
                Message::Close(_) => return Ok(()),
                _ => continue,
            };
            let message: StreamMessage =
                serde_json::from_str(&text).map_err(|e| CallError::Unexpected(e.to_string()))?;
            *since = position(&message, *since);
            if self.tx.send(Msg::Stream(message)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Where the stream stands after `message`.
fn position(message: &StreamMessage, since: i64) -> i64 {
    match message {
        StreamMessage::Event(event) => event.seq,
        StreamMessage::Reset { seq } => *seq,
        StreamMessage::Lagged { seq } => since.max(*seq),
        StreamMessage::Batch { messages } => messages.iter().fold(since, |at, m| position(m, at)),
    }
}

/// Reconnect delays: from half a second up to 30 s, jittered, never giving up.
fn retry_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// `text` as a query-string value.
fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::CallError;

    #[test]
    fn call_errors_read_as_the_status_line_shows_them() {
        let refused = CallError::Refused {
            status: 401,
            code: Some("unauthorized".into()),
            message: "the token is not valid or was revoked".into(),
        };
        assert!(refused.is_unauthorized());
        assert_eq!(
            refused.to_string(),
            "unauthorized: the token is not valid or was revoked"
        );
        let bare = CallError::Refused {
            status: 502,
            code: None,
            message: String::new(),
        };
        assert!(!bare.is_unauthorized());
        assert_eq!(bare.to_string(), "HTTP 502");
        let down = CallError::Unreachable {
            what: "the server",
            reason: "connection refused".into(),
        };
        assert_eq!(
            down.to_string(),
            "cannot reach the server: connection refused"
        );
    }
}
