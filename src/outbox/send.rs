//! Sending one outbox message to its destination: one Standard Webhooks signer for
//! subscriptions and webhook channels, Slack blocks, and email over SMTP.

use std::time::Duration;

use chrono::Utc;
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::domain::config::{ChannelDef, EmailTls};
use crate::domain::delivery::{
    Class, redirects_keeping_the_body, shown_address, unfollowed_redirect,
};
use crate::domain::failure::parse_retry_after;
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

/// What one try got back: the status (HTTP or SMTP) if there was one, its class, what went
/// wrong, the answer's first bytes and the receiver's `Retry-After`. Nothing in it is redacted
/// yet (the queue redacts with the destination's secrets).
#[derive(Debug)]
pub struct Reply {
    pub status: Option<u16>,
    pub class: Class,
    /// Unset when delivered.
    pub error: Option<String>,
    pub answer: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Reply {
    /// A try that failed before or without an answer.
    fn failed(class: Class, status: Option<u16>, error: impl Into<String>) -> Self {
        Self {
            status,
            class,
            error: Some(error.into()),
            answer: None,
            retry_after: None,
        }
    }
}

/// A Standard Webhooks secret as it may show up: whole (`whsec_...`) and its key part.
fn signing(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    forms.extend(secret.strip_prefix("whsec_").map(str::to_owned));
    forms
}

impl Destination {
    /// What the receiver's answers and ACP's errors must never show: the signing secret, the
    /// URL of a Slack or webhook channel (its path is the credential), the SMTP password.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Self::Subscription(hook) => signing(&hook.secret),
            Self::Channel(ChannelDef::Webhook { url, secret }) => {
                let mut secrets = signing(secret);
                secrets.push(url.clone());
                secrets
            }
            Self::Channel(ChannelDef::Slack { url }) => {
                let mut secrets = vec![url.clone()];
                if let Ok(parsed) = reqwest::Url::parse(url) {
                    secrets.push(parsed.path().to_owned());
                    secrets.extend(parsed.query().map(str::to_owned));
                }
                secrets
            }
            Self::Channel(ChannelDef::Email { password, .. }) => password.iter().cloned().collect(),
        }
    }
}

/// One try at one destination.
pub async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    destination: &Destination,
    message: &Message,
) -> Reply {
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
        }) => match build_email(from, to, &message.payload) {
            Ok(email) => {
                let credentials = username.as_ref().zip(password.as_ref());
                send_email(timeout, email, host, *port, *tls, credentials).await
            }
            Err(error) => Reply::failed(Class::Permanent, None, error.to_string()),
        },
    }
}

