//! Signed pages people open from a notification, without a login: `GET /a/{token}` (one
//! alert: what fired, since when, how bad, its incidents and its failed runs, paged) and
//! `GET /r/{token}` (one run, every attempt). The token is a read-only capability
//! ([`crate::domain::link`]); the pages show what a viewer token reads from the API, as the
//! API stores and serves it (step inputs redacted when they were recorded), and change
//! nothing.
//!
//! HTML from minijinja templates compiled into the binary (`templates/page/`), no
//! JavaScript. Every answer, refusals included, is `Cache-Control: no-store`,
//! `Referrer-Policy: no-referrer` and under a Content-Security-Policy that allows only the
//! page's own stylesheet (by its SHA-256) and no script, frame, form or image. A view is
//! written to the audit log as `link.viewed` with the alert or run (never the token); tokens
//! appear in no log.

mod view;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};

use super::AppState;
use crate::domain::link::{self, Claims, LinkKey, Refusal, Scope};
use crate::store::{NewAudit, StoreError};
use crate::wire::{AlertView, IncidentQuery, Role, RunMode, RunQuery, RunStatus};
use view::{
    AttemptCard, CSP, IncidentLine, PageError, console_command, render, run_card, shown_json,
    stamp, when,
};

/// Incidents an alert's page names at most.
const PAGE_INCIDENTS: usize = 5;
/// Failed runs per page of an alert.
const RUNS_PER_PAGE: usize = 10;

/// The page routes, outside `/api/v1` and without authentication.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/a/{token}", get(alert_page))
        .route("/r/{token}", get(run_page))
        // A link cut short or with more after it is a link that was changed.
        .route("/a", get(cut))
        .route("/a/", get(cut))
        .route("/a/{token}/", get(cut))
        .route("/a/{token}/{*rest}", get(cut))
        .route("/r", get(cut))
        .route("/r/", get(cut))
        .route("/r/{token}/", get(cut))
        .route("/r/{token}/{*rest}", get(cut))
        .layer(axum::middleware::map_response(secure))
}

/// The headers every page answer carries.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The base address links and commands on the page use.
fn base(s: &AppState) -> String {
    s.config.alerting.base_url().to_owned()
}

/// Checks `token` for a link of the kind `want` accepts; writes the view (or a refusal of a
/// link ACP did sign) to the audit log.
async fn open(
    s: &AppState,
    token: Result<Path<String>, PathRejection>,
    want: fn(&Scope) -> bool,
) -> Result<(Claims, LinkKey), PageError> {
    let refused = |refusal: Refusal, scope: Option<Scope>| PageError::Refused(refusal, scope);
    let Ok(Path(token)) = token else {
        return Err(refused(Refusal::Tampered, None));
    };
    let parsed = link::parse(&token).map_err(|r| refused(r, None))?;
    if !want(&parsed.claims.scope) {
        return Err(refused(Refusal::Tampered, None));
    }
    let key = s
        .store
        .link_key(parsed.claims.key)
        .await?
        .ok_or(refused(Refusal::Tampered, None))?;
    let checked = parsed.verify(&key, s.engine.now());
    let (outcome, scope) = match &checked {
        Ok(claims) => ("ok", claims.scope),
        // A forgery names nothing that can be trusted: it is not written down.
        Err(Refusal::Tampered) => {
            tracing::info!("a signed link was refused: it was changed");
            return Err(refused(Refusal::Tampered, None));
        }
        Err(other) => (other.code(), parsed.claims.scope),
    };
    let entry = NewAudit {
        actor: "link".into(),
        role: Role::Viewer,
        action: "link.viewed".into(),
        target: scope.target(),
        reason: None,
        outcome: outcome.into(),
    };
    if let Err(e) = s.store.audit(entry).await {
        tracing::error!("writing the audit log failed: {e}");
    }
    let claims = checked.map_err(|r| refused(r, Some(scope)))?;
    Ok((claims, key))
}

/// The `cursor` of a page's query string, if any.
fn cursor(query: Option<String>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "cursor")
        .map(|(_, value)| value.into_owned())
        .filter(|c| !c.is_empty())
}

async fn cut(State(s): State<AppState>) -> Response {
    PageError::Refused(Refusal::Tampered, None).render(&base(&s))
}

async fn alert_page(
    State(s): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let base = base(&s);
    match alert_body(&s, token, query, &base).await {
        Ok(page) => page.into_response(),
        Err(e) => e.render(&base),
    }
}

