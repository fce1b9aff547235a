//! Workflows and their immutable versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A workflow: its current published version and whether a draft is pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WorkflowView {
    pub key: String,
    pub name: String,
    pub team: String,
    #[serde(default)]
    pub published_version: Option<i64>,
    pub latest_version: i64,
    pub has_draft: bool,
    pub updated_at: DateTime<Utc>,
    /// Runs queued in the last 24 hours, and runs that failed in them (from the rollups, to
    /// the minute).
    #[serde(default)]
    pub runs_24h: i64,
    #[serde(default)]
    pub failed_24h: i64,
}

/// One immutable version of a workflow, with its RON source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct VersionView {
    pub workflow: String,
    pub version: i64,
    pub published: bool,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}
