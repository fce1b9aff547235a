//! Test mode: a workflow run on live data that applies nothing, and what it would have done.
//!
//! `POST /api/v1/workflows/{key}/test` takes a [`TestRequest`] and answers a [`TestReport`]:
//! per input the steps as they ran, the request each outside call would have sent, the
//! per-field record changes it would have made (before → after) and the published workflows
//! those changes would start.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::runs::string_enum;
use super::{RunStatus, StepError};

/// Which version of a workflow to test: `"draft"`, `"published"` or a version number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestVersion {
    /// The saved draft (or, with [`TestRequest::source`], the file sent along).
    #[default]
    Draft,
    Published,
    Number(i64),
}

impl std::fmt::Display for TestVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Draft => f.write_str("draft"),
            Self::Published => f.write_str("published"),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for TestVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => serializer.serialize_i64(*n),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for TestVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) if s == "draft" => Ok(Self::Draft),
            Value::String(s) if s == "published" => Ok(Self::Published),
            Value::Number(n) if n.as_i64().is_some_and(|n| n > 0) => {
                Ok(Self::Number(n.as_i64().unwrap_or_default()))
            }
            Value::String(s) if s.parse::<i64>().is_ok_and(|n| n > 0) => {
                Ok(Self::Number(s.parse().unwrap_or_default()))
            }
            other => Err(serde::de::Error::custom(format!(
                "version is \"draft\", \"published\" or a version number from 1, not {other}"
            ))),
        }
    }
}

#[cfg(feature = "server")]
impl utoipa::PartialSchema for TestVersion {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["draft", "published"])),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .description(Some("`draft`, `published` or a version number"))
            .into()
    }
}

#[cfg(feature = "server")]
impl utoipa::ToSchema for TestVersion {}

/// One input of a test: a record as it is now, or a trigger payload as given.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum TestInput {
    /// The record as stored now, as if the trigger's fields had just been written with their
    /// current values (`previous` holds the same values).
    Record { record_id: i64 },
    /// A trigger payload (`trigger` in templates), as a live run of this workflow gets it.
    Payload { payload: Value },
}

impl<'de> Deserialize<'de> for TestInput {
    /// Exactly one of `record_id` (a positive id) and `payload`; anything else is refused
    /// naming the field, as unknown fields are everywhere in the API.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const SHAPE: &str = r#"an input is {"record_id": ID} or {"payload": {...}}"#;
        let Value::Object(mut fields) = Value::deserialize(deserializer)? else {
            return Err(D::Error::custom(SHAPE));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "record_id" | "payload"))
        {
            return Err(D::Error::custom(format!(
                "unknown field `{unknown}`: {SHAPE}"
            )));
        }
        match (fields.remove("record_id"), fields.remove("payload")) {
            (Some(id), None) => match id.as_i64().filter(|id| *id > 0) {
                Some(record_id) => Ok(Self::Record { record_id }),
                None => Err(D::Error::custom(format!(
                    "record_id {id} is not a record id (a number from 1)"
                ))),
            },
            (None, Some(payload)) => Ok(Self::Payload { payload }),
            _ => Err(D::Error::custom(SHAPE)),
        }
    }
}

/// Reads the status of a final HTTP answer, 200 to 599 (RFC 9110 §15: 1xx answers are
/// interim; a client never ends with one).
fn http_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let status = u16::deserialize(deserializer)?;
    if (200..=599).contains(&status) {
        Ok(status)
    } else {
        Err(serde::de::Error::custom(format!(
            "status {status} is not the status of a final HTTP answer (200 to 599)"
        )))
    }
}

/// Reads header names and values a real answer could carry: names are RFC 9110 tokens, values
/// hold no control characters but tab (§5.5).
fn http_headers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let headers = BTreeMap::<String, String>::deserialize(deserializer)?;
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    for (name, value) in &headers {
        if name.is_empty() || !name.chars().all(token) {
            return Err(serde::de::Error::custom(format!(
                "header name {name:?} is not an HTTP field name (letters, digits and !#$%&'*+-.^_`|~)"
            )));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(serde::de::Error::custom(format!(
                "header {name}: the value holds a control character"
            )));
        }
    }
    Ok(headers)
}

/// Mocks only, unless the request asks for recorded answers.
impl Default for Responses {
    fn default() -> Self {
        Self::Mock
    }
}

