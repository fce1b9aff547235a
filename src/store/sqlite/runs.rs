//! Runs and attempts: queueing, claiming with leases, applying transitions, cancel and retry.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde_json::json;

use super::dlq;
use super::queue;
use super::rows::{self, RUN_COLUMNS, RUN_FROM, RUN_WIDTH, ms};
use super::writer::Tx;
use crate::domain::Transition;
use crate::store::{ClaimedRun, Result, StoreError};
use crate::wire::{AttemptStatus, EventKind, RunStatus};

/// Claims due runs and runs whose lease expired.
pub fn claim(
    tx: &mut Tx<'_>,
    owner: &str,
    limit: usize,
    lease_until: DateTime<Utc>,
) -> Result<Vec<ClaimedRun>> {
    let now = ms(tx.now);
    // Two index-ordered scans (expired leases first, then due runs) rather than one sorted
    // union: the union would sort every queued run on every claim.
    let mut due: Vec<(i64, String, Option<i64>)> = Vec::new();
    for sql in [
        "SELECT id, status, started_at FROM runs WHERE status = 'running' AND lease_until < ?1 \
         ORDER BY lease_until LIMIT ?2",
        "SELECT id, status, started_at FROM runs WHERE status IN ('queued', 'retrying', 'waiting') \
         AND due_at <= ?1 ORDER BY due_at, id LIMIT ?2",
    ] {
        let left = limit.saturating_sub(due.len()) as i64;
        let mut statement = tx.conn.prepare_cached(sql)?;
        let rows = statement.query_map(params![now, left], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        due.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    }
    let mut claimed = Vec::with_capacity(due.len());
    for (id, was, started) in due {
        tx.conn
            .prepare_cached(
                "UPDATE runs SET status = 'running', lease_owner = ?, lease_until = ?, due_at = NULL, \
                 started_at = COALESCE(started_at, ?) WHERE id = ?",
            )?
            .execute(params![owner, ms(lease_until), now, id])?;
        let abandoned = if was == "running" {
            tx.conn.execute(
                "UPDATE attempts SET status = 'abandoned', finished_at = ?, \
                 error = '{\"class\":\"transient\",\"message\":\"the worker running this attempt stopped\",\"retryable\":true}' \
                 WHERE run_id = ? AND status = 'running'",
                params![now, id],
            )?
        } else {
            0
        };
        let (run, prefix, floor) = tx
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS}, COALESCE(r.idem_prefix, 'run-' || r.id), r.budget_floor FROM {RUN_FROM} WHERE r.id = ?"
            ))?
            .query_row([id], |r| {
                Ok((
                    rows::run(r)?,
                    r.get::<_, String>(RUN_WIDTH)?,
                    r.get::<_, i64>(RUN_WIDTH + 1)?,
                ))
            })?;
        let kind = if started.is_none() {
            EventKind::RunStarted
        } else {
            EventKind::RunResumed
        };
        let data = json!({ "from": was, "abandoned_attempts": abandoned });
        tx.emit(kind, Some(&run.workflow), Some(id), data)?;
        let fresh = started.is_none() && run.origin_run.is_none();
        claimed.push(ClaimedRun {
            attempts: if fresh {
                Vec::new()
            } else {
                queue::attempts(tx.conn, id)?
            },
            run,
            idempotency_prefix: prefix,
            budget_floor: floor,
        });
    }
    Ok(claimed)
}

