//! Outbound webhook subscriptions, and the one outbox (webhook messages and alert
//! notifications, per target) with every delivery attempt.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::domain::delivery::Next;
use crate::store::{Attempt, GivenUp, Message, NewMessage, Result, StoreError, Target, WebhookRow};
use crate::wire::{DeliveryView, WebhookView};

const SELECT: &str = "SELECT w.id, w.url, w.kinds, w.workflow, w.team, w.created_at, \
     (SELECT COUNT(*) FROM messages m WHERE m.target = 'webhook:' || w.id AND m.status = 'pending'), w.secret, \
     w.disabled_at, w.disabled_reason FROM webhooks w";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        view: WebhookView {
            id: r.get(0)?,
            url: r.get(1)?,
            events: rows::json(r.get(2)?).unwrap_or_default(),
            workflow: r.get(3)?,
            team: r.get(4)?,
            created_at: rows::time(r.get(5)?),
            pending: r.get(6)?,
            state: if r.get::<_, Option<i64>>(8)?.is_some() {
                "disabled".into()
            } else {
                "active".into()
            },
            disabled_at: r.get::<_, Option<i64>>(8)?.map(rows::time),
            disabled_reason: r.get(9)?,
        },
        secret: r.get(7)?,
    })
}

pub fn enable(tx: &mut Tx<'_>, id: i64) -> Result<WebhookRow> {
    let found = tx
        .conn
        .query_row(
            &format!("{SELECT} WHERE w.id = ? AND w.deleted_at IS NULL"),
            [id],
            row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))?;
    if found.view.disabled_at.is_none() {
        return Err(StoreError::Conflict(format!(
            "webhook {id} is not disabled"
        )));
    }
    tx.conn.execute(
        "UPDATE webhooks SET disabled_at = NULL, disabled_reason = NULL WHERE id = ?",
        [id],
    )?;
    Ok(tx
        .conn
        .query_row(&format!("{SELECT} WHERE w.id = ?"), [id], row)?)
}

pub fn create(tx: &mut Tx<'_>, request: &WebhookRow) -> Result<WebhookRow> {
    let v = &request.view;
    tx.conn.execute(
        "INSERT INTO webhooks (url, secret, kinds, workflow, team, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        params![v.url, request.secret, serde_json::to_string(&v.events).unwrap_or_default(), v.workflow, v.team, ms(tx.now)],
    )?;
    let id = tx.conn.last_insert_rowid();
    Ok(tx
        .conn
        .query_row(&format!("{SELECT} WHERE w.id = ?"), [id], row)?)
}

pub fn delete(tx: &mut Tx<'_>, id: i64) -> Result<()> {
    let changed = tx.conn.execute(
        "UPDATE webhooks SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
        params![ms(tx.now), id],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("webhook {id}")));
    }
    tx.conn.execute(
        "UPDATE messages SET status = 'dropped' WHERE target = ? AND status = 'pending'",
        [Target::Webhook(id).key()],
    )?;
    Ok(())
}

