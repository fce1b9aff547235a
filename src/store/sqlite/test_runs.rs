//! Test runs: stored so they can be read like any run, but never queued, claimed, counted or
//! announced (no event, no rollup tally, no dead letter).

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::domain::NewRun;
use crate::store::{Recorded, Result, StoreError, TestRunEnd};

/// Inserts a test run as `running` with no lease and no due time.
pub fn begin(tx: &mut Tx<'_>, run: &NewRun) -> Result<i64> {
    let now = ms(tx.now);
    tx.conn
        .prepare_cached(
            "INSERT INTO runs (workflow, version, team, status, mode, trigger_kind, trigger, record_id, \
             queued_at, started_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            run.workflow,
            run.version,
            run.team,
            run.mode.as_str(),
            run.trigger_kind.as_str(),
            run.trigger.to_string(),
            run.record_id,
            now,
            now
        ])?;
    Ok(tx.conn.last_insert_rowid())
}

/// Stores a test run's steps and ends it.
pub fn end(tx: &mut Tx<'_>, run_id: i64, end: &TestRunEnd) -> Result<()> {
    let updated = tx
        .conn
        .prepare_cached(
            "UPDATE runs SET status = ?, finished_at = ?, error = ?, failed_step = ?, attempts = ? \
             WHERE id = ? AND mode = 'test' AND status = 'running'",
        )?
        .execute(params![
            end.status.as_str(),
            ms(tx.now),
            end.error.as_ref().map(rows::to_json),
            end.failed_step,
            end.attempts.len() as i64,
            run_id
        ])?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("running test run {run_id}")));
    }
    for attempt in &end.attempts {
        tx.conn
            .prepare_cached(
                "INSERT INTO attempts (run_id, step_index, step_id, number, status, idempotency_key, input, \
                 output, error, detail, started_at, finished_at) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                run_id,
                attempt.step_index as i64,
                attempt.step_id,
                attempt.status.as_str(),
                attempt.idempotency_key,
                attempt.input.to_string(),
                attempt.output.to_string(),
                attempt.error.as_ref().map(rows::to_json),
                attempt.detail.to_string(),
                ms(attempt.started_at),
                ms(attempt.finished_at)
            ])?;
    }
    Ok(())
}

/// The newest successful attempt of a step among the workflow's last 1,000 live runs.
pub fn recorded(conn: &Connection, workflow: &str, step_id: &str) -> Result<Option<Recorded>> {
    Ok(conn
        .prepare_cached(
            "SELECT a.run_id, a.output, a.detail FROM attempts a \
             WHERE a.run_id IN (SELECT id FROM runs WHERE workflow = ?1 AND mode = 'live' \
                                ORDER BY id DESC LIMIT 1000) \
             AND a.step_id = ?2 AND a.status = 'succeeded' ORDER BY a.id DESC LIMIT 1",
        )?
        .query_row(params![workflow, step_id], |r| {
            Ok(Recorded {
                run_id: r.get(0)?,
                output: rows::json_value(r.get(1)?),
                detail: rows::json_value(r.get(2)?),
            })
        })
        .optional()?)
}
