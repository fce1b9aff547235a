//! Runs and attempts: queueing, claiming with leases, applying transitions, cancel and retry.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::dlq;
use super::queue;
use super::rows::{self, RUN_COLUMNS, RUN_FROM, RUN_WIDTH, ms};
use super::writer::Tx;
use crate::domain::Transition;
use crate::domain::rollup::Tally;
use crate::domain::run::{
    RunRefused, RunStep, abandoned_error, cancel_requested_event, cancelled_error, claimed_event,
    ended_event, retried_event, run_next,
};
use crate::store::{ClaimedRun, Result, StoreError};
use crate::wire::{RunMode, RunStatus};

/// The claim's two scans: runs whose lease expired, then due runs, each in index order.
const CLAIM_QUERIES: [&str; 2] = [
    "SELECT id, status, started_at, held_on FROM runs INDEXED BY runs_lease \
     WHERE status = 'running' AND lease_until < ?1 AND mode = 'live' ORDER BY lease_until LIMIT ?2",
    "SELECT id, status, started_at, held_on FROM runs INDEXED BY runs_due \
     WHERE status IN ('queued', 'retrying', 'waiting', 'held') AND due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
];

/// Claims runs due at `now` and runs whose lease expired by then.
pub fn claim(
    tx: &mut Tx<'_>,
    owner: &str,
    limit: usize,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<ClaimedRun>> {
    let due_by = ms(now);
    // Times of what happens here are the store's own.
    let now = ms(tx.now);
    // Two index-ordered scans (expired leases first, then due runs) rather than one sorted
    // union: the union would sort every queued run on every claim. The partial indexes are
    // named: left to itself the planner takes `runs_status` for the status test and then
    // sorts every queued run by due time (20 ms a claim with 100,000 queued, growing with
    // the backlog, against 0.2 ms in due-time order).
    let mut due: Vec<(i64, String, Option<i64>, Option<String>)> = Vec::new();
    for sql in CLAIM_QUERIES {
        let left = limit.saturating_sub(due.len()) as i64;
        let mut statement = tx.conn.prepare_cached(sql)?;
        let rows = statement.query_map(params![due_by, left], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        due.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    }
    let mut claimed = Vec::with_capacity(due.len());
    for (id, was, started, held_on) in due {
        tx.conn
            .prepare_cached(
                "UPDATE runs SET status = 'running', lease_owner = ?1, lease_until = ?2, due_at = NULL, \
                 started_at = COALESCE(started_at, ?3), held_ms = held_ms + COALESCE(?3 - held_since, 0), \
                 held_since = NULL, held_on = NULL, held_reason = NULL WHERE id = ?4",
            )?
            .execute(params![owner, ms(lease_until), now, id])?;
        let abandoned = if was == "running" {
            tx.conn.execute(
                "UPDATE attempts SET status = 'abandoned', finished_at = ?, error = ? \
                 WHERE run_id = ? AND status = 'running'",
                params![now, rows::to_json(&abandoned_error()), id],
            )?
        } else {
            0
        };
        let (run, prefix, floor) = tx
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS}, r.idem_prefix, r.budget_floor FROM {RUN_FROM} WHERE r.id = ?"
            ))?
            .query_row([id], |r| {
                Ok((
                    rows::run(r)?,
                    r.get::<_, Option<String>>(RUN_WIDTH)?,
                    r.get::<_, i64>(RUN_WIDTH + 1)?,
                ))
            })?;
        let from = rows::parsed(was, RunStatus::parse, "run status")?;
        run_next(from, RunStep::Claim).map_err(|e| refused(id, e))?;
        let event = claimed_event(started.is_none(), from, abandoned as u64);
        tx.emit(event, Some(&run.workflow), Some(id))?;
        let fresh = started.is_none() && run.origin_run.is_none();
        claimed.push(ClaimedRun {
            attempts: if fresh {
                Vec::new()
            } else {
                queue::attempts(tx.conn, id)?
            },
            run,
            inherited_prefix: prefix,
            budget_floor: floor,
            held_on,
        });
    }
    Ok(claimed)
}

/// Ends every running run's lease (sets it to the epoch); answers how many.
pub fn expire_leases(tx: &mut Tx<'_>) -> Result<u64> {
    let n = tx.conn.execute(
        "UPDATE runs SET lease_until = 0 WHERE status = 'running' AND mode = 'live'",
        [],
    )?;
    Ok(n as u64)
}

