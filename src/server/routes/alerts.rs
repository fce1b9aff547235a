//! Alerts: list, detail, acknowledge (operator), silence (admin).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::domain::validate::parse_duration;
use crate::store::AlertChange;
use crate::wire::ErrorBody;
use crate::wire::{AlertState, AlertView, Role, SilenceRequest};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/{id}", get(one))
        .route("/alerts/{id}/ack", post(ack))
        .route("/alerts/{id}/silence", post(silence))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertQuery {
    /// `pending`, `firing` or `resolved`.
    state: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/alerts", params(AlertQuery), responses((status = 200, body = Vec<AlertView>), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
pub(crate) async fn list(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> ApiResult<ApiJson<Vec<AlertView>>> {
    let state = match q.state.as_deref() {
        Some(text) => Some(AlertState::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("state `{text}` is not pending, firing or resolved"))
        })?),
        None => None,
    };
    Ok(ApiJson(
        s.store
            .alerts(state, q.limit.unwrap_or(100).clamp(1, 1000))
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/alerts/{id}", params(("id" = i64, Path)), responses((status = 200, body = AlertView), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
pub(crate) async fn one(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<AlertView>> {
    Ok(ApiJson(s.store.alert(id).await?))
}

/// Acknowledging stops re-notification; the alert still resolves by itself.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", params(("id" = i64, Path)), responses((status = 200, body = AlertView), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
pub(crate) async fn ack(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<AlertView>> {
    let result = async {
        caller.require(Role::Operator)?;
        Ok(ApiJson(
            s.store
                .alert_change(AlertChange::Ack {
                    id,
                    actor: caller.name.clone(),
                })
                .await?,
        ))
    };
    let result = result.await;
    s.audited(&caller, "alert.ack", format!("alert:{id}"), None, result)
        .await
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/silence", params(("id" = i64, Path)), request_body = SilenceRequest, responses((status = 200, body = AlertView), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
pub(crate) async fn silence(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SilenceRequest>,
) -> ApiResult<ApiJson<AlertView>> {
    let result = async {
        caller.require(Role::Admin)?;
        let duration = parse_duration(&body.duration)
            .map_err(|e| ApiError::unprocessable("invalid_duration", e))?;
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(duration)
                .map_err(|e| ApiError::unprocessable("invalid_duration", e.to_string()))?;
        Ok(ApiJson(
            s.store
                .alert_change(AlertChange::Silence {
                    id,
                    until,
                    actor: caller.name.clone(),
                })
                .await?,
        ))
    };
    let result = result.await;
    s.audited(
        &caller,
        "alert.silence",
        format!("alert:{id} for {}", body.duration),
        body.reason.clone(),
        result,
    )
    .await
}
