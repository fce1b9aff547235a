//! The records a test run touches: a private copy its writes go to, and the net diff.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::super::Inner;
use super::super::step::{self, Control, Done};
use super::super::triggers::change_of;
use crate::domain::{RecordChange, RecordWrite, StepFailure};
use crate::store::StoreError;
use crate::wire::{FieldDiff, PlannedWrite, RecordView, WriteOp};

/// The records a test run touched, as it left them.
#[derive(Default)]
pub(super) struct Sim {
    records: BTreeMap<i64, SimRecord>,
    /// Ids in the order first touched.
    order: Vec<i64>,
    /// The placeholder id of the last record created (-1, -2...).
    last_new: i64,
}

pub(super) struct SimRecord {
    object: String,
    /// The values before the run; `None` for a record the run creates.
    before: Option<Map<String, Value>>,
    values: Map<String, Value>,
    /// Fields written, in the order first written.
    written: Vec<String>,
}

/// A write captured by a test run.
pub(super) struct Captured {
    pub(super) done: Done,
    pub(super) write: PlannedWrite,
    pub(super) change: Option<RecordChange>,
}

impl Sim {
    /// Applies `write` to the records as this run left them (read from the store the first
    /// time), failing as a live write would.
    pub(super) async fn write(
        &mut self,
        inner: &Inner,
        write: RecordWrite,
    ) -> Result<Captured, StepFailure> {
        let now = Utc::now();
        let existing = match write.id {
            Some(id) => match self.records.get(&id) {
                Some(record) => Some(RecordView {
                    id,
                    object: record.object.clone(),
                    values: record.values.clone(),
                    created_at: now,
                    updated_at: now,
                }),
                None if id < 0 => {
                    let missing = StoreError::NotFound(format!("record {id}"));
                    return Err(step::write_failure(missing.into()));
                }
                None => Some(
                    inner
                        .store
                        .record(id)
                        .await
                        .map_err(|e| step::write_failure(e.into()))?,
                ),
            },
            None => None,
        };
        let merge = write.merge(existing.as_ref()).map_err(|refused| {
            step::write_failure(StoreError::Conflict(refused.to_string()).into())
        })?;
        let before = existing
            .as_ref()
            .map(|r| r.values.clone())
            .unwrap_or_default();
        let id = match &existing {
            Some(record) => record.id,
            None => {
                self.last_new -= 1;
                self.last_new
            }
        };
        let object = existing
            .as_ref()
            .map_or_else(|| write.object.clone(), |r| r.object.clone());
        let changes = write
            .values
            .iter()
            .map(|(field, after)| FieldDiff {
                field: field.clone(),
                before: before.get(field).cloned().unwrap_or(Value::Null),
                after: after.clone(),
                changed: merge.changed.contains(field),
                note: self.placeholder(after),
            })
            .collect();
        let change = change_of(existing.clone(), &write, &merge, now);
        let op = match existing {
            None => WriteOp::Create,
            Some(_) => WriteOp::Update,
        };
        let record = self.records.entry(id).or_insert_with(|| SimRecord {
            object: object.clone(),
            before: existing.as_ref().map(|r| r.values.clone()),
            values: Map::new(),
            written: Vec::new(),
        });
        if !self.order.contains(&id) {
            self.order.push(id);
        }
        record.values = merge.values;
        for field in write.values.keys() {
            if !record.written.contains(field) {
                record.written.push(field.clone());
            }
        }
        let mut output = json!({
            "record_id": id, "changed": merge.changed, "duplicate": false, "runs": [],
            "test": "not written: test run",
        });
        if id < 0 {
            output["placeholder"] = json!(true);
        }
        Ok(Captured {
            done: Done {
                output,
                detail: Value::Null,
                control: Control::Continue,
            },
            write: PlannedWrite {
                object,
                record_id: (id > 0).then_some(id),
                op,
                changes,
            },
            change,
        })
    }

    /// What a value is when it is the placeholder id of a record this run would create (a
    /// number, or text holding one, as templates render ids).
    pub(super) fn placeholder(&self, value: &Value) -> Option<String> {
        let id = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }?;
        let record = self.records.get(&id).filter(|_| id < 0)?;
        Some(format!("placeholder for the new {} record", record.object))
    }

    /// Every record's net change: each field written, from its value before the run to its
    /// value at the end.
    /// `shown` makes a value fit to show (redacted, capped).
    pub(super) fn net(&self, shown: impl Fn(&Value) -> Value) -> Vec<PlannedWrite> {
        self.order
            .iter()
            .filter_map(|id| Some((*id, self.records.get(id)?)))
            .map(|(id, record)| {
                let empty = Map::new();
                let before = record.before.as_ref().unwrap_or(&empty);
                let changes = record
                    .written
                    .iter()
                    .map(|field| {
                        let was = before.get(field).cloned().unwrap_or(Value::Null);
                        let now = record.values.get(field).cloned().unwrap_or(Value::Null);
                        FieldDiff {
                            field: field.clone(),
                            changed: record.before.is_none()
                                || before.get(field) != record.values.get(field),
                            note: self.placeholder(&now),
                            before: shown(&was),
                            after: shown(&now),
                        }
                    })
                    .collect();
                PlannedWrite {
                    object: record.object.clone(),
                    record_id: (id > 0).then_some(id),
                    op: match record.before {
                        None => WriteOp::Create,
                        Some(_) => WriteOp::Update,
                    },
                    changes,
                }
            })
            .collect()
    }
}
