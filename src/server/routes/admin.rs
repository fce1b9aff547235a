//! Tokens, the audit log and the event log.

use crate::wire::ErrorBody;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::Deserialize;

use super::super::AppState;
use super::super::auth::{self, Caller};
use super::super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, NoBody};
use crate::store::Target;
use crate::wire::{
    AuditEntry, ControlStatus, DeliveryWarning, Event, Health, HealthQuery, LoopStatus, Me, Page,
    Role, TokenCreated, TokenRequest, TokenView, Unnotified,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/audit", get(audit))
        .route("/events", get(events))
        .route("/health", get(health))
        .route("/me", get(me))
}

#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = Vec<TokenView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "admin", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn tokens(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<Vec<TokenView>>> {
    caller.require(Role::Admin)?;
    Ok(ApiJson(s.store.tokens().await?))
}

#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenRequest, responses((status = 201, body = TokenCreated), (status = "4XX", description = "an error", body = ErrorBody)), tag = "admin", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, ApiJson<TokenCreated>)> {
    let result = async {
        caller.require(Role::Admin)?;
        if body.name.trim().is_empty() {
            return Err(ApiError::unprocessable(
                "name_required",
                "a token needs a name",
            ));
        }
        let created =
            auth::create_token(s.store.as_ref(), body.name.trim(), body.role, None).await?;
        Ok((StatusCode::CREATED, ApiJson(created)))
    };
    let result = result.await;
    s.audited(
        &caller,
        "token.create",
        format!("token:{} ({})", body.name, body.role),
        None,
        result,
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = i64, Path)), responses((status = 204, description = "revoked"), (status = "4XX", description = "an error", body = ErrorBody)), tag = "admin", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<StatusCode> {
    let result = async {
        caller.require(Role::Admin)?;
        s.store.revoke_token(id).await?;
        Ok(StatusCode::NO_CONTENT)
    };
    let result = result.await;
    s.audited(&caller, "token.revoke", format!("token:{id}"), None, result)
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cursor {
    cursor: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/audit", params(("cursor" = Option<String>, Query), ("limit" = Option<usize>, Query)), responses((status = 200, body = Page<AuditEntry>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "admin", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn audit(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<Cursor>,
) -> ApiResult<ApiJson<Page<AuditEntry>>> {
    let before = match q.cursor {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("cursor `{c}` is not valid")))?,
        ),
        None => None,
    };
    Ok(ApiJson(
        s.store
            .audit_log(before, q.limit.unwrap_or(50).clamp(1, 500))
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Since {
    #[serde(default)]
    since: i64,
    limit: Option<usize>,
}

/// Who the token belongs to, and the newest event's sequence number.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = "4XX", description = "an error", body = ErrorBody)), tag = "admin", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn me(State(s): State<AppState>, caller: Caller) -> ApiResult<ApiJson<Me>> {
    Ok(ApiJson(Me {
        name: caller.name,
        role: caller.role,
        seq: s.store.newest_seq().await?,
    }))
}

/// Events after `since`, oldest first.
#[utoipa::path(get, path = "/api/v1/events", params(("since" = Option<i64>, Query), ("limit" = Option<usize>, Query)), responses((status = 200, body = Vec<Event>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "admin", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn events(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<Since>,
) -> ApiResult<ApiJson<Vec<Event>>> {
    Ok(ApiJson(
        s.store
            .events_since(q.since, q.limit.unwrap_or(500).clamp(1, 10_000))
            .await?,
    ))
}

/// Runs, outcomes, durations, throughput and failure reasons per workflow and team.
#[utoipa::path(get, path = "/api/v1/health", params(HealthQuery), responses((status = 200, body = Health), (status = "4XX", description = "an error", body = ErrorBody)), tag = "admin", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn health(
    State(s): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<HealthQuery>,
) -> ApiResult<ApiJson<Health>> {
    let mut health = s.engine.health(&q).await?;
    let now = chrono::Utc::now();
    let loops: Vec<LoopStatus> = s
        .loops
        .iter()
        .map(|l| LoopStatus {
            name: l.name.to_owned(),
            last_round: l.heartbeat.last(),
            healthy: !l.is_stale_at(now),
        })
        .collect();
    let evaluator = loops
        .iter()
        .find(|l| l.name == crate::domain::alert::EVALUATOR_LOOP);
    health.control = ControlStatus {
        evaluator_last_run: evaluator.and_then(|l| l.last_round),
        evaluator_healthy: evaluator.is_some_and(|l| l.healthy),
        loops,
        deliveries: delivery_warnings(&s, health.since).await?,
    };
    let within = s.config.alerting.notify_within;
    let counts = s
        .store
        .unnotified(health.since, health.until, within)
        .await?;
    let unfiltered = q.team.is_none() && q.workflow.is_none();
    let within_ms = within.as_millis() as i64;
    let mut overall = Unnotified {
        within_ms,
        ..Unnotified::default()
    };
    for count in counts {
        let row = health
            .workflows
            .iter_mut()
            .find(|w| w.workflow == count.workflow);
        if !unfiltered && row.is_none() {
            continue;
        }
        overall.failed += count.failed;
        overall.unnotified += count.unnotified;
        if let Some(row) = row {
            row.unnotified = unnotified(within_ms, count.failed, count.unnotified);
        }
    }
    health.unnotified = unnotified(within_ms, overall.failed, overall.unnotified);
    for row in &mut health.workflows {
        row.unnotified.within_ms = within_ms;
    }
    Ok(ApiJson(health))
}

/// Disabled subscriptions, then every target with messages given up since `since`.
async fn delivery_warnings(
    s: &AppState,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<DeliveryWarning>, ApiError> {
    let mut warnings: Vec<DeliveryWarning> = Vec::new();
    let hooks = s.store.webhooks().await?;
    // A deleted subscription or a channel no longer configured has nothing left to fix.
    let current = |target: &Target| match target {
        Target::Webhook(id) => hooks.iter().any(|h| h.view.id == *id),
        Target::Channel(name) => s.config.alerting.channels.contains_key(name),
    };
    for hook in &hooks {
        if let Some(at) = hook.view.disabled_at {
            warnings.push(DeliveryWarning {
                target: Target::Webhook(hook.view.id).key(),
                disabled: true,
                given_up: 0,
                reason: hook.view.disabled_reason.clone().unwrap_or_default(),
                at,
            });
        }
    }
    for given_up in s.store.given_up(since).await? {
        if !current(&given_up.target) {
            continue;
        }
        let key = given_up.target.key();
        match warnings.iter_mut().find(|w| w.target == key) {
            Some(disabled) => disabled.given_up = given_up.count,
            None => warnings.push(DeliveryWarning {
                target: key,
                disabled: false,
                given_up: given_up.count,
                reason: given_up.reason,
                at: given_up.at,
            }),
        }
    }
    Ok(warnings)
}

fn unnotified(within_ms: i64, failed: i64, unnotified: i64) -> Unnotified {
    Unnotified {
        within_ms,
        failed,
        unnotified,
        rate: if failed == 0 {
            0.0
        } else {
            unnotified as f64 / failed as f64
        },
    }
}
