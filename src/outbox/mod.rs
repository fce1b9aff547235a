//! The one outbox: everything that leaves ACP on its own (outbound webhook messages and alert
//! notifications) is a row of the store's outbox, addressed to a [`Target`], and one delivery
//! loop sends it.
//!
//! - **Dispatch** turns committed events into messages for the webhook subscriptions that want
//!   them, moving a cursor in the same transaction, so a crash loses nothing. (Alerting queues
//!   notifications itself, with the runs they cover.)
//! - **Delivery** keeps one task per target (each subscription, each channel of `acp.ron`), so
//!   a slow or broken receiver holds up nobody else. A task sends its target's oldest message
//!   when due, records every attempt, and tries a refused head again with capped, jittered
//!   exponential backoff until the receiver takes it: each target gets its messages in order.
//! - **Sending** is [`send`]: one Standard Webhooks signer for subscriptions and webhook
//!   channels, Slack blocks, and email over SMTP (text and HTML parts). Just before, each
//!   message gets its signed page link (`links.page`, see [`links`]).

mod links;
mod send;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::clock::Heartbeat;
use crate::domain::config::Policy;
use crate::domain::delivery::{History, Next, Outcome, Rules};
use crate::domain::redact::Redactor;
use crate::metrics::Metrics;
use crate::store::{Attempt, NewAudit, NewMessage, Store, StoreError, Target, WebhookRow};
use crate::wire::Role;
use crate::wire::{Event, WebhookPayload};
pub use send::Destination;

/// The event-log cursor of the webhook dispatcher (retention never prunes past it).
const CURSOR: &str = "webhooks";
/// Events read per dispatch round.
const BATCH: usize = 1000;

/// How deliveries are paced.
#[derive(Debug, Clone)]
pub struct Pace {
    /// One try's time limit.
    pub timeout: Duration,
    /// The first retry's delay; it doubles up to `retry_max` (with jitter, see
    /// [`Rules::wait`]).
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How often an idle target's queue is looked at, and the set of targets refreshed.
    pub poll: Duration,
}

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

