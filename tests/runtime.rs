//! The composition root: every background loop is a named peer with a heartbeat, and one
//! stop ends the API, the loops, the engine and the store in order.

mod common;

use std::time::Duration;

use acp::wire::Health;
use common::{harness, serve_api};

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