/// Extends `owner`'s leases; answers its runs that were asked to cancel.
pub fn heartbeat(tx: &mut Tx<'_>, owner: &str, lease_until: DateTime<Utc>) -> Result<Vec<i64>> {
    tx.conn.execute(
        "UPDATE runs SET lease_until = ? WHERE lease_owner = ? AND status = 'running'",
        params![ms(lease_until), owner],
    )?;
    let ids = tx
        .conn
        .prepare_cached("SELECT id FROM runs WHERE lease_owner = ? AND status = 'running' AND cancel_requested = 1")?
        .query_map([owner], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Applies a run's transitions, refusing them if `owner` lost the lease.
pub fn apply(
    tx: &mut Tx<'_>,
    run_id: i64,
    owner: &str,
    transitions: &[Transition],
) -> Result<Vec<i64>> {
    let (holder, status, workflow): (Option<String>, String, String) = tx
        .conn
        .prepare_cached("SELECT lease_owner, status, workflow FROM runs WHERE id = ?")?
        .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))?;
    let mut status = rows::parsed(status, RunStatus::parse, "run status")?;
    if holder.as_deref() != Some(owner) || status != RunStatus::Running {
        return Err(StoreError::LeaseLost(run_id));
    }
    let mut started = Vec::new();
    for transition in transitions {
        status = run_next(status, transition.step()).map_err(|e| refused(run_id, e))?;
        if let Some(id) = apply_one(tx, run_id, transition)? {
            started.push(id);
        }
        for event in transition.events() {
            tx.emit(event, Some(&workflow), Some(run_id))?;
        }
    }
    Ok(started)
}

/// Persists one transition (its events are the caller's); answers the id of an attempt it
/// starts.
fn apply_one(tx: &mut Tx<'_>, run_id: i64, transition: &Transition) -> Result<Option<i64>> {
    let now = ms(tx.now);
    match transition {
        Transition::StepStarted {
            index,
            step_id,
            number,
            input,
            idempotency_key,
        } => {
            tx.conn
                .prepare_cached(
                    "INSERT INTO attempts (run_id, step_index, step_id, number, status, idempotency_key, input, started_at) \
                     VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                )?
                .execute(params![run_id, *index as i64, step_id, number, idempotency_key, input.to_string(), now])?;
            let id = tx.conn.last_insert_rowid();
            tx.conn
                .prepare_cached("UPDATE runs SET attempts = attempts + 1 WHERE id = ?")?
                .execute([run_id])?;
            return Ok(Some(id));
        }
        Transition::StepEnded {
            attempt,
            status,
            output,
            error,
            detail,
            retry,
            ..
        } => {
            tx.conn
                .prepare_cached(
                    "UPDATE attempts SET status = ?, output = ?, error = ?, detail = ?, finished_at = ?, retry_delay_ms = ? \
                     WHERE id = ?",
                )?
                .execute(params![
                    status.as_str(),
                    output.to_string(),
                    error.as_ref().map(rows::to_json),
                    detail.to_string(),
                    now,
                    retry.map(|r| r.delay_ms),
                    attempt
                ])?;
            if let Some(retry) = retry {
                tx.conn
                    .prepare_cached(
                        "UPDATE runs SET status = 'retrying', due_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                    )?
                    .execute(params![ms(retry.at), run_id])?;
            }
        }
        Transition::StepSkipped {
            index,
            step_id,
            reason,
        } => {
            tx.conn.execute(
                "INSERT INTO attempts (run_id, step_index, step_id, number, status, idempotency_key, input, output, \
                 started_at, finished_at) VALUES (?, ?, ?, 0, 'skipped', '', 'null', json_object('reason', ?), ?, ?)",
                params![run_id, *index as i64, step_id, reason, now, now],
            )?;
        }
        Transition::Wait { until } => {
            tx.conn.execute(
                "UPDATE runs SET status = 'waiting', due_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                params![ms(*until), run_id],
            )?;
        }
        Transition::Hold(held) => {
            // A run held on a hold waits for the release to make it due. The engine decided
            // from its copy of the holds; a release committed meanwhile would never come back
            // for this run, so it is due at once (its next claim asks the engine again).
            let due = match (held.until, super::holds::released(tx.conn, &held.on)?) {
                (None, true) => Some(now),
                (until, _) => until.map(ms),
            };
            tx.conn
                .prepare_cached(
                    "UPDATE runs SET status = 'held', due_at = ?, held_on = ?, held_reason = ?, held_since = ?, \
                     lease_owner = NULL, lease_until = NULL WHERE id = ?",
                )?
                .execute(params![due, held.on, held.reason, now, run_id])?;
        }
        Transition::Finish {
            status,
            failed_step,
            error,
        } => finish(tx, run_id, *status, failed_step.as_deref(), error.as_ref())?,
        Transition::DeadLetter { step_id, error } => dlq::add(tx, run_id, step_id, error)?,
        Transition::Release => {
            tx.conn.execute(
                "UPDATE runs SET status = 'queued', due_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                params![now, run_id],
            )?;
        }
    }
    Ok(None)
}

/// Records the end of a run (its event is the caller's).
fn finish(
    tx: &mut Tx<'_>,
    run_id: i64,
    status: RunStatus,
    failed_step: Option<&str>,
    error: Option<&crate::wire::StepError>,
) -> Result<()> {
    let ended = tx
        .conn
        .prepare_cached(
            "UPDATE runs SET status = ?1, finished_at = ?2, lease_owner = NULL, lease_until = NULL, due_at = NULL, \
             error = ?3, failed_step = ?4, held_ms = held_ms + COALESCE(?2 - held_since, 0), held_since = NULL, \
             held_on = NULL, held_reason = NULL WHERE id = ?5 RETURNING workflow, team, mode, started_at, held_ms",
        )?
        .query_row(
            params![
                status.as_str(),
                ms(tx.now),
                error.map(rows::to_json),
                failed_step,
                run_id
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    rows::parsed(r.get(2)?, RunMode::parse, "run mode")?,
                    r.get::<_, Option<i64>>(3)?.map(rows::time),
                    r.get::<_, i64>(4)?,
                ))
            },
        )?;
    let (workflow, team, mode, started_at, held_ms) = ended;
    // The SLA clock stops while a run is held: its duration starts later by the time held.
    let started_at = started_at.map(|at| at + chrono::TimeDelta::milliseconds(held_ms));
    tx.tally(Tally::ended(
        (&workflow, &team, mode),
        status,
        started_at,
        tx.now,
        error.map(|e| e.message.as_str()),
    ));
    Ok(())
}

