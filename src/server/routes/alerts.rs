//! Alerts: list, detail, acknowledge (operator), silence (admin); rules (admin changes them);
//! notifications with their delivery attempts.

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post};
use serde::Deserialize;

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, NoBody, check_reason};
use crate::alerts::rules;
use crate::domain::validate::parse_duration;
use crate::store::AlertChange;
use crate::store::StoredRule;
use crate::wire::ErrorBody;
use crate::wire::{
    AlertState, AlertView, NotificationQuery, NotificationView, Role, RuleRequest, RuleView,
    SilenceRequest,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/{id}", get(one))
        .route("/alerts/{id}/ack", post(ack))
        .route("/alerts/{id}/silence", post(silence))
        .route("/rules", get(rules).post(put_rule))
        .route("/rules/{id}", delete(delete_rule))
        .route("/notifications", get(notifications))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertQuery {
    /// `pending`, `firing` or `resolved`.
    state: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/alerts", params(AlertQuery), responses((status = 200, body = Vec<AlertView>), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
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
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn one(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<AlertView>> {
    Ok(ApiJson(s.store.alert(id).await?))
}

/// Acknowledging stops re-notification; the alert still resolves by itself.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", params(("id" = i64, Path)), responses((status = 200, body = AlertView), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn ack(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
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
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn silence(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SilenceRequest>,
) -> ApiResult<ApiJson<AlertView>> {
    let result = async {
        caller.require(Role::Admin)?;
        check_reason(body.reason.as_deref())?;
        let now = chrono::Utc::now();
        let latest = crate::domain::clock::later_or_max(now, crate::domain::clock::MAX_DURATION);
        let until = match (&body.duration, body.until) {
            (Some(text), None) => {
                let duration = parse_duration(text)
                    .map_err(|e| ApiError::unprocessable("invalid_duration", e.to_string()))?;
                if duration.is_zero() {
                    return Err(ApiError::unprocessable(
                        "invalid_duration",
                        "a silence must last longer than 0s",
                    ));
                }
                crate::domain::clock::later(chrono::Utc::now(), duration).ok_or_else(|| {
                    ApiError::unprocessable("invalid_duration", format!("`{text}` is too long"))
                })?
            }
            (None, Some(until)) if until > latest => {
                return Err(ApiError::unprocessable(
                    "invalid_duration",
                    format!("until {until} is more than 100 years away"),
                ));
            }
            (None, Some(until)) if until > now => until,
            (None, Some(until)) => {
                return Err(ApiError::unprocessable(
                    "invalid_duration",
                    format!("until {until} is in the past"),
                ));
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_duration",
                    "give either `for` (e.g. \"2h\") or `until` (the end of a maintenance window)",
                ));
            }
        };
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
        match (&body.duration, body.until) {
            (Some(duration), _) => format!("alert:{id} for {duration}"),
            (None, Some(until)) => format!("alert:{id} until {until}"),
            (None, None) => format!("alert:{id}"),
        },
        body.reason.clone(),
        result,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/rules", responses((status = 200, body = Vec<RuleView>), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn rules(
    State(s): State<AppState>,
    _: Caller,
) -> ApiResult<ApiJson<Vec<RuleView>>> {
    let stored = s.store.alert_rules().await?;
    Ok(ApiJson(rules::list(
        &s.engine.watched(),
        &s.config.alerting,
        &stored,
    )))
}

/// Creates a global or team rule, or replaces the one with the same scope and name.
#[utoipa::path(post, path = "/api/v1/rules", request_body = RuleRequest, responses((status = 200, body = RuleView), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn put_rule(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RuleRequest>,
) -> ApiResult<ApiJson<RuleView>> {
    let result = async {
        caller.require(Role::Admin)?;
        let scope_ok = body.scope == "global"
            || body
                .scope
                .strip_prefix("team:")
                .is_some_and(|team| !team.is_empty());
        if !scope_ok {
            return Err(ApiError::unprocessable(
                "invalid_scope",
                format!(
                    "scope `{}` is not `global` or `team:NAME` (workflow rules live in the workflow file)",
                    body.scope
                ),
            ));
        }
        let (def, _) = rules::read(&body.rule)
            .map_err(|e| ApiError::unprocessable("invalid_rule", e.to_string()))?;
        let stored = s
            .store
            .put_alert_rule(StoredRule {
                id: 0,
                scope: body.scope.clone(),
                name: def.name.clone(),
                definition: serde_json::to_value(&def).unwrap_or_default(),
                created_at: chrono::Utc::now(),
                created_by: caller.name.clone(),
            })
            .await?;
        Ok(ApiJson(RuleView {
            id: Some(stored.id),
            scope: stored.scope,
            source: "api".into(),
            name: stored.name,
            rule: stored.definition,
        }))
    };
    let result = result.await;
    let target = format!(
        "rule:{}/{}",
        body.scope,
        body.rule
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
    );
    s.audited(&caller, "rule.put", target, None, result).await
}

#[utoipa::path(delete, path = "/api/v1/rules/{id}", params(("id" = i64, Path)), responses((status = 204, description = "deleted"), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn delete_rule(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<axum::http::StatusCode> {
    let result = async {
        caller.require(Role::Admin)?;
        s.store.delete_alert_rule(id).await?;
        Ok(axum::http::StatusCode::NO_CONTENT)
    };
    let result = result.await;
    s.audited(&caller, "rule.delete", format!("rule:{id}"), None, result)
        .await
}

#[utoipa::path(get, path = "/api/v1/notifications", params(NotificationQuery), responses((status = 200, body = Vec<NotificationView>), (status = "4XX", body = ErrorBody)), tag = "alerts", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn notifications(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<NotificationQuery>,
) -> ApiResult<ApiJson<Vec<NotificationView>>> {
    Ok(ApiJson(
        s.store
            .notifications(q.alert, q.limit.unwrap_or(100).clamp(1, 1000))
            .await?,
    ))
}
