//! Delivering notifications: each channel's queue is sent in order, one at a time; a failed
//! try is recorded and the head is tried again with backoff, so a channel that is down gets
//! everything once it is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use super::notice;
use crate::domain::config::{ChannelDef, EmailTls, Policy};
use crate::domain::retry::redelivery_delay;
use crate::domain::standard_webhooks;
use crate::store::{Attempt, Notice, Store};

/// How deliveries are paced.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// One try's time limit.
    pub timeout: Duration,
    /// The first retry's delay; it doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How often idle queues are looked at.
    pub poll: Duration,
}

/// A try that did not work: the status (HTTP or SMTP) if there was one, and what went wrong.
type Failure = (Option<u16>, String);

/// Delivers every channel's notifications until shutdown, each channel on its own so that a
/// slow one does not hold the others up.
pub async fn deliver(
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    pace: Delivery,
    shutdown: CancellationToken,
) {
    let http = reqwest::Client::new();
    let queues = policy.channels.iter().map(|(name, channel)| {
        let (store, http, pace, shutdown) =
            (store.clone(), http.clone(), pace.clone(), shutdown.clone());
        async move {
            loop {
                if deliver_due(store.as_ref(), &http, &pace, name, channel).await {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(pace.poll) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    });
    join_all(queues).await;
}

/// Sends a channel's head notification if it is due; true when one was delivered.
async fn deliver_due(
    store: &dyn Store,
    http: &reqwest::Client,
    pace: &Delivery,
    name: &str,
    channel: &ChannelDef,
) -> bool {
    let Ok(Some(notice)) = store.notification_head(name).await else {
        return false;
    };
    if notice.due_at > Utc::now() {
        return false;
    }
    let started = Instant::now();
    let result = send(http, pace.timeout, channel, &notice).await;
    let latency_ms = started.elapsed().as_millis() as i64;
    let attempt = match result {
        Ok(status) => Attempt {
            status_code: Some(status),
            latency_ms,
            error: None,
            retry_at: None,
        },
        Err((status_code, error)) => {
            tracing::warn!(
                channel = name,
                notification = notice.id,
                "notification not delivered: {error}"
            );
            let delay = redelivery_delay(pace.retry_initial, pace.retry_max, notice.attempts);
            Attempt {
                status_code,
                latency_ms,
                error: Some(error),
                retry_at: Some(crate::domain::clock::later_or_max(Utc::now(), delay)),
            }
        }
    };
    let delivered = attempt.retry_at.is_none();
    if let Err(e) = store.notification_attempt(notice.id, attempt).await {
        tracing::warn!("recording a notification attempt failed: {e}");
        return false;
    }
    delivered
}

/// One try at one channel; answers the status of a delivery that worked.
async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    channel: &ChannelDef,
    notice: &Notice,
) -> Result<u16, Failure> {
    match channel {
        ChannelDef::Slack { url } => {
            let request = http.post(url).json(&notice::slack(&notice.payload));
            post(request, timeout).await
        }
        ChannelDef::Webhook { url, secret } => {
            let id = format!("ntf_{}", notice.id);
            let timestamp = Utc::now().timestamp();
            let body = notice.payload.to_string();
            let signature = standard_webhooks::signature(secret, &id, timestamp, &body)
                .map_err(|e| (None, e.to_string()))?;
            let request = http
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body);
            post(request, timeout).await
        }
        ChannelDef::Email {
            host,
            port,
            tls,
            from,
            to,
            username,
            password,
        } => {
            let (subject, body) = notice::email(&notice.payload);
            let mut message = lettre::Message::builder()
                .from(from.parse().map_err(|e| (None, format!("from: {e}")))?)
                .subject(subject)
                .header(ContentType::TEXT_PLAIN);
            for address in to {
                message = message.to(address.parse().map_err(|e| (None, format!("to: {e}")))?);
            }
            let message = message.body(body).map_err(|e| (None, e.to_string()))?;
            let builder = match tls {
                EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                EmailTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    .map_err(|e| (None, e.to_string()))?,
                EmailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                    .map_err(|e| (None, e.to_string()))?,
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
            match builder.build().send(message).await {
                Ok(response) => Ok(u16::from(response.code())),
                Err(e) => Err((e.status().map(u16::from), format!("SMTP: {e}"))),
            }
        }
    }
}

async fn post(request: reqwest::RequestBuilder, timeout: Duration) -> Result<u16, Failure> {
    match request.timeout(timeout).send().await {
        Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
        Ok(response) => Err((
            Some(response.status().as_u16()),
            format!("HTTP {}", response.status().as_u16()),
        )),
        Err(e) => Err((None, e.to_string())),
    }
}
