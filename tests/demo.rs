//! `acp demo --headless --scenario incident --speed 10`, the real binary: within a bounded time
//! the API shows runs of every workflow, dead letters, and a firing failure-rate alert whose
//! notification reached the sandbox's Slack-like sink; then the fix, the rollback and the
//! replay go through the API, the DLQ drains and the alert resolves.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

struct DemoProcess(Child);

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Api {
    http: reqwest::Client,
    server: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/api/v1{path}", self.server))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/v1{path}", self.server))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Polls `check` every half second for up to `secs`; answers its last value once it is `Some`.
async fn eventually<T>(what: &str, secs: u64, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn start() -> (DemoProcess, String, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args([
            "demo",
            "--headless",
            "--scenario",
            "incident",
            "--speed",
            "10",
        ])
        .env_remove("ACP_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut server, mut token, mut sandbox) = (None, None, None);
    for line in stdout.lines() {
        let line = line.unwrap();
        let value = || line.split_whitespace().nth(1).map(str::to_owned);
        match line.split_whitespace().next() {
            Some("server:") => server = value(),
            Some("token:") => token = value(),
            Some("sandbox:") => sandbox = value(),
            _ => {}
        }
        if server.is_some() && token.is_some() && sandbox.is_some() {
            break;
        }
    }
    (
        DemoProcess(child),
        server.unwrap(),
        token.unwrap(),
        sandbox.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_fires_an_alert_and_the_triage_loop_clears_it() {
    let (mut demo, server, token, sandbox) = start();
    let api = Api {
        http: reqwest::Client::new(),
        server,
        token,
    };

    // Every workflow runs.
    eventually("runs of every workflow", 60, async || {
        let workflows = api.get("/workflows").await;
        let list = workflows.as_array()?;
        (list.len() == 5 && list.iter().all(|w| w["runs_24h"].as_i64() > Some(0))).then_some(())
    })
    .await;

    // The incident: dead letters, a firing failure-rate alert, its Slack message delivered.
    let alert = eventually("the failure-rate alert", 90, async || {
        let alerts = api.get("/alerts?state=firing").await;
        alerts
            .as_array()?
            .iter()
            .find(|a| a["rule"] == "failure_rate" && a["workflow"] == "lead_routing")
            .cloned()
    })
    .await;
    let id = alert["id"].as_i64().unwrap();
    eventually("its Slack notification delivered", 30, async || {
        let sent = api.get(&format!("/notifications?alert={id}")).await;
        sent.as_array()?
            .iter()
            .any(|n| n["channel"] == "slack" && n["status"] == "delivered")
            .then_some(())
    })
    .await;
    let sink: Value = api
        .http
        .get(format!("{sandbox}/slack"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oncall: Vec<&Value> = sink
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["channel"] == "oncall")
        .collect();
    assert!(
        oncall.iter().any(|m| m["message"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("failure_rate")),
        "{oncall:?}"
    );
    assert!(
        !api.get("/dlq").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    eventually("the bad deploy of big_deal_alert", 60, async || {
        let versions = api.get("/workflows/big_deal_alert/versions").await;
        (versions.as_array()?.len() >= 2).then_some(())
    })
    .await;

    // The fix: the sandbox recovers, the bad version is rolled back, the DLQ is replayed;
    // entries that fail again for a reason of their own (invalid addresses) are discarded.
    let fixed = api
        .http
        .post(format!("{sandbox}/control/fix"))
        .send()
        .await
        .unwrap();
    assert!(fixed.status().is_success());
    api.post("/workflows/big_deal_alert/rollback", json!({"version": 1}))
        .await;
    eventually("an empty DLQ", 120, async || {
        let open = api.get("/dlq?status=open&limit=500").await;
        let entries = open["items"].as_array()?.clone();
        if entries.is_empty() {
            return Some(());
        }
        let (invalid, retryable): (Vec<&Value>, Vec<&Value>) =
            entries.iter().partition(|e| e["error"]["status"] == 422);
        for entry in invalid {
            let id = entry["id"].as_i64()?;
            api.post(
                &format!("/dlq/{id}/discard"),
                json!({"reason": "not an email address; fixed in the CRM"}),
            )
            .await;
        }
        // Replaying all when every open entry was just discarded answers 409 (nothing to
        // replay); only the entries listed as retryable are known to be open still.
        if !retryable.is_empty() {
            api.post("/dlq/replay", json!({"all": true, "version": "latest"}))
                .await;
        }
        None
    })
    .await;
    eventually("the alert resolved", 120, async || {
        let alert = api.get(&format!("/alerts/{id}")).await;
        (alert["state"] == "resolved").then_some(())
    })
    .await;

    // Ctrl-C (SIGTERM here) stops the demo cleanly.
    let pid = demo.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = demo.0.wait().unwrap();
        (demo, status)
    })
    .await
    .unwrap()
    .1;
    assert!(status.success(), "{status:?}");
}
