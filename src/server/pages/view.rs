//! How the signed pages are drawn: the templates (compiled in from `templates/page/`), the
//! Content-Security-Policy that admits only their stylesheet, the cards a page lists, the
//! refusal and error pages, and how times and JSON read on a page.

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::link::{Refusal, Scope};
use crate::store::StoreError;
use crate::wire::{AttemptStatus, AttemptView, IncidentView, RunDetail, RunView};

/// Characters of one JSON value shown before it is cut (the API has all of it).
const JSON_SHOWN: usize = 4000;

const CSS: &str = include_str!("../../../templates/page/page.css");

/// The pages' templates, compiled once. Names end in `.html`, so every value is escaped.
static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        (
            "base.html",
            include_str!("../../../templates/page/base.html"),
        ),
        (
            "alert.html",
            include_str!("../../../templates/page/alert.html"),
        ),
        ("run.html", include_str!("../../../templates/page/run.html")),
        (
            "elsewhere.html",
            include_str!("../../../templates/page/elsewhere.html"),
        ),
        (
            "refused.html",
            include_str!("../../../templates/page/refused.html"),
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
pub(super) static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
});

/// Why a page is not shown.
#[derive(Debug)]
pub(super) enum PageError {
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
    pub(super) fn render(self, base: &str) -> Response {
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

pub(super) fn render(name: &str, context: minijinja::Value) -> Html<String> {
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
pub(super) fn console_command(base: &str, scope: Scope) -> String {
    match scope {
        Scope::Alert { id, .. } => format!("acp console --server {base} --alert {id}"),
        Scope::Run { id } => format!("acp console --server {base} --run {id}"),
    }
}

/// A time as a page shows it: `2026-12-02 10:04:05 UTC`.
pub(super) fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time as people read it on the page: `2026-12-02 10:04:05 UTC (12m ago)`.
pub(super) fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let shown = stamp(at);
    let seconds = (now - at).num_seconds();
    if seconds < 0 {
        return shown;
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
pub(super) fn shown_json(value: &Value) -> Option<String> {
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

#[derive(Serialize)]
pub(super) struct RunCard {
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
pub(super) struct IncidentLine {
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

pub(super) fn run_card(
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

#[derive(Serialize)]
pub(super) struct AttemptCard {
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

impl AttemptCard {
    /// One attempt as the run's page lists it.
    pub(super) fn of(a: &AttemptView, now: DateTime<Utc>) -> Self {
        Self {
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
        }
    }
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
