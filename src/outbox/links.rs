//! The signed page link each message carries (`links.page`): made as the message is sent,
//! never stored, the same on every try of one message (it expires `link_ttl` after the
//! message was queued), signed with the current link key.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::Value;

use crate::domain::clock::{earlier_or_min, later_or_max};
use crate::domain::config::Policy;
use crate::domain::link::{self, LinkKey, Scope};
use crate::store::Message;

/// Where links point and how long they open.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
    ttl: Duration,
}

impl Links {
    pub fn new(policy: &Policy) -> Self {
        Self {
            base: policy.base_url().to_owned(),
            ttl: policy.link_ttl,
        }
    }

    /// Adds `links.page` to the payload of a notification (its alert's page, failures since
    /// the payload's `since`) or of a webhook message about a run (the run's page). Other
    /// messages are left as they are.
    pub fn add(&self, key: &LinkKey, message: &mut Message) {
        let Some(scope) = scope(message) else {
            return;
        };
        let expires_at = later_or_max(message.created_at, self.ttl)
            .duration_trunc(TimeDelta::seconds(1))
            .unwrap_or(message.created_at);
        let url = link::url(&self.base, key, scope, expires_at);
        let Some(payload) = message.payload.as_object_mut() else {
            return;
        };
        let links = payload
            .entry("links")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(links) = links.as_object_mut() {
            links.insert("page".into(), Value::String(url));
        }
    }
}

/// What a message's link opens, if anything.
fn scope(message: &Message) -> Option<Scope> {
    if let Some(id) = message.alert_id {
        let since = message
            .payload
            .get("since")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_else(|| earlier_or_min(message.created_at, Duration::from_secs(3600)));
        return Some(Scope::Alert { id, since });
    }
    let run = message.payload.pointer("/data/run_id")?.as_i64()?;
    Some(Scope::Run { id: run })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Target;
    use serde_json::json;

    fn message(alert_id: Option<i64>, payload: Value) -> Message {
        Message {
            id: 1,
            target: Target::Channel("slack".into()),
            external_id: None,
            kind: "notification".into(),
            event_seq: None,
            alert_id,
            reason: None,
            payload,
            attempts: 0,
            permanent: 0,
            due_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            created_at: DateTime::from_timestamp_millis(1_800_000_000_250).unwrap(),
        }
    }

    fn key() -> LinkKey {
        LinkKey {
            id: 3,
            secret: [7; 32],
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
            retired_at: None,
        }
    }

    #[test]
    fn a_notification_links_its_alert_and_a_run_event_its_run() {
        let links = Links::new(&Policy {
            public_url: Some("https://acp.example.com".into()),
            ..Policy::default()
        });
        let mut notice = message(
            Some(7),
            json!({"since": "2027-01-15T07:00:00Z", "links": {"runs": "x"}}),
        );
        links.add(&key(), &mut notice);
        let page = notice.payload["links"]["page"].as_str().unwrap();
        let token = page.strip_prefix("https://acp.example.com/a/").unwrap();
        let claims = link::parse(token).unwrap().claims;
        assert_eq!(
            claims.scope,
            Scope::Alert {
                id: 7,
                since: "2027-01-15T07:00:00Z".parse().unwrap()
            }
        );
        assert_eq!(
            claims.expires_at,
            DateTime::from_timestamp(1_800_000_000 + 7 * 86_400, 0).unwrap(),
            "a week after it was queued, whatever try this is"
        );
        assert_eq!(notice.payload["links"]["runs"], "x");
        let mut again = message(
            Some(7),
            json!({"since": "2027-01-15T07:00:00Z", "links": {"runs": "x"}}),
        );
        links.add(&key(), &mut again);
        assert_eq!(
            again.payload, notice.payload,
            "every try carries the same link"
        );

        let mut event = message(None, json!({"type": "run.failed", "data": {"run_id": 42}}));
        links.add(&key(), &mut event);
        let page = event.payload["links"]["page"].as_str().unwrap();
        let token = page.strip_prefix("https://acp.example.com/r/").unwrap();
        assert_eq!(
            link::parse(token).unwrap().claims.scope,
            Scope::Run { id: 42 }
        );
        let mut other = message(None, json!({"type": "workflow.published", "data": {}}));
        links.add(&key(), &mut other);
        assert_eq!(other.payload.get("links"), None);
    }
}
