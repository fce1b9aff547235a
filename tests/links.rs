//! Signed alert and run links end to end: a failing workflow fires an alert to a Slack-like
//! receiver and a real SMTP server; the link taken out of the delivered message opens a
//! read-only page over plain HTTP (no token) and in a real headless browser (Debian's chromium
//! through chromedriver); changed, expired and rotated links answer 403 saying which; a link
//! opens its own alert's runs and nothing else. Screenshots of the browser test are kept in
//! `target/tmp/link-pages/`.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use acp::actions::Actions;
use acp::alerts::Evaluator;
use acp::domain::clock::Clock;
use acp::domain::config::{Policy, parse_config};
use acp::wire::{AuditEntry, Page, TriggerKind};
use common::sinks::{Receiver, Smtp};
use common::{Api, Harness, Reply, SECRET, harness_custom, serve_alerting, until, wait_final};

const ENRICH: &str = r#"(key: "enrich", name: "Enrich", team: "revops", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call",
        headers: {"Authorization": "Bearer {{ secret('API_KEY') }}"},
        body: {"lead": "{{ trigger.lead }}", "key": "{{ secret('API_KEY') }}"}),
        retry: (max_attempts: 1))],
    alerts: [(name: "failures", severity: Critical, when: AnyFailure(window: "2h"))])"#;

const SCORE: &str = r#"(key: "score", name: "Score", team: "sales", trigger: Manual,
    steps: [(id: "rate", action: Http(method: "POST", url: "{world}/score"), retry: (max_attempts: 1))],
    alerts: [(name: "failures", severity: Critical, when: AnyFailure(window: "2h"))])"#;

const FLAP: &str = r#"(key: "flap", name: "Flap", team: "ops", trigger: Manual,
    steps: [(id: "poke", action: Http(method: "POST", url: "{world}/flap"), retry: (max_attempts: 1))],
    alerts: [(name: "failures", severity: Critical, when: AnyFailure(window: "1m"))])"#;

/// The engine's clock: the wall clock moved on by a test (to see a link expire).
#[derive(Debug, Default)]
struct OffsetClock(AtomicI64);

impl OffsetClock {
    fn set(&self, by: chrono::TimeDelta) {
        self.0.store(by.num_seconds(), Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::TimeDelta::seconds(self.0.load(Ordering::SeqCst))
    }
}

/// Everything this test binary logs, at every level, to look for tokens in.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .init();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

struct Setup {
    h: Harness,
    api: Api,
    slack: Receiver,
    smtp: Smtp,
    ev: Evaluator,
    /// `http://127.0.0.1:PORT`, the server's public_url.
    base: String,
    clock: Arc<OffsetClock>,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    capture_logs();
    let clock = Arc::new(OffsetClock::default());
    let mut config = common::config();
    config.clock = clock.clone();
    let h = harness_custom(
        &[ENRICH, SCORE, FLAP],
        config,
        Actions::new(None, None).unwrap(),
    )
    .await;
    let slack = Receiver::start().await;
    let smtp = Smtp::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let text = format!(
        r#"(
    public_url: "{base}",
    group_interval: "1m",
    resolve_after: "1s",
    channels: {{
        "slack": Slack(url: "{slack}"),
        "mail": Email(host: "127.0.0.1", port: {port}, tls: None, from: "acp@example.com", to: ["oncall@example.com"]),
    }},
)"#,
        slack = slack.url,
        port = smtp.port,
    );
    let policy: Arc<Policy> = Arc::new(parse_config(&text, |_| None).unwrap());
    let (api, ev) = serve_alerting(&h, listener, policy).await;
    h.world.script("/call", vec![Reply::status(422)]);
    h.world.script("/score", vec![Reply::status(400)]);
    Setup {
        h,
        api,
        slack,
        smtp,
        ev,
        base,
        clock,
        http: reqwest::Client::new(),
    }
}

/// Starts `n` runs of `workflow` and waits until each has failed; answers their ids.
async fn fail(h: &Harness, workflow: &str, n: usize) -> Vec<i64> {
    let payloads = (0..n).map(|i| json!({"lead": format!("L-{i}")})).collect();
    let ids = h
        .engine
        .start_runs(workflow, TriggerKind::Manual, payloads)
        .await
        .unwrap();
    for id in &ids {
        wait_final(&h.store, *id).await;
    }
    ids
}

