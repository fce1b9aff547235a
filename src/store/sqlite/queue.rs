//! Queueing runs and reading them back; shared by the run and dead-letter modules.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::rows::{self, ATTEMPT_COLUMNS, RUN_COLUMNS, ms};
use super::writer::Tx;
use crate::domain::NewRun;
use crate::store::{ListFilter, Result, StoreError};
use crate::wire::{AttemptView, EventKind, RunDetail, RunView};

/// Queues a run; a known dedupe key answers the existing run instead.
pub fn create(tx: &mut Tx<'_>, run: &NewRun) -> Result<i64> {
    if let Some(key) = &run.dedupe_key {
        let existing = tx
            .conn
            .prepare_cached("SELECT id FROM runs WHERE dedupe_key = ?")?
            .query_row([key], |r| r.get::<_, i64>(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    let prefix: Option<String> = match (run.carry_from_origin, run.origin_run) {
        (true, Some(origin)) => Some(tx.conn.query_row(
            "SELECT COALESCE(idem_prefix, 'run-' || id) FROM runs WHERE id = ?",
            [origin],
            |r| r.get(0),
        )?),
        _ => None,
    };
    let now = ms(tx.now);
    tx.conn
        .prepare_cached(
            "INSERT INTO runs (workflow, version, team, status, mode, trigger_kind, trigger, record_id, \
             origin_run, idem_prefix, dedupe_key, queued_at, due_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            run.workflow,
            run.version,
            run.team,
            run.mode.as_str(),
            run.trigger_kind.as_str(),
            run.trigger.to_string(),
            run.record_id,
            run.origin_run,
            prefix,
            run.dedupe_key,
            now,
            now
        ])?;
    let id = tx.conn.last_insert_rowid();
    if let (Some(_), Some(origin)) = (&prefix, run.origin_run) {
        tx.conn.execute(
            "INSERT INTO attempts (run_id, step_index, step_id, number, status, idempotency_key, input, output, \
             error, detail, started_at, finished_at, carried_from) \
             SELECT ?, step_index, step_id, number, status, idempotency_key, input, output, error, detail, \
             started_at, finished_at, run_id FROM attempts WHERE run_id = ? AND status = 'succeeded'",
            params![id, origin],
        )?;
    }
    let data = json!({
        "trigger_kind": run.trigger_kind,
        "version": run.version,
        "record_id": run.record_id,
        "origin_run": run.origin_run,
    });
    tx.emit(EventKind::RunQueued, Some(&run.workflow), Some(id), data)?;
    Ok(id)
}

pub fn run_view(conn: &Connection, run_id: i64) -> Result<RunView> {
    conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"))?
        .query_row([run_id], rows::run)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))
}

pub fn attempts(conn: &Connection, run_id: i64) -> Result<Vec<AttemptView>> {
    let list = conn
        .prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? ORDER BY id"
        ))?
        .query_map([run_id], rows::attempt)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

pub fn detail(conn: &Connection, run_id: i64) -> Result<RunDetail> {
    Ok(RunDetail {
        run: run_view(conn, run_id)?,
        attempts: attempts(conn, run_id)?,
    })
}

pub fn list(conn: &Connection, filter: &ListFilter) -> Result<Vec<RunView>> {
    filtered(
        conn,
        &format!("SELECT {RUN_COLUMNS} FROM runs"),
        filter,
        rows::run,
    )
}

/// Newest first, by workflow and status, from a `SELECT ... FROM table` of runs or entries.
pub fn filtered<T>(
    conn: &Connection,
    select: &str,
    filter: &ListFilter,
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let sql = format!(
        "{select} WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3"
    );
    let limit = filter.limit.unwrap_or(100) as i64;
    let list = conn
        .prepare_cached(&sql)?
        .query_map(params![filter.workflow, filter.status, limit], row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}
