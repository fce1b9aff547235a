//! The API's one error type: every failure becomes `{"error": {"code", "message"}}` with the
//! right status. HTTP status codes appear here and nowhere else.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection, StringRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::engine::EngineError;
use crate::store::StoreError;
use crate::wire::{ErrorBody, ErrorDetail, ProblemView};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub problems: Vec<ProblemView>,
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

/// The message the client gets (for handler spans and logs).
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                problems: self.problems,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(why) | StoreError::Stale(why) => {
                Self::new(StatusCode::CONFLICT, "conflict", why)
            }
            StoreError::LeaseLost(run) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("run {run} changed hands"),
            ),
            StoreError::Invalid(why) => Self::bad_request(why),
            StoreError::Other(detail) => {
                tracing::error!("store error: {detail}");
                Self::internal()
            }
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::NotFound(what) => Self::not_found(format!("{what} not found")),
            EngineError::Invalid(why) => Self::unprocessable("invalid", why),
            EngineError::IdempotencyKeyReused(why) => {
                Self::unprocessable("idempotency_key_reused", why)
            }
            EngineError::Problems(problems) => Self {
                problems: problems
                    .iter()
                    .map(|p| ProblemView {
                        line: p.line,
                        col: p.col,
                        message: p.message.clone(),
                    })
                    .collect(),
                ..Self::unprocessable(
                    "invalid_workflow",
                    EngineError::Problems(problems).to_string(),
                )
            },
        }
    }
}

/// Rewrites any error answer that is not already our JSON body (axum's and tower's plain-text
/// rejections: a body over the limit, a failed websocket upgrade, a bad header) into it, so
/// every route answers every error the same way.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // Handlers answer JSON or (the signed pages) HTML; what axum or tower answer on their own
    // is plain text, or nothing.
    let made_here = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || made_here {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let code = code_for(status);
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut rewritten = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}

/// Maps a body, query or path rejection to our error body, keeping axum's status
/// (400 malformed, 413 too large, 415 wrong content type, 422 wrong shape).
pub(crate) fn rejection(status: StatusCode, text: String) -> ApiError {
    ApiError::new(status, code_for(status), text)
}

/// The error code of an answer made by axum or tower rather than by a handler.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::UPGRADE_REQUIRED => "upgrade_required",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        unknown_field(&r.body_text()).unwrap_or_else(|| rejection(r.status(), r.body_text()))
    }
}

/// A body naming a field the request type does not have is a 400 that names it: a typo
/// (`workflw`) must never be ignored and so widen what a call touches.
fn unknown_field(text: &str) -> Option<ApiError> {
    text.contains("unknown field")
        .then(|| ApiError::new(StatusCode::BAD_REQUEST, "unknown_field", text))
}

impl From<StringRejection> for ApiError {
    fn from(r: StringRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        unknown_field(&r.body_text()).unwrap_or_else(|| Self::bad_request(r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        use axum::extract::path::ErrorKind;
        let PathRejection::FailedToDeserializePathParams(e) = &r else {
            return Self::bad_request(r.body_text());
        };
        let wanted = |expected: &str| match expected {
            "i64" | "u64" | "i32" | "u32" | "usize" => "a whole number".to_owned(),
            other => format!("a {other}"),
        };
        match e.kind() {
            ErrorKind::ParseErrorAtKey {
                key,
                value,
                expected_type,
            } => Self::bad_request(format!(
                "`{value}` is not a valid {key} in the path: expected {}",
                wanted(expected_type)
            )),
            ErrorKind::ParseErrorAtIndex {
                value,
                expected_type,
                ..
            }
            | ErrorKind::ParseError {
                value,
                expected_type,
            } => Self::bad_request(format!(
                "`{value}` in the path is not valid: expected {}",
                wanted(expected_type)
            )),
            _ => Self::bad_request(r.body_text()),
        }
    }
}

/// A JSON body whose rejections are [`ApiError`]s. axum's `Json` checks the content type, the
/// size and the syntax; then the body must be an object (every request body of the API is
/// one: serde would read a struct from an array by position), and a field of the wrong shape
/// is named by its path (`mocks.enrich.status: ...`).
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(UniqueKeys(value)) = Json::<UniqueKeys>::from_request(req, state).await?;
        object_body(value).map(ApiJson)
    }
}

