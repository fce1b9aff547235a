//! The `http` step: one request with an `Idempotency-Key`, its response captured and classified.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::domain::StepFailure;
use crate::domain::delivery::{MAX_REDIRECTS, redirects_keeping_the_body, unfollowed_redirect};
use crate::domain::failure::parse_retry_after;

/// Largest response body read, in bytes (32 MiB): a larger answer fails the step
/// (permanently: asking again brings the same answer). What is *stored* of a body is capped
/// much lower by the engine, after redaction.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Most characters of a refused response's body put into the step's error (the engine
/// redacts, then cuts the message further).
const ERROR_BODY_CHARS: usize = 16 * 1024;

/// A rendered request.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    pub timeout: Duration,
    pub idempotency_key: String,
}

/// A response of any status.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// Parsed JSON, or the text as a string.
    pub body: Value,
    pub latency_ms: u64,
}

/// Sends one request. Transport trouble (connect, timeout) is a transient failure; any status
/// is a response.
#[async_trait]
pub trait HttpSend: Send + Sync {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure>;
}

/// Sends a request and turns a non-2xx status into a classified failure that carries the
/// server's `Retry-After`.
pub async fn call(
    sender: &dyn HttpSend,
    request: HttpRequest,
) -> Result<HttpResponse, StepFailure> {
    let response = sender.send(request).await?;
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let retry_after = response
        .headers
        .get("retry-after")
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let snippet: String = match &response.body {
        Value::String(s) => s.chars().take(ERROR_BODY_CHARS).collect(),
        other => other.to_string().chars().take(ERROR_BODY_CHARS).collect(),
    };
    let message = match response.headers.get("location") {
        Some(location) if (300..400).contains(&response.status) => format!(
            "{}: point the step at the final address",
            unfollowed_redirect(response.status, Some(location))
        ),
        _ => format!("HTTP {}: {snippet}", response.status),
    };
    Err(StepFailure::from_status(
        response.status,
        message,
        retry_after,
    ))
}

/// Refuses a request no HTTP client could send: a method that is not a token, a URL that
/// does not parse or is not `http`/`https`. The real sender and test mode's answers both
/// check it, so a test fails where a live run would.
///
/// # Errors
/// A permanent failure saying what is wrong.
pub fn check(request: &HttpRequest) -> Result<(), StepFailure> {
    reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| StepFailure::permanent(format!("bad method `{}`", request.method)))?;
    let url = reqwest::Url::parse(&request.url)
        .map_err(|e| StepFailure::permanent(format!("bad request: the URL is not valid ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(StepFailure::permanent(format!(
            "bad request: URL scheme `{}` is not http or https",
            url.scheme()
        )));
    }
    Ok(())
}

/// The host of `url` in lower case (what host limits and holds are keyed by); none when the
/// URL does not parse or has no host.
pub fn host_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .host_str()
        .map(str::to_ascii_lowercase)
}

impl HttpResponse {
    /// The response metadata stored as the attempt's detail.
    pub fn detail(&self) -> Value {
        json!({"status": self.status, "headers": self.headers, "latency_ms": self.latency_ms})
    }
}

/// The real sender: reqwest with rustls.
pub struct ReqwestSender {
    /// For GET and HEAD: follows redirects, which cannot lose anything.
    reading: reqwest::Client,
    /// For every other method: follows only redirects that keep the body
    /// ([`redirects_keeping_the_body`]), so a POST to the CRM answered 302 fails saying where
    /// it pointed instead of "succeeding" as a GET that never reached it.
    writing: reqwest::Client,
}

impl ReqwestSender {
    /// Clients with ACP's user agent.
    ///
    /// # Errors
    /// reqwest's, when the TLS backend cannot be initialised.
    pub fn new() -> Result<Self, reqwest::Error> {
        let agent = concat!("acp/", env!("CARGO_PKG_VERSION"));
        let reading = reqwest::Client::builder()
            .user_agent(agent)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .referer(false)
            .build()?;
        let writing = reqwest::Client::builder()
            .user_agent(agent)
            .redirect(redirects_keeping_the_body())
            .referer(false)
            .build()?;
        Ok(Self { reading, writing })
    }
}

#[async_trait]
impl HttpSend for ReqwestSender {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure> {
        check(&request)?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| StepFailure::permanent(format!("bad method `{}`", request.method)))?;
        let client = if matches!(method, reqwest::Method::GET | reqwest::Method::HEAD) {
            &self.reading
        } else {
            &self.writing
        };
        let mut builder = client
            .request(method, &request.url)
            .timeout(request.timeout)
            .header("Idempotency-Key", &request.idempotency_key);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let started = Instant::now();
        let mut response = builder.send().await.map_err(transport_failure)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(StepFailure::permanent(format!(
                    "the response body is larger than {} MiB",
                    MAX_RESPONSE_BYTES >> 20
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(HttpResponse {
            status,
            headers,
            body,
            latency_ms: started.elapsed().as_millis() as u64,
        })
    }
}

fn transport_failure(e: reqwest::Error) -> StepFailure {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_builder() {
        return StepFailure::permanent(format!("bad request: {e}"));
    } else {
        "failed"
    };
    let url = e
        .url()
        .map(|u| format!(" {}", u.as_str()))
        .unwrap_or_default();
    StepFailure::transient(format!("request{url} {what}: {}", root_cause(&e)))
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