/// Moves committed events into the outbox until shutdown, beating `heartbeat` each round.
pub async fn dispatch(
    store: Arc<dyn Store>,
    heartbeat: Arc<Heartbeat>,
    shutdown: CancellationToken,
) {
    let mut bus = store.subscribe();
    loop {
        match dispatch_batch(store.as_ref()).await {
            Ok(true) => continue,
            Ok(false) => heartbeat.beat(Utc::now()),
            Err(e) => tracing::warn!("webhook dispatch: {e}"),
        }
        tokio::select! {
            _ = bus.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Why a batch of events could not be queued (the dispatcher tries again).
#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event {seq} could not be encoded: {source}")]
    Encode { seq: i64, source: serde_json::Error },
}

/// Queues messages for one batch of events; true when there may be more.
async fn dispatch_batch(store: &dyn Store) -> Result<bool, DispatchError> {
    let cursor = store.cursor(CURSOR).await?;
    let events = store.events_since(cursor, BATCH).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(false);
    };
    let hooks = store.webhooks().await?;
    let teams = store
        .workflows()
        .await?
        .into_iter()
        .map(|w| (w.key, w.team))
        .collect();
    let mut messages = Vec::new();
    for event in &events {
        for hook in hooks
            .iter()
            .filter(|h| h.view.disabled_at.is_none() && wants(h, event, &teams))
        {
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
    store.enqueue(messages, CURSOR, last).await?;
    Ok(events.len() == BATCH)
}

/// Every target there is now: each webhook subscription and each channel of the policy.
async fn destinations(
    store: &dyn Store,
    policy: &Policy,
) -> Result<BTreeMap<Target, Destination>, StoreError> {
    let mut all: BTreeMap<Target, Destination> = store
        .webhooks()
        .await?
        .into_iter()
        .filter(|hook| hook.view.disabled_at.is_none())
        .map(|hook| {
            (
                Target::Webhook(hook.view.id),
                Destination::Subscription(hook),
            )
        })
        .collect();
    for (name, channel) in &policy.channels {
        all.insert(
            Target::Channel(name.clone()),
            Destination::Channel(channel.clone()),
        );
    }
    Ok(all)
}

/// Delivers every target's messages until shutdown: one task per target, started when a
/// subscription appears and stopped when it is deleted; beats `heartbeat` each time it has
/// looked at the set of targets and no queue failed to read or record since (a delivery that
/// cannot be recorded will be sent again: that is a stall to report).
pub async fn deliver(
    store: Arc<dyn Store>,
    policy: Arc<Policy>,
    pace: Pace,
    metrics: Arc<Metrics>,
    heartbeat: Arc<Heartbeat>,
    shutdown: CancellationToken,
) {
    let http = send::client();
    let links = links::Links::new(&policy);
    let rules = Rules {
        retry_initial: pace.retry_initial,
        retry_max: pace.retry_max,
        give_up_after: policy.give_up_after,
    };
    // A receiver may echo anything: no secret of any destination is kept from any answer.
    // The redactor is rebuilt only when the set of secrets changes.
    let redactor: Shared<Redactor> = Arc::default();
    let mut secrets_known: Vec<String> = Vec::new();
    let mut running: BTreeMap<Target, JoinHandle<()>> = BTreeMap::new();
    let troubled = Arc::new(AtomicBool::new(false));
    loop {
        match destinations(store.as_ref(), &policy).await {
            Ok(now) => {
                let mut secrets: Vec<String> =
                    now.values().flat_map(Destination::secrets).collect();
                secrets.sort_unstable();
                secrets.dedup();
                // Rebuilt before this round's new queues start, so a queue's redactor knows
                // every destination there was when it appeared (later ones from the next
                // round on). Tens of milliseconds for a thousand subscriptions: off the runtime.
                if secrets != secrets_known {
                    let forms = secrets.clone();
                    match tokio::task::spawn_blocking(move || Redactor::new(forms)).await {
                        Ok(rebuilt) => {
                            *redactor.write().unwrap_or_else(|e| e.into_inner()) =
                                Arc::new(rebuilt);
                            secrets_known = secrets;
                        }
                        Err(e) => tracing::error!("building the outbox's redactor: {e}"),
                    }
                }
                running.retain(|target, task| {
                    let keep = now.contains_key(target) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for (target, destination) in now {
                    if running.contains_key(&target) {
                        continue;
                    }
                    let queue = Queue {
                        troubled: troubled.clone(),
                        store: store.clone(),
                        http: http.clone(),
                        pace: pace.clone(),
                        metrics: metrics.clone(),
                        target: target.clone(),
                        redactor: redactor.clone(),
                        destination,
                        links: links.clone(),
                        rules,
                    };
                    running.insert(target, tokio::spawn(queue.run(shutdown.clone())));
                }
                if !troubled.swap(false, Ordering::Relaxed) {
                    heartbeat.beat(Utc::now());
                }
            }
            Err(e) => tracing::warn!("listing outbox targets: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pace.poll) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    for (_, task) in running {
        let _ = task.await;
    }
}

/// One target's queue.
struct Queue {
    /// Set when reading the queue or recording an attempt failed.
    troubled: Arc<AtomicBool>,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    pace: Pace,
    metrics: Arc<Metrics>,
    target: Target,
    destination: Destination,
    links: links::Links,
    rules: Rules,
    /// Every destination's secrets, kept out of recorded errors and answers.
    redactor: Shared<Redactor>,
}

/// A value the delivery loop replaces and every queue reads.
type Shared<T> = Arc<RwLock<Arc<T>>>;

impl Queue {
    /// Delivers until shutdown; an attempt in flight then finishes (within the time limit)
    /// and no other starts.
    async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if self.deliver_due().await {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.pace.poll) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Sends the head message if it is due; true when it left the queue (delivered or
    /// given up), so the next one may be due now.
    async fn deliver_due(&self) -> bool {
        let now = Utc::now();
        let mut message = match self.store.outbox_head(&self.target).await {
            Ok(Some(message)) if message.due_at <= now => message,
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(target = %self.target.key(), "reading the outbox: {e}");
                self.troubled.store(true, Ordering::Relaxed);
                return false;
            }
        };
        match self.store.current_link_key().await {
            Ok(Some(key)) => self.links.add(&key, &mut message),
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the link key (sent without a page link): {e}"),
        }
        let started = Instant::now();
        let reply = send::send(&self.http, self.pace.timeout, &self.destination, &message).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        let now = Utc::now();
        let next = self.rules.next(
            Outcome {
                class: reply.class,
                status: reply.status,
                retry_after: reply.retry_after,
            },
            History {
                failures: message.attempts,
                permanent: message.permanent,
                queued_at: message.created_at,
            },
            now,
            matches!(self.target, Target::Webhook(_)),
            fastrand::f64(),
        );
        let redactor = self
            .redactor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let error = reply.error.map(|e| redactor.text_cut(&e, ERROR_SHOWN));
        let answer = reply.answer.map(|a| redactor.text_cut(&a, ANSWER_SHOWN));
        match &next {
            Next::Delivered => {}
            Next::RetryAt(at) => tracing::warn!(
                target = %self.target.key(),
                message = message.id,
                retry_at = %at,
                "not delivered: {}",
                error.as_deref().unwrap_or_default()
            ),
            Next::GiveUp(reason) | Next::Disable(reason) => tracing::error!(
                target = %self.target.key(),
                message = message.id,
                "given up: {reason}: {}",
                error.as_deref().unwrap_or_default()
            ),
        }
        let attempt = Attempt {
            status_code: reply.status,
            latency_ms,
            error,
            class: reply.class,
            answer,
            next: next.clone(),
        };
        if let Err(e) = self
            .store
            .record_attempt(message.id, &self.target, attempt)
            .await
        {
            tracing::warn!("recording a delivery attempt failed: {e}");
            self.troubled.store(true, Ordering::Relaxed);
            return false;
        }
        if let Next::Disable(reason) = &next {
            let entry = NewAudit {
                actor: "outbox".into(),
                role: Role::Admin,
                action: "webhook.disabled".into(),
                target: self.target.key(),
                reason: Some(reason.clone()),
                outcome: "ok".into(),
            };
            if let Err(e) = self.store.audit(entry).await {
                tracing::error!("writing the audit log failed: {e}");
            }
        }
        let (result, left) = match next {
            Next::Delivered => ("delivered", true),
            Next::RetryAt(_) => ("failed", false),
            Next::GiveUp(_) | Next::Disable(_) => ("given_up", true),
        };
        self.metrics.delivery(&self.target, result);
        left
    }
}

/// Characters of an attempt's error and answer kept.
const ERROR_SHOWN: usize = 500;
const ANSWER_SHOWN: usize = 300;
