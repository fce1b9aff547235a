//! Record writes and the changes they make.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use chrono::{DateTime, Utc};

use super::NewRun;
use crate::wire::{EventBody, RecordChanged, RecordView, RunMode, Source, TriggerKind};

/// Who and what is behind a write; copied onto every field-history row it produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub source: Source,
    pub actor: String,
    pub workflow: Option<String>,
    pub workflow_version: Option<i64>,
    pub run_id: Option<i64>,
    pub step_id: Option<String>,
    /// Fields whose new value came from an AI step, with that step's policy id; their history
    /// rows get source `ai` and the policy id.
    pub ai_fields: BTreeMap<String, String>,
}

impl Provenance {
    /// A write made by a person or a script through the API.
    pub fn api(actor: impl Into<String>) -> Self {
        Self {
            source: Source::Api,
            actor: actor.into(),
            workflow: None,
            workflow_version: None,
            run_id: None,
            step_id: None,
            ai_fields: BTreeMap::new(),
        }
    }
}

/// Creates a record (`id` is `None`) or sets some fields of an existing one.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    pub object: String,
    pub id: Option<i64>,
    pub values: Map<String, Value>,
    pub provenance: Provenance,
    /// A key already applied makes the write a no-op that returns the first result.
    pub idempotency_key: Option<String>,
}

/// A record created or updated, as record triggers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChange {
    pub event: RecordEvent,
    pub record: RecordView,
    /// Field values before the write (empty for a new record).
    pub previous: Map<String, Value>,
    pub changed: Vec<String>,
    /// The workflow that made the change, so it does not trigger itself.
    pub by_workflow: Option<String>,
}

/// Whether a record was created or updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordEvent {
    Created,
    Updated,
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWriteOutcome {
    pub record: RecordView,
    pub changed: Vec<String>,
    /// Runs started by record triggers.
    pub runs: Vec<i64>,
    /// True when the idempotency key had already been applied and nothing was written.
    pub duplicate: bool,
    /// For a duplicate: the [`RecordWrite::fingerprint`] of the write that applied the key
    /// (`None` for writes stored before fingerprints were kept).
    pub first_fingerprint: Option<String>,
}

impl RecordWrite {
    /// What the write asks for (object, record id, values) as a SHA-256 hex digest, to tell a
    /// repeated request from another request reusing its idempotency key.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let request = serde_json::json!([self.object, self.id, self.values]);
        hex::encode(Sha256::digest(request.to_string().as_bytes()))
    }
}

/// A write the record it targets cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordRefused {
    #[error("record {id} is a `{object}`, not a `{asked}`")]
    WrongObject {
        id: i64,
        object: String,
        asked: String,
    },
    #[error("a new record needs an object")]
    NoObject,
}

/// What a write does to a record: whether it creates it, which fields change, and every
/// value after the write.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub event: RecordEvent,
    /// Fields whose value differs from before (every written field, for a new record), in
    /// the order written.
    pub changed: Vec<String>,
    /// The record's values after the write: the earlier ones with the written ones over them.
    pub values: Map<String, Value>,
}

impl RecordWrite {
    /// Merges this write into `existing` (the record as stored, `None` for a new one).
    ///
    /// # Errors
    /// [`RecordRefused`] when the write names another object than the record's, or creates
    /// a record without one.
    pub fn merge(&self, existing: Option<&RecordView>) -> Result<Merge, RecordRefused> {
        let (event, previous) = match existing {
            Some(record) => {
                if !self.object.is_empty() && self.object != record.object {
                    return Err(RecordRefused::WrongObject {
                        id: record.id,
                        object: record.object.clone(),
                        asked: self.object.clone(),
                    });
                }
                (RecordEvent::Updated, &record.values)
            }
            None if self.object.trim().is_empty() => return Err(RecordRefused::NoObject),
            None => (RecordEvent::Created, &Map::new()),
        };
        let changed = self
            .values
            .iter()
            .filter(|(field, value)| {
                event == RecordEvent::Created || previous.get(*field) != Some(value)
            })
            .map(|(field, _)| field.clone())
            .collect();
        let mut values = previous.clone();
        values.extend(self.values.clone());
        Ok(Merge {
            event,
            changed,
            values,
        })
    }
}

