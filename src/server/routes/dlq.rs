//! The dead-letter queue: list, detail, replay (one, or by filter with a dry run), discard.

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
    BulkReplay, Created, DlqStatus, DlqView, JobView, Page, Reason, ReplayPlan, ReplayRequest,
    Role, RunQuery,
};
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dlq", get(list))
        .route("/dlq/replay", post(replay_matching))
        .route("/dlq/{id}", get(one))
        .route("/dlq/{id}/replay", post(replay))
        .route("/dlq/{id}/discard", post(discard))
        .route("/jobs/{id}", get(job).delete(cancel_job))
}

#[utoipa::path(get, path = "/api/v1/dlq", params(RunQuery), responses((status = 200, body = Page<DlqView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "dlq", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn list(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> ApiResult<ApiJson<Page<DlqView>>> {
    check_filter(&q, |s| DlqStatus::parse(s).is_some())?;
    Ok(ApiJson(s.store.dlq(&q).await?))
}

#[utoipa::path(get, path = "/api/v1/dlq/{id}", params(("id" = i64, Path)), responses((status = 200, body = DlqView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "dlq", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn one(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<DlqView>> {
    Ok(ApiJson(s.store.dlq_entry(id).await?))
}

#[utoipa::path(post, path = "/api/v1/dlq/{id}/replay", params(("id" = i64, Path)), request_body(content = Option<ReplayRequest>), responses((status = 201, body = Created), (status = "4XX", description = "an error", body = ErrorBody)), tag = "dlq", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn replay(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let result = async {
        caller.require(Role::Operator)?;
        let body: ReplayRequest = optional_json(&body)?;
        let run = s
            .engine
            .replay(id, body.version, body.payload.clone(), &caller.name)
            .await?;
        Ok((StatusCode::CREATED, ApiJson(Created { id: run })))
    };
    let result = result.await;
    s.audited(&caller, "dlq.replay", format!("dlq:{id}"), None, result)
        .await
}

#[utoipa::path(post, path = "/api/v1/dlq/replay", request_body = BulkReplay, responses((status = 200, description = "a dry run: what would be replayed", body = ReplayPlan), (status = 202, description = "the replay job, started", body = JobView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "dlq", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn replay_matching(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BulkReplay>,
) -> ApiResult<Response> {
    let result = async {
        caller.require(Role::Operator)?;
        check_filter(&body.filter, |s| DlqStatus::parse(s).is_some())?;
        if body.dry_run {
            let plan = s.engine.replay_matching(&body).await?;
            return Ok(ApiJson(plan).into_response());
        }
        let job = s.engine.start_replay_job(&body, &caller.name).await?;
        Ok((StatusCode::ACCEPTED, ApiJson(job)).into_response())
    };
    let result = result.await;
    if body.dry_run {
        return result;
    }
    let target = serde_json::to_string(&body.filter).unwrap_or_default();
    s.audited(
        &caller,
        "dlq.replay_matching",
        format!("dlq:{target}"),
        None,
        result,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = i64, Path)), responses((status = 200, body = JobView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "dlq", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn job(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<JobView>> {
    Ok(ApiJson(s.engine.job(id).await?))
}

#[utoipa::path(delete, path = "/api/v1/jobs/{id}", params(("id" = i64, Path)), responses((status = 200, body = JobView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "dlq", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn cancel_job(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<ApiJson<JobView>> {
    let result = async {
        caller.require(Role::Operator)?;
        Ok(ApiJson(s.engine.cancel_job(id).await?))
    };
    let result = result.await;
    s.audited(&caller, "job.cancel", format!("job:{id}"), None, result)
        .await
}

#[utoipa::path(post, path = "/api/v1/dlq/{id}/discard", params(("id" = i64, Path)), request_body = Reason, responses((status = 204, description = "discarded"), (status = "4XX", description = "an error", body = ErrorBody)), tag = "dlq", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn discard(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Reason>,
) -> ApiResult<StatusCode> {
    let reason = body.reason.unwrap_or_default();
    let result = async {
        caller.require(Role::Operator)?;
        check_reason(Some(&reason))?;
        if reason.trim().is_empty() {
            return Err(ApiError::unprocessable(
                "reason_required",
                "discarding needs a reason",
            ));
        }
        s.engine.discard(id, &reason, &caller.name).await?;
        Ok(StatusCode::NO_CONTENT)
    };
    let result = result.await;
    s.audited(
        &caller,
        "dlq.discard",
        format!("dlq:{id}"),
        Some(reason.clone()),
        result,
    )
    .await
}