/// The page link of the Slack message about `workflow` (any, when empty):
/// `<URL|Open the failed runs>`.
fn slack_link(message: &Value, workflow: &str) -> Option<String> {
    let text = message.to_string();
    if !workflow.is_empty() && !text.contains(&format!("` on {workflow}")) {
        return None;
    }
    let blocks = message["blocks"].as_array()?;
    let context = blocks.last()?["elements"][0]["text"].as_str()?;
    let start = context.find("<http")? + 1;
    let end = start + context[start..].find('|')?;
    Some(context[start..end].to_owned())
}

/// The page link of the first Slack message about alert `id`.
async fn link_of_alert(s: &Setup, id: i64) -> String {
    let find = || {
        s.slack.bodies().iter().find_map(|m| {
            let context = m["blocks"].as_array()?.last()?["elements"][0]["text"].as_str()?;
            context
                .contains(&format!("| Alert {id} |"))
                .then(|| slack_link(m, ""))
                .flatten()
        })
    };
    until("the alert's message", || find().is_some()).await;
    find().unwrap()
}

/// Fires the alerts there are and answers the page link of `workflow`'s newest message.
async fn link_for(s: &Setup, workflow: &str, messages_before: usize) -> String {
    until("a Slack message", || {
        s.slack.bodies().len() > messages_before
            && s.slack
                .bodies()
                .iter()
                .skip(messages_before)
                .any(|m| slack_link(m, workflow).is_some())
    })
    .await;
    s.slack
        .bodies()
        .iter()
        .skip(messages_before)
        .find_map(|m| slack_link(m, workflow))
        .unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn open(s: &Setup, url: &str) -> Answer {
    let response = s.http.get(url).send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: unescape(&response.text().await.unwrap()),
    }
}

/// HTML text as a browser reads it (the templates escape `/`, quotes and brackets).
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Every answer of a page, refusals too, is private, unreferred and script-free.
fn assert_safe_headers(answer: &Answer) {
    assert!(header(answer, "content-type").starts_with("text/html"));
    assert_eq!(header(answer, "cache-control"), "no-store");
    assert_eq!(header(answer, "referrer-policy"), "no-referrer");
    assert_eq!(header(answer, "x-content-type-options"), "nosniff");
    let csp = header(answer, "content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-")
            && csp.contains("form-action 'none'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("script-src"),
        "{csp}"
    );
}

/// The run ids a page lists (`<strong>Run 12</strong>`).
fn listed_runs(page: &str) -> Vec<i64> {
    page.split("<strong>Run ")
        .skip(1)
        .filter_map(|rest| rest.split('<').next()?.parse().ok())
        .collect()
}

