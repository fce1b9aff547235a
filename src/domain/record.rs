//! Record writes and the changes they make.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::wire::{RecordView, Source};

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

impl RecordChange {
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
