//! Live traffic for the demo, through the public API like any client: new leads (lead
//! routing), deals moving to proposal (follow-ups) and growing past 50k (big-deal alerts),
//! sign-up form webhooks (data hygiene) and manual renewal checks.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The sign-up form's webhook signing secret (the demo's `FORM_WEBHOOK_SECRET`).
pub const FORM_SECRET: &str = "demo-form-secret";

/// A small API client with the demo's admin token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(server: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("{server}/api/v1"),
            token: token.to_owned(),
        }
    }

    /// Sends JSON; answers the reply's JSON.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{path}: HTTP {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// Sends RON text (a workflow draft).
    pub async fn put_text(&self, path: &str, text: String) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "text/plain")
            .body(text)
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "{path}: HTTP {status}: {}",
            response.text().await?
        );
        Ok(())
    }

    /// Posts to the inbound webhook of a workflow, signed per Standard Webhooks like a real
    /// form provider would.
    async fn hook(&self, key: &str, body: &Value) -> anyhow::Result<()> {
        let body = body.to_string();
        let id = format!("msg_{:016x}", fastrand::u64(..));
        let now = chrono::Utc::now().timestamp();
        let signature = crate::domain::standard_webhooks::signature(FORM_SECRET, &id, now, &body)
            .map_err(anyhow::Error::msg)?;
        let response = self
            .http
            .post(format!("{}/hooks/{key}", self.base))
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "hook {key}: HTTP {}",
            response.status()
        );
        Ok(())
    }
}

/// Loads the sample records (`[{"object", "values"}]`).
pub async fn seed(client: &Client, records: &str) -> anyhow::Result<()> {
    let records: Vec<Value> =
        serde_json::from_str(records).context("assets/records/sample.json")?;
    for record in records {
        client.post("/records", &record).await?;
    }
    Ok(())
}

const FIRST: &[&str] = &[
    "ada", "grace", "linus", "margaret", "alan", "barbara", "ken", "radia", "edsger", "frances",
];
const COMPANIES: &[&str] = &[
    "acme.io",
    "globex.com",
    "initech.net",
    "umbrella.org",
    "hooli.com",
    "stark.dev",
    "wayne.co",
];

/// Creates and changes records at `rate` per second until shutdown.
pub async fn run(client: Client, rate: f64, shutdown: CancellationToken) {
    if rate <= 0.0 {
        return;
    }
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut deals: Vec<i64> = Vec::new();
    let mut people: Vec<i64> = Vec::new();
    for n in 0u64.. {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = step(&client, n, &mut people, &mut deals).await {
            tracing::debug!("demo traffic: {e}");
        }
    }
}

/// One piece of traffic; `n` picks which.
async fn step(
    client: &Client,
    n: u64,
    people: &mut Vec<i64>,
    deals: &mut Vec<i64>,
) -> anyhow::Result<()> {
    let pick =
        |list: &[&'static str], salt: u64| list[((n * 7 + salt) % list.len() as u64) as usize];
    match n % 20 {
        // New leads: lead routing (enrichment, AI scoring, routing, Slack for hot leads).
        0..=9 => {
            let email = format!("{}.{n}@{}", pick(FIRST, 0), pick(COMPANIES, 3));
            let written = client
                .post("/records", &json!({"object": "people", "values": {"email": email, "name": pick(FIRST, 0)}}))
                .await?;
            people.extend(written["record"]["id"].as_i64());
        }
        // Deals: new ones, moves to proposal (follow-up tasks) and big amounts (leadership alert).
        10..=13 => {
            let amount = 5_000 + (n * 7919) % 40_000;
            let written = client
                .post("/records", &json!({"object": "deals", "values": {"name": format!("Deal {n}"), "amount": amount, "stage": "qualified", "owner": pick(FIRST, 5)}}))
                .await?;
            deals.extend(written["record"]["id"].as_i64());
        }
        14 | 15 => {
            if let Some(id) = deals.get((n as usize / 20) % deals.len().max(1)) {
                client
                    .send(
                        reqwest::Method::PATCH,
                        &format!("/records/{id}"),
                        &json!({"object": "deals", "values": {"stage": "proposal"}}),
                    )
                    .await?;
            }
        }
        16 => {
            if let Some(id) = deals.last() {
                let amount = 50_000 + (n * 104_729) % 200_000;
                client
                    .send(
                        reqwest::Method::PATCH,
                        &format!("/records/{id}"),
                        &json!({"object": "deals", "values": {"amount": amount}}),
                    )
                    .await?;
            }
        }
        // The sign-up form's webhook: data hygiene on a person we know.
        17 | 18 => {
            if let Some(id) = people.get((n as usize / 20) % people.len().max(1)) {
                let body = json!({"record_id": id, "email": format!("  {}.{n}@{}  ", pick(FIRST, 2).to_uppercase(), pick(COMPANIES, 1)), "country": "de"});
                client.hook("data_hygiene", &body).await?;
            }
        }
        // Somebody asks for the renewal check now instead of waiting for 9:00.
        _ => {
            client
                .post(
                    "/runs",
                    &json!({"workflow": "renewal_reminder", "payload": {"requested_by": "demo"}}),
                )
                .await?;
        }
    }
    Ok(())
}
