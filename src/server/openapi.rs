//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route, generated from the
//! handlers' annotations and the wire types.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;
use super::error::ApiJson;
use super::routes::{admin, alerts, dlq, holds, hooks, incidents, records, runs, workflows};
use super::{stream, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "ACP, the Automation Control Plane", description = "Runs, dead letters, workflows, records, health, incidents and the event stream."),
    paths(
        workflows::list, workflows::one, workflows::versions, workflows::version, workflows::diff,
        workflows::put_draft, workflows::validate, workflows::publish, workflows::rollback,
        workflows::test,
        runs::list, runs::one, runs::start, runs::retry, runs::rerun, runs::cancel,
        dlq::list, dlq::one, dlq::replay, dlq::replay_matching, dlq::discard, dlq::job, dlq::cancel_job,
        records::create, records::update, records::one, records::history,
        admin::tokens, admin::create_token, admin::revoke_token, admin::audit, admin::events, admin::health, admin::me,
        alerts::list, alerts::one, alerts::ack, alerts::silence, alerts::rules, alerts::put_rule,
        alerts::delete_rule, alerts::notifications,
        holds::list, holds::create, holds::release,
        incidents::list, incidents::one, incidents::replay, incidents::summary,
        hooks::receive, stream::upgrade,
        webhooks::list, webhooks::create, webhooks::remove, webhooks::enable, webhooks::deliveries,
    ),
    components(schemas(crate::wire::StreamMessage, crate::wire::WebhookPayload)),
    modifiers(&Bearer)
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme =
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", scheme);
    }
}

/// The document; also used by tests to check every route is described.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { ApiJson(document()) }))
}
