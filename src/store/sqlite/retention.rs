//! Retention: deleting finished runs (with their attempts, closed dead letters, coverage and
//! search entries), old events and minute rollups, a bounded batch per write so the writer
//! never stalls behind a prune.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::rows::ms;
use super::writer::Tx;
use crate::domain::rollup::MINUTE_MS;
use crate::store::{PrunedRuns, Result};

/// Looks at the `limit` runs after id `after` and deletes those that finished before `before`
/// and have no open dead letter. The pass is over (`next: None`) at the first run queued at or
/// after `before`, or at the end of the table.
///
/// The newest run, and the runs holding the newest dead letter and the newest attempt, always
/// stay: SQLite gives a new row the largest id plus one, so deleting the largest would hand
/// its id (and the idempotency keys made from it) to the next run.
pub fn prune_runs(
    tx: &mut Tx<'_>,
    before: DateTime<Utc>,
    after: i64,
    limit: usize,
) -> Result<PrunedRuns> {
    let before = ms(before);
    let scanned: Vec<(i64, bool, bool)> = tx
        .conn
        .prepare_cached(
            "SELECT id, queued_at >= ?2, \
             finished_at < ?2 AND status IN ('succeeded', 'failed', 'cancelled') \
             AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.run_id = runs.id AND d.status = 'open') \
             AND id NOT IN ((SELECT MAX(id) FROM runs), \
                 (SELECT COALESCE((SELECT run_id FROM dlq ORDER BY id DESC LIMIT 1), 0)), \
                 (SELECT COALESCE((SELECT run_id FROM attempts ORDER BY id DESC LIMIT 1), 0))) \
             FROM runs WHERE id > ?1 ORDER BY id LIMIT ?3",
        )?
        .query_map(params![after, before, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut deleted = 0;
    let mut next = None;
    for (id, recent, done) in &scanned {
        if *recent {
            next = None;
            break;
        }
        next = Some(*id);
        if !done {
            continue;
        }
        delete_run(tx, *id)?;
        deleted += 1;
    }
    if scanned.len() < limit {
        next = None;
    }
    Ok(PrunedRuns { deleted, next })
}

/// Deletes one run with its attempts, dead letter, alert coverage and incident link.
fn delete_run(tx: &mut Tx<'_>, id: i64) -> Result<()> {
    for sql in [
        "DELETE FROM attempts WHERE run_id = ?",
        "DELETE FROM dlq WHERE run_id = ?",
        "DELETE FROM coverage WHERE run_id = ?",
        "DELETE FROM incident_runs WHERE run_id = ?",
        "DELETE FROM runs WHERE id = ?",
    ] {
        tx.conn.prepare_cached(sql)?.execute([id])?;
    }
    Ok(())
}

/// Deletes up to `limit` test runs queued before `before`, oldest first (test runs are few:
/// the scan walks only their index), keeping the ids
/// [`prune_runs`] keeps; answers how many went.
pub fn prune_test_runs(tx: &mut Tx<'_>, before: DateTime<Utc>, limit: usize) -> Result<usize> {
    let ids: Vec<i64> = tx
        .conn
        .prepare_cached(
            "SELECT id FROM runs INDEXED BY runs_test WHERE mode = 'test' AND queued_at < ?1 \
             AND id NOT IN ((SELECT MAX(id) FROM runs), \
                 (SELECT COALESCE((SELECT run_id FROM attempts ORDER BY id DESC LIMIT 1), 0))) \
             ORDER BY id LIMIT ?2",
        )?
        .query_map(params![ms(before), limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &ids {
        delete_run(tx, *id)?;
    }
    Ok(ids.len())
}

/// Deletes, among the `limit` oldest events, those older than `before` that every cursor has
/// passed, never the newest; answers how many went (fewer than `limit`: nothing older is left
/// to delete now).
pub fn prune_events(tx: &mut Tx<'_>, before: DateTime<Utc>, limit: usize) -> Result<usize> {
    Ok(tx.conn.prepare_cached(
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?2) AND at < ?1 \
         AND seq < (SELECT MAX(seq) FROM events) \
         AND seq <= (SELECT COALESCE(MIN(seq), 9223372036854775807) FROM cursors)",
    )?
    .execute(params![ms(before), limit as i64])?)
}

/// Deletes minute rollups that started before `before` (hour rows stay: long windows and
/// history read them once the runs they sum are gone).
pub fn prune_minutes(tx: &mut Tx<'_>, before: DateTime<Utc>) -> Result<usize> {
    Ok(tx
        .conn
        .prepare_cached("DELETE FROM rollups WHERE grain = ? AND start < ?")?
        .execute(params![MINUTE_MS, ms(before)])?)
}
