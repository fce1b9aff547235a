//! Conversions between SQLite rows and the wire's read models.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Row;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::wire::{
    AttemptStatus, AttemptView, DlqStatus, DlqView, FieldChange, RecordView, RunMode, RunStatus,
    RunView, Source, StepError, TriggerKind,
};

/// Milliseconds since the epoch, the store's time format.
pub fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// The inverse of [`ms`].
pub fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(time)
}

/// Parses a JSON column; NULL or bad JSON reads as `Value::Null` / `None`.
/// A value as JSON text for a TEXT column.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub fn json<T: DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub fn json_value(text: Option<String>) -> Value {
    json(text).unwrap_or(Value::Null)
}

pub fn parsed<T>(text: String, parse: fn(&str) -> Option<T>, what: &str) -> rusqlite::Result<T> {
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("bad {what} `{text}`").into(),
        )
    })
}

pub const RUN_COLUMNS: &str = "r.id, r.workflow, r.version, r.team, r.status, r.mode, r.trigger_kind, \
     r.trigger, r.record_id, r.origin_run, r.queued_at, r.started_at, r.finished_at, r.due_at, r.attempts, \
     r.error, r.failed_step, dl.status, dl.replay_run, r.held_reason";

/// How many columns [`RUN_COLUMNS`] selects: a query that adds its own reads them from here.
pub const RUN_WIDTH: usize = 20;

/// The runs table as `r` with its dead-letter entry, if any, as `dl` (one row per run: an
/// entry's `run_id` is unique), for [`RUN_COLUMNS`].
pub const RUN_FROM: &str = "runs r LEFT JOIN dlq dl ON dl.run_id = r.id";

pub fn run(row: &Row<'_>) -> rusqlite::Result<RunView> {
    Ok(RunView {
        id: row.get(0)?,
        workflow: row.get(1)?,
        version: row.get(2)?,
        team: row.get(3)?,
        status: parsed(row.get(4)?, RunStatus::parse, "run status")?,
        mode: parsed(row.get(5)?, RunMode::parse, "run mode")?,
        trigger_kind: parsed(row.get(6)?, TriggerKind::parse, "trigger kind")?,
        trigger: json_value(row.get(7)?),
        record_id: row.get(8)?,
        origin_run: row.get(9)?,
        queued_at: time(row.get(10)?),
        started_at: opt_time(row.get(11)?),
        finished_at: opt_time(row.get(12)?),
        next_attempt_at: opt_time(row.get(13)?),
        attempts: row.get(14)?,
        error: json(row.get(15)?),
        failed_step: row.get(16)?,
        dead_letter: row
            .get::<_, Option<String>>(17)?
            .map(|s| parsed(s, DlqStatus::parse, "dead-letter status"))
            .transpose()?,
        replayed_as: row.get(18)?,
        held_reason: row.get(19)?,
    })
}

pub const ATTEMPT_COLUMNS: &str = "id, step_index, step_id, number, status, idempotency_key, input, output, \
     error, detail, started_at, finished_at, carried_from, retry_delay_ms";

pub fn attempt(row: &Row<'_>) -> rusqlite::Result<AttemptView> {
    Ok(AttemptView {
        id: row.get(0)?,
        step_index: row.get(1)?,
        step_id: row.get(2)?,
        number: row.get(3)?,
        status: parsed(row.get(4)?, AttemptStatus::parse, "attempt status")?,
        idempotency_key: row.get(5)?,
        input: json_value(row.get(6)?),
        output: json_value(row.get(7)?),
        error: json(row.get(8)?),
        detail: json_value(row.get(9)?),
        started_at: time(row.get(10)?),
        finished_at: opt_time(row.get(11)?),
        carried_from: row.get(12)?,
        retry_delay_ms: row.get(13)?,
    })
}

/// A dead-letter entry's own columns; queries add the run's `record_id` after them.
pub const DLQ_COLUMNS: &str = "id, run_id, workflow, version, team, step_id, error, status, created_at, \
     closed_at, closed_by, close_reason, replay_run";

pub fn dlq(row: &Row<'_>) -> rusqlite::Result<DlqView> {
    let error: Option<StepError> = json(row.get(6)?);
    Ok(DlqView {
        id: row.get(0)?,
        run_id: row.get(1)?,
        workflow: row.get(2)?,
        version: row.get(3)?,
        team: row.get(4)?,
        step_id: row.get(5)?,
        error: error.unwrap_or_else(|| crate::domain::StepFailure::permanent("unknown").error),
        status: parsed(row.get(7)?, DlqStatus::parse, "dlq status")?,
        created_at: time(row.get(8)?),
        closed_at: opt_time(row.get(9)?),
        closed_by: row.get(10)?,
        close_reason: row.get(11)?,
        replay_run: row.get(12)?,
        record_id: row.get(13)?,
    })
}

pub const RECORD_COLUMNS: &str = "id, object, vals, created_at, updated_at";

pub fn record(row: &Row<'_>) -> rusqlite::Result<RecordView> {
    Ok(RecordView {
        id: row.get(0)?,
        object: row.get(1)?,
        values: json(row.get(2)?).unwrap_or_default(),
        created_at: time(row.get(3)?),
        updated_at: time(row.get(4)?),
    })
}

pub const FIELD_CHANGE_COLUMNS: &str = "id, record_id, field, old, new, at, source, actor, workflow, \
     workflow_version, run_id, step_id, ai_policy_id";

pub fn field_change(row: &Row<'_>) -> rusqlite::Result<FieldChange> {
    Ok(FieldChange {
        id: row.get(0)?,
        record_id: row.get(1)?,
        field: row.get(2)?,
        old: json_value(row.get(3)?),
        new: json_value(row.get(4)?),
        at: time(row.get(5)?),
        source: parsed(row.get(6)?, Source::parse, "source")?,
        actor: row.get(7)?,
        workflow: row.get(8)?,
        workflow_version: row.get(9)?,
        run_id: row.get(10)?,
        step_id: row.get(11)?,
        ai_policy_id: row.get(12)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_width_counts_the_run_columns() {
        assert_eq!(super::RUN_COLUMNS.split(',').count(), super::RUN_WIDTH);
    }
}
