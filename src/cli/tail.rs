//! `acp events tail`: follows the event stream, reconnecting from the last sequence number.

use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::client::{Client, clock};
use acp::wire::{Event, StreamMessage};

/// Prints events as they happen, forever; after a disconnect it reconnects with backoff and
/// resumes from the last event it printed.
pub async fn tail(
    c: &Client,
    since: i64,
    workflow: Option<String>,
    team: Option<String>,
) -> anyhow::Result<()> {
    let mut last = since;
    let mut backoff = Duration::from_millis(250);
    loop {
        match follow(c, &mut last, workflow.as_deref(), team.as_deref()).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) if last == since && backoff == Duration::from_millis(250) => return Err(e),
            Err(e) => eprintln!("stream: {e:#}; reconnecting in {backoff:?} from seq {last}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

async fn follow(
    c: &Client,
    last: &mut i64,
    workflow: Option<&str>,
    team: Option<&str>,
) -> anyhow::Result<()> {
    let mut query = format!("since={last}");
    for (name, value) in [("workflow", workflow), ("team", team)] {
        if let Some(value) = value {
            query.push_str(&format!("&{name}={value}"));
        }
    }
    let mut request = c.stream_url(&query).into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {}", c.token()).parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("connecting to the stream")?;
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        for message in serde_json::from_str::<StreamMessage>(&text)?.flatten() {
            match message {
                StreamMessage::Event(event) => {
                    *last = event.seq;
                    print(c, &event)?;
                }
                StreamMessage::Reset { seq } => {
                    eprintln!(
                        "stream: events before {seq} are no longer kept; continuing from there"
                    );
                    *last = seq;
                }
                StreamMessage::Lagged { seq } => {
                    *last = seq;
                    anyhow::bail!("fell behind the server");
                }
                // `flatten` unpacks batches.
                StreamMessage::Batch { .. } => {}
            }
        }
    }
    anyhow::bail!("the server closed the stream")
}

fn print(c: &Client, event: &Event) -> anyhow::Result<()> {
    if c.json {
        println!("{}", serde_json::to_string(event)?);
        return Ok(());
    }
    let workflow = event.workflow.as_deref().unwrap_or("-");
    let run = event.run_id.map_or("-".into(), |r| r.to_string());
    let line = format!(
        "{:>8}  {}  {:<22} {:<22} {:>7}  {}",
        event.seq,
        clock(&event.at),
        event.kind().as_str(),
        workflow,
        run,
        event.body.data()
    );
    println!("{}", acp::wire::printable(&line));
    Ok(())
}
