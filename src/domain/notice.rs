//! What a notification says: one JSON model per notification (stored, and posted as is to
//! generic webhooks), rendered as Slack blocks or as an email.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::domain::template::escape_mrkdwn as mrkdwn;
use crate::wire::{AlertState, AlertView, IncidentView};

/// Who the alert is about and where to look.
pub struct Context<'a> {
    pub team: &'a str,
    /// The server's address as people reach it.
    pub public_url: &'a str,
    /// Failures counted from here (the rule's window before the alert fired).
    pub since: DateTime<Utc>,
    /// Failed runs this notification is the first to report.
    pub new_failures: usize,
    /// The workflow's incidents that failed since `since`, newest first.
    pub incidents: &'a [IncidentView],
}

/// The notification's model. `reason` is `firing`, `update`, `reminder` or `resolved`.
pub fn payload(alert: &AlertView, reason: &str, cx: &Context<'_>) -> Value {
    let since = cx.since.to_rfc3339_opts(SecondsFormat::Millis, true);
    let runs = format!(
        "{}/api/v1/runs?workflow={}&status=failed&since={since}",
        cx.public_url, alert.workflow
    );
    json!({
        "type": format!("alert.{reason}"),
        "title": title(alert, reason),
        "summary": alert.summary(),
        "since": since,
        "alert": {
            "id": alert.id,
            "rule": alert.rule,
            "workflow": alert.workflow,
            "team": cx.team,
            "severity": alert.severity,
            "state": alert.state,
            "opened_at": alert.opened_at,
            "fired_at": alert.fired_at,
            "resolved_at": alert.resolved_at,
            "acked_by": alert.acked_by,
        },
        "top_error": alert.detail.get("top_error").cloned().unwrap_or(Value::Null),
        "detail": alert.detail,
        "new_failures": cx.new_failures,
        "incidents": cx.incidents.iter().map(|i| json!({
            "id": i.id,
            "state": i.state,
            "count": i.count,
            "signature": i.signature.message,
            "cause": i.cause.as_ref().map(crate::wire::IncidentCause::sentence),
            "link": format!("{}/api/v1/incidents/{}", cx.public_url, i.id),
        })).collect::<Vec<_>>(),
        "links": {
            "runs": runs,
            "alert": format!("{}/api/v1/alerts/{}", cx.public_url, alert.id),
            "incidents": format!("{}/api/v1/incidents?alert={}", cx.public_url, alert.id),
            "console": format!("acp console --server {} --alert {}", cx.public_url, alert.id),
        },
    })
}

fn title(alert: &AlertView, reason: &str) -> String {
    let what = format!("`{}` on {}", alert.rule, alert.workflow);
    match (reason, alert.state) {
        (_, AlertState::Resolved) => format!("Resolved: {what}"),
        ("update", _) => format!("{}: {what}, more failures", severity(alert)),
        ("reminder", _) => format!("{}: {what}, still firing", severity(alert)),
        _ => format!("{}: {what} is firing", severity(alert)),
    }
}

fn severity(alert: &AlertView) -> String {
    alert.severity.to_uppercase()
}

fn text<'a>(payload: &'a Value, pointer: &str) -> &'a str {
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// One line per incident: `Incident 7 (open): 12× HTTP 503 for lead # (began 4 minutes after
/// version 7 was published by ana)`.
fn incident_lines(payload: &Value) -> Vec<String> {
    let Some(list) = payload.get("incidents").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|i| {
            let cause = i
                .get("cause")
                .and_then(Value::as_str)
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            format!(
                "Incident {} ({}): {}× {}{cause}",
                i["id"],
                text(i, "/state"),
                i["count"],
                text(i, "/signature")
            )
        })
        .collect()
}

/// The most frequent error as one line with its count, if any.
fn top_error(payload: &Value) -> Option<String> {
    crate::wire::top_error_line(payload.get("top_error")?)
}

/// A Slack incoming-webhook message: what, how bad, since when, top error, counts, links.
/// Every value is escaped for mrkdwn ([`crate::domain::template::escape_mrkdwn`]); the
/// header is plain text.
pub fn slack(payload: &Value) -> Value {
    let field = |label: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", mrkdwn(value))});
    let mut fields = vec![
        field("Severity", text(payload, "/alert/severity")),
        field("Since", text(payload, "/alert/fired_at")),
        field("Team", text(payload, "/alert/team")),
        field("New failures", &payload["new_failures"].to_string()),
    ];
    if let Some(depth) = payload.pointer("/detail/dlq_depth") {
        fields.push(field("Dead letters", &depth.to_string()));
    }
    let summary = mrkdwn(text(payload, "/summary"));
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": text(payload, "/title")}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{summary}*")}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(error) = top_error(payload) {
        let error = mrkdwn(&error);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Top error*\n```{error}```")}}));
    }
    let incidents: Vec<String> = incident_lines(payload).iter().map(|l| mrkdwn(l)).collect();
    if !incidents.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Incidents*\n{}", incidents.join("\n"))}}));
    }
    // Only the page opens in a browser without a token: the API's links are for scripts
    // and stay in the payload, out of the clickable message.
    let runs = match payload.pointer("/links/page").and_then(Value::as_str) {
        Some(page) => format!("*<{}|Open the failed runs>*", mrkdwn(page)),
        None => format!(
            "Failed runs (API): {}",
            mrkdwn(text(payload, "/links/runs"))
        ),
    };
    blocks.push(
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "{runs} | Alert {} | `{}`",
            payload.pointer("/alert/id").cloned().unwrap_or(Value::Null),
            mrkdwn(text(payload, "/links/console")),
        )}]}),
    );
    json!({
        "text": mrkdwn(&format!("{} - {}", text(payload, "/title"), text(payload, "/summary"))),
        "blocks": blocks,
    })
}

