//! Runs: list with filters, detail, manual start, retry, re-run, cancel.

use crate::wire::ErrorBody;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{
    ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, NoBody, check_filter, check_reason,
    optional_json,
};
use crate::wire::{
    Created, Page, Reason, Role, RunDetail, RunMode, RunQuery, RunStatus, RunView, StartRun,
    TriggerKind,
};
use axum::body::Bytes;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list).post(start))
        .route("/runs/{id}", get(one))
        .route("/runs/{id}/retry", post(retry))
        .route("/runs/{id}/rerun", post(rerun))
        .route("/runs/{id}/cancel", post(cancel))
}

#[utoipa::path(get, path = "/api/v1/runs", params(RunQuery), responses((status = 200, body = Page<RunView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "runs", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn list(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(mut q): ApiQuery<RunQuery>,
) -> ApiResult<ApiJson<Page<RunView>>> {
    check_filter(&q, |s| RunStatus::parse(s).is_some())?;
    // Test runs are listed only when asked for: they are not what happened.
    q.mode
        .get_or_insert_with(|| RunMode::Live.as_str().to_owned());
    Ok(ApiJson(s.store.runs(&q).await?))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = i64, Path)), responses((status = 200, body = RunDetail), (status = "4XX", description = "an error", body = ErrorBody)), tag = "runs", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn one(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<RunDetail>> {
    Ok(ApiJson(s.store.run(id).await?))
}

#[utoipa::path(post, path = "/api/v1/runs", request_body = StartRun, responses((status = 201, body = Created), (status = "4XX", description = "an error", body = ErrorBody)), tag = "runs", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn start(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<StartRun>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let result = async {
        caller.require(Role::Operator)?;
        let ids = s
            .engine
            .start_runs(
                &body.workflow,
                TriggerKind::Manual,
                vec![body.payload.clone()],
            )
            .await?;
        let id = ids.first().copied().ok_or_else(ApiError::internal)?;
        Ok((StatusCode::CREATED, ApiJson(Created { id })))
    };
    let result = result.await;
    s.audited(
        &caller,
        "run.start",
        format!("workflow:{}", body.workflow),
        None,
        result,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", params(("id" = i64, Path)), responses((status = 202, description = "queued to resume"), (status = "4XX", description = "an error", body = ErrorBody)), tag = "runs", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn retry(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<StatusCode> {
    let result = async {
        caller.require(Role::Operator)?;
        s.engine.retry(id, &caller.name).await?;
        Ok(StatusCode::ACCEPTED)
    };
    let result = result.await;
    s.audited(&caller, "run.retry", format!("run:{id}"), None, result)
        .await
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/rerun", params(("id" = i64, Path)), responses((status = 201, body = Created), (status = "4XX", description = "an error", body = ErrorBody)), tag = "runs", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn rerun(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let result = async {
        caller.require(Role::Operator)?;
        let new = s.engine.rerun(id).await?;
        Ok((StatusCode::CREATED, ApiJson(Created { id: new })))
    };
    let result = result.await;
    s.audited(&caller, "run.rerun", format!("run:{id}"), None, result)
        .await
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", params(("id" = i64, Path)), request_body(content = Option<Reason>), responses((status = 200, body = Object), (status = "4XX", description = "an error", body = ErrorBody)), tag = "runs", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let parsed = optional_json::<Reason>(&body);
    let reason = parsed.as_ref().ok().and_then(|r| r.reason.clone());
    let result = async {
        caller.require(Role::Operator)?;
        check_reason(parsed?.reason.as_deref())?;
        let status = s.engine.cancel(id, &caller.name).await?;
        let outcome = if status == RunStatus::Cancelled {
            "cancelled"
        } else {
            "cancel_requested"
        };
        Ok(ApiJson(serde_json::json!({"status": outcome})))
    };
    let result = result.await;
    s.audited(&caller, "run.cancel", format!("run:{id}"), reason, result)
        .await
}