/// A JSON value whose objects name each key once. JSON leaves duplicate keys undefined (RFC
/// 8259 §4: names "SHOULD be unique") and serde keeps the last, so
/// `{"dry_run": true, "dry_run": false}` would act on the second: a body that names a key
/// twice is refused instead.
struct UniqueKeys(serde_json::Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueKeys)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{}` appears twice in one object",
                    crate::wire::printable(&key)
                )));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

/// Reads a parsed request body into `T`: it must be a JSON object (every request body of the
/// API is one; serde would read a struct from an array by position), and a field of the
/// wrong shape is named by its path.
fn object_body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> ApiResult<T> {
    if !value.is_object() {
        let kind = match value {
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("the body must be a JSON object, not {kind}"),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let text = match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        };
        unknown_field(&text).unwrap_or_else(|| ApiError::unprocessable("invalid_body", text))
    })
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// `Query` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Refuses filter values that can match nothing because they are not values at all
/// (`status=bogus`), so a typo never looks like an empty result. `status` is checked with
/// `status_ok` (run or dead-letter statuses, depending on the list).
pub fn check_filter(query: &crate::wire::RunQuery, status_ok: fn(&str) -> bool) -> ApiResult<()> {
    if let Some(status) = query.status.as_deref().filter(|s| !status_ok(s)) {
        return Err(ApiError::bad_request(format!(
            "`{status}` is not a status here"
        )));
    }
    if let Some(mode) = query
        .mode
        .as_deref()
        .filter(|m| crate::wire::RunMode::parse(m).is_none())
    {
        return Err(ApiError::bad_request(format!(
            "`{mode}` is not a mode (live or test)"
        )));
    }
    Ok(())
}

/// Most characters of a reason (discard, cancel, silence): it is shown in the audit log and
/// in notifications, not stored as a document.
pub const MAX_REASON_CHARS: usize = 1_000;

/// Refuses a reason longer than [`MAX_REASON_CHARS`].
pub fn check_reason(reason: Option<&str>) -> ApiResult<()> {
    match reason.map(|r| r.chars().count()) {
        Some(n) if n > MAX_REASON_CHARS => Err(ApiError::unprocessable(
            "reason_too_long",
            format!("a reason may have at most {MAX_REASON_CHARS} characters; this one has {n}"),
        )),
        _ => Ok(()),
    }
}

/// The body of a call that takes none: empty, or `{}`. Anything else is a 400, so a field
/// sent to the wrong call (`{"payload": ...}` to a re-run) is never silently ignored.
pub struct NoBody;

impl<S: Send + Sync> axum::extract::FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|r| rejection(r.status(), r.body_text()))?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if text.is_empty() || text.replace(char::is_whitespace, "") == "{}" {
            return Ok(Self);
        }
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unexpected_body",
            "this call takes no body (or `{}`); see the API reference for the call that takes these fields",
        ))
    }
}

/// The routes that read query parameters: those whose OpenAPI operations declare one (each
/// reads them through [`ApiQuery`], which names an unknown one), and inbound webhooks, whose
/// senders choose their URL.
static TAKES_QUERY: std::sync::LazyLock<std::collections::HashSet<String>> =
    std::sync::LazyLock::new(|| {
        let document = serde_json::to_value(super::openapi::document()).unwrap_or_default();
        let mut paths: std::collections::HashSet<String> = document["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, item)| {
                item.as_object()
                    .into_iter()
                    .flatten()
                    .any(|(_, operation)| {
                        operation["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["in"] == "query")
                    })
            })
            .map(|(path, _)| path.clone())
            .collect();
        paths.insert("/api/v1/hooks/{key}".into());
        paths
    });

/// Refuses a query parameter on a route that reads none (400 `unknown_field` naming it), as
/// the routes that read some refuse the ones they do not know.
pub async fn no_unknown_query(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let query = request.uri().query().unwrap_or_default();
    if !query.is_empty() && !matched.is_some_and(|m| TAKES_QUERY.contains(&m)) {
        let name = query.split(['&', '=']).next().unwrap_or(query);
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_field",
            format!("unknown query parameter `{name}`: this call takes none"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Parses an optional JSON body: empty means the default; bad JSON is 400, anything else is
/// read as [`ApiJson`] reads a body (an object, wrong shapes named by path; 422).
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let UniqueKeys(value) = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    object_body(value)
}
