//! `POST /api/v1/hooks/{workflow}`: inbound webhooks start runs.
//!
//! A workflow whose trigger names an `hmac_secret` accepts any sender that signs the body:
//! `X-ACP-Signature: sha256=<hex HMAC-SHA256 of the raw body>`. Without one, the caller needs
//! an operator token. An `Idempotency-Key` header makes redeliveries start no second run.

use crate::wire::ErrorBody;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::super::AppState;
use super::super::auth::authenticate;
use super::super::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::wire::{Created, Role};

pub fn routes() -> Router<AppState> {
    Router::new().route("/hooks/{key}", post(receive))
}

#[utoipa::path(post, path = "/api/v1/hooks/{key}", params(("key" = String, Path, description = "workflow key"), ("X-ACP-Signature" = Option<String>, Header, description = "sha256=<hex HMAC of the body>"), ("Idempotency-Key" = Option<String>, Header)), request_body = Object, responses((status = 202, body = Created), (status = "4XX", description = "an error", body = ErrorBody)), tag = "hooks", security(("bearer" = [])))]
pub(crate) async fn receive(
    State(s): State<AppState>,
    ApiPath(key): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, ApiJson<Created>)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match s.engine.webhook_secret(&key)? {
        Some(secret) => verify(&secret, header("x-acp-signature"), &body)?,
        None => {
            let token = header("authorization").and_then(|h| h.strip_prefix("Bearer "));
            let token = token.ok_or_else(|| {
                ApiError::unauthorized("sign the body (X-ACP-Signature) or send an operator token")
            })?;
            authenticate(s.store.as_ref(), token)
                .await?
                .require(Role::Operator)?;
        }
    }
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let id = s
        .engine
        .start_webhook(&key, payload, header("idempotency-key"))
        .await?;
    Ok((StatusCode::ACCEPTED, ApiJson(Created { id })))
}

/// Checks `sha256=<hex>` against the body's HMAC in constant time.
fn verify(secret: &str, signature: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-ACP-Signature does not match the body",
        )
    };
    let hex_sig = signature
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .ok_or_else(bad)?;
    let expected = hex::decode(hex_sig).map_err(|_| bad())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| bad())?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| bad())
}
