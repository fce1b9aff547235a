//! The websocket stream: backlog then live with no gap and no duplicate across reconnects,
//! slow clients dropped without slowing the engine, filters, auth, and close on shutdown.

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use acp::wire::{StreamMessage, TriggerKind};
use common::{Api, Harness, harness, harness_with_bus, serve_api, serve_api_on, wait_final};

const TWO: &str = r#"(key: "two", name: "Two", team: "qa", trigger: Manual, steps: [
    (id: "a", action: Delay(duration: "0s")), (id: "b", action: Delay(duration: "0s"))])"#;
const OTHER: &str = r#"(key: "other", name: "Other", team: "ops", trigger: Manual, steps: [
    (id: "a", action: Delay(duration: "0s"))])"#;

use common::Socket;

async fn connect(api: &Api, query: &str) -> Socket {
    common::stream(api, query).await
}

/// The next stream message, or `None` when the server closed (or nothing came for 5 s).
async fn next(socket: &mut Socket) -> Option<StreamMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .ok()??
        {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn last_seq(h: &Harness) -> i64 {
    h.store
        .events_since(0, 1_000_000)
        .await
        .unwrap()
        .last()
        .map_or(0, |e| e.seq)
}

async fn start(h: &Harness, workflow: &str, runs: usize) -> Vec<i64> {
    let payloads = (0..runs).map(|n| json!({"n": n})).collect();
    h.engine
        .start_runs(workflow, TriggerKind::Manual, payloads)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_the_last_seq_misses_nothing_and_repeats_nothing() {
    let h = harness(&[TWO]).await;
    let api = serve_api(&h).await;
    let mut first = connect(&api, "since=0").await;
    let producer = {
        let engine = h.engine.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..6 {
                let payloads = (0..100).map(|n| json!({"n": n})).collect();
                ids.extend(
                    engine
                        .start_runs("two", TriggerKind::Manual, payloads)
                        .await
                        .unwrap(),
                );
            }
            ids
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 700 {
        match next(&mut first).await {
            Some(StreamMessage::Event(e)) => seen.push(e.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(first);
    let resume_from = *seen.last().unwrap();
    let ids = producer.await.unwrap();
    let mut second = connect(&api, &format!("since={resume_from}")).await;
    for id in ids {
        wait_final(&h.store, id).await;
    }
    let end = last_seq(&h).await;
    assert!(end > 3000, "thousands of events ({end})");
    while *seen.last().unwrap() < end {
        match next(&mut second).await {
            Some(StreamMessage::Event(e)) => seen.push(e.seq),
            other => panic!("unexpected {other:?} after {}", seen.last().unwrap()),
        }
    }
    assert_eq!(
        seen,
        (1..=end).collect::<Vec<_>>(),
        "the union is the full sequence, each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_told_it_lagged_and_the_engine_does_not_wait() {
    let h = harness_with_bus(&[TWO], 64).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let api = serve_api_on(&h, socket.listen(16).unwrap()).await;

    let client = tokio::net::TcpSocket::new_v4().unwrap();
    client.set_recv_buffer_size(4096).unwrap();
    let addr = api
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let stream = client.connect(addr).await.unwrap();
    let url = format!(
        "{}/stream?since=0&token={}",
        api.url.replace("http://", "ws://"),
        api.viewer
    );
    let (mut slow, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();

    let started = std::time::Instant::now();
    let ids = start(&h, "two", 400).await;
    for id in &ids {
        wait_final(&h.store, *id).await;
    }
    let drained = started.elapsed();
    assert!(
        drained < Duration::from_secs(20),
        "the engine finished 400 runs in {drained:?} with a stalled client"
    );

    let mut seen = Vec::new();
    let lagged_at = loop {
        match next(&mut slow).await {
            Some(StreamMessage::Event(e)) => seen.push(e.seq),
            Some(StreamMessage::Lagged { seq }) => break seq,
            other => panic!(
                "expected `lagged`, got {other:?} after {} events",
                seen.len()
            ),
        }
    };
    assert!(
        next(&mut slow).await.is_none(),
        "the server closes after `lagged`"
    );
    assert_eq!(seen, (1..=lagged_at).collect::<Vec<_>>());
    let end = last_seq(&h).await;
    assert!(lagged_at < end);

    let mut again = connect(&api, &format!("since={lagged_at}")).await;
    while seen.last().copied().unwrap_or(0) < end {
        match next(&mut again).await {
            Some(StreamMessage::Event(e)) => seen.push(e.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, (1..=end).collect::<Vec<_>>());
}

#[tokio::test]
async fn filters_auth_and_a_close_frame_on_shutdown() {
    let h = harness(&[TWO, OTHER]).await;
    let api = serve_api(&h).await;
    let mut only_two = connect(&api, "workflow=two").await;
    let mut only_ops = connect(&api, "team=ops").await;
    let two = start(&h, "two", 1).await[0];
    let other = start(&h, "other", 1).await[0];
    wait_final(&h.store, two).await;
    wait_final(&h.store, other).await;
    let end = last_seq(&h).await;
    for (socket, wanted) in [(&mut only_two, "two"), (&mut only_ops, "other")] {
        let mut runs = std::collections::BTreeSet::new();
        loop {
            match next(socket).await {
                Some(StreamMessage::Event(e)) => {
                    assert_eq!(e.workflow.as_deref(), Some(wanted));
                    runs.extend(e.run_id);
                    if e.kind() == acp::wire::EventKind::RunSucceeded {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(runs.len(), 1);
    }
    assert!(end > 0);

    let bad = format!(
        "{}/stream?token=acp_wrong",
        api.url.replace("http://", "ws://")
    );
    let refused = tokio_tungstenite::connect_async(bad).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");

    let mut open = connect(&api, &format!("since={end}")).await;
    api.shutdown.cancel();
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(5), open.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.unwrap().code), 1001);
}

#[tokio::test]
async fn a_since_older_than_the_kept_events_gets_reset_first() {
    let h = harness(&[TWO]).await;
    let api = serve_api(&h).await;
    for id in start(&h, "two", 2).await {
        wait_final(&h.store, id).await;
    }
    let end = last_seq(&h).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Every cursor (the webhook dispatcher's, the incident tracker's) must pass the events.
    while h.store.cursor("webhooks").await.unwrap() < end
        || h.store.cursor("incidents").await.unwrap() < end
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook dispatcher or the incident tracker never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pruned = h
        .store
        .prune_events(chrono::Utc::now() + chrono::Duration::seconds(1), 100_000)
        .await
        .unwrap();
    assert_eq!(pruned as i64, end - 1, "everything but the newest event");
    assert_eq!(h.store.oldest_seq().await.unwrap(), end);

    let mut old = connect(&api, "since=3").await;
    assert_eq!(
        next(&mut old).await,
        Some(StreamMessage::Reset { seq: end - 1 })
    );
    match next(&mut old).await {
        Some(StreamMessage::Event(e)) => assert_eq!(e.seq, end),
        other => panic!("expected the kept event, got {other:?}"),
    }
    let mut current = connect(&api, &format!("since={}", end - 1)).await;
    match next(&mut current).await {
        Some(StreamMessage::Event(e)) => assert_eq!(e.seq, end, "no reset when nothing was missed"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn batching_clients_get_every_event_once_in_fewer_frames() {
    let h = harness(&[TWO]).await;
    let api = serve_api(&h).await;
    for id in start(&h, "two", 50).await {
        wait_final(&h.store, id).await;
    }
    let end = last_seq(&h).await;
    let mut socket = connect(&api, "since=0&batch=true").await;
    let (mut frames, mut batches, mut seen) = (0, 0, Vec::new());
    while seen.last() != Some(&end) {
        let message = next(&mut socket).await.expect("a frame");
        frames += 1;
        batches += usize::from(matches!(message, StreamMessage::Batch { .. }));
        for message in message.flatten() {
            match message {
                StreamMessage::Event(e) => seen.push(e.seq),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        seen,
        (1..=end).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert!(
        batches > 0 && frames < seen.len() / 10,
        "{frames} frames for {} events",
        seen.len()
    );
    // Live events after the backlog arrive too.
    start(&h, "two", 1).await;
    let live = next(&mut socket).await.expect("live").flatten();
    assert!(
        matches!(live.first(), Some(StreamMessage::Event(e)) if e.seq == end + 1),
        "{live:?}"
    );
}
