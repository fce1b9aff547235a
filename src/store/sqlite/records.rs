//! Records, field history and idempotent writes.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use super::queue;
use super::rows::{self, FIELD_CHANGE_COLUMNS, RECORD_COLUMNS, ms};
use super::writer::Tx;
use crate::domain::record::Merge;
use crate::domain::{PreparedWrite, RecordChange, RecordWrite, RecordWriteOutcome};
use crate::store::{Result, StoreError};
use crate::wire::{FieldChange, RecordView, Source};

/// Applies a prepared write: the record, one history row per changed field, the event, and
/// the runs the change triggers. A write whose idempotency key was applied before changes
/// nothing; a write prepared from values that changed since is refused as stale.
pub fn write(tx: &mut Tx<'_>, prepared: &PreparedWrite) -> Result<RecordWriteOutcome> {
    let write = &prepared.write;
    if let Some(key) = &write.idempotency_key {
        let applied: Option<(i64, String, Option<String>)> = tx
            .conn
            .prepare_cached(
                "SELECT record_id, changed, fingerprint FROM applied_writes WHERE key = ?",
            )?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((id, changed, fingerprint)) = applied {
            return Ok(RecordWriteOutcome {
                record: get(tx.conn, id)?,
                changed: rows::json(Some(changed)).unwrap_or_default(),
                runs: Vec::new(),
                duplicate: true,
                first_fingerprint: fingerprint,
            });
        }
    }
    let now = ms(tx.now);
    let existing = write.id.map(|id| get(tx.conn, id)).transpose()?;
    let previous = existing.map(|r| r.values);
    if previous != prepared.read {
        return Err(StoreError::Stale(match write.id {
            Some(id) => format!("record {id} changed while the write was prepared"),
            None => "a new record's write was prepared from an existing record".into(),
        }));
    }
    let previous = previous.unwrap_or_default();
    let Merge {
        event,
        changed,
        values,
    } = prepared.merge.clone();
    let id = match write.id {
        Some(id) if !changed.is_empty() => {
            tx.conn
                .prepare_cached("UPDATE records SET vals = ?, updated_at = ? WHERE id = ?")?
                .execute(params![Value::Object(values).to_string(), now, id])?;
            id
        }
        Some(id) => id,
        None => {
            tx.conn
                .prepare_cached("INSERT INTO records (object, vals, created_at, updated_at) VALUES (?, ?, ?, ?)")?
                .execute(params![write.object, Value::Object(values).to_string(), now, now])?;
            tx.conn.last_insert_rowid()
        }
    };
    let record = get(tx.conn, id)?;
    let mut runs = Vec::new();
    if !changed.is_empty() {
        history(tx, write, id, &previous, &changed)?;
        let change = RecordChange {
            event,
            record: record.clone(),
            previous,
            changed: changed.clone(),
            by_workflow: write.provenance.workflow.clone(),
        };
        tx.emit(
            change.event(write.provenance.source),
            write.provenance.workflow.as_deref(),
            write.provenance.run_id,
        )?;
        for triggered in &prepared.triggered {
            runs.push(queue::create(tx, &change.run_for(triggered))?);
        }
    }
    if let Some(key) = &write.idempotency_key {
        tx.conn
            .prepare_cached(
                "INSERT INTO applied_writes (key, record_id, changed, at, fingerprint) \
                 VALUES (?, ?, ?, ?, ?)",
            )?
            .execute(params![
                key,
                id,
                rows::to_json(&changed),
                now,
                write.fingerprint()
            ])?;
    }
    Ok(RecordWriteOutcome {
        record,
        changed,
        runs,
        duplicate: false,
        first_fingerprint: None,
    })
}

fn history(
    tx: &mut Tx<'_>,
    write: &RecordWrite,
    id: i64,
    previous: &Map<String, Value>,
    changed: &[String],
) -> Result<()> {
    let p = &write.provenance;
    let mut insert = tx.conn.prepare_cached(&format!(
        "INSERT INTO field_history ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        FIELD_CHANGE_COLUMNS.trim_start_matches("id, ")
    ))?;
    for field in changed {
        let policy = p.ai_fields.get(field);
        let source = if policy.is_some() {
            Source::Ai
        } else {
            p.source
        };
        insert.execute(params![
            id,
            field,
            previous.get(field).unwrap_or(&Value::Null).to_string(),
            write.values.get(field).unwrap_or(&Value::Null).to_string(),
            ms(tx.now),
            source.as_str(),
            p.actor,
            p.workflow,
            p.workflow_version,
            p.run_id,
            p.step_id,
            policy
        ])?;
    }
    Ok(())
}

pub fn get(conn: &Connection, id: i64) -> Result<RecordView> {
    conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE id = ?"
    ))?
    .query_row([id], rows::record)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("record {id}")))
}

pub fn history_of(conn: &Connection, record_id: i64) -> Result<Vec<FieldChange>> {
    let list = conn
        .prepare_cached(&format!(
            "SELECT {FIELD_CHANGE_COLUMNS} FROM field_history WHERE record_id = ? ORDER BY id"
        ))?
        .query_map([record_id], rows::field_change)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}
