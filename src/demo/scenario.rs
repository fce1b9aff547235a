//! The scripted incident: after about a minute the enrichment API starts answering 503 (now
//! and then 429) to most calls (lead routing retries, then dead-letters; the failure-rate alert fires and is
//! sent to the Slack-like sink); half a minute later somebody publishes a big-deal alert that
//! reads a field deals do not have, so every big deal fails on a template error. The way out:
//! fix the sandbox (`:fix` in the console, or `POST /control/fix`), roll `big_deal_alert` back,
//! replay the dead letters and watch the alert resolve.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::traffic::Client;
use super::world::World;

/// The bad deploy: the message reads `owner_email`, which deal records do not have.
const BAD_BIG_DEAL: &str = r#"// Deployed in a hurry: deals have no owner_email field.
(
    key: "big_deal_alert",
    name: "Big deal alert",
    team: "sales-ops",
    description: "A deal's amount changed to 50,000 or more: post it to the leadership channel.",
    trigger: Record(object: "deals", fields: ["amount"], filter: "trigger.record.values.amount >= 50000"),
    sla: "30s",
    steps: [
        (
            id: "post",
            action: Notify(
                channel: Slack,
                url: "{{ secret(\"SLACK_LEADERSHIP_WEBHOOK\") }}",
                text: "Big deal: {{ trigger.record.values.name }} ({{ trigger.record.values.amount }}), owner {{ trigger.record.values.owner_email }}.",
            ),
            retry: (max_attempts: 6, initial_delay: "1s", max_delay: "1m"),
        ),
    ],
)
"#;

pub async fn incident(client: Client, world: Arc<World>, speed: f64, shutdown: CancellationToken) {
    let wait =
        |secs: u64| super::scaled(Duration::from_secs(secs), speed, Duration::from_millis(200));
    tokio::select! {
        _ = tokio::time::sleep(wait(60)) => {}
        _ = shutdown.cancelled() => return,
    }
    world.outage.store(true, Ordering::Relaxed);
    tracing::info!("demo: the enrichment API is degrading (503, now and then 429)");
    tokio::select! {
        _ = tokio::time::sleep(wait(30)) => {}
        _ = shutdown.cancelled() => return,
    }
    let deployed = async {
        client
            .put_text("/workflows/big_deal_alert/draft", BAD_BIG_DEAL.to_owned())
            .await?;
        client
            .post("/workflows/big_deal_alert/publish", &json!({}))
            .await
    };
    match deployed.await {
        Ok(_) => tracing::info!("demo: a bad version of big_deal_alert was published"),
        Err(e) => tracing::warn!("demo: the bad deploy did not happen: {e}"),
    }
}