/// The first run page link on an alert's page.
fn run_link(page: &str, base: &str) -> String {
    let start = page.find(&format!("href=\"{base}/r/")).unwrap() + 6;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

fn token_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

async fn audit(s: &Setup) -> Vec<AuditEntry> {
    let page: Page<AuditEntry> = s.api.json("/audit?limit=200", &s.api.admin).await;
    page.items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_in_a_notification_opens_the_alerts_failed_runs_without_a_login() {
    let s = setup().await;
    let ids = fail(&s.h, "enrich", 3).await;
    let alert = s.ev.evaluate_at(Utc::now()).await.unwrap()[0].clone();
    let url = link_for(&s, "enrich", 0).await;
    assert!(url.starts_with(&format!("{}/a/", s.base)), "{url}");

    let page = open(&s, &url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_safe_headers(&page);
    let html = &page.body;
    for shown in [
        "<code>failures</code> on <strong>enrich</strong>",
        "3 runs failed",
        "HTTP 422",
        &format!("acp console --server {} --alert {}", s.base, alert.id),
        "enrich@1",
    ] {
        assert!(html.contains(shown), "the page shows {shown}:\n{html}");
    }
    let mut listed = listed_runs(html);
    listed.sort();
    assert_eq!(listed, ids, "every failed run, newest first");
    assert!(listed_runs(html)[0] > listed_runs(html)[2], "newest first");
    for id in &ids {
        assert!(html.contains(&format!("acp console --server {} --run {id}", s.base)));
    }
    assert!(
        html.contains("\"lead\": \"L-0\""),
        "the failing step's input: {html}"
    );
    assert!(!html.contains(SECRET), "the secret leaked into the page");
    assert!(!html.contains("<script"), "no JavaScript");

    // Each run opens on its own page, through a link the alert's page signed.
    let run_url = run_link(html, &s.base);
    let run = open(&s, &run_url).await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_safe_headers(&run);
    assert!(
        run.body.contains("attempt 1") && run.body.contains("HTTP 422"),
        "{}",
        run.body
    );
    assert!(!run.body.contains(SECRET));

    // The email carries the same kind of link, in both parts.
    until("the email", || !s.smtp.mails().is_empty()).await;
    let raw = s.smtp.mails()[0].clone();
    let mail = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let text = mail.body_text(0).unwrap();
    let html_part = unescape(&mail.body_html(0).unwrap());
    let in_text = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{}/a/", s.base)))
        .unwrap_or_else(|| panic!("no link in the text part:\n{text}"))
        .to_owned();
    assert!(text.contains("Open the failed runs: "), "{text}");
    assert!(
        html_part.contains(&format!("href=\"{in_text}\"")),
        "the HTML part links the same page:\n{html_part}"
    );
    assert_eq!(open(&s, &in_text).await.status, 200);

    // Each view is in the audit log by alert or run, never by token.
    let entries = audit(&s).await;
    let views: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.action == "link.viewed")
        .collect();
    assert!(
        views
            .iter()
            .any(|e| e.target == format!("alert:{}", alert.id) && e.outcome == "ok"),
        "{views:?}"
    );
    assert!(views.iter().any(|e| e.target.starts_with("run:")));
    let everything = format!("{entries:?}\n{}", logs());
    for token in [token_of(&url), token_of(&run_url), token_of(&in_text)] {
        assert!(
            !everything.contains(token),
            "a token reached the audit log or a log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_expired_or_rotated_link_answers_403_saying_which() {
    let s = setup().await;
    fail(&s.h, "enrich", 1).await;
    let alert = s.ev.evaluate_at(Utc::now()).await.unwrap()[0].clone();
    let url = link_for(&s, "enrich", 0).await;
    assert_eq!(open(&s, &url).await.status, 200);

    // One character changed, anywhere: refused as changed.
    let token = token_of(&url);
    for at in [0, token.len() / 2, token.len() - 1] {
        let mut chars: Vec<char> = token.chars().collect();
        chars[at] = if chars[at] == 'x' { 'y' } else { 'x' };
        let changed: String = chars.into_iter().collect();
        let answer = open(&s, &url.replace(token, &changed)).await;
        assert_eq!(answer.status, 403, "character {at}");
        assert_safe_headers(&answer);
        assert!(
            answer.body.contains("This link does not open")
                && answer.body.contains("it was changed or cut short"),
            "{}",
            answer.body
        );
    }
    let cut = open(&s, &url[..url.len() - 5]).await;
    assert_eq!(cut.status, 403);

    // A week later (the default link_ttl) it has expired.
    s.clock
        .set(chrono::TimeDelta::days(7) + chrono::TimeDelta::minutes(1));
    let expired = open(&s, &url).await;
    assert_eq!(expired.status, 403);
    assert_safe_headers(&expired);
    assert!(
        expired.body.contains("This link expired on")
            && expired.body.contains(&format!("--alert {}", alert.id)),
        "{}",
        expired.body
    );
    s.clock.set(chrono::TimeDelta::zero());
    assert_eq!(open(&s, &url).await.status, 200, "valid again in time");

    // `acp token rotate-links` on the server's database revokes it at once.
    let db = s.h.dir.path().join("acp.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["token", "rotate-links", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rotated the link key"));
    let rotated = open(&s, &url).await;
    assert_eq!(rotated.status, 403);
    assert!(
        rotated.body.contains("This link was revoked on")
            && rotated
                .body
                .contains("when the server's links were rotated"),
        "{}",
        rotated.body
    );
    let entries = audit(&s).await;
    let outcomes: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e.action.starts_with("link."))
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    for expected in [
        ("link.viewed", "ok"),
        ("link.viewed", "expired"),
        ("link.viewed", "rotated"),
        ("link.rotated", "ok"),
    ] {
        assert!(outcomes.contains(&expected), "{expected:?} in {outcomes:?}");
    }

    // The next notification carries a link signed with the new key, and it opens.
    let before = s.slack.bodies().len();
    fail(&s.h, "enrich", 1).await;
    s.ev.evaluate_at(Utc::now() + chrono::TimeDelta::minutes(2))
        .await
        .unwrap();
    let fresh = link_for(&s, "enrich", before).await;
    assert_ne!(fresh, url);
    assert_eq!(open(&s, &fresh).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_opens_its_own_alerts_runs_page_by_page_and_nothing_else() {
    let s = setup().await;
    let enrich = fail(&s.h, "enrich", 12).await;
    let score = fail(&s.h, "score", 2).await;
    s.ev.evaluate_at(Utc::now()).await.unwrap();
    let url = link_for(&s, "enrich", 0).await;
    let other = link_for(&s, "score", 0).await;

    let first = open(&s, &url).await.body;
    let shown = listed_runs(&first);
    assert_eq!(shown.len(), 10, "ten runs a page");
    let older = first
        .split("href=\"?cursor=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older runs")
        .to_owned();
    let second = open(&s, &format!("{url}?cursor={older}")).await;
    assert_eq!(second.status, 200);
    assert!(second.body.contains("Newest runs"));
    let mut all: Vec<i64> = shown.into_iter().chain(listed_runs(&second.body)).collect();
    all.sort();
    assert_eq!(all, enrich, "the two pages hold every run once");
    for id in &score {
        assert!(!all.contains(id));
    }
    let theirs = listed_runs(&open(&s, &other).await.body);
    assert_eq!(theirs.len(), 2);
    assert!(theirs.iter().all(|id| score.contains(id)));

    // An alert's token is not a run's, nor the other way round; a bad cursor is a page too.
    let as_run = open(&s, &url.replace("/a/", "/r/")).await;
    assert_eq!(as_run.status, 403);
    let run_url = run_link(&first, &s.base);
    let as_alert = open(&s, &run_url.replace("/r/", "/a/")).await;
    assert_eq!(as_alert.status, 403);
    let garbage = open(&s, &format!("{url}?cursor=%00nope")).await;
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    assert_safe_headers(&garbage);
    assert!(
        !garbage.body.contains("nope"),
        "what was sent is not echoed: {}",
        garbage.body
    );
    let token = token_of(&url);
    for cut in [
        "/a/".to_owned(),
        "/a".to_owned(),
        "/r/".to_owned(),
        format!("/a/{token}/more"),
        format!("/a/{token}/"),
    ] {
        let answer = open(&s, &format!("{}{cut}", s.base)).await;
        assert_eq!(answer.status, 403, "{cut}");
        assert_safe_headers(&answer);
        assert!(answer.body.contains("changed or cut short"), "{cut}");
    }
}

/// The alerts of `workflow` that `changed` holds in `state`.
fn alert_of(changed: &[acp::wire::AlertView], workflow: &str) -> acp::wire::AlertView {
    changed
        .iter()
        .find(|a| a.workflow == workflow)
        .unwrap_or_else(|| panic!("no alert of {workflow} changed: {changed:?}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_after_a_resolved_one_shows_neither_its_runs_nor_later_incidents() {
    let s = setup().await;
    s.h.world.script("/flap", vec![Reply::status(422)]);
    let first = fail(&s.h, "flap", 1).await;
    let one = alert_of(&s.ev.evaluate_at(Utc::now()).await.unwrap(), "flap");
    // The window passes without failures, and the condition stays clear for resolve_after.
    let later = Utc::now() + chrono::TimeDelta::minutes(3);
    s.ev.evaluate_at(later).await.unwrap();
    let resolved =
        s.ev.evaluate_at(later + chrono::TimeDelta::seconds(2))
            .await
            .unwrap();
    assert_eq!(alert_of(&resolved, "flap").id, one.id);

    let second = fail(&s.h, "flap", 1).await;
    let two = alert_of(&s.ev.evaluate_at(Utc::now()).await.unwrap(), "flap");
    assert_ne!(two.id, one.id);
    let url = link_of_alert(&s, two.id).await;
    let page = open(&s, &url).await.body;
    assert_eq!(
        listed_runs(&page),
        second,
        "only the second alert's run: {page}"
    );
    assert!(!listed_runs(&page).contains(&first[0]));
    let since = page
        .split("&since=")
        .nth(1)
        .and_then(|rest| rest.split(['&', '\'']).next())
        .unwrap_or_else(|| panic!("no since= on the page: {page}"));
    assert!(
        since.len() == "2026-12-02T13:20:40.297Z".len() && since.ends_with('Z'),
        "the API command counts from the same millisecond as the page: {since}"
    );

    // After the second alert resolves, a new kind of failure is a new incident: not its.
    let later = Utc::now() + chrono::TimeDelta::minutes(3);
    s.ev.evaluate_at(later).await.unwrap();
    s.ev.evaluate_at(later + chrono::TimeDelta::seconds(2))
        .await
        .unwrap();
    s.h.world.script("/flap", vec![Reply::status(500)]);
    fail(&s.h, "flap", 1).await;
    let incidents = || async {
        let list: Vec<acp::wire::IncidentView> =
            s.api.json("/incidents?workflow=flap", &s.api.viewer).await;
        list
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while incidents().await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second incident");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = open(&s, &url).await.body;
    assert!(page.contains("HTTP 422"), "{page}");
    assert!(
        !page.contains("HTTP 500"),
        "a later incident is not on this alert's page: {page}"
    );
    // The third alert's page names the new incident, not the one whose failures were the
    // second alert's.
    let three = alert_of(&s.ev.evaluate_at(Utc::now()).await.unwrap(), "flap");
    let page = open(&s, &link_of_alert(&s, three.id).await).await.body;
    let incidents = page
        .split("<h2>Incidents</h2>")
        .nth(1)
        .and_then(|rest| rest.split("<h2 id=\"runs\">").next())
        .unwrap_or_else(|| panic!("no incidents on the page: {page}"));
    assert!(incidents.contains("HTTP 500"), "{incidents}");
    assert!(!incidents.contains("HTTP 422"), "{incidents}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_webhook_carries_a_link_to_its_run() {
    let s = setup().await;
    let receiver = Receiver::start().await;
    let created = s
        .api
        .post("/webhooks", &s.api.admin)
        .json(&json!({"url": receiver.url, "events": ["run.failed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let ids = fail(&s.h, "score", 1).await;
    until("the run.failed message", || !receiver.bodies().is_empty()).await;
    let body = receiver.bodies()[0].clone();
    assert_eq!(body["data"]["run_id"], ids[0]);
    let page = body["links"]["page"].as_str().unwrap().to_owned();
    assert!(page.starts_with(&format!("{}/r/", s.base)), "{page}");
    let run = open(&s, &page).await;
    assert_eq!(run.status, 200);
    assert!(
        run.body
            .contains(&format!("Run {} of <strong>score</strong>", ids[0])),
        "{}",
        run.body
    );
    assert!(run.body.contains("HTTP 400"));
}

// ---- the real browser ----

/// Debian's chromium and chromedriver, installed when missing (`.ci/run` does it too).
fn browser() -> (std::path::PathBuf, std::path::PathBuf) {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    if find("chromium").is_none() || find("chromedriver").is_none() {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let sudo = if root { vec![] } else { vec!["sudo", "-n"] };
        for args in [
            vec!["apt-get", "update", "-qq"],
            vec![
                "apt-get",
                "install",
                "-y",
                "-qq",
                "chromium",
                "chromium-driver",
            ],
        ] {
            let command: Vec<&str> = sudo.iter().copied().chain(args).collect();
            let status = std::process::Command::new(command[0])
                .args(&command[1..])
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "installing chromium failed: run `apt-get install chromium chromium-driver` \
                 (or .ci/run)"
            );
        }
    }
    (find("chromium").unwrap(), find("chromedriver").unwrap())
}

/// chromedriver on a free port, killed at the end.
struct Driver(std::process::Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless chromium session; `extra` are more command-line flags.
async fn driver(extra: &[&str]) -> (Driver, fantoccini::Client) {
    let (chromium, chromedriver) = browser();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child, port);
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=360,800",
    ];
    args.extend_from_slice(extra);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium, "args": args}),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match fantoccini::ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.1))
            .await
        {
            Ok(client) => break client,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "chromedriver did not start: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    (driver, client)
}

/// Loads `url` at `width` x `height`, checks nothing scrolls sideways, saves a screenshot.
async fn look(client: &fantoccini::Client, url: &str, width: u32, height: u32, name: &str) {
    client.set_window_size(width, height).await.unwrap();
    client.goto(url).await.unwrap();
    let sizes = client
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (scroll, inner) = (sizes[0].as_i64().unwrap(), sizes[1].as_i64().unwrap());
    assert!(
        scroll <= inner,
        "{name}: the page scrolls sideways at {width}px ({scroll} > {inner})"
    );
    let png = client.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("link-pages");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}-{width}x{height}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_opens_in_a_real_browser_on_a_phone_and_a_desktop() {
    let s = setup().await;
    // A long unbroken error and record value must wrap, not widen the page.
    s.h.world.script(
        "/call",
        vec![Reply {
            body: json!({"error": "x".repeat(300)}),
            ..Reply::status(422)
        }],
    );
    let ids = fail(&s.h, "enrich", 4).await;
    let alert = s.ev.evaluate_at(Utc::now()).await.unwrap()[0].clone();
    let url = link_for(&s, "enrich", 0).await;

    let (driver_process, client) = driver(&[]).await;
    client.goto(&url).await.unwrap();
    let dom = client.source().await.unwrap();
    assert!(dom.contains("enrich"), "{dom}");
    assert!(dom.contains(&format!(
        "acp console --server {} --alert {}",
        s.base, alert.id
    )));
    let details = s.h.store.run(ids[0]).await.unwrap();
    let error = details.run.error.unwrap().message;
    for id in &ids {
        let message = s.h.store.run(*id).await.unwrap().run.error.unwrap().message;
        assert!(
            dom.contains(&message),
            "run {id}'s error {message} in the DOM"
        );
    }
    assert!(!error.is_empty());
    assert!(!dom.contains(SECRET), "the secret is not in the DOM");
    let title = client.title().await.unwrap();
    assert!(title.contains("failures on enrich"), "{title}");

    look(&client, &url, 360, 800, "alert").await;
    look(&client, &url, 1280, 800, "alert").await;
    let run_url = run_link(&dom, &s.base);
    look(&client, &run_url, 360, 800, "run").await;
    let changed = url.replace(token_of(&url), &token_of(&url).replace('A', "B"));
    let changed = if changed == url {
        format!("{url}x")
    } else {
        changed
    };
    look(&client, &changed, 360, 800, "refused").await;
    let refused = client.source().await.unwrap();
    assert!(refused.contains("it was changed or cut short"), "{refused}");
    let light = background(&client, &url).await;
    client.close().await.unwrap();
    drop(driver_process);

    // A phone in dark mode gets the dark colours.
    let (_dark_process, dark) = driver(&["--force-dark-mode"]).await;
    let background_dark = background(&dark, &url).await;
    look(&dark, &url, 360, 800, "alert-dark").await;
    dark.close().await.unwrap();
    assert_eq!(light, (false, "rgb(255, 255, 255)".to_owned()));
    assert_eq!(background_dark, (true, "rgb(13, 17, 23)".to_owned()));
}

/// Whether the browser prefers dark, and the page's background colour.
async fn background(client: &fantoccini::Client, url: &str) -> (bool, String) {
    client.goto(url).await.unwrap();
    let answer = client
        .execute(
            "return [matchMedia('(prefers-color-scheme: dark)').matches, \
             getComputedStyle(document.body).backgroundColor];",
            vec![],
        )
        .await
        .unwrap();
    (
        answer[0].as_bool().unwrap(),
        answer[1].as_str().unwrap().to_owned(),
    )
}
