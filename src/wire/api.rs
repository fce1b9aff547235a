//! REST request and response bodies under `/api/v1`, and websocket stream messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::Event;
use super::runs::string_enum;

string_enum!(
    /// What a token may do: `viewer` reads; `operator` also retries, replays, discards, cancels
    /// and acknowledges; `admin` also publishes, rolls back and manages tokens and webhooks.
    Role {
        Viewer => "viewer",
        Operator => "operator",
        Admin => "admin",
    }
);

impl Role {
    /// True when this role includes everything `needed` may do.
    pub fn allows(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Self::Viewer => 0,
            Self::Operator => 1,
            Self::Admin => 2,
        }
    }
}

/// Every error the API answers: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable code (`not_found`, `forbidden`, `invalid_workflow`...) and a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// For `invalid_workflow`: every problem with its line and column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemView>,
}

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ProblemView {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// One page of a list, newest first; pass `next_cursor` as `cursor` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Filters for runs and dead-letter entries (query string).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(default)]
#[cfg_attr(feature = "server", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    pub workflow: Option<String>,
    pub status: Option<String>,
    pub team: Option<String>,
    pub mode: Option<String>,
    pub record_id: Option<i64>,
    /// Queued at or after this RFC 3339 time.
    #[serde(deserialize_with = "rfc3339")]
    pub since: Option<DateTime<Utc>>,
    /// Queued before this RFC 3339 time.
    #[serde(deserialize_with = "rfc3339")]
    pub until: Option<DateTime<Utc>>,
    /// Free text searched in error messages.
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// An optional RFC 3339 time whose error says what is expected (chrono's own says only
/// "input contains invalid characters").
pub(crate) fn rfc3339<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not an RFC 3339 time such as 2026-12-01T10:00:00Z ({e})"
            ))
        })
}

/// `POST /runs`: start a workflow's published version by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    pub workflow: String,
    #[serde(default)]
    pub payload: Value,
}

/// The id of a run (or runs) just created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Created {
    pub id: i64,
}

/// A reason, where an action takes one (discard needs it; cancel may have it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Which version a replay runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReplayOn {
    /// The version the failed run ran.
    #[default]
    Same,
    /// The version published now.
    Latest,
}

/// `POST /dlq/{id}/replay`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    pub version: ReplayOn,
    /// An edited trigger payload; the original one when absent.
    #[serde(default)]
    pub payload: Option<Value>,
}

/// `POST /dlq/replay`: replay every open entry that matches a filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkReplay {
    /// Which open entries: the same filters as `GET /dlq` (an object).
    #[serde(default, deserialize_with = "object_only")]
    pub filter: RunQuery,
    #[serde(default)]
    pub version: ReplayOn,
    /// Only answer what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// Only these dead-letter entries (of those the filter matches), when not empty.
    #[serde(default)]
    pub ids: Vec<i64>,
    /// Must be `true` to replay every open entry (no filter and no ids): a mistyped or empty
    /// filter never replays everything by accident.
    #[serde(default)]
    pub all: bool,
    /// Replayed runs start at most this fast (default 10 per second), so a bulk replay does
    /// not hit a recovering API all at once: a number per second (`10`) or a rate (`"5/s"`).
    /// They also obey their workflow's and their hosts' limits.
    #[serde(default)]
    pub rate: Option<super::ReplayRate>,
    /// Also replay entries that failed permanently and would run the very same version again
    /// (they would fail again at once: a 422 stays a 422). Off by default; entries replayed on
    /// another version (`"version": "latest"` after a fix) are included either way.
    #[serde(default)]
    pub include_permanent: bool,
}

/// Reads a struct only from a JSON object: serde would also take an array (`"filter": []`).
fn object_only<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    match Value::deserialize(deserializer)? {
        value @ Value::Object(_) => T::deserialize(value).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected an object of filters, found {other}"
        ))),
    }
}

