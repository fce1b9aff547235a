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
        .map(|e| e.kind)
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
        .find(|e| e.kind == EventKind::RunQueued)
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
        .map(|e| (e.kind, e.data))
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