/// Why a notification could not be made into an email (it never will be).
#[derive(Debug, thiserror::Error)]
enum EmailError {
    #[error("from: {0}")]
    From(lettre::address::AddressError),
    #[error("to: {0}")]
    To(lettre::address::AddressError),
    #[error(transparent)]
    Build(#[from] lettre::error::Error),
}

/// The notification as an email with text and HTML parts.
fn build_email(
    from: &str,
    to: &[String],
    payload: &serde_json::Value,
) -> Result<lettre::Message, EmailError> {
    let body = notice::email(payload);
    let mut email = lettre::Message::builder()
        .from(from.parse().map_err(EmailError::From)?)
        .subject(body.subject);
    for address in to {
        email = email.to(address.parse().map_err(EmailError::To)?);
    }
    Ok(email.multipart(MultiPart::alternative_plain_html(body.text, body.html))?)
}

/// One try at an email channel: the whole SMTP exchange within `timeout`.
async fn send_email(
    timeout: Duration,
    email: lettre::Message,
    host: &str,
    port: Option<u16>,
    tls: EmailTls,
    credentials: Option<(&String, &String)>,
) -> Reply {
    let (builder, default_port) = match tls {
        EmailTls::None => (
            Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
            25,
        ),
        EmailTls::StartTls => (
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            587,
        ),
        EmailTls::Tls => (AsyncSmtpTransport::<Tokio1Executor>::relay(host), 465),
    };
    let builder = match builder {
        Ok(builder) => builder,
        Err(e) => return Reply::failed(Class::Permanent, None, format!("SMTP: {e}")),
    };
    let mut builder = builder
        .port(port.unwrap_or(default_port))
        .timeout(Some(timeout));
    if let Some((user, password)) = credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    // lettre's timeout is per command; the greeting (and a server that never finishes) is
    // bounded here, so a silent server is a transient failure, not a queue stuck until the
    // peer goes away.
    let Ok(sent) = tokio::time::timeout(timeout, builder.build().send(email)).await else {
        return Reply::failed(
            Class::Transient,
            None,
            format!(
                "SMTP: no answer within {}",
                humantime::format_duration(timeout)
            ),
        );
    };
    match sent {
        Ok(response) => Reply {
            status: Some(u16::from(response.code())),
            class: Class::Delivered,
            error: None,
            answer: Some(response.message().collect::<Vec<_>>().join(" ")),
            retry_after: None,
        },
        Err(e) => {
            let status = e.status().map(u16::from);
            // A reply code says which (4yz or 5yz); no reply (a refused connection, a
            // timeout, a broken TLS handshake) is worth another try.
            let class = status.map_or(Class::Transient, Class::of_smtp);
            Reply {
                // The server's reply, when it gave one.
                answer: status.map(|_| e.to_string()),
                ..Reply::failed(class, status, format!("SMTP: {e}"))
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
) -> Reply {
    let id = message
        .external_id
        .clone()
        .unwrap_or_else(|| format!("msg_{}", message.id));
    let timestamp = Utc::now().timestamp();
    let body = message.payload.to_string();
    let signature = match standard_webhooks::signature(secret, &id, timestamp, &body) {
        Ok(signature) => signature,
        Err(e) => return Reply::failed(Class::Permanent, None, e.to_string()),
    };
    let request = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body);
    post(request, timeout).await
}

/// The HTTP client every delivery uses: it follows only `307` and `308`, with the method
/// and the body ([`redirects_keeping_the_body`]), and sends no `Referer`.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirects_keeping_the_body())
        // A followed redirect must not carry the subscription's URL (and a token in its
        // query) to wherever it points.
        .referer(false)
        .build()
        .unwrap_or_default()
}

/// Bytes of an answer read to keep its start.
const ANSWER_BYTES: usize = 512;
/// How long the rest of an answer's body is waited for, once its status is known.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

async fn post(request: reqwest::RequestBuilder, timeout: Duration) -> Reply {
    let (client, built) = request.timeout(timeout).build_split();
    // A URL no request can be made of never will be.
    let built = match built {
        Ok(built) => built,
        Err(e) => return Reply::failed(Class::Permanent, None, describe(e, timeout)),
    };
    let asked = built.url().clone();
    let response = match client.execute(built).await {
        Ok(response) => response,
        // A redirect loop, or one to an address no request can be made of, stays so.
        Err(e) if e.is_redirect() || e.is_builder() => {
            return Reply::failed(Class::Permanent, None, describe(e, timeout));
        }
        Err(e) => return Reply::failed(Class::Transient, None, describe(e, timeout)),
    };
    let status = response.status();
    let code = status.as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            })
    };
    let retry_after = header(reqwest::header::RETRY_AFTER)
        .and_then(|v| parse_retry_after(&v, std::time::SystemTime::now()));
    let location = header(reqwest::header::LOCATION);
    let redirected = (*response.url() != asked).then(|| shown_address(response.url().as_str()));
    let mut answer = first_bytes(response).await;
    if let Some(to) = redirected {
        answer = Some(format!(
            "(after a redirect to {to}) {}",
            answer.unwrap_or_default()
        ));
    }
    let class = Class::of_http(code);
    let error = match class {
        Class::Delivered => None,
        _ if status.is_redirection() => Some(format!(
            "{}: point the URL at the final address",
            unfollowed_redirect(code, location.as_deref())
        )),
        _ => Some(format!(
            "HTTP {code}{}",
            status
                .canonical_reason()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        )),
    };
    Reply {
        status: Some(code),
        class,
        error,
        answer,
        retry_after,
    }
}