impl RunQuery {
    /// True when no filter narrows anything: none is set, or those set are blank (cursor and
    /// limit are paging, not filters).
    pub fn matches_everything(&self) -> bool {
        let blank = |text: &Option<String>| text.as_deref().is_none_or(|t| t.trim().is_empty());
        let Self {
            workflow,
            status,
            team,
            mode,
            record_id,
            since,
            until,
            q,
            cursor: _,
            limit: _,
        } = self;
        blank(workflow)
            && blank(status)
            && blank(team)
            && blank(mode)
            && record_id.is_none()
            && since.is_none()
            && until.is_none()
            && blank(q)
    }
}

/// What a bulk replay does (or would do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ReplayPlan {
    pub count: usize,
    pub workflows: Vec<String>,
    pub records: Vec<i64>,
    /// Steps that would call an outside system again.
    pub external_steps: Vec<ExternalStep>,
    /// Runs created (empty for a dry run).
    #[serde(default)]
    pub runs: Vec<i64>,
    /// The matching entries by error class and signature, most frequent first, each saying
    /// whether it is replayed (permanent failures on the same version are held back unless
    /// `include_permanent`).
    #[serde(default)]
    pub groups: Vec<ReplayGroup>,
    /// Entries held back because they failed permanently and would run the same version.
    #[serde(default)]
    pub held_back: usize,
}

/// Matching dead-letter entries that share an error class and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ReplayGroup {
    pub class: super::ErrorClass,
    /// The error with ids and numbers masked (`HTTP 503 for lead #`).
    pub signature: String,
    pub count: usize,
    /// False for permanent failures held back.
    pub replayed: bool,
}

/// A step that reaches outside ACP and would run again on replay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ExternalStep {
    pub workflow: String,
    pub version: i64,
    pub step_id: String,
    pub kind: String,
    /// Whether the call carries an `Idempotency-Key` the outside system can deduplicate on.
    pub idempotency_key: bool,
    /// How many of the replayed runs would call it.
    pub runs: usize,
}

/// `POST /workflows/{key}/rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub version: i64,
}

/// The new published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Published {
    pub workflow: String,
    pub version: i64,
}

/// `GET /workflows/{key}/diff?from=&to=`: a unified diff of two versions' sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Diff {
    pub from: i64,
    pub to: i64,
    pub unified: String,
}

/// `POST /records` (create) and `PATCH /records/{id}` (update some fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    #[serde(default)]
    pub object: String,
    pub values: serde_json::Map<String, Value>,
    /// A key already applied makes the write a no-op returning the first result.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The record after a write, and what the write did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RecordWritten {
    pub record: super::RecordView,
    pub changed: Vec<String>,
    pub runs: Vec<i64>,
    pub duplicate: bool,
}

/// `POST /tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub role: Role,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token just created: the secret is shown this once (and never by `Debug`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    #[serde(flatten)]
    pub view: TokenView,
    pub token: String,
}

impl std::fmt::Debug for TokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreated")
            .field("view", &self.view)
            .field("token", &super::REDACTED)
            .finish()
    }
}

/// One control action: who did what to what, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: Role,
    pub action: String,
    pub target: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// `ok`, or the error code the action ended with.
    pub outcome: String,
}

/// `GET /me`: who the token belongs to, and where the event log is now (a client loads over
/// REST, then streams from `seq` so nothing falls between the two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Me {
    pub name: String,
    pub role: Role,
    /// The newest event's sequence number.
    pub seq: i64,
}

/// A websocket stream message (one JSON text frame each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    Event(Event),
    /// `since` is older than the oldest event kept: reload over REST, then resume from `seq`.
    Reset {
        seq: i64,
    },
    /// The client fell too far behind and is disconnected; reconnect with `since=seq`.
    Lagged {
        seq: i64,
    },
    /// Several messages in one frame, in order (only for clients that asked with `batch=true`).
    #[cfg_attr(feature = "server", schema(no_recursion))]
    Batch {
        messages: Vec<StreamMessage>,
    },
}

impl StreamMessage {
    /// The messages this one carries, in order: itself, or a batch's contents.
    pub fn flatten(self) -> Vec<StreamMessage> {
        match self {
            Self::Batch { messages } => messages.into_iter().flat_map(Self::flatten).collect(),
            other => vec![other],
        }
    }
}