/// An email: its subject, plain-text body and HTML body, saying the same.
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The HTML part's template (minijinja; its name ends in `.html`, so values are escaped),
/// compiled once.
static EMAIL_HTML: std::sync::LazyLock<minijinja::Environment<'static>> =
    std::sync::LazyLock::new(|| {
        let mut env = minijinja::Environment::new();
        // Compiled in and rendered by the tests: a syntax error fails them, not a delivery.
        if let Err(e) = env.add_template("email.html", include_str!("../../templates/email.html")) {
            tracing::error!("the email template: {e}");
        }
        env
    });

/// An email's subject, plain-text body and HTML body.
pub fn email(payload: &Value) -> Email {
    let (subject, text) = email_text(payload);
    let html = email_html(payload).unwrap_or_else(|e| {
        // The template is compiled in and tested; should it fail, the HTML part says what the
        // text part says.
        tracing::error!("rendering the email's HTML part: {e}");
        format!("<pre>{}</pre>", escape_html(&text))
    });
    Email {
        subject,
        text,
        html,
    }
}

fn escape_html(text: &str) -> String {
    minijinja::HtmlEscape(text).to_string()
}

fn email_html(payload: &Value) -> Result<String, minijinja::Error> {
    EMAIL_HTML
        .get_template("email.html")?
        .render(minijinja::context! {
            title => text(payload, "/title").replace('`', ""),
            summary => text(payload, "/summary"),
            alert => payload.get("alert"),
            new_failures => payload.get("new_failures"),
            top_error => top_error(payload),
            incidents => incident_lines(payload),
            links => payload.get("links"),
        })
}

