//! Holds (pauses of a workflow, team or host) and the runs they hold: placing, releasing with
//! a drain, waking runs held on a limit, counting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::domain::policy::{HoldScope, NewHold, hold_key, released_event};
use crate::store::{HeldRuns, Result, StoreError};
use crate::wire::{HoldSource, HoldView};

const HOLD_COLUMNS: &str = "h.id, h.scope, h.reason, h.source, h.created_by, h.created_at, h.until, \
     h.drain_rate, h.released_at, h.released_by, \
     (SELECT COUNT(*) FROM runs INDEXED BY runs_held WHERE status = 'held' AND held_on IN \
      ('hold:' || h.id, CASE WHEN h.source = 'backpressure' THEN h.scope END))";

fn hold(row: &rusqlite::Row<'_>) -> rusqlite::Result<HoldView> {
    Ok(HoldView {
        id: row.get(0)?,
        scope: row.get(1)?,
        reason: row.get(2)?,
        source: rows::parsed(row.get(3)?, HoldSource::parse, "hold source")?,
        created_by: row.get(4)?,
        created_at: rows::time(row.get(5)?),
        until: row.get::<_, Option<i64>>(6)?.map(rows::time),
        drain_rate: row.get(7)?,
        released_at: row.get::<_, Option<i64>>(8)?.map(rows::time),
        released_by: row.get(9)?,
        held_runs: row.get(10)?,
    })
}

/// Places a hold; a known dedupe key answers the hold placed with it.
pub fn create(tx: &mut Tx<'_>, new: &NewHold) -> Result<HoldView> {
    if let Some(key) = &new.dedupe_key {
        let existing: Option<i64> = tx
            .conn
            .prepare_cached("SELECT id FROM holds WHERE dedupe_key = ?")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        if let Some(id) = existing {
            return get(tx.conn, id);
        }
    }
    tx.conn
        .prepare_cached(
            "INSERT INTO holds (scope, reason, source, created_by, created_at, until, drain_rate, dedupe_key) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            new.scope.to_string(),
            new.reason,
            new.source.as_str(),
            new.actor,
            ms(tx.now),
            new.until.map(ms),
            new.drain_rate.map(|r| r.to_string()),
            new.dedupe_key,
        ])?;
    let id = tx.conn.last_insert_rowid();
    tx.emit(new.created_event(id), new.scope.workflow(), None)?;
    get(tx.conn, id)
}

/// Releases a hold: its runs fall due from `at`, oldest first, one every `interval` (all at
/// once without one). Answers the hold as it was released.
pub fn release(
    tx: &mut Tx<'_>,
    id: i64,
    actor: &str,
    at: DateTime<Utc>,
    interval: Option<Duration>,
) -> Result<HoldView> {
    let hold = get(tx.conn, id)?;
    if let Some(when) = hold.released_at {
        return Err(StoreError::Conflict(format!(
            "hold {id} was already released at {} by {}",
            when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            hold.released_by.as_deref().unwrap_or("?")
        )));
    }
    tx.conn.execute(
        "UPDATE holds SET released_at = ?, released_by = ? WHERE id = ?",
        params![ms(tx.now), actor, id],
    )?;
    let runs = drain(tx, &hold_key(id), at, interval)?;
    let scope = HoldScope::parse(&hold.scope).ok();
    let workflow = scope.as_ref().and_then(HoldScope::workflow);
    tx.emit(released_event(&hold, actor, runs as i64), workflow, None)?;
    get(tx.conn, id)
}

/// Makes the runs held on `on` fall due from `at`, oldest first, `interval` apart; answers
/// how many.
fn drain(
    tx: &mut Tx<'_>,
    on: &str,
    at: DateTime<Utc>,
    interval: Option<Duration>,
) -> Result<usize> {
    let step_ms = interval.map_or(0.0, |i| i.as_secs_f64() * 1000.0);
    let n = tx
        .conn
        .prepare_cached(
            "UPDATE runs SET due_at = ?1 + CAST(q.rank * ?2 AS INTEGER) \
             FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS rank FROM runs INDEXED BY runs_held \
                   WHERE status = 'held' AND held_on = ?3) AS q \
             WHERE runs.id = q.id",
        )?
        .execute(params![ms(at), step_ms, on])?;
    Ok(n)
}

/// True when `on` names a hold (`hold:<id>`) that is released already.
pub fn released(conn: &Connection, on: &str) -> Result<bool> {
    let Some(id) = on
        .strip_prefix("hold:")
        .and_then(|id| id.parse::<i64>().ok())
    else {
        return Ok(false);
    };
    let released = conn
        .prepare_cached("SELECT released_at IS NOT NULL FROM holds WHERE id = ?")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(released.unwrap_or(false))
}

/// Makes the `n` oldest runs held on `on` due at `at` (a limit's slot freed); answers how many.
pub fn wake(tx: &mut Tx<'_>, on: &str, n: usize, at: DateTime<Utc>) -> Result<usize> {
    let woken = tx
        .conn
        .prepare_cached(
            "UPDATE runs SET due_at = ?1 WHERE id IN (SELECT id FROM runs INDEXED BY runs_held \
             WHERE status = 'held' AND held_on = ?2 AND (due_at IS NULL OR due_at > ?1) ORDER BY id LIMIT ?3)",
        )?
        .execute(params![ms(at), on, i64::try_from(n).unwrap_or(i64::MAX)])?;
    Ok(woken)
}

pub fn get(conn: &Connection, id: i64) -> Result<HoldView> {
    conn.prepare_cached(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds h WHERE h.id = ?"
    ))?
    .query_row([id], hold)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("hold {id}")))
}

/// The holds not released yet (whatever their `until`), oldest first, or with `released`
/// also the newest `limit` released ones.
pub fn list(conn: &Connection, released: bool, limit: usize) -> Result<Vec<HoldView>> {
    let mut holds: Vec<HoldView> = conn
        .prepare_cached(&format!(
            "SELECT {HOLD_COLUMNS} FROM holds h INDEXED BY holds_open WHERE h.released_at IS NULL ORDER BY h.id"
        ))?
        .query_map([], hold)?
        .collect::<rusqlite::Result<_>>()?;
    if released {
        let done: Vec<HoldView> = conn
            .prepare_cached(&format!(
                "SELECT {HOLD_COLUMNS} FROM holds h WHERE h.released_at IS NOT NULL ORDER BY h.id DESC LIMIT ?"
            ))?
            .query_map([limit as i64], hold)?
            .collect::<rusqlite::Result<_>>()?;
        holds.extend(done);
    }
    Ok(holds)
}

const HELD_BY_WORKFLOW: &str = "SELECT workflow, COUNT(*), MIN(held_since) FROM runs \
     INDEXED BY runs_held_workflow WHERE status = 'held' GROUP BY workflow ORDER BY workflow";

/// Runs held now per workflow, whatever holds them (walks the held runs only).
pub fn held_runs(conn: &Connection) -> Result<Vec<HeldRuns>> {
    let list = conn
        .prepare_cached(HELD_BY_WORKFLOW)?
        .query_map([], |r| {
            Ok(HeldRuns {
                workflow: r.get(0)?,
                runs: r.get(1)?,
                since: rows::time(r.get::<_, Option<i64>>(2)?.unwrap_or(0)),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held runs are counted from an index alone, whatever else the runs table holds.
    #[test]
    fn held_runs_are_counted_from_a_covering_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {HELD_BY_WORKFLOW}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains("COVERING INDEX runs_held_workflow"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