/// The first [`ANSWER_BYTES`] of a body as text (control characters as spaces), waiting at
/// most [`ANSWER_WAIT`] for them; none when it is empty.
async fn first_bytes(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    let read = async {
        while bytes.len() < ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(ANSWER_WAIT, read).await;
    bytes.truncate(ANSWER_BYTES);
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
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
    use std::sync::{Arc, Mutex};

    use axum::http::{StatusCode, header};
    use axum::routing::{any, post as on_post};

    use super::*;

    /// Serves `app` on an ephemeral port; answers its base URL.
    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    #[tokio::test]
    async fn a_302_is_a_failed_attempt_that_names_where_it_pointed() {
        let finals = Arc::new(Mutex::new(0));
        let hits = finals.clone();
        let base = serve(
            axum::Router::new()
                .route(
                    "/hook",
                    on_post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/final")]) }),
                )
                .route(
                    "/final",
                    any(move || {
                        *hits.lock().unwrap() += 1;
                        async { StatusCode::OK }
                    }),
                ),
        )
        .await;
        let reply = post(
            client().post(format!("{base}/hook")).body("{}"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!((reply.status, reply.class), (Some(302), Class::Permanent));
        let error = reply.error.unwrap();
        assert!(
            error.starts_with("HTTP 302 redirect to /final, not followed"),
            "{error}"
        );
        assert_eq!(*finals.lock().unwrap(), 0, "/final was never asked");
    }

    #[tokio::test]
    async fn a_307_is_followed_with_the_method_and_the_body() {
        let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let seen = got.clone();
        let base = serve(
            axum::Router::new()
                .route(
                    "/hook",
                    on_post(|| async {
                        (
                            StatusCode::TEMPORARY_REDIRECT,
                            [(header::LOCATION, "/final")],
                        )
                    }),
                )
                .route(
                    "/final",
                    any(move |method: axum::http::Method, body: String| {
                        seen.lock().unwrap().push((method.to_string(), body));
                        async { "taken" }
                    }),
                ),
        )
        .await;
        let reply = post(
            client().post(format!("{base}/hook")).body(r#"{"event":1}"#),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!((reply.status, reply.class), (Some(200), Class::Delivered));
        assert_eq!(
            reply.answer.as_deref(),
            Some(format!("(after a redirect to {base}/final) taken").as_str())
        );
        assert_eq!(
            *got.lock().unwrap(),
            vec![("POST".to_owned(), r#"{"event":1}"#.to_owned())]
        );
    }

    #[tokio::test]
    async fn an_answer_keeps_its_status_class_first_bytes_and_retry_after() {
        let base = serve(
            axum::Router::new()
                .route(
                    "/slow-down",
                    on_post(|| async {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(header::RETRY_AFTER, "6")],
                            "rate_limited\n\u{7}",
                        )
                    }),
                )
                .route(
                    "/huge",
                    on_post(|| async { (StatusCode::BAD_REQUEST, "x".repeat(100_000)) }),
                ),
        )
        .await;
        let limited = post(
            client().post(format!("{base}/slow-down")),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(limited.class, Class::Transient);
        assert_eq!(limited.retry_after, Some(Duration::from_secs(6)));
        assert_eq!(limited.answer.as_deref(), Some("rate_limited"));
        assert_eq!(limited.error.as_deref(), Some("HTTP 429 Too Many Requests"));
        let huge = post(
            client().post(format!("{base}/huge")),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(huge.class, Class::Permanent);
        assert_eq!(huge.answer.map(|a| a.len()), Some(ANSWER_BYTES));
    }

    #[tokio::test]
    async fn redirects_that_cannot_be_followed_are_permanent() {
        let base = serve(
            axum::Router::new()
                .route(
                    "/loop",
                    on_post(|| async {
                        (
                            StatusCode::TEMPORARY_REDIRECT,
                            [(header::LOCATION, "/loop")],
                        )
                    }),
                )
                .route(
                    "/ftp",
                    on_post(|| async {
                        (
                            StatusCode::PERMANENT_REDIRECT,
                            [(header::LOCATION, "ftp://bob:pw@127.0.0.1/x?q=1")],
                        )
                    }),
                )
                .route(
                    "/file",
                    on_post(|| async {
                        (
                            StatusCode::TEMPORARY_REDIRECT,
                            [(header::LOCATION, "file:///etc/passwd")],
                        )
                    }),
                ),
        )
        .await;
        let looped = post(
            client().post(format!("{base}/loop?token=t0k")),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            looped.error.as_deref(),
            Some(format!("error following redirect: a redirect loop back to {base}/loop").as_str())
        );
        let ftp = post(client().post(format!("{base}/ftp")), Duration::from_secs(5)).await;
        assert_eq!(
            ftp.error.as_deref(),
            Some(
                "HTTP 308 redirect to ftp://127.0.0.1/x?… could not be followed (not an http(s) \
                 address): point the URL at the final address"
            )
        );
        for path in ["/loop", "/ftp", "/file"] {
            let reply = post(
                client().post(format!("{base}{path}")),
                Duration::from_secs(5),
            )
            .await;
            assert_eq!(reply.class, Class::Permanent, "{path}: {reply:?}");
        }
        let file = post(
            client().post(format!("{base}/file")),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            file.error.as_deref(),
            Some(
                "HTTP 307 redirect to file:///etc/passwd could not be followed (not an http(s) \
                 address): point the URL at the final address"
            )
        );
    }

    #[test]
    fn addresses_are_kept_without_credentials_or_queries() {
        assert_eq!(
            shown_address("http://user:pa55@127.0.0.1:9/in?token=abc"),
            "http://127.0.0.1:9/in?…"
        );
        assert_eq!(shown_address("/final?sig=1"), "/final?…");
        assert_eq!(shown_address("/final"), "/final");
        let hook = |secret: &str| {
            Destination::Subscription(WebhookRow {
                view: crate::wire::WebhookView {
                    id: 1,
                    url: "http://127.0.0.1/in".into(),
                    events: Vec::new(),
                    workflow: None,
                    team: None,
                    created_at: Utc::now(),
                    pending: 0,
                    state: "active".into(),
                    disabled_at: None,
                    disabled_reason: None,
                },
                secret: secret.into(),
            })
        };
        assert_eq!(
            hook("whsec_a2V5a2V5a2V5").secrets(),
            ["whsec_a2V5a2V5a2V5", "a2V5a2V5a2V5"]
        );
    }

    #[tokio::test]
    async fn a_mail_server_that_never_greets_is_a_transient_failure_in_time() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let channel = Destination::Channel(ChannelDef::Email {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: EmailTls::None,
            from: "acp@example.com".into(),
            to: vec!["oncall@example.com".into()],
            username: None,
            password: None,
        });
        let message = Message {
            id: 1,
            target: crate::store::Target::Channel("mail".into()),
            external_id: None,
            kind: "notification".into(),
            event_seq: None,
            alert_id: Some(1),
            reason: Some("firing".into()),
            payload: serde_json::json!({}),
            attempts: 0,
            permanent: 0,
            due_at: Utc::now(),
            created_at: Utc::now(),
        };
        let started = std::time::Instant::now();
        let reply = send(&client(), Duration::from_millis(300), &channel, &message).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(reply.class, Class::Transient);
        assert_eq!(reply.error.as_deref(), Some("SMTP: no answer within 300ms"));
    }

    #[tokio::test]
    async fn a_failed_request_says_what_happened() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", silent.local_addr().unwrap());
        let http = reqwest::Client::new();
        let timeout = Duration::from_millis(200);
        let late = post(http.post(&url), timeout).await;
        assert_eq!(late.class, Class::Transient);
        assert_eq!(late.error.as_deref(), Some("no answer within 200ms"));
        drop(silent);
        let refused = post(http.post(&url), timeout).await;
        assert_eq!(refused.class, Class::Transient);
        let error = refused.error.unwrap();
        assert!(
            error.contains("refused") && !error.contains("/hook"),
            "{error}"
        );
        let nowhere = post(http.post("http://"), timeout).await;
        assert_eq!(nowhere.class, Class::Permanent);
    }
}
