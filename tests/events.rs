//! The run log: gap-free, strictly increasing sequence numbers, committed with the change and
//! broadcast after the commit in the same order.

mod common;

use std::time::Duration;

use serde_json::json;

use acp::wire::{EventKind, RunStatus, TriggerKind};
use common::{harness, wait_final};

const TWO_STEPS: &str = r#"(
    key: "two", name: "Two", team: "qa", trigger: Manual,
    steps: [
        (id: "a", action: Http(method: "POST", url: "{world}/a")),
        (id: "b", action: Http(method: "POST", url: "{world}/b")),
    ],
)"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_get_gap_free_sequence_numbers_broadcast_in_order() {
    let h = harness(&[TWO_STEPS]).await;
    let mut bus = h.store.subscribe();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let engine = h.engine.clone();
        tasks.push(tokio::spawn(async move {
            let ids = engine
                .start_runs("two", TriggerKind::Manual, vec![json!({"i": i})])
                .await
                .unwrap();
            // Failing writes in the middle of the burst must not use up sequence numbers.
            assert!(
                engine.publish("two", "test").await.is_err(),
                "there is no draft"
            );
            assert!(engine.rollback("nope", 1, "test").await.is_err());
            ids[0]
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    for id in &ids {
        assert_eq!(
            wait_final(&h.store, *id).await.run.status,
            RunStatus::Succeeded
        );
    }

    let stored = h.store.events_since(0, 1_000_000).await.unwrap();
    let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gap-free from 1"
    );
    let per_run = stored
        .iter()
        .filter(|e| e.run_id == Some(ids[0]))
        .map(|e| e.kind())
        .collect::<Vec<_>>();
    assert_eq!(
        per_run,
        [
            EventKind::RunQueued,
            EventKind::RunStarted,
            EventKind::StepStarted,
            EventKind::StepSucceeded,
            EventKind::StepStarted,
            EventKind::StepSucceeded,
            EventKind::RunSucceeded
        ]
    );

    let first_live = stored
        .iter()
        .find(|e| e.kind() == EventKind::RunQueued)
        .unwrap()
        .seq;
    let mut received = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), bus.recv()).await {
        received.push(event.seq);
    }
    let expected: Vec<i64> = (first_live..=*seqs.last().unwrap()).collect();
    assert_eq!(
        received, expected,
        "the bus saw every committed event once, in order"
    );

    let tail = h
        .store
        .events_since(seqs[seqs.len() - 3], 10)
        .await
        .unwrap();
    assert_eq!(tail.len(), 2, "events_since is exclusive");
}

#[tokio::test]
async fn workflow_changes_are_events_too() {
    let h = harness(&[TWO_STEPS]).await;
    h.engine
        .save_draft(
            &TWO_STEPS
                .replace("{world}", &h.world.url)
                .replace("Two", "Two v2"),
            "ada",
        )
        .await
        .unwrap();
    assert_eq!(h.engine.publish("two", "ada").await.unwrap(), 2);
    h.engine.rollback("two", 1, "ada").await.unwrap();
    let kinds: Vec<_> = h
        .store
        .events_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind(), e.body.data()))
        .collect();
    assert_eq!(kinds[0].0, EventKind::WorkflowDraftSaved);
    assert_eq!(
        kinds[1],
        (
            EventKind::WorkflowPublished,
            json!({"version": 1, "actor": "test"})
        )
    );
    assert_eq!(
        kinds[3],
        (
            EventKind::WorkflowPublished,
            json!({"version": 2, "actor": "ada"})
        )
    );
    assert_eq!(
        kinds[4],
        (
            EventKind::WorkflowRolledBack,
            json!({"from": 2, "to": 1, "actor": "ada"})
        )
    );
}

const FLAKY: &str = r#"(
    key: "flaky", name: "Flaky", team: "qa", trigger: Manual,
    steps: [
        (id: "a", action: Http(method: "POST", url: "{world}/flaky"),
            retry: (max_attempts: 3, initial_delay: "10ms", max_delay: "20ms")),
        (id: "gate", action: Condition(expr: "trigger.go")),
        (id: "b", action: Http(method: "POST", url: "{world}/b")),
    ],
)"#;

