//! Bulk replay jobs: the entries to replay and how far the job got; progress is counted from
//! the runs that carry the job's id.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::store::{JobRow, NewJob, Result, StoreError};
use crate::wire::{JobState, JobView, ReplayOn};

const JOB_COLUMNS: &str = "j.id, j.kind, j.state, j.total, j.skipped, j.rate, j.created_by, j.created_at, \
     j.finished_at, j.plan, \
     (SELECT COUNT(*) FROM runs INDEXED BY runs_job WHERE job_id = j.id), \
     (SELECT COUNT(*) FROM runs INDEXED BY runs_job WHERE job_id = j.id AND status = 'succeeded'), \
     (SELECT COUNT(*) FROM runs INDEXED BY runs_job WHERE job_id = j.id AND status = 'failed')";

fn job(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobView> {
    Ok(JobView {
        id: row.get(0)?,
        kind: row.get(1)?,
        state: rows::parsed(row.get(2)?, JobState::parse, "job state")?,
        total: row.get(3)?,
        skipped: row.get(4)?,
        rate: row.get(5)?,
        created_by: row.get(6)?,
        created_at: rows::time(row.get(7)?),
        finished_at: row.get::<_, Option<i64>>(8)?.map(rows::time),
        plan: rows::json(row.get(9)?),
        started: row.get(10)?,
        succeeded: row.get(11)?,
        failed: row.get(12)?,
    })
}

fn replay_on(on: ReplayOn) -> &'static str {
    match on {
        ReplayOn::Same => "same",
        ReplayOn::Latest => "latest",
    }
}

pub fn create(tx: &mut Tx<'_>, new: &NewJob) -> Result<JobView> {
    tx.conn
        .prepare_cached(
            "INSERT INTO jobs (kind, state, created_by, created_at, rate, replay_on, entries, total, plan) \
             VALUES ('dlq.replay', 'running', ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            new.actor,
            ms(tx.now),
            new.rate,
            replay_on(new.on),
            rows::to_json(&new.entries),
            new.entries.len() as i64,
            rows::to_json(&new.plan),
        ])?;
    get(tx.conn, tx.conn.last_insert_rowid())
}

pub fn get(conn: &Connection, id: i64) -> Result<JobView> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = ?"))?
        .query_row([id], job)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("job {id}")))
}

pub fn running(conn: &Connection) -> Result<Vec<JobRow>> {
    let list = conn
        .prepare_cached(
            "SELECT id, created_by, rate, replay_on, entries, next FROM jobs INDEXED BY jobs_running \
             WHERE state = 'running' ORDER BY id",
        )?
        .query_map([], |r| {
            Ok(JobRow {
                id: r.get(0)?,
                actor: r.get(1)?,
                rate: r.get(2)?,
                on: match r.get::<_, String>(3)?.as_str() {
                    "latest" => ReplayOn::Latest,
                    _ => ReplayOn::Same,
                },
                entries: rows::json(r.get(4)?).unwrap_or_default(),
                next: usize::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

pub fn advance(tx: &mut Tx<'_>, id: i64, next: usize, skipped: i64) -> Result<()> {
    tx.conn
        .prepare_cached("UPDATE jobs SET next = ?, skipped = skipped + ? WHERE id = ?")?
        .execute(params![next as i64, skipped, id])?;
    Ok(())
}

pub fn end(tx: &mut Tx<'_>, id: i64, state: JobState) -> Result<JobView> {
    let current = get(tx.conn, id)?;
    if current.state != JobState::Running {
        return Err(StoreError::Conflict(format!(
            "job {id} is already {}",
            current.state
        )));
    }
    tx.conn.execute(
        "UPDATE jobs SET state = ?, finished_at = ? WHERE id = ?",
        params![state.as_str(), ms(tx.now), id],
    )?;
    get(tx.conn, id)
}