/// A published workflow version whose record trigger matched a change: a run to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggered {
    pub workflow: String,
    pub version: i64,
    pub team: String,
    /// When the run falls due (the engine's now).
    pub not_before: Option<DateTime<Utc>>,
}

/// A record write the engine has prepared: the merge it computed from the record as it read
/// it, and the runs the change triggers. The store applies it in one transaction, or refuses
/// it as stale when the record changed since it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedWrite {
    pub write: RecordWrite,
    /// The values the merge was computed from; `None` for a new record.
    pub read: Option<Map<String, Value>>,
    pub merge: Merge,
    /// The workflows to start with the change as their trigger (none when nothing changed).
    pub triggered: Vec<Triggered>,
}

impl RecordChange {
    /// The run a trigger match starts: this change is its trigger payload.
    pub fn run_for(&self, triggered: &Triggered) -> NewRun {
        NewRun {
            workflow: triggered.workflow.clone(),
            version: triggered.version,
            team: triggered.team.clone(),
            mode: RunMode::Live,
            trigger_kind: TriggerKind::Record,
            trigger: self.payload(),
            record_id: Some(self.record.id),
            origin_run: None,
            carry_from_origin: false,
            dedupe_key: None,
            not_before: triggered.not_before,
        }
    }

    /// The event of this change, made by a write from `source`.
    pub fn event(&self, source: Source) -> EventBody {
        let changed = RecordChanged {
            record_id: self.record.id,
            object: self.record.object.clone(),
            changed: self.changed.clone(),
            source,
        };
        match self.event {
            RecordEvent::Created => EventBody::RecordCreated(changed),
            RecordEvent::Updated => EventBody::RecordUpdated(changed),
        }
    }

    /// The trigger payload runs started by this change receive.
    pub fn payload(&self) -> Value {
        serde_json::json!({
            "event": match self.event { RecordEvent::Created => "created", RecordEvent::Updated => "updated" },
            "object": self.record.object,
            "record": { "id": self.record.id, "object": self.record.object, "values": self.record.values },
            "previous": self.previous,
            "changed": self.changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(object: &str, values: Value) -> RecordWrite {
        RecordWrite {
            object: object.into(),
            id: None,
            values: serde_json::from_value(values).unwrap(),
            provenance: Provenance::api("ops"),
            idempotency_key: None,
        }
    }

    fn record(values: Value) -> RecordView {
        serde_json::from_value(serde_json::json!({
            "id": 7, "object": "deal", "values": values,
            "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_merge_changes_only_fields_whose_value_differs_and_keeps_the_rest() {
        let existing = record(serde_json::json!({"stage": "new", "owner": "ann"}));
        let merge = write("", serde_json::json!({"stage": "won", "owner": "ann"}))
            .merge(Some(&existing))
            .unwrap();
        assert_eq!(merge.event, RecordEvent::Updated);
        assert_eq!(merge.changed, ["stage"]);
        assert_eq!(
            Value::Object(merge.values),
            serde_json::json!({"stage": "won", "owner": "ann"})
        );
        let same = write("deal", serde_json::json!({"owner": "ann"}))
            .merge(Some(&existing))
            .unwrap();
        assert!(same.changed.is_empty());
    }

    #[test]
    fn a_new_record_changes_every_written_field_even_null_ones() {
        let merge = write("deal", serde_json::json!({"stage": "new", "amount": null}))
            .merge(None)
            .unwrap();
        assert_eq!(merge.event, RecordEvent::Created);
        assert_eq!(merge.changed.len(), 2);
    }

    #[test]
    fn writes_to_the_wrong_object_or_without_one_are_refused() {
        let existing = record(serde_json::json!({}));
        let wrong = write("lead", serde_json::json!({})).merge(Some(&existing));
        assert_eq!(
            wrong.unwrap_err().to_string(),
            "record 7 is a `deal`, not a `lead`"
        );
        let none = write(" ", serde_json::json!({})).merge(None);
        assert_eq!(none, Err(RecordRefused::NoObject));
    }
}
