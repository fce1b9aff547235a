//! Records and their field history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::runs::string_enum;

string_enum!(
    /// Who or what made a change to a record.
    Source {
        Workflow => "workflow",
        Api => "api",
        Console => "console",
        Ai => "ai",
    }
);

/// A record: an object name and its JSON field values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RecordView {
    pub id: i64,
    pub object: String,
    pub values: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One field changing value, with everything needed to answer "why did this change?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct FieldChange {
    pub id: i64,
    pub record_id: i64,
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
    pub at: DateTime<Utc>,
    pub source: Source,
    pub actor: String,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub workflow_version: Option<i64>,
    #[serde(default)]
    pub run_id: Option<i64>,
    #[serde(default)]
    pub step_id: Option<String>,
    #[serde(default)]
    pub ai_policy_id: Option<String>,
}