/// An email's subject and plain-text body.
fn email_text(payload: &Value) -> (String, String) {
    let subject = format!("[ACP] {}", text(payload, "/title")).replace('`', "");
    let mut body = format!(
        "{}\n\n{}\n\nWorkflow:     {}\nTeam:         {}\nSeverity:     {}\nFiring since: {}\nNew failures: {}\n",
        text(payload, "/title").replace('`', ""),
        text(payload, "/summary"),
        text(payload, "/alert/workflow"),
        text(payload, "/alert/team"),
        text(payload, "/alert/severity"),
        text(payload, "/alert/fired_at"),
        payload["new_failures"],
    );
    if let Some(error) = top_error(payload) {
        body.push_str(&format!("Top error:    {error}\n"));
    }
    for line in incident_lines(payload) {
        body.push_str(&format!("{line}\n"));
    }
    body.push('\n');
    if let Some(page) = payload.pointer("/links/page").and_then(Value::as_str) {
        body.push_str(&format!("Open the failed runs: {page}\n\n"));
    }
    body.push_str(&format!(
        "Console: {}\n\nFor scripts (the API, with a token):\n  {}\n  {}\n",
        text(payload, "/links/console"),
        text(payload, "/links/runs"),
        text(payload, "/links/alert"),
    ));
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> AlertView {
        AlertView {
            id: 7,
            rule: "failure_rate".into(),
            workflow: "lead_routing".into(),
            severity: "critical".into(),
            state: AlertState::Firing,
            opened_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            fired_at: DateTime::from_timestamp(1_800_000_000, 0),
            resolved_at: None,
            acked_at: None,
            acked_by: None,
            silenced_until: None,
            notified_at: None,
            detail: json!({"failed": 12, "finished": 40, "rate": 0.3,
                "top_error": {"signature": "HTTP 503 for lead #", "count": 9, "example": "HTTP 503 for lead 1841"}}),
        }
    }

    fn incident() -> IncidentView {
        use crate::wire::{ErrorClass, IncidentCause, IncidentState, SignatureView};
        let at = DateTime::from_timestamp(1_799_999_700, 0).unwrap();
        IncidentView {
            id: 3,
            signature: SignatureView {
                key: "v1:0".into(),
                version: 1,
                workflow: "lead_routing".into(),
                step: "enrich".into(),
                class: ErrorClass::Transient,
                host: None,
                message: "HTTP 503 for lead #".into(),
            },
            team: "revops".into(),
            state: IncidentState::Open,
            count: 9,
            first_seen: at,
            last_seen: at,
            opened_at: at,
            resolved_at: None,
            example: "HTTP 503 for lead 1841".into(),
            open_dead_letters: 9,
            records: 9,
            versions: vec![7],
            cause: Some(IncidentCause {
                change: "published".into(),
                version: 7,
                actor: "ana".into(),
                at,
                after_s: 240,
                previous: Some(6),
            }),
            held: Vec::new(),
        }
    }

    /// Team revops at acp.example.com, failures counted from 2027-01-15T07:45:00Z.
    fn context(new_failures: usize, incidents: &[IncidentView]) -> Context<'_> {
        Context {
            team: "revops",
            public_url: "https://acp.example.com",
            since: DateTime::from_timestamp(1_799_999_100, 0).unwrap(),
            new_failures,
            incidents,
        }
    }

    #[test]
    fn a_notification_says_what_how_bad_since_when_and_where_to_look() {
        let incidents = [incident()];
        let cx = context(12, &incidents);
        let p = payload(&alert(), "firing", &cx);
        assert_eq!(
            p["title"],
            "CRITICAL: `failure_rate` on lead_routing is firing"
        );
        assert_eq!(p["summary"], "12 of 40 runs failed (30%)");
        assert_eq!(
            p["links"]["runs"],
            "https://acp.example.com/api/v1/runs?workflow=lead_routing&status=failed&since=2027-01-15T07:45:00.000Z"
        );
        assert_eq!(
            p["links"]["console"],
            "acp console --server https://acp.example.com --alert 7"
        );
        let message = slack(&p);
        let blocks = message["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert!(
            blocks[3]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("HTTP 503 for lead 1841 (9x)")
        );
        assert!(
            blocks[5]["elements"][0]["text"]
                .as_str()
                .unwrap()
                .contains("acp console --server https://acp.example.com --alert 7")
        );
        let incident_line = "Incident 3 (open): 9× HTTP 503 for lead # (began 4 minutes after version 7 was published by ana)";
        assert_eq!(
            blocks[4]["text"]["text"],
            format!("*Incidents*\n{incident_line}")
        );
        assert_eq!(
            p["incidents"][0]["link"],
            "https://acp.example.com/api/v1/incidents/3"
        );
        let mail = email(&p);
        let (subject, body) = (mail.subject, mail.text);
        assert_eq!(
            subject,
            "[ACP] CRITICAL: failure_rate on lead_routing is firing"
        );
        assert!(body.contains("New failures: 12"), "{body}");
        assert!(body.contains(incident_line), "{body}");
    }

    #[test]
    fn the_page_link_is_what_people_click_in_slack_and_both_email_parts() {
        let cx = context(2, &[]);
        let mut p = payload(&alert(), "firing", &cx);
        assert_eq!(p["since"], "2027-01-15T07:45:00.000Z");
        let page = "https://acp.example.com/a/AQFhAAAAAQ";
        p["links"]["page"] = Value::from(page);
        let message = slack(&p);
        let context = message["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            context,
            format!(
                "*<{page}|Open the failed runs>* | Alert 7 | `acp console --server https://acp.example.com --alert 7`"
            )
        );
        let mail = email(&p);
        assert!(
            mail.text
                .contains(&format!("Open the failed runs: {page}\n")),
            "{}",
            mail.text
        );
        assert!(
            mail.html
                .contains("href=\"https:&#x2f;&#x2f;acp.example.com&#x2f;a&#x2f;AQFhAAAAAQ\""),
            "{}",
            mail.html
        );
        assert!(mail.html.contains("failure_rate on lead_routing is firing"));
    }

    #[test]
    fn a_value_cannot_ping_a_channel_or_add_a_link_in_slack() {
        let mut hostile = alert();
        hostile.detail = json!({"failed": 2, "top_error": {"signature": "x", "count": 2,
            "example": "```<!channel> <https://evil.example/phish|Open the failed runs> & co"}});
        let mut evil = incident();
        evil.signature.message = "<!here> <https://evil.example|Open the failed runs>".into();
        let cx = Context {
            team: "<!subteam^S1>",
            ..context(2, std::slice::from_ref(&evil))
        };
        let message = slack(&payload(&hostile, "firing", &cx)).to_string();
        for forbidden in ["<!channel>", "<!here>", "<!subteam", "<https://evil"] {
            assert!(!message.contains(forbidden), "{forbidden} in {message}");
        }
        assert!(
            message.contains(
                "&lt;!channel&gt; &lt;https://evil.example/phish|Open the failed runs&gt; &amp; co"
            ),
            "{message}"
        );
    }
}
