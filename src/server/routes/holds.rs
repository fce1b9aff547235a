//! Holds: list them (with the maintenance windows), place one and release one (admin).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiJson, ApiPath, ApiQuery, ApiResult, NoBody};
use crate::wire::{ErrorBody, HoldList, HoldRequest, HoldView, Role};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/holds", get(list).post(create))
        .route("/holds/{id}", delete(release))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct HoldQuery {
    /// Also the newest 100 released holds.
    all: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/holds", params(HoldQuery), responses((status = 200, body = HoldList), (status = "4XX", description = "an error", body = ErrorBody)), tag = "holds", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn list(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<HoldQuery>,
) -> ApiResult<ApiJson<HoldList>> {
    Ok(ApiJson(s.engine.holds(q.all.unwrap_or(false)).await?))
}

#[utoipa::path(post, path = "/api/v1/holds", request_body = HoldRequest, responses((status = 201, body = HoldView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "holds", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<HoldRequest>,
) -> ApiResult<(StatusCode, ApiJson<HoldView>)> {
    // The audit log names the scope only once it is one (a refused body may hold anything).
    let target = crate::domain::policy::HoldScope::parse(&body.scope)
        .map_or_else(|_| "hold:invalid-scope".to_owned(), |s| s.to_string());
    let reason = Some(crate::wire::printable(&body.reason).into_owned());
    let result = async {
        caller.require(Role::Admin)?;
        let hold = s.engine.create_hold(body, &caller.name).await?;
        Ok((StatusCode::CREATED, ApiJson(hold)))
    };
    let result = result.await;
    s.audited(&caller, "hold.create", target, reason, result)
        .await
}

#[utoipa::path(delete, path = "/api/v1/holds/{id}", params(("id" = i64, Path)), responses((status = 200, body = HoldView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "holds", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn release(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<ApiJson<HoldView>> {
    let result = async {
        caller.require(Role::Admin)?;
        Ok(ApiJson(s.engine.release_hold(id, &caller.name).await?))
    };
    let result = result.await;
    s.audited(&caller, "hold.release", format!("hold:{id}"), None, result)
        .await
}
