//! Deliveries follow HTTP and SMTP semantics: against local receivers answering 302, 307,
//! 410, 400, 429 with `Retry-After` in both forms, 500, 503, slowly, not at all (a refused
//! connection), and SMTP 451 and 550, each test checks the recorded attempts, the final state,
//! the time of the next try, and that a later message to the same destination is delivered.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use acp::domain::config::{Policy, parse_config};
use acp::wire::{
    AlertView, AuditEntry, DeliveryView, DeliveryWarning, Health, NotificationView, Page,
    TriggerKind, WebhookView,
};
use common::sinks::Smtp;
use common::{Api, Harness, Reply, World, harness, serve_alerting, wait_final};

const QUICK: &str = r#"(key: "quick", name: "Quick", team: "qa", trigger: Manual,
    steps: [(id: "a", action: Delay(duration: "0s"))])"#;

const FAILING: &str = r#"(key: "fail", name: "Fail", team: "revops", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))],
    alerts: [(name: "failures", severity: Critical, when: AnyFailure(window: "2h"))])"#;

const FAILING_TOO: &str = r#"(key: "fail_too", name: "Fail too", team: "revops", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))],
    alerts: [(name: "failures", severity: Critical, when: AnyFailure(window: "2h"))])"#;

const FAILING_THREE: &str = r#"(key: "fail_three", name: "Fail three", team: "revops", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))],
    alerts: [(name: "failures", severity: Critical, when: AnyFailure(window: "2h"))])"#;

/// The policy as an admin would write it: Slack at the world's `/slack`, email to `smtp`.
fn policy(world: &World, smtp: &Smtp) -> Policy {
    let text = format!(
        r#"(
    notify_within: "300ms",
    channels: {{
        "slack": Slack(url: "{world}/slack"),
        "mail": Email(host: "127.0.0.1", port: {port}, tls: None, from: "acp@example.com", to: ["oncall@example.com"]),
    }},
    routes: [(severity: Critical, channels: ["slack", "mail"])],
)"#,
        world = world.url,
        port = smtp.port,
    );
    parse_config(&text, |_| None).unwrap()
}

/// A harness serving the API with `policy` (its SMTP sink kept alive by the caller), tries
/// that time out after 500 ms.
async fn setup(workflows: &[&str], policy: impl FnOnce(&World) -> Policy) -> (Harness, Api) {
    let h = harness(workflows).await;
    let policy = Arc::new(policy(&h.world));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let for_server = policy.clone();
    let api = common::serve_api_with(&h, listener, move |c| {
        c.alerting = for_server;
        c.webhook_timeout = Duration::from_millis(500);
    })
    .await;
    (h, api)
}

