//! The sandbox "outside world" the demo's workflows call, on 127.0.0.1: an enrichment API, an
//! address verifier, a CRM, an OpenAI-compatible AI endpoint (deterministic), a Slack-like
//! sink and an SMTP sink. They fail the way real APIs fail: 429 with `Retry-After` (seconds and
//! HTTP-date forms), 500/503, answers slower than the caller's timeout, 422 for bad input and
//! 409 conflicts. An incident makes the enrichment API fail nine calls in ten until it is fixed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// What the sandbox is doing and what it received.
#[derive(Default)]
pub struct World {
    /// The enrichment API answers 503 (now and then 429) to most calls.
    pub outage: AtomicBool,
    /// Calls so far, to pick failures deterministically (every n-th call).
    calls: AtomicU64,
    /// Messages the Slack-like sink accepted: (channel, body).
    pub slack: Mutex<Vec<(String, Value)>>,
    /// Mails the SMTP sink accepted.
    pub mails: Arc<Mutex<Vec<String>>>,
}

/// The sandbox's addresses.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub smtp_port: u16,
}

/// Serves the sandbox until the process ends.
pub async fn start(world: Arc<World>) -> std::io::Result<Sandbox> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let app = Router::new()
        .route("/enrich/v1/person", get(enrich))
        .route("/verify/v2/check", post(verify))
        .route("/crm/api/renewals", get(renewals))
        .route("/ai/v1/chat/completions", post(ai))
        .route("/slack/{channel}", post(slack))
        .route("/slack", get(slack_messages))
        .route("/control/fix", post(fix))
        .route("/control/break", post(break_it))
        .with_state(world.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the sandbox stopped: {e}");
        }
    });
    let smtp_port = smtp(world.mails.clone())?;
    Ok(Sandbox {
        url: format!("http://{address}"),
        smtp_port,
    })
}

/// A real SMTP server (mailin) that keeps every mail.
fn smtp(mails: Arc<Mutex<Vec<String>>>) -> std::io::Result<u16> {
    #[derive(Clone)]
    struct Sink {
        mails: Arc<Mutex<Vec<String>>>,
        current: Vec<u8>,
    }
    impl mailin_embedded::Handler for Sink {
        fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
            self.current.extend_from_slice(buf);
            Ok(())
        }
        fn data_end(&mut self) -> mailin_embedded::Response {
            let mail = String::from_utf8_lossy(&std::mem::take(&mut self.current)).into_owned();
            if let Ok(mut mails) = self.mails.lock() {
                mails.push(mail);
            }
            mailin_embedded::response::OK
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mut server = mailin_embedded::Server::new(Sink {
        mails,
        current: Vec::new(),
    });
    server.with_name("sandbox.acp").with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            tracing::warn!("the sandbox SMTP sink stopped: {e}");
        }
    });
    Ok(port)
}

impl World {
    /// The number of this call (1, 2, 3...).
    fn tick(&self) -> u64 {
        self.calls.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn retry_after(status: StatusCode, value: String) -> Response {
    let mut response = (status, Json(json!({"error": "rate limited, slow down"}))).into_response();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

#[derive(Deserialize)]
struct Email {
    email: Option<String>,
}

/// Enrichment: a company for an address. Mostly fine; sometimes a 429 (either Retry-After
/// form: ACP holds every call to the host until then), a 503, a slow answer, or a 422 for
/// addresses it cannot read. In an outage, nine calls in ten fail: mostly a plain 503 (retried
/// until the budget is spent, then dead-lettered), now and then a 429 asking to wait a second.
async fn enrich(State(w): State<Arc<World>>, Query(q): Query<Email>) -> Response {
    let n = w.tick();
    let email = q.email.unwrap_or_default();
    if !email.contains('@') || email.starts_with("invalid") {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": format!("`{email}` is not an email address")})),
        )
            .into_response();
    }
    if w.outage.load(Ordering::Relaxed) {
        match n % 10 {
            0 => {}
            5 => return retry_after(StatusCode::TOO_MANY_REQUESTS, "1".into()),
            _ => return (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response(),
        }
    } else {
        match n % 40 {
            7 => return retry_after(StatusCode::TOO_MANY_REQUESTS, "1".into()),
            17 => {
                let at = SystemTime::now() + Duration::from_secs(2);
                return retry_after(StatusCode::TOO_MANY_REQUESTS, httpdate::fmt_http_date(at));
            }
            23 => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
            31 => tokio::time::sleep(Duration::from_secs(12)).await,
            _ => {}
        }
    }
    let domain = email.split('@').nth(1).unwrap_or("example.com");
    let company = domain.split('.').next().unwrap_or("example");
    let employees = 10 + (fnv(&email) % 5000);
    let title = ["VP Sales", "RevOps Manager", "CFO", "Head of Growth"][(employees % 4) as usize];
    Json(json!({
        "email": email,
        "company": {"name": capitalise(company), "domain": domain, "employees": employees},
        "title": title,
    }))
    .into_response()
}

/// Address verification: 409 now and then (a check for the same address is running).
async fn verify(State(w): State<Arc<World>>, Json(body): Json<Value>) -> Response {
    let n = w.tick();
    if n % 13 == 0 {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "a check for this address is already running"})),
        )
            .into_response();
    }
    let email = body["email"].as_str().unwrap_or("");
    Json(json!({"email": email, "deliverable": !email.starts_with("invalid"), "score": fnv(email) % 100})).into_response()
}

async fn renewals(State(w): State<Arc<World>>) -> Response {
    let n = w.tick();
    if n % 9 == 0 {
        return (StatusCode::BAD_GATEWAY, "crm gateway timeout").into_response();
    }
    let due = (n % 4) as usize;
    let renewals: Vec<Value> = (0..due)
        .map(|i| json!({"account": format!("Account {}", n * 10 + i as u64), "days_left": 5 + i * 7}))
        .collect();
    Json(json!({"renewals": renewals})).into_response()
}

/// A deterministic OpenAI-compatible endpoint: a lead score from the prompt's hash.
async fn ai(Json(body): Json<Value>) -> Response {
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let score = fnv(prompt) % 100;
    let label = match score {
        70.. => "hot",
        40.. => "warm",
        _ => "cold",
    };
    let content = json!({"score": score, "label": label, "reason": "sandbox model: fit and size"})
        .to_string();
    Json(json!({
        "model": body["model"],
        "choices": [{"message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt.len() / 4, "completion_tokens": 18},
    }))
    .into_response()
}

async fn slack(
    State(w): State<Arc<World>>,
    Path(channel): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    if let Ok(mut slack) = w.slack.lock() {
        slack.push((channel, body));
    }
    StatusCode::OK
}

/// What the Slack-like sink received, newest last.
async fn slack_messages(State(w): State<Arc<World>>) -> Json<Value> {
    let list: Vec<Value> = w
        .slack
        .lock()
        .map(|s| {
            s.iter()
                .map(|(channel, body)| json!({"channel": channel, "message": body}))
                .collect()
        })
        .unwrap_or_default();
    Json(Value::Array(list))
}

/// Ends the enrichment outage.
async fn fix(State(w): State<Arc<World>>) -> &'static str {
    w.outage.store(false, Ordering::Relaxed);
    "the enrichment API is healthy again\n"
}

/// Starts an enrichment outage.
async fn break_it(State(w): State<Arc<World>>) -> &'static str {
    w.outage.store(true, Ordering::Relaxed);
    "the enrichment API now answers 503 (now and then 429) to most calls\n"
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
