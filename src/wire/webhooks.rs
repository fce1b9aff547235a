//! Outbound webhook subscriptions and their delivery attempts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The body of an outbound webhook message, after Standard Webhooks' `{type, timestamp,
/// data}`: `type` is the event's kind, `data` the event as the stream sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    #[serde(rename = "type")]
    pub kind: super::EventKind,
    pub timestamp: DateTime<Utc>,
    pub data: super::Event,
}

impl WebhookPayload {
    /// The message for `event`.
    pub fn of(event: &super::Event) -> Self {
        Self {
            kind: event.kind(),
            timestamp: event.at,
            data: event.clone(),
        }
    }
}

/// `POST /webhooks`: deliver these event kinds (optionally of one workflow or team) to a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    pub url: String,
    /// Event kinds such as `run.failed`, or a prefix with `*` such as `run.*`.
    #[serde(default = "default_webhook_kinds")]
    pub events: Vec<String>,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
}

fn default_webhook_kinds() -> Vec<String> {
    ["run.succeeded", "run.failed", "run.cancelled"]
        .map(String::from)
        .to_vec()
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Deliveries waiting (including ones being retried).
    pub pending: i64,
    /// `active`, or `disabled`: the receiver answered `410 Gone`, so nothing is queued or sent
    /// until an admin enables it again (`POST /webhooks/{id}/enable`).
    #[serde(default = "active")]
    pub state: String,
    #[serde(default)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

fn active() -> String {
    "active".into()
}

/// A subscription just created, with its signing secret (`whsec_...`), shown this once (and
/// never by `Debug`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub view: WebhookView,
    pub secret: String,
}

impl std::fmt::Debug for WebhookCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCreated")
            .field("view", &self.view)
            .field("secret", &super::REDACTED)
            .finish()
    }
}

/// One delivery attempt of one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    pub id: i64,
    /// The message (`webhook-id: msg_<message>`).
    pub message: i64,
    pub event_seq: i64,
    pub kind: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    #[serde(default)]
    pub error: Option<String>,
    /// `delivered`, `transient`, `permanent` or `gone` (unset for attempts made before ACP
    /// classified them).
    #[serde(default)]
    pub class: Option<String>,
    /// The first bytes of the receiver's answer (or the SMTP reply), secrets redacted.
    #[serde(default)]
    pub answer: Option<String>,
    /// When the message is tried again; unset when this attempt delivered it or ended it.
    #[serde(default)]
    pub retry_at: Option<DateTime<Utc>>,
    /// The message now: `pending`, `delivered`, `given_up` or `dropped` (its subscription
    /// was deleted).
    #[serde(default)]
    pub message_status: String,
    /// Why the message was given up.
    #[serde(default)]
    pub give_up_reason: Option<String>,
}