async fn get<T: serde::de::DeserializeOwned>(api: &Api, path: &str) -> T {
    let response = api.get(path, &api.admin).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

async fn subscribe(api: &Api, url: &str) -> i64 {
    subscribe_keeping_secret(api, url).await.0
}

/// Subscribes `url` to `run.succeeded`; answers the id and the signing secret.
async fn subscribe_keeping_secret(api: &Api, url: &str) -> (i64, String) {
    let created: Value = api
        .post("/webhooks", &api.admin)
        .json(&json!({"url": url, "events": ["run.succeeded"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{created}"));
    (id, created["secret"].as_str().unwrap().to_owned())
}

/// One run of `quick`, to its end: one message for every subscription.
async fn run(h: &Harness) {
    let ids = h
        .engine
        .start_runs("quick", TriggerKind::Manual, vec![json!({})])
        .await
        .unwrap();
    wait_final(&h.store, ids[0]).await;
}

/// A subscription's attempts, oldest first, grouped by message in the order queued.
async fn attempts(api: &Api, hook: i64) -> Vec<Vec<DeliveryView>> {
    let mut list: Vec<DeliveryView> = get(api, &format!("/webhooks/{hook}/deliveries")).await;
    list.reverse();
    let mut ids: Vec<i64> = list.iter().map(|a| a.message).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.iter()
        .map(|id| list.iter().filter(|a| a.message == *id).cloned().collect())
        .collect()
}

/// Polls `check` for up to 30 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the subscription's second message was delivered; answers its two messages'
/// attempts.
async fn both_settled(api: &Api, hook: i64, case: &str) -> (Vec<DeliveryView>, Vec<DeliveryView>) {
    eventually(
        &format!("{case}: the later message delivered"),
        async || {
            let messages = attempts(api, hook).await;
            let [first, second] = messages.as_slice() else {
                return None;
            };
            let done = |m: &[DeliveryView]| m.last().is_some_and(|a| a.retry_at.is_none());
            (done(first) && second.last()?.message_status == "delivered")
                .then(|| (first.clone(), second.clone()))
        },
    )
    .await
}

fn classes(attempts: &[DeliveryView]) -> Vec<(Option<u16>, &str)> {
    attempts
        .iter()
        .map(|a| (a.status_code, a.class.as_deref().unwrap_or("?")))
        .collect()
}

/// The wait an attempt scheduled, in milliseconds.
fn waited(attempt: &DeliveryView) -> i64 {
    (attempt.retry_at.expect("a next try") - attempt.at).num_milliseconds()
}

/// The time between requests to `path` as the receiver saw them arrive.
fn gaps(world: &World, path: &str) -> Vec<Duration> {
    world
        .hits(path)
        .windows(2)
        .map(|pair| pair[1].at - pair[0].at)
        .collect()
}

/// The delivery warning `/health` shows for `target`.
fn warning_for<'a>(health: &'a Health, target: &str) -> &'a DeliveryWarning {
    health
        .control
        .deliveries
        .iter()
        .find(|w| w.target == target)
        .unwrap_or_else(|| panic!("no warning for {target}: {:?}", health.control.deliveries))
}

fn http_date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_answer_ends_as_http_says_and_never_holds_up_the_next_message() {
    let smtp = Smtp::start();
    let (h, api) = setup(&[QUICK], |w| policy(w, &smtp)).await;
    let world = &h.world;
    world.script(
        "/302",
        vec![
            Reply::status(302).header("location", "/final302"),
            Reply::status(302).header("location", "/final302"),
            Reply::ok(json!({})),
        ],
    );
    world.script(
        "/307",
        vec![Reply::status(307).header("location", "/final307")],
    );
    world.script(
        "/400",
        vec![
            Reply::status(400).header("x", "1"),
            Reply::status(400),
            Reply::ok(json!({})),
        ],
    );
    world.script(
        "/429s",
        vec![
            Reply::status(429).header("retry-after", "1"),
            Reply::ok(json!({})),
        ],
    );
    // An HTTP date has whole seconds: three seconds ahead is at least two from now.
    let asked = SystemTime::now() + Duration::from_secs(3);
    world.script(
        "/429d",
        vec![
            Reply::status(429).header("retry-after", &http_date(asked)),
            Reply::ok(json!({})),
        ],
    );
    world.script(
        "/5xx",
        vec![Reply::status(500), Reply::status(503), Reply::ok(json!({}))],
    );
    world.script(
        "/slow",
        vec![
            Reply::ok(json!({})).after(Duration::from_millis(1500)),
            Reply::ok(json!({"took": "it"})),
        ],
    );
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_at = closed.local_addr().unwrap();
    drop(closed);
    let mut hooks = std::collections::BTreeMap::new();
    for case in ["/302", "/307", "/400", "/429s", "/429d", "/5xx", "/slow"] {
        hooks.insert(case, subscribe(&api, &format!("{}{case}", world.url)).await);
    }
    let refused = subscribe(&api, &format!("http://{closed_at}/in")).await;
    // A receiver that echoes secrets: its own signing secret (whole and its key part) and
    // the Slack channel's URL; none of them is kept.
    // (A queue starts once the redactor knows every destination there was when it appeared;
    // one made later is redacted from the next round of the delivery loop on.)
    let (_, other) = subscribe_keeping_secret(&api, &format!("{}/other", world.url)).await;
    let (echo, secret) = subscribe_keeping_secret(&api, &format!("{}/echo", world.url)).await;
    let key = secret.trim_start_matches("whsec_").to_owned();
    world.script(
        "/echo",
        vec![
            Reply {
                body: json!({"secret": secret, "key": key, "other": other, "slack": format!("{}/slack", world.url)}),
                ..Reply::status(400)
            },
            Reply::ok(json!({})),
        ],
    );
    run(&h).await;
    run(&h).await;

    // 302: a failed attempt naming the Location, retried once, given up; /final302 never
    // asked; the next message delivered.
    let (first, second) = both_settled(&api, hooks["/302"], "302").await;
    assert_eq!(
        classes(&first),
        [(Some(302), "permanent"), (Some(302), "permanent")]
    );
    assert!(
        first[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("HTTP 302 redirect to /final302, not followed"),
        "{first:?}"
    );
    assert!(waited(&first[0]) >= 20, "{first:?}");
    assert_eq!(
        (
            first[1].retry_at,
            first[1].message_status.as_str(),
            first[1].give_up_reason.as_deref()
        ),
        (
            None,
            "given_up",
            Some("refused permanently twice (302): the message cannot be delivered as it is")
        )
    );
    assert_eq!(classes(&second), [(Some(200), "delivered")]);
    assert!(world.hits("/final302").is_empty());

    // 307: followed with the method and the body; both messages delivered once each.
    let (first, second) = both_settled(&api, hooks["/307"], "307").await;
    assert_eq!(classes(&first), [(Some(200), "delivered")]);
    assert_eq!(classes(&second), [(Some(200), "delivered")]);
    assert!(
        first[0]
            .answer
            .as_deref()
            .unwrap()
            .starts_with(&format!("(after a redirect to {}/final307)", world.url)),
        "{first:?}"
    );
    let finals = world.hits("/final307");
    assert_eq!(finals.len(), 2);
    assert!(
        finals.iter().all(|hit| hit.method == "POST"
            && hit.body["type"] == "run.succeeded"
            && !hit.headers.contains_key("referer")),
        "{finals:?}"
    );

    // 400: the answer kept, one retry, given up; the next message delivered.
    let (first, second) = both_settled(&api, hooks["/400"], "400").await;
    assert_eq!(
        classes(&first),
        [(Some(400), "permanent"), (Some(400), "permanent")]
    );
    assert_eq!(
        first[0].answer.as_deref(),
        Some(r#"{"error":"scripted 400"}"#)
    );
    assert_eq!(first[1].message_status, "given_up");
    assert_eq!(classes(&second), [(Some(200), "delivered")]);

    let (first, _) = both_settled(&api, echo, "echo").await;
    assert_eq!(
        first[0].answer.as_deref(),
        Some(
            r#"{"key":"[redacted]","other":"[redacted]","secret":"[redacted]","slack":"[redacted]"}"#
        )
    );

    // 429 with Retry-After in seconds: the next try no sooner, and no more than a tenth later.
    let (first, second) = both_settled(&api, hooks["/429s"], "429 seconds").await;
    assert_eq!(
        classes(&first),
        [(Some(429), "transient"), (Some(200), "delivered")]
    );
    // Scheduled at most a tenth past the asked second (the attempt's time is recorded a
    // little after the wait is computed, so only the upper bound is exact)...
    let wait = waited(&first[0]);
    assert!(wait <= 1100, "waited {wait} ms");
    assert!(first[1].at >= first[0].retry_at.unwrap());
    // ...and the receiver saw no try sooner than it asked.
    assert!(
        gaps(world, "/429s")[0] >= Duration::from_secs(1),
        "{:?}",
        gaps(world, "/429s")
    );
    assert_eq!(classes(&second), [(Some(200), "delivered")]);

    // 429 with Retry-After as an HTTP date: no try before that date.
    let (first, second) = both_settled(&api, hooks["/429d"], "429 date").await;
    assert_eq!(
        classes(&first),
        [(Some(429), "transient"), (Some(200), "delivered")]
    );
    let asked: DateTime<Utc> = asked.into();
    let asked = asked.with_timezone(&Utc) - chrono::Duration::milliseconds(999);
    assert!(first[0].retry_at.unwrap() >= asked, "{first:?}");
    assert!(first[1].at >= asked, "{first:?}");
    assert_eq!(classes(&second), [(Some(200), "delivered")]);

    // 500 then 503: transient, each wait longer than the last (50 ms doubling, upper half
    // jittered), then delivered.
    let (first, second) = both_settled(&api, hooks["/5xx"], "5xx").await;
    assert_eq!(
        classes(&first),
        [
            (Some(500), "transient"),
            (Some(503), "transient"),
            (Some(200), "delivered")
        ]
    );
    // Scheduled within 50 then 100 ms, and no sooner than 25 then 50 ms as the receiver
    // saw them.
    let (one, two) = (waited(&first[0]), waited(&first[1]));
    assert!(one <= 50 && two <= 100, "{one} then {two} ms");
    let seen = gaps(world, "/5xx");
    assert!(
        seen[0] >= Duration::from_millis(25) && seen[1] >= Duration::from_millis(50),
        "{seen:?}"
    );
    assert_eq!(classes(&second), [(Some(200), "delivered")]);

    // A slow answer: no answer within the 500 ms limit is transient; the receiver got the
    // same message twice, under one webhook-id, and the next message is delivered.
    let (first, second) = both_settled(&api, hooks["/slow"], "slow").await;
    assert_eq!(
        classes(&first),
        [(None, "transient"), (Some(200), "delivered")]
    );
    assert_eq!(first[0].error.as_deref(), Some("no answer within 500ms"));
    assert_eq!(first[1].answer.as_deref(), Some(r#"{"took":"it"}"#));
    let ids: Vec<String> = world.hits("/slow")[..2]
        .iter()
        .map(|hit| hit.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(classes(&second), [(Some(200), "delivered")]);

    // A refused connection is transient and retried until the receiver listens.
    let tried = eventually("refused connections retried", async || {
        let messages = attempts(&api, refused).await;
        (messages.first()?.len() >= 2).then(|| messages[0].clone())
    })
    .await;
    assert!(
        tried.iter().all(|a| a.class.as_deref() == Some("transient")
            && a.status_code.is_none()
            && a.error.as_deref().is_some_and(|e| e.contains("refused"))
            && a.retry_at.is_some_and(|at| at > a.at)),
        "{tried:?}"
    );
    let late = World::start_on(tokio::net::TcpListener::bind(closed_at).await.unwrap());
    let (first, second) = both_settled(&api, refused, "refused").await;
    assert_eq!(first.last().unwrap().message_status, "delivered");
    assert_eq!(classes(&second), [(Some(200), "delivered")]);
    assert_eq!(late.hits("/in").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_a_subscription_until_an_admin_enables_it() {
    let smtp = Smtp::start();
    let (h, api) = setup(&[QUICK], |w| policy(w, &smtp)).await;
    h.world.script("/gone", vec![Reply::status(410)]);
    let hook = subscribe(&api, &format!("{}/gone", h.world.url)).await;
    run(&h).await;
    let view: WebhookView = eventually("the subscription disabled", async || {
        let list: Vec<WebhookView> = get(&api, "/webhooks").await;
        list.into_iter()
            .find(|w| w.id == hook && w.state == "disabled")
    })
    .await;
    assert!(
        view.disabled_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("the receiver answered 410 Gone")),
        "{view:?}"
    );
    let messages = attempts(&api, hook).await;
    assert_eq!(classes(&messages[0]), [(Some(410), "gone")]);
    assert_eq!(
        (
            messages[0][0].retry_at,
            messages[0][0].message_status.as_str()
        ),
        (None, "given_up")
    );
    // While disabled nothing is queued or sent.
    run(&h).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.world.hits("/gone").len(), 1, "one POST, no retries");
    assert_eq!(attempts(&api, hook).await.len(), 1);
    let health: Health = get(&api, "/health").await;
    let warning = warning_for(&health, &format!("webhook:{hook}"));
    assert!(warning.disabled && warning.given_up == 1, "{warning:?}");
    let audit: Page<AuditEntry> = get(&api, "/audit").await;
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "webhook.disabled" && e.target == format!("webhook:{hook}")),
        "{:?}",
        audit.items
    );

    // An operator may not enable it; an admin may, once.
    let path = format!("/webhooks/{hook}/enable");
    let refused = api.post(&path, &api.operator).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    h.world.script("/gone", vec![Reply::ok(json!({}))]);
    let enabled = api.post(&path, &api.admin).send().await.unwrap();
    assert_eq!(enabled.status(), StatusCode::OK);
    let enabled: WebhookView = enabled.json().await.unwrap();
    assert_eq!(
        (enabled.state.as_str(), enabled.disabled_at),
        ("active", None)
    );
    let again = api.post(&path, &api.admin).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    run(&h).await;
    eventually("a message after enabling delivered", async || {
        let messages = attempts(&api, hook).await;
        (messages.len() == 2 && messages[1].last()?.message_status == "delivered").then_some(())
    })
    .await;
    let audit: Page<AuditEntry> = get(&api, "/audit").await;
    assert!(audit.items.iter().any(|e| e.action == "webhook.enable"));
    // Enabled, it still counts its given-up message; deleted, there is nothing left to fix.
    let health: Health = get(&api, "/health").await;
    let warning = warning_for(&health, &format!("webhook:{hook}"));
    assert!(!warning.disabled && warning.given_up == 1, "{warning:?}");
    let deleted = api
        .delete(&format!("/webhooks/{hook}"), &api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let health: Health = get(&api, "/health").await;
    assert!(
        health.control.deliveries.is_empty(),
        "{:?}",
        health.control.deliveries
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_longer_than_give_up_after_loses_that_message_only() {
    let smtp = Smtp::start();
    let (h, api) = setup(&[QUICK], |w| Policy {
        give_up_after: Duration::from_secs(2),
        ..policy(w, &smtp)
    })
    .await;
    h.world.script("/down", vec![Reply::status(503)]);
    let hook = subscribe(&api, &format!("{}/down", h.world.url)).await;
    run(&h).await;
    let given_up = eventually("the message given up", async || {
        let messages = attempts(&api, hook).await;
        let last = messages.first()?.last()?.clone();
        (last.message_status == "given_up").then_some(messages[0].clone())
    })
    .await;
    let last = given_up.last().unwrap();
    let tried_for = last.at - given_up[0].at;
    assert!(
        tried_for >= chrono::Duration::milliseconds(1900),
        "the last try is made when the message is 2 s old: {tried_for:?}"
    );
    assert!(
        given_up.len() > 3
            && given_up
                .iter()
                .all(|a| a.class.as_deref() == Some("transient")),
        "{given_up:?}"
    );
    assert_eq!(
        last.give_up_reason.as_deref(),
        Some("still refused (503) 2s after it was queued (give_up_after)")
    );
    assert_eq!(last.retry_at, None);
    h.world.script("/down", vec![Reply::ok(json!({}))]);
    run(&h).await;
    eventually("the next message delivered", async || {
        let messages = attempts(&api, hook).await;
        (messages.get(1)?.last()?.message_status == "delivered").then_some(())
    })
    .await;
}

async fn notifications(api: &Api, alert: i64) -> Vec<NotificationView> {
    get(api, &format!("/notifications?alert={alert}")).await
}

/// Fails one run of `workflow` and evaluates: answers the alert that fired.
async fn fire(h: &Harness, ev: &acp::alerts::Evaluator, workflow: &str) -> i64 {
    let ids = h
        .engine
        .start_runs(workflow, TriggerKind::Manual, vec![json!({})])
        .await
        .unwrap();
    wait_final(&h.store, ids[0]).await;
    let changed: Vec<AlertView> = ev.evaluate_at(Utc::now()).await.unwrap();
    changed
        .iter()
        .find(|a| a.workflow == workflow)
        .expect("an alert fired")
        .id
}

/// Waits until both of an alert's notifications stopped being pending.
async fn settled(api: &Api, alert: i64) -> (NotificationView, NotificationView) {
    eventually("both notifications settled", async || {
        let list = notifications(api, alert).await;
        let of = |channel: &str| list.iter().find(|n| n.channel == channel).cloned();
        let (slack, mail) = (of("slack")?, of("mail")?);
        (slack.status != "pending" && mail.status != "pending").then_some((slack, mail))
    })
    .await
}

fn notification_classes(n: &NotificationView) -> Vec<(Option<u16>, &str)> {
    n.attempts
        .iter()
        .map(|a| (a.status_code, a.class.as_deref().unwrap_or("?")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_channels_give_up_on_refusals_without_blocking_the_next_alert() {
    let smtp = Smtp::start();
    let h = harness(&[FAILING, FAILING_TOO, FAILING_THREE]).await;
    h.world.script("/call", vec![Reply::status(422)]);
    h.world.script(
        "/slack",
        vec![
            Reply::status(400).header("x", "1"),
            Reply::status(400),
            Reply::status(429).header("retry-after", "1"),
            Reply::ok(json!({})),
        ],
    );
    smtp.refuse(vec![
        mailin_embedded::response::NO_MAILBOX,
        mailin_embedded::response::NO_MAILBOX,
        mailin_embedded::response::INTERNAL_ERROR,
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Slack's Retry-After of a second still counts as told in time.
    let policy = Policy {
        notify_within: Duration::from_secs(2),
        ..policy(&h.world, &smtp)
    };
    let (api, ev) = serve_alerting(&h, listener, Arc::new(policy)).await;

    // The first alert: Slack says 400 invalid payload, the mail server 550; each is retried
    // once and given up.
    let first = fire(&h, &ev, "fail").await;
    let (slack, mail) = settled(&api, first).await;
    assert_eq!(
        notification_classes(&slack),
        [(Some(400), "permanent"), (Some(400), "permanent")]
    );
    assert_eq!(slack.status, "given_up");
    assert_eq!(
        slack.attempts[0].answer.as_deref(),
        Some(r#"{"error":"scripted 400"}"#)
    );
    assert!(slack.attempts[0].retry_at.is_some() && slack.attempts[1].retry_at.is_none());
    assert_eq!(
        notification_classes(&mail),
        [(Some(550), "permanent"), (Some(550), "permanent")]
    );
    assert_eq!(mail.status, "given_up");
    assert!(
        mail.give_up_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("refused permanently twice (550)")),
        "{mail:?}"
    );
    assert!(smtp.mails().is_empty());

    // The second alert is not held up: Slack's 429 is waited out, the mail server's 451
    // tried again.
    let second = fire(&h, &ev, "fail_too").await;
    let (slack, mail) = settled(&api, second).await;
    assert_eq!(
        notification_classes(&slack),
        [(Some(429), "transient"), (Some(200), "delivered")]
    );
    let asked = slack.attempts[0].retry_at.unwrap() - slack.attempts[0].at;
    assert!(asked.num_milliseconds() <= 1100, "{asked:?}");
    // The 429 was Slack's third request, the delivery its fourth.
    let seen = gaps(&h.world, "/slack");
    assert!(seen[2] >= Duration::from_secs(1), "{seen:?}");
    assert_eq!(
        notification_classes(&mail),
        [(Some(451), "transient"), (Some(250), "delivered")]
    );
    assert_eq!(smtp.mails().len(), 1);

    // And the message after those goes through at the first try on both channels.
    let third = fire(&h, &ev, "fail_three").await;
    let (slack, mail) = settled(&api, third).await;
    assert_eq!(notification_classes(&slack), [(Some(200), "delivered")]);
    assert_eq!(notification_classes(&mail), [(Some(250), "delivered")]);
    assert_eq!(smtp.mails().len(), 2);

    // The given-up notifications are a control-plane warning, and their run counts as
    // unnotified once notify_within has passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let health: Health = get(&api, "/health").await;
    for channel in ["channel:slack", "channel:mail"] {
        let warning = warning_for(&health, channel);
        assert!(!warning.disabled && warning.given_up == 1, "{warning:?}");
    }
    let fail = health
        .workflows
        .iter()
        .find(|w| w.workflow == "fail")
        .unwrap();
    assert_eq!((fail.unnotified.failed, fail.unnotified.unnotified), (1, 1));
    let fail_too = health
        .workflows
        .iter()
        .find(|w| w.workflow == "fail_too")
        .unwrap();
    assert_eq!(
        (fail_too.unnotified.failed, fail_too.unnotified.unnotified),
        (1, 0)
    );
}

const CALLS: &str = r#"(key: "calls", name: "Calls", team: "qa", trigger: Manual,
    steps: [
        (id: "read", action: Http(method: "GET", url: "{world}/read")),
        (id: "moved", action: Http(method: "POST", url: "{world}/temp", body: {"deal": 7})),
        (id: "post", action: Http(method: "POST", url: "{world}/moved", body: {"deal": 7}), retry: (max_attempts: 1)),
    ])"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_steps_follow_only_redirects_that_keep_the_body() {
    let h = harness(&[CALLS]).await;
    h.world.script(
        "/read",
        vec![Reply::status(302).header("location", "/data")],
    );
    h.world.script(
        "/temp",
        vec![Reply::status(307).header("location", "/final")],
    );
    h.world.script(
        "/moved",
        vec![Reply::status(302).header("location", "/elsewhere")],
    );
    let ids = h
        .engine
        .start_runs("calls", TriggerKind::Manual, vec![json!({})])
        .await
        .unwrap();
    let run = wait_final(&h.store, ids[0]).await;
    // A GET loses nothing by following; a 307 is followed with the method and the body.
    assert_eq!(h.world.hits("/data").len(), 1);
    let finals = h.world.hits("/final");
    assert_eq!(
        finals
            .iter()
            .map(|hit| (hit.method.as_str(), hit.body.clone()))
            .collect::<Vec<_>>(),
        [("POST", json!({"deal": 7}))]
    );
    // A POST answered 302 fails (permanently) naming where it pointed; nothing was re-sent
    // as a GET.
    assert_eq!(run.run.status, acp::wire::RunStatus::Failed);
    let error = run.run.error.expect("the failed step's error");
    assert!(
        error.message.starts_with(
            "HTTP 302 redirect to /elsewhere, not followed (only 307 and 308 keep the method and body)"
        ),
        "{error:?}"
    );
    assert_eq!(error.class, acp::wire::ErrorClass::Permanent);
    assert!(h.world.hits("/elsewhere").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_attempt_in_flight_finish_and_starts_no_other() {
    let smtp = Smtp::start();
    let (h, api) = setup(&[QUICK], |w| policy(w, &smtp)).await;
    h.world.script(
        "/refusing",
        vec![Reply::status(400).after(Duration::from_millis(300))],
    );
    subscribe(&api, &format!("{}/refusing", h.world.url)).await;
    for _ in 0..3 {
        run(&h).await;
    }
    // The first message's second (last) try is on its way: once it is refused, the message
    // is given up and the next would go at once, unless the server is shutting down.
    eventually("the first message tried twice", async || {
        (h.world.hits("/refusing").len() >= 2).then_some(())
    })
    .await;
    api.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        h.world.hits("/refusing").len(),
        2,
        "no try began after shutdown"
    );
}
