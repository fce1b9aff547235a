//! Alert rules created through the API, notifications with their delivery attempts, and which
//! notification covered which failed run.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::store::{NewNotice, Result, StoreError, StoredRule, Target, UnnotifiedCount};
use crate::wire::{NotificationAttempt, NotificationView};

const RULE: &str = "SELECT id, scope, name, definition, created_at, created_by FROM alert_rules";

fn rule(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRule> {
    Ok(StoredRule {
        id: r.get(0)?,
        scope: r.get(1)?,
        name: r.get(2)?,
        definition: rows::json(r.get(3)?).unwrap_or_default(),
        created_at: rows::time(r.get(4)?),
        created_by: r.get(5)?,
    })
}

pub fn rules(conn: &Connection) -> Result<Vec<StoredRule>> {
    let list = conn
        .prepare_cached(&format!("{RULE} ORDER BY id"))?
        .query_map([], rule)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

/// Creates a rule, or replaces the one with the same scope and name.
pub fn put_rule(tx: &mut Tx<'_>, new: &StoredRule) -> Result<StoredRule> {
    tx.conn.execute(
        "INSERT INTO alert_rules (scope, name, definition, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (scope, name) DO UPDATE SET definition = ?3, created_at = ?4, created_by = ?5",
        params![new.scope, new.name, new.definition.to_string(), ms(tx.now), new.created_by],
    )?;
    Ok(tx.conn.query_row(
        &format!("{RULE} WHERE scope = ? AND name = ?"),
        params![new.scope, new.name],
        rule,
    )?)
}

pub fn delete_rule(tx: &mut Tx<'_>, id: i64) -> Result<StoredRule> {
    let found = tx
        .conn
        .query_row(&format!("{RULE} WHERE id = ?"), [id], rule)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("rule {id}")))?;
    tx.conn
        .execute("DELETE FROM alert_rules WHERE id = ?", [id])?;
    Ok(found)
}

/// Failed live runs of `workflow` that finished at or after `since` and that no notification
/// of this alert has covered yet.
pub fn uncovered(
    conn: &Connection,
    alert_id: i64,
    workflow: &str,
    since: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let ids = conn
        .prepare_cached(
            "SELECT r.id FROM runs r WHERE r.workflow = ?1 AND r.status = 'failed' AND r.mode = 'live' \
             AND r.finished_at >= ?2 AND NOT EXISTS \
             (SELECT 1 FROM coverage c WHERE c.alert_id = ?3 AND c.run_id = r.id) ORDER BY r.id",
        )?
        .query_map(params![workflow, ms(since), alert_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Queues one notification per channel in the outbox, records the runs it covers and when
/// the alert was notified.
pub fn notify(tx: &mut Tx<'_>, notice: &NewNotice) -> Result<Vec<i64>> {
    let now = ms(tx.now);
    let mut ids = Vec::with_capacity(notice.channels.len());
    for channel in &notice.channels {
        tx.conn.execute(
            "INSERT INTO messages (target, kind, alert_id, reason, payload, status, due_at, created_at) \
             VALUES (?, 'notification', ?, ?, ?, 'pending', ?, ?)",
            params![
                Target::Channel(channel.clone()).key(),
                notice.alert_id,
                notice.reason,
                notice.payload.to_string(),
                now,
                now
            ],
        )?;
        let id = tx.conn.last_insert_rowid();
        let mut cover = tx.conn.prepare_cached(
            "INSERT OR IGNORE INTO coverage (run_id, notification_id, alert_id) VALUES (?, ?, ?)",
        )?;
        for run in &notice.runs {
            cover.execute(params![run, id, notice.alert_id])?;
        }
        ids.push(id);
    }
    tx.conn.execute(
        "UPDATE alerts SET notified_at = ? WHERE id = ?",
        params![now, notice.alert_id],
    )?;
    Ok(ids)
}

/// Notifications newest first, each with its attempts.
pub fn list(conn: &Connection, alert: Option<i64>, limit: usize) -> Result<Vec<NotificationView>> {
    let mut list: Vec<NotificationView> = conn
        .prepare_cached(
            "SELECT n.id, n.alert_id, substr(n.target, 9), n.reason, n.status, n.created_at, n.delivered_at, \
             (SELECT COUNT(*) FROM coverage c WHERE c.notification_id = n.id), n.payload, n.given_up_at, n.give_up_reason \
             FROM messages n WHERE n.alert_id IS NOT NULL AND (?1 IS NULL OR n.alert_id = ?1) \
             ORDER BY n.id DESC LIMIT ?2",
        )?
        .query_map(params![alert, limit as i64], |r| {
            Ok(NotificationView {
                id: r.get(0)?,
                alert_id: r.get(1)?,
                channel: r.get(2)?,
                reason: r.get(3)?,
                status: r.get(4)?,
                created_at: rows::time(r.get(5)?),
                delivered_at: r.get::<_, Option<i64>>(6)?.map(rows::time),
                runs_covered: r.get(7)?,
                payload: rows::json(r.get(8)?).unwrap_or_default(),
                given_up_at: r.get::<_, Option<i64>>(9)?.map(rows::time),
                give_up_reason: r.get(10)?,
                attempts: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let Some(oldest) = list.last().map(|n| n.id) else {
        return Ok(list);
    };
    let newest = list[0].id;
    let mut attempts: HashMap<i64, Vec<NotificationAttempt>> = HashMap::new();
    let mut query = conn.prepare_cached(
        "SELECT message_id, at, status_code, latency_ms, error, class, answer, retry_at FROM message_attempts \
         WHERE message_id BETWEEN ? AND ? AND target LIKE 'channel:%' ORDER BY id",
    )?;
    let rows = query.query_map(params![oldest, newest], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            NotificationAttempt {
                at: rows::time(r.get(1)?),
                status_code: r.get(2)?,
                latency_ms: r.get(3)?,
                error: r.get(4)?,
                class: r.get(5)?,
                answer: r.get(6)?,
                retry_at: r.get::<_, Option<i64>>(7)?.map(rows::time),
            },
        ))
    })?;
    for row in rows {
        let (id, attempt) = row?;
        attempts.entry(id).or_default().push(attempt);
    }
    for n in &mut list {
        n.attempts = attempts.remove(&n.id).unwrap_or_default();
    }
    Ok(list)
}

/// Per workflow: failed live runs that finished in `since..=until - within`, and how many of
/// them no delivered notification covered within `within` of failing.
pub fn unnotified(
    conn: &Connection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    within: std::time::Duration,
) -> Result<Vec<UnnotifiedCount>> {
    let within = within.as_millis() as i64;
    let list = conn
        .prepare_cached(
            "SELECT r.workflow, COUNT(*), SUM(NOT EXISTS (SELECT 1 FROM coverage c \
               JOIN messages n ON n.id = c.notification_id \
               WHERE c.run_id = r.id AND n.status = 'delivered' AND n.delivered_at <= r.finished_at + ?3)) \
             FROM runs r WHERE r.status = 'failed' AND r.mode = 'live' \
             AND r.finished_at >= ?1 AND r.finished_at <= ?2 - ?3 GROUP BY r.workflow ORDER BY r.workflow",
        )?
        .query_map(params![ms(since), ms(until), within], |r| {
            Ok(UnnotifiedCount {
                workflow: r.get(0)?,
                failed: r.get(1)?,
                unnotified: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}
