//! Alerts and their lifecycle: pending -> firing -> resolved, acknowledgements and silences.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::domain::alert::{AlertStep, alert_next};
use crate::store::{AlertChange, Result, StoreError};
use crate::wire::{AlertState, AlertView};

const SELECT: &str = "SELECT id, rule, workflow, severity, state, opened_at, fired_at, resolved_at, acked_at, \
     acked_by, silenced_until, detail, notified_at FROM alerts";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertView> {
    let time = |i: usize| -> rusqlite::Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(rows::time))
    };
    Ok(AlertView {
        id: r.get(0)?,
        rule: r.get(1)?,
        workflow: r.get(2)?,
        severity: r.get(3)?,
        state: rows::parsed(r.get(4)?, AlertState::parse, "alert state")?,
        opened_at: rows::time(r.get(5)?),
        fired_at: time(6)?,
        resolved_at: time(7)?,
        acked_at: time(8)?,
        acked_by: r.get(9)?,
        silenced_until: time(10)?,
        detail: rows::json(r.get(11)?).unwrap_or_default(),
        notified_at: time(12)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<AlertView> {
    conn.prepare_cached(&format!("{SELECT} WHERE id = ?"))?
        .query_row([id], row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("alert {id}")))
}

/// Alerts newest first, optionally in one state.
pub fn list(conn: &Connection, state: Option<AlertState>, limit: usize) -> Result<Vec<AlertView>> {
    let list = conn
        .prepare_cached(&format!(
            "{SELECT} WHERE (?1 IS NULL OR state = ?1) ORDER BY id DESC LIMIT ?2"
        ))?
        .query_map(params![state.map(AlertState::as_str), limit as i64], row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

/// Pending and firing alerts.
pub fn active(conn: &Connection) -> Result<Vec<AlertView>> {
    let list = conn
        .prepare_cached(&format!(
            "{SELECT} WHERE state IN ('pending', 'firing') ORDER BY id"
        ))?
        .query_map([], row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

/// Applies one change and appends its event.
pub fn apply(tx: &mut Tx<'_>, change: &AlertChange) -> Result<AlertView> {
    let now = ms(tx.now);
    if let Some((id, step)) = change.target() {
        allowed(tx, id, step)?;
    }
    let id = match change {
        AlertChange::Open {
            rule,
            workflow,
            severity,
            firing,
            detail,
        } => {
            let state = if *firing {
                AlertState::Firing
            } else {
                AlertState::Pending
            };
            tx.conn.execute(
                "INSERT INTO alerts (rule, workflow, severity, state, opened_at, fired_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![rule, workflow, severity, state.as_str(), now, firing.then_some(now), detail.to_string()],
            )?;
            tx.conn.last_insert_rowid()
        }
        AlertChange::Fire { id, detail } => {
            tx.conn.execute(
                "UPDATE alerts SET state = 'firing', fired_at = ?2, detail = ?3 WHERE id = ?1",
                params![id, now, detail.to_string()],
            )?;
            *id
        }
        AlertChange::Update { id, detail } => {
            tx.conn.execute(
                "UPDATE alerts SET detail = ?2 WHERE id = ?1",
                params![id, detail.to_string()],
            )?;
            *id
        }
        AlertChange::Resolve { id } => {
            tx.conn.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            *id
        }
        AlertChange::Ack { id, actor } => {
            tx.conn.execute(
                "UPDATE alerts SET acked_at = ?2, acked_by = ?3 WHERE id = ?1",
                params![id, now, actor],
            )?;
            *id
        }
        AlertChange::Silence {
            id,
            until,
            actor: _,
        } => {
            tx.conn.execute(
                "UPDATE alerts SET silenced_until = ?2 WHERE id = ?1",
                params![id, ms(*until)],
            )?;
            *id
        }
    };
    let alert = get(tx.conn, id)?;
    if let Some(event) = change.event(&alert) {
        tx.emit(event, Some(&alert.workflow), None)?;
    }
    Ok(alert)
}

/// Asks the alert lifecycle ([`alert_next`]) whether `step` may happen to alert `id` now.
///
/// # Errors
/// [`StoreError::NotFound`] for no such alert; [`StoreError::Conflict`] naming its state
/// when the lifecycle refuses.
fn allowed(tx: &mut Tx<'_>, id: i64, step: AlertStep) -> Result<()> {
    let alert = get(tx.conn, id)?;
    alert_next(alert.state, step)
        .map(drop)
        .map_err(|refused| StoreError::Conflict(format!("alert {id} {refused}")))
}
