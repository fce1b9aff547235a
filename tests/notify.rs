//! Alert notifications end to end: a real SMTP listener, a Slack-like receiver and a signed
//! webhook receiver on 127.0.0.1; grouping, re-notification until ack, silences, channels that
//! are down and come back, and the unnotified-failure rate in /health.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use acp::alerts::Evaluator;
use acp::domain::config::{Policy, parse_config};
use acp::wire::{AlertView, Health, NotificationView, TriggerKind};
use common::sinks::{Receiver, Smtp};
use common::{Api, Harness, Reply, harness, serve_alerting, until, wait_final};

const FAILING: &str = r#"(key: "fail", name: "Fail", team: "revops", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))],
    alerts: [(name: "failures", severity: Critical, when: AnyFailure(window: "2h"))])"#;

struct Sinks {
    slack: Receiver,
    hook: Receiver,
    smtp: Smtp,
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn sinks() -> Sinks {
    Sinks {
        slack: Receiver::start().await,
        hook: Receiver::start().await,
        smtp: Smtp::start(),
    }
}

/// The policy as an admin would write it in acp.ron.
fn policy(sinks: &Sinks, notify_within: &str) -> Arc<Policy> {
    let text = format!(
        r#"(
    public_url: "https://acp.example.com",
    renotify: "10m",
    group_interval: "1m",
    notify_within: "{notify_within}",
    channels: {{
        "slack": Slack(url: "env:TEST_SLACK_URL"),
        "pager": Webhook(url: "{hook}", secret: "{SECRET}"),
        "mail": Email(host: "127.0.0.1", port: {port}, tls: None, from: "acp@example.com", to: ["oncall@example.com"]),
    }},
    routes: [(severity: Critical, channels: ["slack", "pager", "mail"])],
    teams: {{"revops": [(name: "dlq_team", severity: Warning, when: DlqDepth(above: 1000))]}},
)"#,
        hook = sinks.hook.url,
        port = sinks.smtp.port,
    );
    let slack = sinks.slack.url.clone();
    Arc::new(
        parse_config(&text, |name| {
            (name == "TEST_SLACK_URL").then(|| slack.clone())
        })
        .unwrap(),
    )
}

async fn setup() -> (Harness, Api, Sinks, Evaluator) {
    setup_within("300ms").await
}

/// A failed run counts as unnotified when nothing was delivered `notify_within` of it.
async fn setup_within(notify_within: &str) -> (Harness, Api, Sinks, Evaluator) {
    let h = harness(&[FAILING]).await;
    let sinks = sinks().await;
    let policy = policy(&sinks, notify_within);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api, ev) = serve_alerting(&h, listener, policy).await;
    h.world.script("/call", vec![Reply::status(422)]);
    (h, api, sinks, ev)
}

async fn fail_runs(h: &Harness, n: usize) {
    let payloads = (0..n).map(|i| json!({"i": i})).collect();
    for id in h
        .engine
        .start_runs("fail", TriggerKind::Manual, payloads)
        .await
        .unwrap()
    {
        wait_final(&h.store, id).await;
    }
}

