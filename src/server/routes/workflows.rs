//! Workflows: list, versions, diff, drafts, validation, publish, rollback.

use crate::wire::ErrorBody;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, NoBody};
use crate::domain::parse_workflow;
use crate::engine::EngineError;
use crate::wire::{
    Diff, Published, Role, Rollback, TestReport, TestRequest, VersionView, WorkflowView,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list))
        .route("/workflows/validate", post(validate))
        .route("/workflows/{key}", get(one))
        .route("/workflows/{key}/versions", get(versions))
        .route("/workflows/{key}/versions/{version}", get(version))
        .route("/workflows/{key}/diff", get(diff))
        .route("/workflows/{key}/draft", put(put_draft))
        .route("/workflows/{key}/publish", post(publish))
        .route("/workflows/{key}/rollback", post(rollback))
        .route("/workflows/{key}/test", post(test))
}

#[utoipa::path(get, path = "/api/v1/workflows", responses((status = 200, body = Vec<WorkflowView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn list(
    State(s): State<AppState>,
    _: Caller,
) -> ApiResult<ApiJson<Vec<WorkflowView>>> {
    Ok(ApiJson(s.store.workflows().await?))
}

#[utoipa::path(get, path = "/api/v1/workflows/{key}", params(("key" = String, Path, description = "workflow key")), responses((status = 200, body = WorkflowView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn one(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<ApiJson<WorkflowView>> {
    let found = s
        .store
        .workflows()
        .await?
        .into_iter()
        .find(|w| w.key == key);
    found
        .map(ApiJson)
        .ok_or_else(|| ApiError::not_found(format!("workflow `{key}` not found")))
}

#[utoipa::path(get, path = "/api/v1/workflows/{key}/versions", params(("key" = String, Path, description = "workflow key")), responses((status = 200, body = Vec<VersionView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn versions(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<ApiJson<Vec<VersionView>>> {
    let list = s.store.versions(&key).await?;
    if list.is_empty() {
        return Err(ApiError::not_found(format!(
            "workflow `{key}` has no versions"
        )));
    }
    Ok(ApiJson(list))
}

#[utoipa::path(get, path = "/api/v1/workflows/{key}/versions/{version}", params(("key" = String, Path, description = "workflow key"), ("version" = i64, Path)), responses((status = 200, body = VersionView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn version(
    State(s): State<AppState>,
    _: Caller,
    ApiPath((key, version)): ApiPath<(String, i64)>,
) -> ApiResult<ApiJson<VersionView>> {
    Ok(ApiJson(s.store.version(&key, version).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffQuery {
    from: i64,
    to: i64,
}

#[utoipa::path(get, path = "/api/v1/workflows/{key}/diff", params(("key" = String, Path, description = "workflow key"), ("from" = i64, Query), ("to" = i64, Query)), responses((status = 200, body = Diff), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn diff(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<ApiJson<Diff>> {
    let (a, b) = (
        s.store.version(&key, q.from).await?,
        s.store.version(&key, q.to).await?,
    );
    let unified = similar::TextDiff::from_lines(&a.source, &b.source)
        .unified_diff()
        .header(&format!("{key}@{}", q.from), &format!("{key}@{}", q.to))
        .to_string();
    Ok(ApiJson(Diff {
        from: q.from,
        to: q.to,
        unified,
    }))
}

/// The body is the RON file itself.
#[utoipa::path(put, path = "/api/v1/workflows/{key}/draft", params(("key" = String, Path, description = "workflow key")), request_body(content = String, content_type = "text/plain", description = "the RON file"), responses((status = 200, body = WorkflowView), (status = 422, description = "problems with line and column", body = ErrorBody), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn put_draft(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    source: String,
) -> ApiResult<ApiJson<WorkflowView>> {
    let result = save(&s, &caller, &key, &source).await;
    s.audited(
        &caller,
        "workflow.save_draft",
        format!("workflow:{key}"),
        None,
        result,
    )
    .await
}

async fn save(
    s: &AppState,
    caller: &Caller,
    key: &str,
    source: &str,
) -> ApiResult<ApiJson<WorkflowView>> {
    caller.require(Role::Admin)?;
    let workflow = parse_workflow(source).map_err(EngineError::Problems)?;
    if workflow.def.key != key {
        let message = format!(
            "the file's key is `{}` but the URL names `{key}`",
            workflow.def.key
        );
        return Err(ApiError::unprocessable("key_mismatch", message));
    }
    s.engine.save_draft(source, &caller.name).await?;
    let saved = s
        .store
        .workflows()
        .await?
        .into_iter()
        .find(|w| w.key == key);
    saved.map(ApiJson).ok_or_else(ApiError::internal)
}

/// Checks a RON file without saving it: 200 when valid, 422 with every problem otherwise.
#[utoipa::path(post, path = "/api/v1/workflows/validate", request_body(content = String, content_type = "text/plain"), responses((status = 200, body = Object), (status = 422, body = ErrorBody), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn validate(_: Caller, source: String) -> ApiResult<ApiJson<serde_json::Value>> {
    let workflow = parse_workflow(&source).map_err(EngineError::Problems)?;
    Ok(ApiJson(
        serde_json::json!({"key": workflow.def.key, "steps": workflow.steps.len()}),
    ))
}

