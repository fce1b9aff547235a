//! The durable outbox: a dispatcher turns committed events into messages for matching
//! subscriptions (moving a cursor in the same transaction, so a crash loses nothing), and a
//! deliverer posts each subscription's messages in order, retrying the head with backoff
//! until the receiver takes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;

use crate::domain::retry::redelivery_delay;
use crate::domain::standard_webhooks as sign;
use crate::server::AppState;
use crate::store::{Attempt, Message, NewMessage, WebhookRow};
use crate::wire::{Event, WebhookPayload};

const CURSOR: &str = "webhooks";
const BATCH: usize = 1000;

/// True when a subscription wants this event.
fn wants(hook: &WebhookRow, event: &Event, teams: &HashMap<String, String>) -> bool {
    let kind = event.kind().as_str();
    let kind_ok = hook.view.events.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => k == kind,
    });
    let workflow = event.workflow.as_deref();
    let workflow_ok = hook
        .view
        .workflow
        .as_deref()
        .is_none_or(|w| workflow == Some(w));
    let team_ok = hook.view.team.as_deref().is_none_or(|t| {
        workflow
            .and_then(|w| teams.get(w))
            .is_some_and(|team| team == t)
    });
    kind_ok && workflow_ok && team_ok
}

/// Moves committed events into the outbox until shutdown.
pub async fn dispatch(s: AppState) {
    let mut bus = s.store.subscribe();
    loop {
        match dispatch_batch(&s).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!("webhook dispatch: {e}"),
        }
        tokio::select! {
            _ = bus.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = s.shutdown.cancelled() => return,
        }
    }
}

/// Why a batch of events could not be queued (the dispatcher tries again).
#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("event {seq} could not be encoded: {source}")]
    Encode { seq: i64, source: serde_json::Error },
}

/// Queues messages for one batch of events; true when there may be more.
async fn dispatch_batch(s: &AppState) -> Result<bool, DispatchError> {
    let cursor = s.store.cursor(CURSOR).await?;
    let events = s.store.events_since(cursor, BATCH).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(false);
    };
    let hooks = s.store.webhooks().await?;
    let teams = s
        .store
        .workflows()
        .await?
        .into_iter()
        .map(|w| (w.key, w.team))
        .collect();
    let mut messages = Vec::new();
    for event in &events {
        for hook in hooks.iter().filter(|h| wants(h, event, &teams)) {
            let payload = serde_json::to_value(WebhookPayload::of(event)).map_err(|source| {
                DispatchError::Encode {
                    seq: event.seq,
                    source,
                }
            })?;
            messages.push(NewMessage {
                webhook_id: hook.view.id,
                event_seq: event.seq,
                kind: event.kind().as_str().to_owned(),
                payload,
            });
        }
    }
    s.store.enqueue(messages, CURSOR, last).await?;
    Ok(events.len() == BATCH)
}

/// Delivers every subscription's messages, in order, until shutdown.
pub async fn deliver(s: AppState) {
    let http = reqwest::Client::new();
    loop {
        let hooks = s.store.webhooks().await.unwrap_or_default();
        let rounds = hooks.iter().map(|hook| deliver_due(&s, &http, hook));
        let delivered = join_all(rounds).await.into_iter().any(|d| d);
        if delivered {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(s.config.webhook_poll) => {}
            _ = s.shutdown.cancelled() => return,
        }
    }
}

/// Sends the head message of a subscription if it is due; true when one was delivered.
async fn deliver_due(s: &AppState, http: &reqwest::Client, hook: &WebhookRow) -> bool {
    let Ok(Some(message)) = s.store.outbox_head(hook.view.id).await else {
        return false;
    };
    if message.due_at > Utc::now() {
        return false;
    }
    let attempt = post(s, http, hook, &message).await;
    let delivered = attempt.retry_at.is_none();
    if let Err(e) = s.store.record_attempt(message, hook.view.id, attempt).await {
        tracing::warn!("recording a webhook delivery failed: {e}");
        return false;
    }
    delivered
}

async fn post(
    s: &AppState,
    http: &reqwest::Client,
    hook: &WebhookRow,
    message: &Message,
) -> Attempt {
    let id = format!("msg_{}", message.id);
    let timestamp = Utc::now().timestamp();
    let body = message.payload.to_string();
    let started = Instant::now();
    let result = match sign::signature(&hook.secret, &id, timestamp, &body) {
        Ok(signature) => http
            .post(&hook.view.url)
            .timeout(s.config.webhook_timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    let (status_code, error) = match result {
        Ok(response) if response.status().is_success() => {
            return Attempt {
                status_code: Some(response.status().as_u16()),
                latency_ms,
                error: None,
                retry_at: None,
            };
        }
        Ok(response) => (
            Some(response.status().as_u16()),
            Some(format!("HTTP {}", response.status().as_u16())),
        ),
        Err(e) => (None, Some(e)),
    };
    let delay = redelivery_delay(
        s.config.webhook_retry_initial,
        s.config.webhook_retry_max,
        message.attempts,
    );
    let retry_at = Some(crate::domain::clock::later_or_max(Utc::now(), delay));
    Attempt {
        status_code,
        latency_ms,
        error,
        retry_at,
    }
}
