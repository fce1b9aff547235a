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

use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::domain::link::{self, Claims, LinkKey, Refusal, Scope};
use crate::store::{NewAudit, StoreError};
use crate::wire::{
    AlertView, AttemptStatus, IncidentQuery, IncidentView, Role, RunDetail, RunMode, RunQuery,
    RunStatus, RunView,
};

/// Incidents an alert's page names at most.
const PAGE_INCIDENTS: usize = 5;
/// Failed runs per page of an alert.
const RUNS_PER_PAGE: usize = 10;
/// Characters of one JSON value shown before it is cut (the API has all of it).
const JSON_SHOWN: usize = 4000;

const CSS: &str = include_str!("../../templates/page/page.css");

/// The pages' templates, compiled once. Names end in `.html`, so every value is escaped.
static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/page/base.html")),
        (
            "alert.html",
            include_str!("../../templates/page/alert.html"),
        ),
        ("run.html", include_str!("../../templates/page/run.html")),
        (
            "elsewhere.html",
            include_str!("../../templates/page/elsewhere.html"),
        ),
        (
            "refused.html",
            include_str!("../../templates/page/refused.html"),
        ),
    ] {
        // Compiled in and rendered by the tests: a syntax error fails them, not a server.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!("page template {name}: {e}");
        }
    }
    env
});

/// The Content-Security-Policy of every page: nothing but the inline stylesheet, by hash
/// (CSP Level 3 hash sources).
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
});

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

/// Why a page is not shown.
#[derive(Debug)]
enum PageError {
    Refused(Refusal, Option<Scope>),
    NotFound(String),
    BadRequest(String),
    Internal,
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => PageError::NotFound(what),
            // The one input a page takes besides its token is `?cursor=`; what was sent is
            // not echoed back.
            StoreError::Invalid(_) => PageError::BadRequest(
                "The position in this page's address (?cursor=…) is not one this page made."
                    .to_owned(),
            ),
            other => {
                tracing::error!("a signed page could not be read: {other}");
                PageError::Internal
            }
        }
    }
}

impl PageError {
    fn render(self, base: &str) -> Response {
        let (status, heading, message, advice, console) = match self {
            PageError::Refused(refusal, scope) => {
                let advice = match refusal {
                    Refusal::Tampered => vec![
                        "Copy the whole link from the notification again: chat apps and mail \
                         clients sometimes cut or change long links."
                            .to_owned(),
                    ],
                    Refusal::Expired(_) => vec![
                        "Links in notifications open for a limited time (link_ttl in acp.ron). \
                         A newer notification about the alert carries a fresh link, or open it \
                         in the console:"
                            .to_owned(),
                    ],
                    Refusal::Rotated(_) => vec![
                        "An admin revoked every link the server had handed out. Newer \
                         notifications carry new links, or open it in the console:"
                            .to_owned(),
                    ],
                };
                let console = match (refusal, scope) {
                    (Refusal::Tampered, _) | (_, None) => None,
                    (_, Some(scope)) => Some(console_command(base, scope)),
                };
                (
                    StatusCode::FORBIDDEN,
                    "This link does not open",
                    sentence(&refusal.to_string()),
                    advice,
                    console,
                )
            }
            PageError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "Not found",
                format!("{what} is not kept any more."),
                vec!["Runs leave the log after the server's retention period.".to_owned()],
                None,
            ),
            PageError::BadRequest(what) => (
                StatusCode::BAD_REQUEST,
                "This page does not exist",
                what,
                vec!["Open the link from the notification again.".to_owned()],
                None,
            ),
            PageError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not read this page; its log says why.".to_owned(),
                Vec::new(),
                None,
            ),
        };
        let body = render(
            "refused.html",
            minijinja::context! { heading, message, advice, console },
        );
        (status, body).into_response()
    }
}

/// An error's text as a sentence: a capital first letter and a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
    format!("{}{}.", first.unwrap_or_default(), chars.as_str())
}

fn render(name: &str, context: minijinja::Value) -> Html<String> {
    let context = minijinja::context! { css => CSS, ..context };
    let text = TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(context))
        .unwrap_or_else(|e| {
            tracing::error!("rendering {name}: {e}");
            "<!DOCTYPE html><title>ACP</title><p>This page could not be drawn; the server's \
             log says why.</p>"
                .to_owned()
        });
    Html(text)
}

/// `acp console --server BASE --alert ID` (or `--run ID`).
fn console_command(base: &str, scope: Scope) -> String {
    match scope {
        Scope::Alert { id, .. } => format!("acp console --server {base} --alert {id}"),
        Scope::Run { id } => format!("acp console --server {base} --run {id}"),
    }
}

/// A time as people read it on the page: `2026-12-02 10:04:05 UTC (12m ago)`.
fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let shown = at.format("%Y-%m-%d %H:%M:%S UTC");
    let seconds = (now - at).num_seconds();
    if seconds < 0 {
        return shown.to_string();
    }
    let ago = match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d {}h", seconds / 86_400, seconds % 86_400 / 3600),
    };
    format!("{shown} ({ago} ago)")
}