string_enum!(
    /// Where test responses of outside calls come from: `mock`, only the request's mocks (a
    /// step without one is not answered); `recorded`, the mocks first, then the last
    /// successful live response of the same step of the same workflow.
    Responses {
        Mock => "mock",
        Recorded => "recorded",
    }
);

/// A made-up answer for one step that would call out (`http`, `notify`, `ai`): an object (an
/// array is not read by position).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(try_from = "Value")]
pub struct MockResponse {
    /// HTTP status (200 to 599); a non-2xx status fails the step as a live answer would.
    #[serde(default = "ok_status", deserialize_with = "http_status")]
    pub status: u16,
    #[serde(default, deserialize_with = "http_headers")]
    pub headers: BTreeMap<String, String>,
    /// The body (for an `ai` step, the completion).
    #[serde(default)]
    pub body: Value,
}

/// [`MockResponse`]'s fields, read once the mock is known to be an object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MockFields {
    #[serde(default = "ok_status", deserialize_with = "http_status")]
    status: u16,
    #[serde(default, deserialize_with = "http_headers")]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Value,
}

/// A mock that is not an object, or whose fields are wrong.
#[derive(Debug, thiserror::Error)]
pub enum MockRefused {
    #[error("a mock is an object {{\"status\", \"headers\", \"body\"}}, not {0}")]
    NotAnObject(Value),
    #[error(transparent)]
    Field(#[from] serde_json::Error),
}

impl TryFrom<Value> for MockResponse {
    type Error = MockRefused;

    fn try_from(value: Value) -> Result<Self, MockRefused> {
        if !value.is_object() {
            return Err(MockRefused::NotAnObject(value));
        }
        let MockFields {
            status,
            headers,
            body,
        } = serde_json::from_value(value)?;
        Ok(Self {
            status,
            headers,
            body,
        })
    }
}

fn ok_status() -> u16 {
    200
}

/// Most inputs in one test request (and runs compared with `recent`).
pub const MAX_TEST_INPUTS: usize = 100;

/// `POST /api/v1/workflows/{key}/test`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The version to test; without it (and without `source`), the draft when there is one,
    /// else the published version.
    #[serde(default)]
    pub version: Option<TestVersion>,
    /// A workflow file to test instead of a stored version (its key must be the URL's; admin
    /// only, as saving a draft is); the runs are stored as version 0.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub inputs: Vec<TestInput>,
    /// Responses by step id.
    #[serde(default)]
    pub mocks: BTreeMap<String, MockResponse>,
    #[serde(default)]
    pub responses: Responses,
    /// Also run this version on the same inputs and report where outcomes differ.
    #[serde(default)]
    pub compare: Option<TestVersion>,
    /// Add the trigger payloads of the workflow's N most recent live runs as inputs (at most
    /// [`MAX_TEST_INPUTS`] in all).
    #[serde(default)]
    pub recent: Option<usize>,
}

string_enum!(
    /// How a step of a test run ended. `not_sent`: it would call out and nothing answered
    /// (no mock, no recording), and no later step reads its output; `not_run`: an earlier
    /// step stopped the run.
    TestStepStatus {
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
        NotSent => "not_sent",
        NotRun => "not_run",
    }
);

/// The request a step would have sent, redacted as a live run stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WouldCall {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Value,
}

string_enum!(
    /// Where a test answer came from.
    ResponseSource {
        Mock => "mock",
        Recorded => "recorded",
    }
);

/// The answer a test step got instead of calling out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TestResponse {
    pub source: ResponseSource,
    pub status: u16,
    #[serde(default)]
    pub body: Value,
    /// For a recorded answer: the run it was recorded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
}

string_enum!(
    /// Whether a planned write creates a record or updates one.
    WriteOp {
        Create => "create",
        Update => "update",
    }
);

/// One field of a planned write. `before` is null for a field the record did not have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct FieldDiff {
    pub field: String,
    #[serde(default)]
    pub before: Value,
    #[serde(default)]
    pub after: Value,
    /// False when the write sets the value the field already has.
    pub changed: bool,
    /// Set when `after` is the placeholder id of a record the test run would create:
    /// `placeholder for the new tasks record`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A record write a test run captured instead of applying.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct PlannedWrite {
    pub object: String,
    /// The record's id; null for a record the run would create.
    #[serde(default)]
    pub record_id: Option<i64>,
    pub op: WriteOp,
    pub changes: Vec<FieldDiff>,
}

