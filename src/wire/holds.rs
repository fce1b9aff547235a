//! Holds: pauses of a workflow, a team or a destination host, placed by a person, a
//! maintenance window or a host that asked to wait.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::api::rfc3339;
use super::runs::string_enum;

string_enum!(
    /// Who placed a hold: a person through the API (`api`), a maintenance window of
    /// `acp.ron` (`window`), or a host that answered 429/503 with `Retry-After`
    /// (`backpressure`).
    HoldSource {
        Api => "api",
        Window => "window",
        Backpressure => "backpressure",
    }
);

/// A hold as `GET /holds` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct HoldView {
    pub id: i64,
    /// `workflow:KEY`, `team:NAME` or `host:HOST`.
    pub scope: String,
    pub reason: String,
    pub source: HoldSource,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// When it ends by itself; none for a hold that lasts until it is released.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// How fast its runs continue once it ends (`"5/s"`); at once when none.
    #[serde(default)]
    pub drain_rate: Option<String>,
    #[serde(default)]
    pub released_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub released_by: Option<String>,
    /// Runs it holds now.
    #[serde(default)]
    pub held_runs: i64,
}

impl HoldView {
    /// True until it is released or its end has come.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.released_at.is_none() && self.until.is_none_or(|until| until > now)
    }
}

/// `POST /holds`: hold a scope `for` a duration, `until` a time, or until released.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// `workflow:KEY`, `team:NAME` or `host:HOST`.
    pub scope: String,
    /// Why: shown beside every run it holds.
    pub reason: String,
    /// How long, e.g. `"2h"`; give `for` or `until`, or neither for a hold until released.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// An RFC 3339 time.
    #[serde(
        default,
        deserialize_with = "rfc3339",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<DateTime<Utc>>,
    /// How fast its runs continue once it ends, e.g. `"5/s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_rate: Option<String>,
}

/// What `GET /holds` answers: the holds (active ones, or the newest 100 with `all=true`) and
/// the next maintenance windows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct HoldList {
    pub holds: Vec<HoldView>,
    #[serde(default)]
    pub windows: Vec<WindowView>,
    /// Runs held now, whatever holds them (holds, limits, host backpressure).
    #[serde(default)]
    pub held_runs: i64,
}

/// A maintenance window of `acp.ron` and its next occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WindowView {
    pub name: String,
    pub scope: String,
    pub cron: String,
    pub timezone: String,
    /// Seconds each occurrence lasts.
    pub duration_s: u64,
    #[serde(default)]
    pub drain_rate: Option<String>,
    /// The next start (or the current one while it lasts).
    #[serde(default)]
    pub next_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub next_end: Option<DateTime<Utc>>,
    /// True while an occurrence lasts.
    #[serde(default)]
    pub active: bool,
}