pub fn list(conn: &Connection) -> Result<Vec<WebhookRow>> {
    let list = conn
        .prepare_cached(&format!(
            "{SELECT} WHERE w.deleted_at IS NULL ORDER BY w.id"
        ))?
        .query_map([], row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

pub fn cursor(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn
        .query_row("SELECT seq FROM cursors WHERE name = ?", [name], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// Queues messages and moves the cursor past the events they came from, atomically.
pub fn enqueue(tx: &mut Tx<'_>, messages: &[NewMessage], cursor: &str, seq: i64) -> Result<()> {
    let now = ms(tx.now);
    let mut insert = tx.conn.prepare_cached(
        "INSERT INTO messages (target, kind, event_seq, payload, status, due_at, created_at) \
         VALUES (?, ?, ?, ?, 'pending', ?, ?)",
    )?;
    for m in messages {
        insert.execute(params![
            Target::Webhook(m.webhook_id).key(),
            m.kind,
            m.event_seq,
            m.payload.to_string(),
            now,
            now
        ])?;
    }
    tx.conn.execute(
        "INSERT INTO cursors (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = ?2",
        params![cursor, seq],
    )?;
    Ok(())
}

/// The oldest pending message of a target (delivered in order, one at a time; given-up
/// messages are not pending, so they hold up nothing).
pub fn head(conn: &Connection, target: &Target) -> Result<Option<Message>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, kind, event_seq, alert_id, reason, payload, attempts, due_at, created_at, external_id, \
             (SELECT COUNT(*) FROM message_attempts a WHERE a.message_id = m.id AND a.class = 'permanent') \
             FROM messages m WHERE target = ? AND status = 'pending' ORDER BY id LIMIT 1",
        )?
        .query_row([target.key()], |r| {
            Ok(Message {
                id: r.get(0)?,
                target: target.clone(),
                kind: r.get(1)?,
                event_seq: r.get(2)?,
                alert_id: r.get(3)?,
                reason: r.get(4)?,
                payload: rows::json(r.get(5)?).unwrap_or_default(),
                attempts: r.get(6)?,
                due_at: rows::time(r.get(7)?),
                created_at: rows::time(r.get(8)?),
                external_id: r.get(9)?,
                permanent: r.get(10)?,
            })
        })
        .optional()?)
}

/// Records one attempt and applies what follows it.
pub fn attempt(tx: &mut Tx<'_>, id: i64, target: &Target, outcome: &Attempt) -> Result<()> {
    let now = ms(tx.now);
    let retry_at = match &outcome.next {
        Next::RetryAt(at) => Some(ms(*at)),
        _ => None,
    };
    tx.conn
        .prepare_cached(
            "INSERT INTO message_attempts (message_id, target, at, status_code, latency_ms, error, class, answer, retry_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            id,
            target.key(),
            now,
            outcome.status_code,
            outcome.latency_ms,
            outcome.error,
            outcome.class.as_str(),
            outcome.answer,
            retry_at
        ])?;
    let give_up = "UPDATE messages SET status = 'given_up', attempts = attempts + 1, given_up_at = ?, \
         give_up_reason = ? WHERE id = ?";
    match &outcome.next {
        Next::Delivered => tx.conn.execute(
            "UPDATE messages SET status = 'delivered', attempts = attempts + 1, delivered_at = ? WHERE id = ?",
            params![now, id],
        )?,
        Next::RetryAt(at) => tx.conn.execute(
            "UPDATE messages SET attempts = attempts + 1, due_at = ? WHERE id = ?",
            params![ms(*at), id],
        )?,
        Next::GiveUp(reason) => tx.conn.execute(give_up, params![now, reason, id])?,
        Next::Disable(reason) => {
            tx.conn.execute(give_up, params![now, reason, id])?;
            if let Target::Webhook(hook) = target {
                tx.conn.execute(
                    "UPDATE webhooks SET disabled_at = ?, disabled_reason = ? WHERE id = ? AND disabled_at IS NULL",
                    params![now, reason, hook],
                )?;
            }
            tx.conn.execute(
                "UPDATE messages SET status = 'given_up', given_up_at = ?, give_up_reason = ? \
                 WHERE target = ? AND status = 'pending'",
                params![
                    now,
                    format!("not sent: its subscription was disabled ({reason})"),
                    target.key()
                ],
            )?
        }
    };
    Ok(())
}

/// Per target, the messages given up at or after `since`, with the latest reason.
pub fn given_up(conn: &Connection, since: DateTime<Utc>) -> Result<Vec<GivenUp>> {
    let list = conn
        .prepare_cached(
            "SELECT target, COUNT(*), MAX(given_up_at), \
             (SELECT give_up_reason FROM messages l WHERE l.target = m.target AND l.status = 'given_up' \
              ORDER BY l.given_up_at DESC, l.id DESC LIMIT 1) \
             FROM messages m WHERE status = 'given_up' AND given_up_at >= ? GROUP BY target ORDER BY target",
        )?
        .query_map([ms(since)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?
        .filter_map(|row| match row {
            Ok((key, count, at, reason)) => Target::parse(&key).map(|target| {
                Ok(GivenUp {
                    target,
                    count,
                    reason: reason.unwrap_or_default(),
                    at: rows::time(at),
                })
            }),
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

pub fn deliveries(conn: &Connection, webhook_id: i64, limit: usize) -> Result<Vec<DeliveryView>> {
    let list = conn
        .prepare_cached(
            "SELECT a.id, a.message_id, COALESCE(m.event_seq, 0), m.kind, a.at, a.status_code, a.latency_ms, a.error, \
             a.class, a.answer, a.retry_at, m.status, m.give_up_reason \
             FROM message_attempts a JOIN messages m ON m.id = a.message_id WHERE a.target = ? \
             ORDER BY a.id DESC LIMIT ?",
        )?
        .query_map(params![Target::Webhook(webhook_id).key(), limit as i64], |r| {
            Ok(DeliveryView {
                id: r.get(0)?,
                message: r.get(1)?,
                event_seq: r.get(2)?,
                kind: r.get(3)?,
                at: rows::time(r.get(4)?),
                status_code: r.get(5)?,
                latency_ms: r.get(6)?,
                error: r.get(7)?,
                class: r.get(8)?,
                answer: r.get(9)?,
                retry_at: r.get::<_, Option<i64>>(10)?.map(rows::time),
                message_status: r.get(11)?,
                give_up_reason: r.get(12)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}