/// One step of a test run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TestStep {
    pub id: String,
    pub status: TestStepStatus,
    /// The rendered request of a step that calls out.
    #[serde(default)]
    pub would_call: Option<WouldCall>,
    #[serde(default)]
    pub response: Option<TestResponse>,
    /// What this step writes (each field against the record as earlier steps left it).
    #[serde(default)]
    pub writes: Vec<PlannedWrite>,
    /// What later steps see as `steps.<id>.output`, redacted.
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub error: Option<StepError>,
}

/// A published workflow a captured write would start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WouldTrigger {
    pub workflow: String,
    pub version: i64,
    /// Null for a record the run would create.
    #[serde(default)]
    pub record_id: Option<i64>,
    /// The changed fields the trigger saw.
    pub fields: Vec<String>,
}

/// One input's test run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TestResult {
    /// The stored test run (`GET /api/v1/runs/{id}`).
    pub run_id: i64,
    pub input: TestInput,
    pub status: RunStatus,
    #[serde(default)]
    pub error: Option<StepError>,
    pub steps: Vec<TestStep>,
    /// The net effect on each record: every step's writes together, before → after.
    #[serde(default)]
    pub writes: Vec<PlannedWrite>,
    #[serde(default)]
    pub would_trigger: Vec<WouldTrigger>,
    /// Set when a live change like this input would not start the workflow at all (its
    /// trigger's filter is false for it): the test shows what the steps would do if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How one input fared on the tested version and on the version compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct InputComparison {
    /// Index into `results` (and `compare.results`).
    pub input: usize,
    pub status: RunStatus,
    pub compared_status: RunStatus,
    pub same_status: bool,
    pub same_writes: bool,
    pub same_calls: bool,
}

/// The outcome of `compare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Comparison {
    /// The version compared with (0: a draft or a file).
    pub version: i64,
    pub results: Vec<TestResult>,
    pub inputs: Vec<InputComparison>,
    /// Inputs whose status, writes or calls differ.
    pub differ: usize,
    /// Inputs that succeed on the compared version and fail on the tested one.
    pub now_fail: usize,
    /// One line: `3 of 20 would now fail; 17 write the same fields`.
    pub summary: String,
}

/// The answer of a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TestReport {
    pub workflow: String,
    /// The version tested (0: a draft or a file).
    pub version: i64,
    pub results: Vec<TestResult>,
    #[serde(default)]
    pub compare: Option<Comparison>,
}

/// How a line of a printed diff reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffMark {
    /// The record: `leads 12 (update)`, `tasks new (create)`.
    Record,
    /// A value before the write (`-`).
    Removed,
    /// A value after the write (`+`).
    Added,
    /// A field written with the value it already had.
    Unchanged,
}

impl DiffMark {
    /// The marker printed before the line.
    pub fn marker(self) -> &'static str {
        match self {
            Self::Record => "",
            Self::Removed => "- ",
            Self::Added => "+ ",
            Self::Unchanged => "  ",
        }
    }
}

impl PlannedWrite {
    /// The write as diff lines: the record, then per field `- before` / `+ after` (a field
    /// the record did not have shows only `+`), or the unchanged value; values as compact
    /// JSON, so `"10"` and `10` stay apart.
    pub fn lines(&self) -> Vec<(DiffMark, String)> {
        let id = self
            .record_id
            .map_or_else(|| "new".to_owned(), |id| id.to_string());
        let mut lines = vec![(
            DiffMark::Record,
            format!("{} {id} ({})", self.object, self.op),
        )];
        for change in &self.changes {
            let field = &change.field;
            if !change.changed {
                let value = change.after.to_string();
                lines.push((DiffMark::Unchanged, format!("{field}: {value} (unchanged)")));
                continue;
            }
            if !change.before.is_null() {
                let before = change.before.to_string();
                lines.push((DiffMark::Removed, format!("{field}: {before}")));
            }
            let after = change.after.to_string();
            let note = change
                .note
                .as_ref()
                .map_or_else(String::new, |n| format!(" ({n})"));
            lines.push((DiffMark::Added, format!("{field}: {after}{note}")));
        }
        lines
    }
}

