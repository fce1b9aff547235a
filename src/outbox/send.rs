//! Sending one outbox message to its destination: one Standard Webhooks signer for
//! subscriptions and webhook channels, Slack blocks, and email over SMTP.

use std::time::Duration;

use chrono::Utc;
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::domain::config::{ChannelDef, EmailTls};
use crate::domain::notice;
use crate::domain::standard_webhooks;
use crate::store::{Message, WebhookRow};

/// Where a target's messages go and how.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An outbound webhook subscription: the message's payload, signed with its secret.
    Subscription(WebhookRow),
    /// An alert channel of `acp.ron`: the notification rendered for it.
    Channel(ChannelDef),
}

/// A try that did not work: the status (HTTP or SMTP) if there was one, and what went wrong.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    pub error: String,
}

impl Failure {
    fn new(status: Option<u16>, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
        }
    }
}

/// One try at one destination; answers the status of a delivery that worked.
///
/// # Errors
/// [`Failure`] with the status and what went wrong (a refusal, a timeout, an SMTP error).
pub async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    destination: &Destination,
    message: &Message,
) -> Result<u16, Failure> {
    match destination {
        Destination::Subscription(hook) => {
            signed_post(http, timeout, &hook.view.url, &hook.secret, message).await
        }
        Destination::Channel(ChannelDef::Webhook { url, secret }) => {
            signed_post(http, timeout, url, secret, message).await
        }
        Destination::Channel(ChannelDef::Slack { url }) => {
            let request = http.post(url).json(&notice::slack(&message.payload));
            post(request, timeout).await
        }
        Destination::Channel(ChannelDef::Email {
            host,
            port,
            tls,
            from,
            to,
            username,
            password,
        }) => {
            let body = notice::email(&message.payload);
            let mut email = lettre::Message::builder()
                .from(
                    from.parse()
                        .map_err(|e| Failure::new(None, format!("from: {e}")))?,
                )
                .subject(body.subject);
            for address in to {
                email = email.to(address
                    .parse()
                    .map_err(|e| Failure::new(None, format!("to: {e}")))?);
            }
            let email = email
                .multipart(MultiPart::alternative_plain_html(body.text, body.html))
                .map_err(|e| Failure::new(None, e.to_string()))?;
            let builder = match tls {
                EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                EmailTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    .map_err(|e| Failure::new(None, e.to_string()))?,
                EmailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                    .map_err(|e| Failure::new(None, e.to_string()))?,
            };
            let default_port = match tls {
                EmailTls::None => 25,
                EmailTls::StartTls => 587,
                EmailTls::Tls => 465,
            };
            let mut builder = builder
                .port(port.unwrap_or(default_port))
                .timeout(Some(timeout));
            if let (Some(user), Some(password)) = (username, password) {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            match builder.build().send(email).await {
                Ok(response) => Ok(u16::from(response.code())),
                Err(e) => Err(Failure::new(
                    e.status().map(u16::from),
                    format!("SMTP: {e}"),
                )),
            }
        }
    }
}

/// The one signer: POSTs the message's payload with Standard Webhooks headers
/// (`webhook-id: msg_<id>`, or the id a message queued before the one outbox was sent under;
/// `webhook-timestamp`, `webhook-signature`), the id staying the same on every retry so the
/// receiver can drop duplicates.
async fn signed_post(
    http: &reqwest::Client,
    timeout: Duration,
    url: &str,
    secret: &str,
    message: &Message,
) -> Result<u16, Failure> {
    let id = message
        .external_id
        .clone()
        .unwrap_or_else(|| format!("msg_{}", message.id));
    let timestamp = Utc::now().timestamp();
    let body = message.payload.to_string();
    let signature = standard_webhooks::signature(secret, &id, timestamp, &body)
        .map_err(|e| Failure::new(None, e.to_string()))?;
    let request = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body);
    post(request, timeout).await
}

/// The HTTP client every delivery uses. It follows no redirect: a 301/302/303 would be
/// followed as a GET without the body (RFC 9110 §15.4 lets clients change the method), and a
/// delivery recorded after one never carried the message; the 3xx is a failed attempt instead.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Characters of a `Location` kept in an attempt's error.
const LOCATION_SHOWN: usize = 200;

async fn post(request: reqwest::RequestBuilder, timeout: Duration) -> Result<u16, Failure> {
    match request.timeout(timeout).send().await {
        Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
        Ok(response) if response.status().is_redirection() => {
            let location: String = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "nowhere".into())
                .chars()
                .filter(|c| !c.is_control())
                .take(LOCATION_SHOWN)
                .collect();
            Err(Failure::new(
                Some(response.status().as_u16()),
                format!(
                    "HTTP {} redirect to {location}, not followed (the message would arrive \
                     without its body): point the URL at the final address",
                    response.status().as_u16()
                ),
            ))
        }
        Ok(response) => Err(Failure::new(
            Some(response.status().as_u16()),
            format!("HTTP {}", response.status().as_u16()),
        )),
        Err(e) => Err(Failure::new(None, describe(e, timeout))),
    }
}

/// What went wrong with a request, in words: a timeout says so, anything else names its
/// cause (reqwest's own message, "error sending request", hides it).
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_redirect_is_a_failed_attempt_that_names_where_it_pointed() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let finals = Arc::new(AtomicUsize::new(0));
        let hits = finals.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [(axum::http::header::LOCATION, "/final")],
                    )
                }),
            )
            .route(
                "/final",
                axum::routing::any(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async { axum::http::StatusCode::OK }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let failure = post(client().post(&url).body("{}"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(failure.status, Some(302));
        assert!(
            failure
                .error
                .starts_with("HTTP 302 redirect to /final, not followed"),
            "{}",
            failure.error
        );
        assert_eq!(finals.load(Ordering::SeqCst), 0, "/final was never asked");
    }

    #[tokio::test]
    async fn a_failed_request_says_what_happened() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", silent.local_addr().unwrap());
        let http = reqwest::Client::new();
        let timeout = Duration::from_millis(200);
        let failure = post(http.post(&url), timeout).await.unwrap_err();
        assert_eq!(failure.error, "no answer within 200ms");
        drop(silent);
        let refused = post(http.post(&url), timeout).await.unwrap_err();
        assert!(
            refused.error.contains("refused") && !refused.error.contains("/hook"),
            "{}",
            refused.error
        );
    }
}
