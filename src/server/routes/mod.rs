//! REST routes, one module per resource.

pub(crate) mod admin;
pub(crate) mod alerts;
pub(crate) mod dlq;
pub(crate) mod holds;
pub(crate) mod hooks;
pub(crate) mod incidents;
pub(crate) mod records;
pub(crate) mod runs;
pub(crate) mod workflows;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Every REST route under `/api/v1`.
pub fn api() -> Router<AppState> {
    workflows::routes()
        .merge(runs::routes())
        .merge(dlq::routes())
        .merge(records::routes())
        .merge(admin::routes())
        .merge(alerts::routes())
        .merge(holds::routes())
        .merge(incidents::routes())
        .merge(hooks::routes())
}

pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route; the API lives under /api/v1")
}

pub async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::internal().into_response()
}