impl PlannedWrite {
    /// How many fields the write changes (the others it sets to the value they had).
    pub fn changed(&self) -> usize {
        self.changes.iter().filter(|c| c.changed).count()
    }
}

impl WouldTrigger {
    /// The record it would start on: `record 12`, or `a new record`.
    pub fn record(&self) -> String {
        self.record_id
            .map_or_else(|| "a new record".to_owned(), |id| format!("record {id}"))
    }
}

impl TestReport {
    /// True when every test run succeeded and, when compared, no outcome differs (the CLI's
    /// exit status).
    pub fn passed(&self) -> bool {
        self.results
            .iter()
            .all(|r| r.status == RunStatus::Succeeded)
            && self.compare.as_ref().is_none_or(|c| c.differ == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_reads_versions_inputs_and_mocks_and_refuses_what_it_does_not_know() {
        let request: TestRequest = serde_json::from_value(json!({
            "version": 3,
            "inputs": [{"record_id": 7}, {"payload": {"a": 1}}],
            "mocks": {"enrich": {"body": {"ok": true}}},
            "responses": "recorded",
            "compare": "published",
        }))
        .unwrap();
        assert_eq!(request.version, Some(TestVersion::Number(3)));
        assert_eq!(request.inputs[0], TestInput::Record { record_id: 7 });
        assert_eq!(request.mocks["enrich"].status, 200);
        assert_eq!(request.compare, Some(TestVersion::Published));
        assert_eq!(
            serde_json::from_value::<TestRequest>(json!({})).unwrap(),
            TestRequest::default()
        );
        for bad in [
            json!({"version": "latest"}),
            json!({"version": 0}),
            json!({"inputs": [{"record": 7}]}),
            json!({"inputs": [{"record_id": 7, "payload": {}}]}),
            json!({"inputs": [{"record_id": 0}]}),
            json!({"inputs": [7]}),
            json!({"mocks": {"x": {"status": 0}}}),
            json!({"mocks": {"x": {"status": 999}}}),
            json!({"mocks": {"x": {"status": 101}}}),
            json!({"mocks": {"x": {"headers": {"a b": "x"}}}}),
            json!({"mocks": {"x": {"headers": {"x": "a\nb"}}}}),
            json!({"mocks": {"x": [201, {}, {"ok": true}]}}),
            json!({"responses": "live"}),
            json!({"mocks": {"x": {"status": 200, "bodyy": 1}}}),
            json!({"extra": 1}),
        ] {
            assert!(
                serde_json::from_value::<TestRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let err = serde_json::from_value::<TestRequest>(json!({"version": "latest"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"draft\", \"published\" or a version number"),
            "{err}"
        );
        let err = serde_json::from_value::<TestRequest>(json!({"inputs": [{"recordid": 7}]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `recordid`"), "{err}");
        assert_eq!(json!(TestVersion::Published), json!("published"));
        let quoted: TestRequest = serde_json::from_value(json!({"version": "3"})).unwrap();
        assert_eq!(quoted.version, Some(TestVersion::Number(3)));
    }

    #[test]
    fn a_write_reads_as_diff_lines() {
        let write = PlannedWrite {
            object: "leads".into(),
            record_id: Some(12),
            op: WriteOp::Update,
            changes: vec![
                FieldDiff {
                    field: "owner".into(),
                    before: json!("ann"),
                    after: json!("bo"),
                    changed: true,
                    note: None,
                },
                FieldDiff {
                    field: "task_id".into(),
                    before: Value::Null,
                    after: json!(-1),
                    changed: true,
                    note: Some("placeholder for the new tasks record".into()),
                },
                FieldDiff {
                    field: "segment".into(),
                    before: json!("smb"),
                    after: json!("smb"),
                    changed: false,
                    note: None,
                },
            ],
        };
        let text: Vec<String> = write
            .lines()
            .into_iter()
            .map(|(mark, line)| format!("{}{line}", mark.marker()))
            .collect();
        assert_eq!(
            text,
            [
                "leads 12 (update)",
                "- owner: \"ann\"",
                "+ owner: \"bo\"",
                "+ task_id: -1 (placeholder for the new tasks record)",
                "  segment: \"smb\" (unchanged)",
            ]
        );
        assert_eq!(json!(TestVersion::Number(2)), json!(2));
    }
}