const REFUSED: &str = r#"(
    key: "refused", name: "Refused", team: "sales", trigger: Manual,
    steps: [
        (id: "a", action: Http(method: "POST", url: "{world}/a")),
        (id: "bad", action: Http(method: "POST", url: "{world}/bad")),
    ],
)"#;

const SLEEPY: &str = r#"(
    key: "sleepy", name: "Sleepy", team: "qa", trigger: Manual,
    steps: [
        (id: "nap", action: Delay(duration: "30ms")),
        (id: "b", action: Http(method: "POST", url: "{world}/b")),
    ],
)"#;

const ASLEEP: &str = r#"(
    key: "asleep", name: "Asleep", team: "qa", trigger: Manual,
    steps: [
        (id: "nap", action: Delay(duration: "1h")),
        (id: "b", action: Http(method: "POST", url: "{world}/b")),
    ],
)"#;

/// Every lifecycle the log can tell (retries, a skipped step, waits, a dead letter replayed,
/// one discarded, one retried in place, a cancelled wait), folded by the one projection
/// clients use, gives each run the row the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folding_the_log_gives_every_run_the_row_the_server_shows() {
    use acp::wire::{ReplayOn, RunQuery, RunView};
    use common::{Reply, wait_until};

    let h = harness(&[FLAKY, REFUSED, SLEEPY, ASLEEP]).await;
    h.world.script(
        "/flaky",
        vec![Reply::status(503), Reply::status(503), Reply::ok(json!({}))],
    );
    h.world.script("/bad", vec![Reply::status(400)]);
    let start = |key: &'static str, trigger: serde_json::Value| {
        let engine = h.engine.clone();
        async move {
            engine
                .start_runs(key, TriggerKind::Manual, vec![trigger])
                .await
                .unwrap()[0]
        }
    };
    let mut runs = vec![
        start("flaky", json!({"go": true})).await,
        start("flaky", json!({"go": false})).await,
        start("sleepy", json!({})).await,
    ];
    let asleep = start("asleep", json!({})).await;
    let failed: Vec<i64> = [
        start("refused", json!({"n": 1})).await,
        start("refused", json!({"n": 2})).await,
        start("refused", json!({"n": 3})).await,
    ]
    .to_vec();
    for id in runs.iter().chain(&failed) {
        wait_final(&h.store, *id).await;
    }
    wait_until(&h.store, asleep, |r| r.run.status == RunStatus::Waiting).await;
    assert_eq!(
        h.engine.cancel(asleep, "ops").await.unwrap(),
        RunStatus::Cancelled
    );

    h.world.script("/bad", vec![Reply::ok(json!({}))]);
    let entry = |run: i64| {
        let store = h.store.clone();
        async move {
            let page = store.dlq(&RunQuery::default()).await.unwrap();
            page.items.into_iter().find(|e| e.run_id == run).unwrap().id
        }
    };
    let replay = h
        .engine
        .replay(entry(failed[0]).await, ReplayOn::Same, None, "ops")
        .await
        .unwrap();
    h.engine
        .discard(entry(failed[1]).await, "duplicate lead", "ops")
        .await
        .unwrap();
    h.engine.retry(failed[2], "ops").await.unwrap();
    runs.extend([replay, failed[2]]);
    for id in &runs {
        wait_final(&h.store, *id).await;
    }

    let mut folded: std::collections::BTreeMap<i64, RunView> = Default::default();
    for event in h.store.events_since(0, 100_000).await.unwrap() {
        if let Some(row) = RunView::queued(&event) {
            folded.insert(row.id, row);
        }
        if let Some(row) = event.run_id.and_then(|id| folded.get_mut(&id)) {
            row.apply(&event);
        }
    }
    let served = h
        .store
        .runs(&RunQuery {
            limit: Some(500),
            ..RunQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(served.len(), 8);
    for mut row in served {
        row.trigger = serde_json::Value::Null;
        assert_eq!(folded.get(&row.id), Some(&row), "run {}", row.id);
    }
}
