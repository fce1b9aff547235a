//! The dead-letter queue: entries for failed runs, replay and discard.

use rusqlite::{Connection, OptionalExtension, params};

use super::queue::{self, run_view};
use super::rows::{self, DLQ_COLUMNS, ms};
use super::writer::Tx;
use crate::domain::dead_letter::{
    DlqRefused, DlqStep, added_event, discarded_event, dlq_next, replayed_event,
};
use crate::store::{Replay, Result, StoreError};
use crate::wire::{DlqStatus, DlqView, Page, RunQuery, StepError};

/// Opens the entry of a failed run (reopening it if the run failed before and was retried).
pub fn add(tx: &mut Tx<'_>, run_id: i64, step_id: &str, error: &StepError) -> Result<()> {
    let run = run_view(tx.conn, run_id)?;
    let id: i64 = tx
        .conn
        .prepare_cached(
            "INSERT INTO dlq (run_id, workflow, version, team, step_id, error, status, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'open', ?) \
             ON CONFLICT (run_id) DO UPDATE SET step_id = excluded.step_id, error = excluded.error, status = 'open', \
             created_at = excluded.created_at, closed_at = NULL, closed_by = NULL, close_reason = NULL RETURNING id",
        )?
        .query_row(
            params![run_id, run.workflow, run.version, run.team, step_id, rows::to_json(error), ms(tx.now)],
            |r| r.get(0),
        )?;
    let event = added_event(id, step_id, error);
    tx.emit(event, Some(&run.workflow), Some(run_id))
}

/// Closes a run's entry, if the lifecycle says so, because the run itself was retried.
pub fn close_for_run(tx: &mut Tx<'_>, run_id: i64, actor: &str) -> Result<()> {
    let status: Option<String> = tx
        .conn
        .prepare_cached("SELECT status FROM dlq WHERE run_id = ?")?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    let Some(status) = status.as_deref().and_then(DlqStatus::parse) else {
        return Ok(());
    };
    let next = dlq_next(status, DlqStep::Retry).map_err(|e| refused(run_id, e))?;
    if next != status {
        tx.conn.execute(
            "UPDATE dlq SET status = ?, closed_at = ?, closed_by = ?, close_reason = 'run retried' \
             WHERE run_id = ?",
            params![next.as_str(), ms(tx.now), actor, run_id],
        )?;
    }
    Ok(())
}

/// The lifecycle's refusal as the conflict the API answers.
fn refused(id: i64, refusal: DlqRefused) -> StoreError {
    StoreError::Conflict(format!("dead-letter entry {id} {refusal}"))
}

/// Queues the replay run and closes the entry as replayed.
pub fn replay(tx: &mut Tx<'_>, replay: &Replay) -> Result<i64> {
    let entry = get(tx.conn, replay.dlq_id)?;
    let next = dlq_next(entry.status, DlqStep::Replay).map_err(|e| refused(entry.id, e))?;
    let run_id = queue::create(tx, &replay.run)?;
    if let Some((job, next)) = replay.job {
        tx.conn
            .prepare_cached("UPDATE runs SET job_id = ? WHERE id = ?")?
            .execute(params![job, run_id])?;
        tx.conn
            .prepare_cached("UPDATE jobs SET next = ? WHERE id = ?")?
            .execute(params![next as i64, job])?;
    }
    tx.conn.execute(
        "UPDATE dlq SET status = ?, closed_at = ?, closed_by = ?, close_reason = 'replayed', replay_run = ? \
         WHERE id = ?",
        params![next.as_str(), ms(tx.now), replay.actor, run_id, entry.id],
    )?;
    let event = replayed_event(entry.id, run_id, &replay.actor);
    tx.emit(event, Some(&entry.workflow), Some(entry.run_id))?;
    Ok(run_id)
}

/// Discards an open entry, with the reason a person gave.
pub fn discard(tx: &mut Tx<'_>, id: i64, reason: &str, actor: &str) -> Result<()> {
    let entry = get(tx.conn, id)?;
    let next = dlq_next(entry.status, DlqStep::Discard).map_err(|e| refused(id, e))?;
    tx.conn.execute(
        "UPDATE dlq SET status = ?, closed_at = ?, closed_by = ?, close_reason = ? WHERE id = ?",
        params![next.as_str(), ms(tx.now), actor, reason, id],
    )?;
    let event = discarded_event(id, reason, actor);
    tx.emit(event, Some(&entry.workflow), Some(entry.run_id))
}

/// Entries with their run's record.
fn select() -> String {
    let columns: Vec<String> = DLQ_COLUMNS.split(", ").map(|c| format!("d.{c}")).collect();
    format!(
        "SELECT {}, r.record_id FROM dlq d JOIN runs r ON r.id = d.run_id",
        columns.join(", ")
    )
}

pub fn get(conn: &Connection, id: i64) -> Result<DlqView> {
    conn.prepare_cached(&format!("{} WHERE d.id = ?", select()))?
        .query_row([id], rows::dlq)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("dead-letter entry {id}")))
}

pub fn list(conn: &Connection, query: &RunQuery) -> Result<Page<DlqView>> {
    let select = select();
    let cols = queue::Columns {
        id: "d.id",
        status: "d.status",
        at: "d.created_at",
        error: "d.error",
        search: None,
    };
    queue::page(conn, &select, query, &cols, rows::dlq, |d| d.id)
}

/// Open entries per workflow.
pub fn depths(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let list = conn
        .prepare_cached(
            "SELECT workflow, COUNT(*) FROM dlq WHERE status = 'open' GROUP BY workflow",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}
