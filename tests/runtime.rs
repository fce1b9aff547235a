//! The composition root: every background loop is a named peer with a heartbeat, and one
//! stop ends the API, the loops, the engine and the store in order.

mod common;

use std::time::Duration;

use acp::server::Retention;
use acp::store::StoreError;
use acp::wire::{Health, TriggerKind};
use common::{harness, serve_api, serve_api_with, wait_final};

const PLAIN: &str = r#"(
    key: "plain", name: "Plain", team: "qa", trigger: Manual,
    steps: [(id: "a", action: Http(method: "POST", url: "{world}/a"))],
)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_loop_reports_its_heartbeat_and_one_stop_ends_everything() {
    let h = harness(&[PLAIN]).await;
    let api = serve_api(&h).await;
    let health = || async {
        api.get("/health", &api.viewer)
            .send()
            .await
            .unwrap()
            .json::<Health>()
            .await
            .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let loops = loop {
        let loops = health().await.control.loops;
        if loops.iter().all(|l| l.healthy && l.last_round.is_some()) {
            break loops;
        }
        assert!(tokio::time::Instant::now() < deadline, "{loops:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let names: Vec<&str> = loops.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "alert evaluator",
            "outbox dispatch",
            "outbox delivery",
            "incident tracker",
            "engine claims",
            "lease heartbeat"
        ]
    );

    tokio::time::timeout(Duration::from_secs(10), h.runtime.stop())
        .await
        .expect("the runtime stops within its grace period")
        .expect("the API stopped cleanly");
    let refused = api.get("/health", &api.viewer).send().await;
    assert!(refused.is_err(), "the API no longer answers");
    assert!(
        h.store.newest_seq().await.is_err(),
        "the store is closed last"
    );
}

/// The retention loop prunes finished runs and their events as they age, while the health
/// numbers (rollups) still count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_finished_runs_and_health_still_counts_them() {
    let h = harness(&[PLAIN]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = serve_api_with(&h, listener, |config| {
        config.retention = Some(Retention {
            keep_runs: Duration::from_secs(1),
            keep_events: Duration::from_secs(3600),
            keep_test_runs: Duration::from_secs(3600),
            every: Duration::from_millis(200),
        });
    })
    .await;
    let ids = h
        .engine
        .start_runs("plain", TriggerKind::Manual, vec![serde_json::json!({}); 3])
        .await
        .unwrap();
    for id in &ids {
        wait_final(&h.store, *id).await;
    }
    // The newest run (and the holder of the newest attempt) always stays, so ids never repeat.
    let newest = h
        .engine
        .start_runs("plain", TriggerKind::Manual, vec![serde_json::json!({})])
        .await
        .unwrap()[0];
    wait_final(&h.store, newest).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for id in &ids {
        while !matches!(h.store.run(*id).await, Err(StoreError::NotFound(_))) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} was never pruned"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(h.store.run(newest).await.is_ok(), "the newest run stays");
    // Events go once every cursor (the webhook dispatcher's, the incident tracker's) passed them.
    let newest_seq = h.store.newest_seq().await.unwrap();
    loop {
        let events = h.store.events_since(0, 10_000).await.unwrap();
        let gone = events
            .iter()
            .all(|e| e.seq == newest_seq || e.run_id.is_none_or(|r| !ids.contains(&r)));
        if gone {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a pruned run's events go with it (keep-events is capped at keep-runs; the newest \
             event always stays): {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health: Health = api.json("/health?window=1h", &api.viewer).await;
    let plain = &health.workflows[0];
    assert_eq!((plain.counts.runs, plain.counts.succeeded), (4, 4));
    let retention = health.control.loops.iter().find(|l| l.name == "retention");
    assert!(
        retention.is_some_and(|l| l.healthy),
        "{:?}",
        health.control.loops
    );
    h.runtime.stop().await.unwrap();
}
