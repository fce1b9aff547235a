//! Outbound webhooks: subscriptions (admin), signed deliveries from a durable outbox, and the
//! record of every attempt.

use crate::wire::ErrorBody;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, NoBody};
use crate::domain::standard_webhooks as sign;
use crate::store::WebhookRow;
use crate::wire::{DeliveryView, EventKind, Role, WebhookCreated, WebhookRequest, WebhookView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", delete(remove))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/deliveries", get(deliveries))
}

#[utoipa::path(get, path = "/api/v1/webhooks", responses((status = 200, body = Vec<WebhookView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "webhooks", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<ApiJson<Vec<WebhookView>>> {
    caller.require(Role::Admin)?;
    Ok(ApiJson(
        s.store
            .webhooks()
            .await?
            .into_iter()
            .map(|h| h.view)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/webhooks", request_body = WebhookRequest, responses((status = 201, body = WebhookCreated), (status = "4XX", description = "an error", body = ErrorBody)), tag = "webhooks", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<WebhookRequest>,
) -> ApiResult<(StatusCode, ApiJson<WebhookCreated>)> {
    let result = async {
        caller.require(Role::Admin)?;
        check(&body)?;
        let secret = sign::new_secret().map_err(|e| {
            tracing::error!("{e}");
            ApiError::internal()
        })?;
        let view = WebhookView {
            id: 0,
            url: body.url.clone(),
            events: body.events.clone(),
            workflow: body.workflow.clone(),
            team: body.team.clone(),
            created_at: chrono::Utc::now(),
            pending: 0,
            state: "active".into(),
            disabled_at: None,
            disabled_reason: None,
        };
        let row = s.store.create_webhook(WebhookRow { view, secret }).await?;
        Ok((
            StatusCode::CREATED,
            ApiJson(WebhookCreated {
                view: row.view,
                secret: row.secret,
            }),
        ))
    };
    let result = result.await;
    s.audited(
        &caller,
        "webhook.create",
        format!("webhook:{}", origin(&body.url)),
        None,
        result,
    )
    .await
}

/// Where a URL points, without what may be a secret in it (credentials, a Slack-style secret
/// path, a token in the query): what the audit log keeps of a subscription's URL.
fn origin(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| "(not a URL)".to_owned(),
        |u| u.origin().ascii_serialization(),
    )
}

/// Refuses URLs that are not http(s) and event patterns that match no event kind.
fn check(body: &WebhookRequest) -> Result<(), ApiError> {
    if !(body.url.starts_with("http://") || body.url.starts_with("https://")) {
        return Err(ApiError::unprocessable(
            "invalid_url",
            format!("`{}` is not an http(s) URL", body.url),
        ));
    }
    if body.events.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_events",
            "name at least one event kind, e.g. run.failed or run.*",
        ));
    }
    for pattern in &body.events {
        let known = match pattern.strip_suffix('*') {
            Some(prefix) => {
                !prefix.is_empty() && EventKind::names().any(|name| name.starts_with(prefix))
            }
            None => EventKind::parse(pattern).is_some(),
        };
        if !known {
            return Err(ApiError::unprocessable(
                "invalid_events",
                format!("`{pattern}` matches no event kind"),
            ));
        }
    }
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", params(("id" = i64, Path)), responses((status = 204, description = "deleted"), (status = "4XX", description = "an error", body = ErrorBody)), tag = "webhooks", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn remove(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<StatusCode> {
    let result = async {
        caller.require(Role::Admin)?;
        s.store.delete_webhook(id).await?;
        Ok(StatusCode::NO_CONTENT)
    };
    let result = result.await;
    s.audited(
        &caller,
        "webhook.delete",
        format!("webhook:{id}"),
        None,
        result,
    )
    .await
}

/// Enables a subscription that was disabled after its receiver answered `410 Gone`: events
/// from now on are queued and sent again (what happened while it was disabled is not).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/enable", params(("id" = i64, Path)), responses((status = 200, body = WebhookView), (status = "4XX", description = "an error; 409 when it is not disabled", body = ErrorBody)), tag = "webhooks", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn enable(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    _: NoBody,
) -> ApiResult<ApiJson<WebhookView>> {
    let result = async {
        caller.require(Role::Admin)?;
        Ok(ApiJson(s.store.enable_webhook(id).await?.view))
    };
    let result = result.await;
    s.audited(
        &caller,
        "webhook.enable",
        format!("webhook:{id}"),
        None,
        result,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limit {
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", params(("id" = i64, Path), ("limit" = Option<usize>, Query)), responses((status = 200, body = Vec<DeliveryView>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "webhooks", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn deliveries(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<Limit>,
) -> ApiResult<ApiJson<Vec<DeliveryView>>> {
    caller.require(Role::Admin)?;
    Ok(ApiJson(
        s.store
            .deliveries(id, q.limit.unwrap_or(100).clamp(1, 1000))
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_audit_log_keeps_only_where_a_subscription_points() {
        assert_eq!(
            super::origin("http://user:pa55w0rd@127.0.0.1:18801/cred?token=abc"),
            "http://127.0.0.1:18801"
        );
        assert_eq!(
            super::origin("https://hooks.slack.com/services/T0/B0/SECRETPATH"),
            "https://hooks.slack.com"
        );
        assert_eq!(super::origin("nope"), "(not a URL)");
    }
}