#[utoipa::path(post, path = "/api/v1/workflows/{key}/publish", params(("key" = String, Path, description = "workflow key")), responses((status = 200, body = Published), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn publish(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    _: NoBody,
) -> ApiResult<ApiJson<Published>> {
    let result = async {
        caller.require(Role::Admin)?;
        let version = s.engine.publish(&key, &caller.name).await?;
        Ok(ApiJson(Published {
            workflow: key.clone(),
            version,
        }))
    };
    let result = result.await;
    s.audited(
        &caller,
        "workflow.publish",
        format!("workflow:{key}"),
        None,
        result,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/workflows/{key}/rollback", params(("key" = String, Path, description = "workflow key")), request_body = Rollback, responses((status = 200, body = Published), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn rollback(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<Rollback>,
) -> ApiResult<ApiJson<Published>> {
    let result = async {
        caller.require(Role::Admin)?;
        s.engine.rollback(&key, body.version, &caller.name).await?;
        Ok(ApiJson(Published {
            workflow: key.clone(),
            version: body.version,
        }))
    };
    let result = result.await;
    s.audited(
        &caller,
        "workflow.rollback",
        format!("workflow:{key}@{}", body.version),
        None,
        result,
    )
    .await
}

/// Runs a version in test mode on live data: nothing is written, sent or counted; each input's
/// run is stored as a test run and answered with its steps, the requests it would send, the
/// per-field record changes it would make and the workflows those would start.
#[utoipa::path(post, path = "/api/v1/workflows/{key}/test", params(("key" = String, Path, description = "workflow key")), request_body = TestRequest, responses((status = 200, body = TestReport), (status = 422, description = "a draft with problems, no inputs, an unknown record or mocked step", body = ErrorBody), (status = "4XX", description = "an error", body = ErrorBody)), tag = "workflows", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn test(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<TestRequest>,
) -> ApiResult<ApiJson<TestReport>> {
    let result = async {
        caller.require(Role::Operator)?;
        // An unsaved file runs whatever templates it holds: the right to write a workflow.
        if body.source.is_some() && !caller.role.allows(Role::Admin) {
            return Err(ApiError::forbidden(format!(
                "testing an unsaved file (`source`) needs the admin role, as saving a draft does; \
                 the token `{}` is {} (test a saved draft or version instead)",
                caller.name, caller.role
            )));
        }
        // A long test does not hold up a shutdown: the answer goes at once, and the test
        // stops at its next input (what it had begun ends on the engine).
        tokio::select! {
            report = s.engine.test(&key, body) => Ok(ApiJson(report?)),
            _ = s.shutdown.cancelled() => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down: the test stopped; test it again once it is back",
            )),
        }
    };
    let result = result.await;
    s.audited(
        &caller,
        "workflow.test",
        format!("workflow:{key}"),
        None,
        result,
    )
    .await
}