async fn alert_body(
    s: &AppState,
    token: Result<Path<String>, PathRejection>,
    query: Option<String>,
    base: &str,
) -> Result<Html<String>, PageError> {
    let (claims, key) = open(s, token, |scope| matches!(scope, Scope::Alert { .. })).await?;
    let Scope::Alert { id, since } = claims.scope else {
        return Err(PageError::Refused(Refusal::Tampered, None));
    };
    let alert: AlertView = s.store.alert(id).await?;
    let now = s.engine.now();
    let cursor = cursor(query);
    let runs_query = RunQuery {
        workflow: Some(alert.workflow.clone()),
        status: Some(RunStatus::Failed.as_str().to_owned()),
        mode: Some(RunMode::Live.as_str().to_owned()),
        since: Some(since),
        until: alert.resolved_at,
        cursor: cursor.clone(),
        limit: Some(RUNS_PER_PAGE),
        ..RunQuery::default()
    };
    let page = s.store.runs(&runs_query).await?;
    let mut runs = Vec::with_capacity(page.items.len());
    for run in &page.items {
        let detail = match s.store.run(run.id).await {
            Ok(detail) => Some(detail),
            // Pruned between the two reads: the list's row is still worth showing.
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        // A run's own page opens as long as this one does.
        let page = link::url(base, &key, Scope::Run { id: run.id }, claims.expires_at);
        runs.push(run_card(run, detail.as_ref(), base, page, now));
    }
    // The alert's own incidents, as `GET /incidents?alert=` answers them (none that began
    // after it resolved), that failed since its failures are counted.
    let incidents: Vec<IncidentLine> = s
        .store
        .incidents(&IncidentQuery {
            alert: Some(id),
            limit: Some(PAGE_INCIDENTS),
            ..IncidentQuery::default()
        })
        .await?
        .into_iter()
        .filter(|i| i.last_seen >= since)
        .map(IncidentLine::from)
        .collect();
    let team = s
        .engine
        .watched()
        .into_iter()
        .find(|w| w.key == alert.workflow)
        .map(|w| w.team);
    // To the millisecond, as the page counts failures (a run earlier in the same second is
    // another alert's).
    let rfc3339 = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut api = format!(
        "curl -H \"Authorization: Bearer $ACP_TOKEN\" '{base}/api/v1/runs?workflow={}&status=failed&since={}",
        alert.workflow,
        rfc3339(since)
    );
    if let Some(until) = alert.resolved_at {
        api.push_str(&format!("&until={}", rfc3339(until)));
    }
    api.push('\'');
    let acked = alert.acked_at.map(|at| match &alert.acked_by {
        Some(by) => format!("{} by {by}", when(at, now)),
        None => when(at, now),
    });
    Ok(render(
        "alert.html",
        minijinja::context! {
            alert => &alert,
            summary => alert.summary(),
            team,
            opened => when(alert.opened_at, now),
            fired => alert.fired_at.map(|at| when(at, now)),
            resolved => alert.resolved_at.map(|at| when(at, now)),
            acked,
            silenced => alert.silenced_until.filter(|u| *u > now).map(|at| when(at, now)),
            dlq_depth => alert.detail.get("dlq_depth"),
            since => when(since, now),
            top_error => alert.detail.get("top_error").and_then(crate::wire::top_error_line),
            incidents,
            runs,
            cursor,
            older => page.next_cursor,
            console => console_command(base, claims.scope),
            api,
            expires => stamp(claims.expires_at),
        },
    ))
}

async fn run_page(
    State(s): State<AppState>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let base = base(&s);
    match run_body(&s, token, &base).await {
        Ok(page) => page.into_response(),
        Err(e) => e.render(&base),
    }
}

async fn run_body(
    s: &AppState,
    token: Result<Path<String>, PathRejection>,
    base: &str,
) -> Result<Html<String>, PageError> {
    let (claims, _) = open(s, token, |scope| matches!(scope, Scope::Run { .. })).await?;
    let Scope::Run { id } = claims.scope else {
        return Err(PageError::Refused(Refusal::Tampered, None));
    };
    let detail = s.store.run(id).await?;
    // Test runs are not what happened; no link is ever made for one.
    if detail.run.mode != RunMode::Live {
        return Err(PageError::NotFound(format!("run {id}")));
    }
    let now = s.engine.now();
    let attempts: Vec<AttemptCard> = detail
        .attempts
        .iter()
        .map(|a| AttemptCard::of(a, now))
        .collect();
    let run = &detail.run;
    Ok(render(
        "run.html",
        minijinja::context! {
            run => run,
            queued => when(run.queued_at, now),
            finished => run.finished_at.map(|at| when(at, now)),
            error => run.error.as_ref().map(|e| e.message.clone()),
            attempts,
            trigger => shown_json(&run.trigger),
            console => console_command(base, claims.scope),
            api => format!(
                "curl -H \"Authorization: Bearer $ACP_TOKEN\" '{base}/api/v1/runs/{id}'"
            ),
            expires => stamp(claims.expires_at),
        },
    ))
}
