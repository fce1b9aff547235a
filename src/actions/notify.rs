//! The `notify` step: a message to a Slack incoming webhook or any webhook URL.

use std::time::Duration;

use serde_json::{Value, json};

use super::http::HttpRequest;
use crate::domain::NotifyChannel;

/// Builds the request a notification sends.
pub fn request(
    channel: NotifyChannel,
    url: &str,
    text: &str,
    context: &Value,
    timeout: Duration,
    key: &str,
) -> HttpRequest {
    let body = match channel {
        NotifyChannel::Slack => json!({"text": text}),
        NotifyChannel::Webhook => json!({"text": text, "context": context}),
    };
    HttpRequest {
        method: "POST".into(),
        url: url.to_owned(),
        headers: Default::default(),
        body: Some(body),
        timeout,
        idempotency_key: key.to_owned(),
    }
}