/// A JSON value pretty-printed, cut at [`JSON_SHOWN`] characters; `None` for null.
fn shown_json(value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let total = text.chars().count();
    if total <= JSON_SHOWN {
        return Some(text);
    }
    let cut: String = text.chars().take(JSON_SHOWN).collect();
    Some(format!(
        "{cut}\n… {} more characters; the API has all of it",
        total - JSON_SHOWN
    ))
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

#[derive(Serialize)]
struct RunCard {
    id: i64,
    workflow: String,
    version: i64,
    record: Option<i64>,
    at: String,
    dead_letter: Option<String>,
    step: Option<String>,
    class: Option<String>,
    error: String,
    input: Option<String>,
    console: String,
    page: String,
}

#[derive(Serialize)]
struct IncidentLine {
    id: i64,
    state: String,
    count: i64,
    step: String,
    signature: String,
    cause: Option<String>,
}

impl From<IncidentView> for IncidentLine {
    fn from(i: IncidentView) -> Self {
        Self {
            id: i.id,
            state: i.state.as_str().to_owned(),
            count: i.count,
            step: i.signature.step,
            signature: i.signature.message,
            cause: i.cause.as_ref().map(crate::wire::IncidentCause::sentence),
        }
    }
}

/// The failing attempt of a failed run: the last failed attempt of its failed step.
fn failing_input(detail: &RunDetail) -> Option<String> {
    let step = detail.run.failed_step.as_deref()?;
    detail
        .attempts
        .iter()
        .rev()
        .find(|a| a.step_id == step && a.status == AttemptStatus::Failed)
        .and_then(|a| shown_json(&a.input))
}

fn run_card(
    run: &RunView,
    detail: Option<&RunDetail>,
    base: &str,
    page: String,
    now: DateTime<Utc>,
) -> RunCard {
    RunCard {
        id: run.id,
        workflow: run.workflow.clone(),
        version: run.version,
        record: run.record_id,
        at: format!(
            "failed {}",
            when(run.finished_at.unwrap_or(run.queued_at), now)
        ),
        dead_letter: run.dead_letter.map(|d| d.as_str().to_owned()),
        step: run.failed_step.clone(),
        class: run.error.as_ref().map(|e| e.class.as_str().to_owned()),
        error: run
            .error
            .as_ref()
            .map_or_else(|| "(no error recorded)".to_owned(), |e| e.message.clone()),
        input: detail.and_then(failing_input),
        console: console_command(base, Scope::Run { id: run.id }),
        page,
    }
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
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut api = format!(
        "curl -H \"Authorization: Bearer $ACP_TOKEN\" '{base}/api/v1/runs?workflow={}&status=failed&since={}",
        alert.workflow,
        stamp(since)
    );
    if let Some(until) = alert.resolved_at {
        api.push_str(&format!("&until={}", stamp(until)));
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
            expires => when(claims.expires_at, now).split(" (").next().map(str::to_owned),
        },
    ))
}

#[derive(Serialize)]
struct AttemptCard {
    step: String,
    number: i64,
    status: String,
    failed: bool,
    at: String,
    took: Option<String>,
    error: Option<String>,
    input: Option<String>,
    output: Option<String>,
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
        .map(|a| AttemptCard {
            step: a.step_id.clone(),
            number: a.number,
            status: a.status.as_str().to_owned(),
            failed: a.status == AttemptStatus::Failed,
            at: when(a.started_at, now),
            took: a.finished_at.map(|end| {
                let ms = (end - a.started_at).num_milliseconds().max(0);
                humantime::format_duration(Duration::from_millis(ms as u64)).to_string()
            }),
            error: a.error.as_ref().map(|e| e.message.clone()),
            input: shown_json(&a.input),
            output: shown_json(&a.output),
        })
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
            expires => when(claims.expires_at, now).split(" (").next().map(str::to_owned),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_stylesheet_on_the_page() {
        let page = render("refused.html", minijinja::context! { heading => "x" }).0;
        let style = page
            .split("<style>")
            .nth(1)
            .and_then(|rest| rest.split("</style>").next())
            .unwrap();
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
        assert!(CSP.contains(&format!("'sha256-{hash}'")), "{}", *CSP);
        assert!(CSP.starts_with("default-src 'none';"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn values_are_escaped_and_long_json_is_cut() {
        let page = render(
            "refused.html",
            minijinja::context! { heading => "<b>x</b>", message => "<script>alert(1)</script>" },
        )
        .0;
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{page}"
        );
        let long = Value::String("x".repeat(5000));
        let shown = shown_json(&long).unwrap();
        assert!(
            shown.ends_with("1002 more characters; the API has all of it"),
            "{shown}"
        );
        assert_eq!(shown_json(&Value::Null), None);
    }

    #[test]
    fn times_say_when_and_how_long_ago() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let later = |s: i64| at + chrono::TimeDelta::seconds(s);
        assert_eq!(when(at, later(42)), "2027-01-15 08:00:00 UTC (42s ago)");
        assert_eq!(
            when(at, later(3 * 3600 + 120)),
            "2027-01-15 08:00:00 UTC (3h 2m ago)"
        );
        assert_eq!(when(at, later(-5)), "2027-01-15 08:00:00 UTC");
    }
}
