//! Records: create, update (both fire record triggers), read, field history.

use crate::wire::ErrorBody;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::super::AppState;
use super::super::auth::Caller;
use super::super::error::{ApiJson, ApiPath, ApiResult};
use crate::domain::{Provenance, RecordWrite};
use crate::wire::{FieldChange, RecordInput, RecordView, RecordWritten, Role};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/records", post(create))
        .route("/records/{id}", get(one).patch(update))
        .route("/records/{id}/history", get(history))
}

async fn write(
    s: &AppState,
    caller: &Caller,
    id: Option<i64>,
    body: RecordInput,
) -> ApiResult<ApiJson<RecordWritten>> {
    caller.require(Role::Operator)?;
    let write = RecordWrite {
        object: body.object,
        id,
        values: body.values,
        provenance: Provenance::api(&caller.name),
        idempotency_key: body.idempotency_key,
    };
    let outcome = s.engine.write_record(write).await?;
    Ok(ApiJson(RecordWritten {
        record: outcome.record,
        changed: outcome.changed,
        runs: outcome.runs,
        duplicate: outcome.duplicate,
    }))
}

#[utoipa::path(post, path = "/api/v1/records", request_body = RecordInput, responses((status = 201, body = RecordWritten), (status = "4XX", description = "an error", body = ErrorBody)), tag = "records", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RecordInput>,
) -> ApiResult<(StatusCode, ApiJson<RecordWritten>)> {
    let target = format!("object:{}", body.object);
    let result = write(&s, &caller, None, body)
        .await
        .map(|r| (StatusCode::CREATED, r));
    s.audited(&caller, "record.create", target, None, result)
        .await
}

#[utoipa::path(patch, path = "/api/v1/records/{id}", params(("id" = i64, Path)), request_body = RecordInput, responses((status = 200, body = RecordWritten), (status = "4XX", description = "an error", body = ErrorBody)), tag = "records", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn update(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RecordInput>,
) -> ApiResult<ApiJson<RecordWritten>> {
    let result = write(&s, &caller, Some(id), body).await;
    s.audited(
        &caller,
        "record.update",
        format!("record:{id}"),
        None,
        result,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/records/{id}", params(("id" = i64, Path)), responses((status = 200, body = RecordView), (status = "4XX", description = "an error", body = ErrorBody)), tag = "records", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn one(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<RecordView>> {
    Ok(ApiJson(s.store.record(id).await?))
}

#[utoipa::path(get, path = "/api/v1/records/{id}/history", params(("id" = i64, Path)), responses((status = 200, body = Vec<FieldChange>), (status = "4XX", description = "an error", body = ErrorBody)), tag = "records", security(("bearer" = [])))]
#[tracing::instrument(skip_all, err(level = "debug"))]
pub(crate) async fn history(
    State(s): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<ApiJson<Vec<FieldChange>>> {
    s.store.record(id).await?;
    Ok(ApiJson(s.store.field_history(id).await?))
}
