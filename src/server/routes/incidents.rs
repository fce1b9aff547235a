//! Incidents (failures grouped by signature, with their lifecycle), the replay of an
//! incident's dead letters, and the product's success metrics.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiJson, ApiPath, ApiQuery, ApiResult, optional_json};
use crate::engine::IncidentReplayed;
use crate::wire::{
    ErrorBody, IncidentDetail, IncidentQuery, IncidentReplay, IncidentView, JobView, ReplayPlan,
    Role, SummaryQuery, SummaryReport,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/incidents", get(list))
        .route("/incidents/{id}", get(one))
        .route("/incidents/{id}/replay", post(replay))
        .route("/metrics/summary", get(summary))
}

#[utoipa::path(get, path = "/api/v1/incidents", params(IncidentQuery), responses((status = 200, body = Vec<IncidentView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "incidents", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn list(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> ApiResult<ApiJson<Vec<IncidentView>>> {
    Ok(ApiJson(s.engine.incidents(&q).await?))
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}", params(("id" = i64, Path)), responses((status = 200, body = IncidentDetail), (status = "4XX", description = "an error", body = ErrorBody)), tag = "incidents", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn one(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<IncidentDetail>> {
    Ok(ApiJson(s.engine.incident(id).await?))
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/replay", params(("id" = i64, Path)), request_body(content = Option<IncidentReplay>), responses((status = 200, description = "a dry run: what would be replayed", body = ReplayPlan), (status = 202, description = "the replay job, started", body = JobView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "incidents", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn replay(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<Response> {
    let parsed: ApiResult<IncidentReplay> = optional_json(&body);
    let dry_run = parsed.as_ref().is_ok_and(|b| b.dry_run);
    let result = async {
        caller.require(Role::Operator)?;
        let body = parsed?;
        Ok(
            match s.engine.replay_incident(id, &body, &caller.name).await? {
                IncidentReplayed::Preview(plan) => ApiJson(plan).into_response(),
                IncidentReplayed::Started(job) => {
                    (StatusCode::ACCEPTED, ApiJson(job)).into_response()
                }
            },
        )
    };
    let result = result.await;
    if dry_run {
        return result;
    }
    s.audited(
        &caller,
        "incident.replay",
        format!("incident:{id}"),
        None,
        result,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/metrics/summary", params(SummaryQuery), responses((status = 200, body = SummaryReport), (status = "4XX", description = "an error", body = ErrorBody)), tag = "incidents", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn summary(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> ApiResult<ApiJson<SummaryReport>> {
    let report = crate::metrics::summary::summary(
        &s.engine,
        s.store.as_ref(),
        &s.config.alerting,
        s.config.alerting.notify_within,
        &q,
    )
    .await?;
    Ok(ApiJson(report))
}