/// The lifecycle's refusal as the conflict the API answers.
fn refused(run_id: i64, refusal: RunRefused) -> StoreError {
    StoreError::Conflict(format!("run {run_id} {refusal}"))
}

/// Cancels a run that is not running, or asks its worker to stop it.
pub fn cancel(tx: &mut Tx<'_>, run_id: i64, actor: &str) -> Result<RunStatus> {
    let run = queue::run_view(tx.conn, run_id)?;
    let next = run_next(run.status, RunStep::Cancel).map_err(|e| refused(run_id, e))?;
    if next == RunStatus::Running {
        tx.conn.execute(
            "UPDATE runs SET cancel_requested = 1 WHERE id = ?",
            [run_id],
        )?;
        tx.emit(
            cancel_requested_event(actor),
            Some(&run.workflow),
            Some(run_id),
        )?;
    } else {
        let error = cancelled_error(actor);
        finish(tx, run_id, next, None, Some(&error))?;
        let event = ended_event(next, None, Some(error));
        tx.emit(event, Some(&run.workflow), Some(run_id))?;
    }
    Ok(next)
}

/// Queues a failed run to resume at its failed step with a fresh retry budget.
pub fn retry(tx: &mut Tx<'_>, run_id: i64, actor: &str) -> Result<()> {
    let run = queue::run_view(tx.conn, run_id)?;
    let next = run_next(run.status, RunStep::Retry).map_err(|e| refused(run_id, e))?;
    if let Some(ended_at) = run.finished_at {
        tx.tally(Tally::reopened(
            (&run.workflow, &run.team, run.mode),
            run.status,
            ended_at,
            run.error.as_ref().map(|e| e.message.as_str()),
        ));
    }
    let now = ms(tx.now);
    tx.conn.execute(
        "UPDATE runs SET status = ?, due_at = ?, finished_at = NULL, error = NULL, failed_step = NULL, \
         cancel_requested = 0, budget_floor = (SELECT COALESCE(MAX(id), 0) FROM attempts WHERE run_id = ?) WHERE id = ?",
        params![next.as_str(), now, run_id, run_id],
    )?;
    dlq::close_for_run(tx, run_id, actor)?;
    tx.emit(retried_event(actor), Some(&run.workflow), Some(run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim reads as many rows as it takes, whatever the backlog: both scans walk a
    /// partial index in the order asked for, with no sort of every queued run.
    #[test]
    fn claims_scan_their_index_in_order_without_sorting_the_backlog() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        for sql in CLAIM_QUERIES {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params![0, 1], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(
                plan.contains("USING INDEX runs_") && !plan.contains("TEMP B-TREE"),
                "{sql}: {plan}"
            );
        }
    }
}
