//! `POST /api/v1/hooks/{workflow}`: inbound webhooks start runs.
//!
//! Who may call, checked before anything about the workflow is revealed: an operator token
//! (`Authorization: Bearer`), or a sender that signs per Standard Webhooks with the secret
//! the workflow's trigger names (`webhook-id`, `webhook-timestamp` within 5 minutes,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`). A signed
//! delivery's `webhook-id`, or a token caller's `Idempotency-Key`, is accepted once: the
//! same key with the same body answers the first run again, with another body 422
//! `idempotency_key_reused`. Every call, refused or not, is audited.

use crate::wire::ErrorBody;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::super::AppState;
use super::super::auth::{Caller, authenticate, bearer_token};
use super::super::error::{ApiError, ApiJson, ApiPath, ApiResult, rejection as rejection_error};
use crate::domain::standard_webhooks;
use crate::engine::EngineError;
use crate::wire::{Created, Role};

pub fn routes() -> Router<AppState> {
    Router::new().route("/hooks/{key}", post(receive))
}

#[utoipa::path(post, path = "/api/v1/hooks/{key}", params(("key" = String, Path, description = "workflow key"), ("webhook-id" = Option<String>, Header, description = "Standard Webhooks message id; accepted once"), ("webhook-timestamp" = Option<i64>, Header, description = "Unix seconds, within 5 minutes of the server's clock"), ("webhook-signature" = Option<String>, Header, description = "v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">"), ("Idempotency-Key" = Option<String>, Header, description = "with a token: the same key and body answer the first run")), request_body = Object, responses((status = 202, body = Created), (status = "4XX", description = "an error", body = ErrorBody)), tag = "hooks", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn receive(
    State(s): State<AppState>,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let target = format!("workflow:{key}");
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let caller = match bearer_token(&headers) {
                Some(token) => authenticate(s.store.as_ref(), token)
                    .await
                    .unwrap_or_else(|_| Caller::anonymous()),
                None => Caller::anonymous(),
            };
            let error = rejection_error(rejection.status(), rejection.body_text());
            return s
                .audited(&caller, "hooks.receive", target, None, Err(error))
                .await;
        }
    };
    let (caller, delivery) = match sender(&s, &key, &headers, &body).await {
        Ok(found) => found,
        Err((caller, error)) => {
            return s
                .audited(&caller, "hooks.receive", target, None, Err(error))
                .await;
        }
    };
    let result = async {
        caller.require(Role::Operator)?;
        let payload: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        let id = s
            .engine
            .start_webhook(&key, payload, delivery.as_deref())
            .await?;
        Ok((StatusCode::ACCEPTED, ApiJson(Created { id })))
    };
    let result = result.await;
    s.audited(&caller, "hooks.receive", target, None, result)
        .await
}

/// Who sent the call and its idempotency key, or why it is refused (with whom to audit).
async fn sender(
    s: &AppState,
    key: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Caller, Option<String>), (Caller, ApiError)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(token) = bearer_token(headers) {
        let caller = authenticate(s.store.as_ref(), token)
            .await
            .map_err(|e| (Caller::anonymous(), e))?;
        return Ok((caller, header("idempotency-key").map(str::to_owned)));
    }
    if header("webhook-signature").is_none() {
        let why = "send `Authorization: Bearer <token>` or sign the delivery per Standard \
                   Webhooks (webhook-id, webhook-timestamp, webhook-signature)";
        return Err((Caller::anonymous(), ApiError::unauthorized(why)));
    }
    let refused = |why: String| {
        (
            Caller::anonymous(),
            ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", why),
        )
    };
    // An unknown workflow, one without a secret and a wrong signature look the same.
    let secret = match s.engine.webhook_secret(key) {
        Ok(Some(secret)) => secret,
        Ok(None) | Err(EngineError::NotFound(_)) => {
            return Err(refused("webhook-signature does not match".into()));
        }
        Err(e) => {
            tracing::warn!(workflow = key, "inbound webhook refused: {e}");
            return Err(refused("webhook-signature does not match".into()));
        }
    };
    let now = chrono::Utc::now().timestamp();
    standard_webhooks::verify(
        &secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body,
        now,
    )
    .map_err(|e| refused(e.to_string()))?;
    let caller = Caller {
        name: format!("webhook:{key}"),
        role: Role::Operator,
    };
    Ok((caller, header("webhook-id").map(|id| format!("id:{id}"))))
}