/// Ends every running run's lease (sets it to the epoch); answers how many.
pub fn expire_leases(tx: &mut Tx<'_>) -> Result<u64> {
    let n = tx.conn.execute(
        "UPDATE runs SET lease_until = 0 WHERE status = 'running'",
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
    if holder.as_deref() != Some(owner) || status != "running" {
        return Err(StoreError::LeaseLost(run_id));
    }
    let mut started = Vec::new();
    for transition in transitions {
        if let Some(id) = apply_one(tx, run_id, &workflow, transition)? {
            started.push(id);
        }
    }
    Ok(started)
}

fn apply_one(
    tx: &mut Tx<'_>,
    run_id: i64,
    workflow: &str,
    transition: &Transition,
) -> Result<Option<i64>> {
    let now = ms(tx.now);
    let wf = Some(workflow);
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
            tx.emit(
                EventKind::StepStarted,
                wf,
                Some(run_id),
                json!({"step_id": step_id, "index": index, "attempt": number}),
            )?;
            return Ok(Some(id));
        }
        Transition::StepEnded {
            attempt,
            status,
            output,
            error,
            detail,
            retry,
        } => {
            let (step_id, number): (String, i64) = tx
                .conn
                .prepare_cached(
                    "UPDATE attempts SET status = ?, output = ?, error = ?, detail = ?, finished_at = ?, retry_delay_ms = ? \
                     WHERE id = ? RETURNING step_id, number",
                )?
                .query_row(
                    params![
                        status.as_str(),
                        output.to_string(),
                        error.as_ref().map(|e| json!(e).to_string()),
                        detail.to_string(),
                        now,
                        retry.map(|r| r.delay_ms),
                        attempt
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
            let kind = match status {
                AttemptStatus::Succeeded => EventKind::StepSucceeded,
                _ => EventKind::StepFailed,
            };
            let data =
                json!({"step_id": step_id, "attempt": number, "status": status, "error": error});
            tx.emit(kind, wf, Some(run_id), data)?;
            if let Some(retry) = retry {
                tx.conn
                    .prepare_cached(
                        "UPDATE runs SET status = 'retrying', due_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                    )?
                    .execute(params![ms(retry.at), run_id])?;
                let data = json!({"step_id": step_id, "attempt": number, "delay_ms": retry.delay_ms, "at": retry.at});
                tx.emit(EventKind::StepRetryScheduled, wf, Some(run_id), data)?;
            }
        }
        Transition::StepSkipped {
            index,
            step_id,
            reason,
        } => {
            tx.conn.execute(
                "INSERT INTO attempts (run_id, step_index, step_id, number, status, idempotency_key, input, output, \
                 started_at, finished_at) VALUES (?, ?, ?, 0, 'skipped', '', 'null', ?, ?, ?)",
                params![run_id, *index as i64, step_id, json!({"reason": reason}).to_string(), now, now],
            )?;
            tx.emit(
                EventKind::StepSkipped,
                wf,
                Some(run_id),
                json!({"step_id": step_id, "reason": reason}),
            )?;
        }
        Transition::Wait { until } => {
            tx.conn.execute(
                "UPDATE runs SET status = 'waiting', due_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                params![ms(*until), run_id],
            )?;
            tx.emit(
                EventKind::RunWaiting,
                wf,
                Some(run_id),
                json!({"until": until}),
            )?;
        }
        Transition::Finish {
            status,
            failed_step,
            error,
        } => finish(
            tx,
            run_id,
            workflow,
            *status,
            failed_step.clone(),
            error.clone(),
        )?,
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

fn finish(
    tx: &mut Tx<'_>,
    run_id: i64,
    workflow: &str,
    status: RunStatus,
    failed_step: Option<String>,
    error: Option<crate::wire::StepError>,
) -> Result<()> {
    tx.conn
        .prepare_cached(
            "UPDATE runs SET status = ?, finished_at = ?, lease_owner = NULL, lease_until = NULL, due_at = NULL, \
             error = ?, failed_step = ? WHERE id = ?",
        )?
        .execute(params![
            status.as_str(),
            ms(tx.now),
            error.as_ref().map(|e| json!(e).to_string()),
            failed_step,
            run_id
        ])?;
    let kind = match status {
        RunStatus::Succeeded => EventKind::RunSucceeded,
        RunStatus::Cancelled => EventKind::RunCancelled,
        _ => EventKind::RunFailed,
    };
    tx.emit(
        kind,
        Some(workflow),
        Some(run_id),
        json!({"step_id": failed_step, "error": error}),
    )
}

/// Cancels a run that is not running, or asks its worker to stop it.
pub fn cancel(tx: &mut Tx<'_>, run_id: i64, actor: &str) -> Result<RunStatus> {
    let run = queue::run_view(tx.conn, run_id)?;
    match run.status {
        RunStatus::Queued | RunStatus::Retrying | RunStatus::Waiting => {
            let error =
                crate::domain::StepFailure::permanent(format!("cancelled by {actor}")).error;
            finish(
                tx,
                run_id,
                &run.workflow,
                RunStatus::Cancelled,
                None,
                Some(error),
            )?;
            Ok(RunStatus::Cancelled)
        }
        RunStatus::Running => {
            tx.conn.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE id = ?",
                [run_id],
            )?;
            tx.emit(
                EventKind::RunCancelRequested,
                Some(&run.workflow),
                Some(run_id),
                json!({"actor": actor}),
            )?;
            Ok(RunStatus::Running)
        }
        done => Err(StoreError::Conflict(format!(
            "run {run_id} is already {done}"
        ))),
    }
}

/// Queues a failed run to resume at its failed step with a fresh retry budget.
pub fn retry(tx: &mut Tx<'_>, run_id: i64, actor: &str) -> Result<()> {
    let run = queue::run_view(tx.conn, run_id)?;
    if run.status != RunStatus::Failed {
        return Err(StoreError::Conflict(format!(
            "run {run_id} is {}, only failed runs can be retried",
            run.status
        )));
    }
    let now = ms(tx.now);
    tx.conn.execute(
        "UPDATE runs SET status = 'queued', due_at = ?, finished_at = NULL, error = NULL, failed_step = NULL, \
         cancel_requested = 0, budget_floor = (SELECT COALESCE(MAX(id), 0) FROM attempts WHERE run_id = ?) WHERE id = ?",
        params![now, run_id, run_id],
    )?;
    dlq::close_for_run(tx, run_id, actor)?;
    tx.emit(
        EventKind::RunRetried,
        Some(&run.workflow),
        Some(run_id),
        json!({"actor": actor}),
    )
}