async fn get<T: serde::de::DeserializeOwned>(api: &Api, path: &str) -> T {
    let response = api.get(path, &api.viewer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

async fn notifications(api: &Api, alert: i64) -> Vec<NotificationView> {
    get(api, &format!("/notifications?alert={alert}")).await
}

fn firing(changed: &[AlertView]) -> &AlertView {
    changed
        .iter()
        .find(|a| a.rule == "failures")
        .expect("the failures alert changed")
}

#[tokio::test]
async fn every_channel_gets_a_readable_notification_and_no_failure_goes_unnotified() {
    // Waiting for the incident tracker and evaluating take a while on a busy machine: the
    // failures are told about well within 3 s.
    let (h, api, sinks, ev) = setup_within("3s").await;
    fail_runs(&h, 3).await;
    // The incident tracker folds the failures in as they commit; the message names it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let incident = loop {
        let list: Vec<acp::wire::IncidentView> = get(&api, "/incidents").await;
        if let Some(i) = list.into_iter().find(|i| i.count == 3) {
            break i;
        }
        assert!(tokio::time::Instant::now() < deadline, "no incident");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let alert = firing(&ev.evaluate_at(Utc::now()).await.unwrap()).clone();
    until("slack, webhook and email", || {
        sinks.slack.bodies().len() == 1
            && sinks.hook.bodies().len() == 1
            && sinks.smtp.mails().len() == 1
    })
    .await;

    let slack = &sinks.slack.bodies()[0];
    let blocks = slack["blocks"].as_array().unwrap();
    assert_eq!(
        blocks[0]["text"]["text"],
        "CRITICAL: `failures` on fail is firing"
    );
    assert_eq!(blocks[1]["text"]["text"], "*3 runs failed*");
    let fields = blocks[2]["fields"].to_string();
    assert!(
        fields.contains("*Team*\\nrevops") && fields.contains("*New failures*\\n3"),
        "{fields}"
    );
    assert!(
        blocks[3]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("HTTP 422"),
        "top error: {}",
        blocks[3]
    );
    let incidents = blocks[4]["text"]["text"].as_str().unwrap();
    assert!(
        incidents.starts_with(&format!(
            "*Incidents*\nIncident {} (open): 3× HTTP 422",
            incident.id
        )) && incidents.contains("after version 1 was published by"),
        "{incidents}"
    );
    let links = blocks[5]["elements"][0]["text"].as_str().unwrap();
    assert!(
        links.contains("<https://acp.example.com/a/")
            && links.contains("|Open the failed runs>")
            && links.contains(&format!(
                "acp console --server https://acp.example.com --alert {}",
                alert.id
            )),
        "{links}"
    );

    let (headers, body) = sinks.hook.got.lock().unwrap()[0].clone();
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(&STANDARD.decode(&SECRET[6..]).unwrap()).unwrap();
    mac.update(
        format!(
            "{}.{}.{body}",
            header("webhook-id"),
            header("webhook-timestamp")
        )
        .as_bytes(),
    );
    assert_eq!(
        header("webhook-signature"),
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    );
    assert_eq!(body["type"], "alert.firing");
    assert!(
        body["links"]["page"]
            .as_str()
            .is_some_and(|page| page.starts_with("https://acp.example.com/a/")),
        "the signed payload carries the page link: {body}"
    );
    assert_eq!(body["new_failures"], 3);
    assert_eq!(body["alert"]["id"], alert.id);

    let mail = &sinks.smtp.mails()[0];
    assert!(
        mail.contains("Subject: [ACP] CRITICAL: failures on fail is firing"),
        "{mail}"
    );
    assert!(mail.contains("To: oncall@example.com"), "{mail}");
    assert!(mail.contains("New failures: 3"), "{mail}");
    assert!(
        mail.contains(&format!(
            "Incident {} (open): 3=C3=97 HTTP 422",
            incident.id
        )) || mail.contains(&format!("Incident {} (open): 3× HTTP 422", incident.id)),
        "the email names the incident: {mail}"
    );
    assert_eq!(body["incidents"][0]["id"], incident.id);
    // The alert links to the incidents its notifications covered.
    let covered: Vec<acp::wire::IncidentView> =
        get(&api, &format!("/incidents?alert={}", alert.id)).await;
    assert_eq!(
        covered.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![incident.id]
    );
    let none: Vec<acp::wire::IncidentView> = get(&api, "/incidents?alert=999").await;
    assert!(none.is_empty());

    // The link in the message works: it lists exactly the failed runs.
    let path = body["links"]["runs"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://acp.example.com/api/v1")
        .to_owned();
    let runs: Value = get(&api, &path).await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 3, "{runs}");

    let sent = notifications(&api, alert.id).await;
    assert_eq!(sent.len(), 3, "one per channel");
    for n in &sent {
        assert_eq!(
            (n.status.as_str(), n.runs_covered),
            ("delivered", 3),
            "{n:?}"
        );
        assert_eq!(n.attempts.len(), 1);
        assert!(n.attempts[0].error.is_none());
    }
    let mut codes: Vec<u16> = sent
        .iter()
        .map(|n| n.attempts[0].status_code.unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [200, 200, 250],
        "HTTP for slack and webhook, SMTP for mail"
    );

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let health: Health = get(&api, "/health").await;
    assert_eq!(
        (
            health.unnotified.failed,
            health.unnotified.unnotified,
            health.unnotified.rate
        ),
        (3, 0, 0.0),
        "{:?}",
        health.unnotified
    );
    assert_eq!(health.unnotified.within_ms, 3000);
    assert_eq!(health.workflows[0].unnotified.failed, 3);
    assert_eq!(health.workflows[0].unnotified.unnotified, 0);
}

#[tokio::test]
async fn a_burst_is_one_notification_reminders_repeat_until_ack_and_new_failures_are_grouped() {
    let (h, api, sinks, ev) = setup().await;
    fail_runs(&h, 500).await;
    let now = Utc::now();
    let alert = firing(&ev.evaluate_at(now).await.unwrap()).clone();
    until("the first message", || sinks.slack.bodies().len() == 1).await;
    assert_eq!(
        sinks.slack.bodies()[0]["blocks"][1]["text"]["text"],
        "*500 runs failed*"
    );
    let sent = notifications(&api, alert.id).await;
    assert!(sent.iter().all(|n| n.runs_covered == 500), "{sent:?}");

    ev.evaluate_at(now + chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(
        notifications(&api, alert.id).await.len(),
        3,
        "nothing new, no message"
    );

    let later = now + chrono::Duration::minutes(11);
    ev.evaluate_at(later).await.unwrap();
    until("the reminder", || sinks.slack.bodies().len() == 2).await;
    assert_eq!(
        sinks.slack.bodies()[1]["blocks"][0]["text"]["text"],
        "CRITICAL: `failures` on fail, still firing"
    );

    let ack = api
        .post(&format!("/alerts/{}/ack", alert.id), &api.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), StatusCode::OK);
    ev.evaluate_at(later + chrono::Duration::minutes(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sinks.slack.bodies().len(),
        2,
        "acknowledged: no more reminders"
    );

    fail_runs(&h, 2).await;
    ev.evaluate_at(later + chrono::Duration::minutes(31))
        .await
        .unwrap();
    until("the update about new failures", || {
        sinks.slack.bodies().len() == 3
    })
    .await;
    let update = &sinks.slack.bodies()[2];
    assert_eq!(
        update["blocks"][0]["text"]["text"],
        "CRITICAL: `failures` on fail, more failures"
    );
    let reasons: Vec<(String, i64)> = notifications(&api, alert.id)
        .await
        .into_iter()
        .filter(|n| n.channel == "slack")
        .map(|n| (n.reason, n.runs_covered))
        .collect();
    assert_eq!(
        reasons,
        [
            ("update".to_owned(), 2),
            ("reminder".to_owned(), 0),
            ("firing".to_owned(), 500)
        ]
    );
}

#[tokio::test]
async fn a_silence_keeps_an_alert_quiet_and_is_audited() {
    let (h, api, sinks, ev) = setup().await;
    fail_runs(&h, 1).await;
    let now = Utc::now();
    let alert = firing(&ev.evaluate_at(now).await.unwrap()).clone();
    until("the first message", || sinks.slack.bodies().len() == 1).await;
    let silence = api
        .post(&format!("/alerts/{}/silence", alert.id), &api.admin)
        .json(&json!({"for": "1h", "reason": "vendor maintenance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(silence.status(), StatusCode::OK);
    fail_runs(&h, 2).await;
    ev.evaluate_at(now + chrono::Duration::minutes(2))
        .await
        .unwrap();
    ev.evaluate_at(now + chrono::Duration::minutes(20))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sinks.slack.bodies().len(), 1, "silenced");
    let audit: Value = get(&api, "/audit").await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "alert.silence")
        .expect("the silence is audited")
        .clone();
    assert_eq!(entry["actor"], "admin");
    assert_eq!(entry["reason"], "vendor maintenance");

    ev.evaluate_at(now + chrono::Duration::minutes(70))
        .await
        .unwrap();
    until("the update once the silence ended", || {
        sinks.slack.bodies().len() == 2
    })
    .await;
    let sent = notifications(&api, alert.id).await;
    assert_eq!(
        (sent[0].reason.as_str(), sent[0].runs_covered),
        ("update", 2)
    );
}

#[tokio::test]
async fn channels_that_are_down_get_everything_when_back_and_the_gap_shows_in_health() {
    let (h, api, sinks, ev) = setup().await;
    sinks.slack.down.store(true, Ordering::SeqCst);
    sinks.smtp.down.store(true, Ordering::SeqCst);
    fail_runs(&h, 4).await;
    let alert = firing(&ev.evaluate_at(Utc::now()).await.unwrap()).clone();
    let mut sent = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !sent
        .iter()
        .any(|n: &NotificationView| n.channel == "mail" && n.attempts.len() >= 2)
        || !sent
            .iter()
            .any(|n| n.channel == "slack" && n.attempts.len() >= 2)
    {
        assert!(tokio::time::Instant::now() < deadline, "{sent:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = notifications(&api, alert.id).await;
    }
    let by = |channel: &str| sent.iter().find(|n| n.channel == channel).unwrap().clone();
    assert_eq!(by("slack").status, "pending");
    assert_eq!(by("slack").attempts[0].status_code, Some(503));
    assert_eq!(by("mail").attempts[0].status_code, Some(451));
    assert!(
        by("mail").attempts[0]
            .error
            .as_deref()
            .unwrap()
            .contains("SMTP")
    );
    assert_eq!(by("pager").status, "delivered", "the webhook was up");

    // Past the 300 ms delay, the failures count as unnotified: the webhook's notification
    // covered them, so the rate stays 0 as long as one channel got through...
    tokio::time::sleep(Duration::from_millis(400)).await;
    let health: Health = get(&api, "/health").await;
    assert_eq!(health.unnotified.unnotified, 0);
    // ...and turns 1 when every channel the failures went to was down.
    sinks.hook.down.store(true, Ordering::SeqCst);
    fail_runs(&h, 2).await;
    ev.evaluate_at(Utc::now() + chrono::Duration::minutes(2))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let health: Health = get(&api, "/health").await;
    assert_eq!(
        (health.unnotified.failed, health.unnotified.unnotified),
        (6, 2),
        "{:?}",
        health.unnotified
    );
    assert!(health.unnotified.rate > 0.3);
    assert_eq!(health.workflows[0].unnotified.unnotified, 2);

    for down in [&sinks.slack.down, &sinks.smtp.down, &sinks.hook.down] {
        down.store(false, Ordering::SeqCst);
    }
    until("every channel caught up", || {
        sinks.slack.bodies().len() == 2
            && sinks.smtp.mails().len() == 2
            && sinks.hook.bodies().len() == 2
    })
    .await;
    let bodies = sinks.slack.bodies();
    let titles: Vec<&str> = bodies
        .iter()
        .map(|b| b["blocks"][0]["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "CRITICAL: `failures` on fail is firing",
            "CRITICAL: `failures` on fail, more failures"
        ],
        "in order"
    );
    // A receiver has the message a moment before its delivery is recorded.
    let mut sent = notifications(&api, alert.id).await;
    for _ in 0..100 {
        if sent.iter().all(|n| n.status == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = notifications(&api, alert.id).await;
    }
    assert!(sent.iter().all(|n| n.status == "delivered"), "{sent:#?}");
}

#[tokio::test]
async fn rules_come_from_workflow_files_the_config_and_the_api() {
    let (h, api, _sinks, ev) = setup().await;
    let listed: Vec<Value> = get(&api, "/rules").await;
    let sources: Vec<(String, String, String)> = listed
        .iter()
        .map(|r| {
            (
                r["scope"].as_str().unwrap().to_owned(),
                r["source"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("team:revops".into(), "config".into(), "dlq_team".into()),
            (
                "workflow:fail".into(),
                "workflow_file".into(),
                "failures".into()
            ),
        ]
    );
    let rule = json!({"scope": "global", "rule": {"name": "many_dead", "severity": "Warning", "when": {"DlqDepth": {"above": 1}}}});
    let as_viewer = api
        .post("/rules", &api.viewer)
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(as_viewer.status(), StatusCode::FORBIDDEN);
    let created = api
        .post("/rules", &api.admin)
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let created: Value = created.json().await.unwrap();
    for (bad, code) in [
        (
            json!({"scope": "workflow:fail", "rule": rule["rule"]}),
            "invalid_scope",
        ),
        (
            json!({"scope": "global", "rule": {"name": "x", "severity": "Loud", "when": {"DlqDepth": {"above": 1}}}}),
            "invalid_rule",
        ),
        (
            json!({"scope": "global", "rule": {"name": "x", "severity": "Warning", "when": {"AnyFailure": {"window": "soon"}}}}),
            "invalid_rule",
        ),
    ] {
        let response = api
            .post("/rules", &api.admin)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }

    fail_runs(&h, 2).await;
    let changed = ev.evaluate_at(Utc::now()).await.unwrap();
    let mut rules: Vec<&str> = changed.iter().map(|a| a.rule.as_str()).collect();
    rules.sort();
    assert_eq!(
        rules,
        ["failures", "many_dead"],
        "the global API rule applies"
    );

    let id = created["id"].as_i64().unwrap();
    let deleted = api
        .http
        .delete(format!("{}/rules/{id}", api.url))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let changed = ev.evaluate_at(Utc::now()).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].rule.as_str(), changed[0].state.as_str()),
        ("many_dead", "resolved")
    );
}

#[test]
fn acp_serve_refuses_a_broken_config_file_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("acp.ron");
    std::fs::write(
        &config,
        "(\n    channels: {\"slack\": Slack(url: \"env:ACP_TEST_UNSET_URL\")},\n    routes: [(channels: [\"pager\"])],\n)\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("acp.db"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let path = config.display();
    assert!(
        stderr.contains(&format!(
            "{path}:2:16: channel `slack`: environment variable ACP_TEST_UNSET_URL is not set"
        )) && stderr.contains(&format!("{path}:3:26: route names channel `pager`")),
        "{stderr}"
    );
}

/// Test runs that fail fire no alert and reach no channel (Slack, webhook, SMTP), nor a
/// webhook subscription; the same failures live do.
#[tokio::test]
async fn failing_test_runs_alert_nobody_and_send_nothing() {
    let (h, api, sinks, ev) = setup().await;
    let subscribed = api
        .post("/webhooks", &api.admin)
        .json(&json!({"url": sinks.hook.url, "events": ["run.*", "step.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), StatusCode::CREATED);
    let tested = api
        .post("/workflows/fail/test", &api.operator)
        .json(&json!({
            "version": "published",
            "inputs": [{"payload": {"i": 1}}, {"payload": {"i": 2}}, {"payload": {"i": 3}}],
            "mocks": {"call": {"status": 422, "body": {"error": "no"}}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(tested.status(), StatusCode::OK);
    let report: Value = tested.json().await.unwrap();
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "failed"),
        "{report}"
    );
    assert!(ev.evaluate_at(Utc::now()).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sinks.slack.bodies().is_empty() && sinks.smtp.mails().is_empty());
    assert!(sinks.hook.bodies().is_empty(), "{:?}", sinks.hook.bodies());
    let health: Health = get(&api, "/health").await;
    assert_eq!(health.unnotified.failed, 0);
    // The canary: the same failures, live, alert every channel.
    fail_runs(&h, 1).await;
    firing(&ev.evaluate_at(Utc::now()).await.unwrap());
    until("an email about the live failure", || {
        sinks.smtp.mails().len() == 1
    })
    .await;
}
