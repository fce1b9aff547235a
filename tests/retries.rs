//! Retries, classification, backoff, DLQ, retry/re-run/replay/discard/cancel against a real
//! local HTTP server that fails in scripted ways.

mod common;

use std::time::{Duration, SystemTime};

use serde_json::json;

use acp::wire::ReplayOn;
use acp::wire::{AttemptStatus, DlqStatus, ErrorClass, RunQuery, RunStatus, TriggerKind};
use common::{Reply, SECRET, harness, wait_final, wait_until};

const FLAKY: &str = r#"(
    key: "flaky", name: "Flaky", team: "qa", trigger: Manual,
    steps: [
        (id: "first", action: Http(method: "POST", url: "{world}/first",
            headers: {"Authorization": "Bearer {{ secret(\"API_KEY\") }}"}, body: {"n": "{{ trigger.n }}"})),
        (id: "second", action: Http(method: "POST", url: "{world}/second?key={{ secret(\"API_KEY\") }}"),
            retry: (max_attempts: 3, initial_delay: "10ms", max_delay: "50ms"), timeout: "500ms"),
        (id: "third", action: Http(method: "POST", url: "{world}/third")),
    ],
)"#;

async fn start_one(h: &common::Harness, n: i64) -> i64 {
    h.engine
        .start_runs("flaky", TriggerKind::Manual, vec![json!({"n": n})])
        .await
        .unwrap()[0]
}

fn attempts_of(detail: &acp::wire::RunDetail, step: &str) -> Vec<acp::wire::AttemptView> {
    detail
        .attempts
        .iter()
        .filter(|a| a.step_id == step)
        .cloned()
        .collect()
}

#[tokio::test]
async fn transient_errors_retry_with_backoff_and_honour_retry_after_seconds() {
    let h = harness(&[FLAKY]).await;
    h.world.script(
        "/second",
        vec![
            Reply::status(429).header("Retry-After", "1"),
            Reply::status(503),
            Reply::ok(json!({})),
        ],
    );
    let run = start_one(&h, 1).await;
    let detail = wait_final(&h.store, run).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    let second = attempts_of(&detail, "second");
    let statuses: Vec<_> = second.iter().map(|a| a.status).collect();
    // The 429 with Retry-After held the run (host backpressure) without charging the attempt;
    // the plain 503 is retried with backoff.
    assert_eq!(
        statuses,
        [
            AttemptStatus::Throttled,
            AttemptStatus::Failed,
            AttemptStatus::Succeeded
        ]
    );
    let numbers: Vec<_> = second.iter().map(|a| a.number).collect();
    assert_eq!(numbers, [1, 1, 2]);
    let first_error = second[0].error.as_ref().unwrap();
    assert_eq!(
        (first_error.class, first_error.status),
        (ErrorClass::Transient, Some(429))
    );
    assert!(
        second[1].retry_delay_ms.unwrap() <= 20,
        "backoff is jittered below 20ms: {:?}",
        second[1].retry_delay_ms
    );
    let gap = second[1].started_at - second[0].finished_at.unwrap();
    assert!(gap >= chrono::Duration::milliseconds(950), "waited {gap}");
    let keys: Vec<_> = h
        .world
        .hits("/second")
        .into_iter()
        .map(|hit| hit.key.unwrap())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one key for every attempt: {keys:?}"
    );
    assert_eq!(h.world.hits("/first").len(), 1);
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let h = harness(&[FLAKY]).await;
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    h.world.script(
        "/second",
        vec![
            Reply::status(503).header("Retry-After", &at),
            Reply::ok(json!({})),
        ],
    );
    let detail = wait_final(&h.store, start_one(&h, 1).await).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    let second = attempts_of(&detail, "second");
    assert_eq!(second[0].status, AttemptStatus::Throttled);
    // The run waited until the date (whole seconds: 1-2 s away when it was sent).
    let waited = second[1].started_at - second[0].finished_at.unwrap();
    assert!(
        waited >= chrono::Duration::milliseconds(900) && waited <= chrono::Duration::seconds(4),
        "HTTP-date Retry-After held the run {waited}"
    );
}

#[tokio::test]
async fn a_hanging_server_times_out_and_the_retry_reuses_the_key() {
    let h = harness(&[FLAKY]).await;
    h.world.script(
        "/second",
        vec![
            Reply::ok(json!({"late": true})).after(Duration::from_secs(2)),
            Reply::ok(json!({})),
        ],
    );
    let detail = wait_final(&h.store, start_one(&h, 1).await).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    let second = attempts_of(&detail, "second");
    let error = second[0].error.as_ref().unwrap();
    assert!(error.message.contains("timed out"), "{error:?}");
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(second[0].idempotency_key, second[1].idempotency_key);
}

#[tokio::test]
async fn permanent_errors_fail_at_once_into_the_dlq() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/second", vec![Reply::status(422)]);
    let detail = wait_final(&h.store, start_one(&h, 1).await).await;
    assert_eq!(detail.run.status, RunStatus::Failed);
    assert_eq!(detail.run.failed_step.as_deref(), Some("second"));
    assert_eq!(attempts_of(&detail, "second").len(), 1);
    assert!(attempts_of(&detail, "third").is_empty());
    let dlq = h.store.dlq(&RunQuery::default()).await.unwrap().items;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        (dlq[0].run_id, dlq[0].status, dlq[0].error.class),
        (detail.run.id, DlqStatus::Open, ErrorClass::Permanent)
    );
    assert_eq!(dlq[0].step_id, "second");
}

#[tokio::test]
async fn retry_resumes_at_the_failed_step_with_the_same_keys() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/second", vec![Reply::status(503)]);
    let run = start_one(&h, 1).await;
    let failed = wait_final(&h.store, run).await;
    assert_eq!(failed.run.status, RunStatus::Failed);
    assert_eq!(
        attempts_of(&failed, "second").len(),
        3,
        "the policy allows three attempts"
    );
    assert_eq!(
        h.store.dlq(&RunQuery::default()).await.unwrap().items[0]
            .error
            .class,
        ErrorClass::Transient
    );

    h.world.script("/second", vec![Reply::ok(json!({}))]);
    h.engine.retry(run, "oncall").await.unwrap();
    let detail = wait_until(&h.store, run, |d| d.run.status == RunStatus::Succeeded).await;
    assert_eq!(
        h.world.hits("/first").len(),
        1,
        "succeeded steps are not executed again"
    );
    assert_eq!(attempts_of(&detail, "first").len(), 1);
    let keys: std::collections::BTreeSet<_> = h
        .world
        .hits("/second")
        .into_iter()
        .map(|h| h.key.unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "the same idempotency key across the retry");
    assert_eq!(h.world.hits("/third").len(), 1);
    let entry = h
        .store
        .dlq(&RunQuery::default())
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(entry.status, DlqStatus::Retried);
    assert!(
        h.engine.retry(run, "oncall").await.is_err(),
        "only failed runs can be retried"
    );
}

#[tokio::test]
async fn rerun_is_a_new_run_with_new_keys() {
    let h = harness(&[FLAKY]).await;
    let run = start_one(&h, 1).await;
    wait_final(&h.store, run).await;
    let again = h.engine.rerun(run).await.unwrap();
    let detail = wait_final(&h.store, again).await;
    assert_eq!(
        (detail.run.status, detail.run.origin_run),
        (RunStatus::Succeeded, Some(run))
    );
    let keys: Vec<_> = h
        .world
        .hits("/first")
        .into_iter()
        .map(|h| h.key.unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test]
async fn replay_carries_succeeded_steps_or_starts_fresh_with_an_edited_payload() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/second", vec![Reply::status(422)]);
    let first_run = start_one(&h, 1).await;
    let second_run = start_one(&h, 2).await;
    wait_final(&h.store, first_run).await;
    wait_final(&h.store, second_run).await;
    let dlq = h.store.dlq(&RunQuery::default()).await.unwrap().items;
    let entry_of = |run: i64| dlq.iter().find(|e| e.run_id == run).unwrap().id;
    h.world.script("/second", vec![Reply::ok(json!({}))]);

    let carried = h
        .engine
        .replay(entry_of(first_run), ReplayOn::Same, None, "oncall")
        .await
        .unwrap();
    let detail = wait_final(&h.store, carried).await;
    assert_eq!(
        (detail.run.status, detail.run.origin_run),
        (RunStatus::Succeeded, Some(first_run))
    );
    let first = attempts_of(&detail, "first");
    assert_eq!(
        first[0].carried_from,
        Some(first_run),
        "the succeeded step is carried, not executed"
    );

    let edited = h
        .engine
        .replay(
            entry_of(second_run),
            ReplayOn::Latest,
            Some(json!({"n": 99})),
            "oncall",
        )
        .await
        .unwrap();
    let detail = wait_final(&h.store, edited).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    assert_eq!(
        (detail.run.origin_run, detail.run.trigger.clone()),
        (Some(second_run), json!({"n": 99}))
    );
    // The two original runs went concurrently, so their calls may come in either order.
    let mut bodies: Vec<_> = h.world.hits("/first").into_iter().map(|h| h.body).collect();
    bodies.sort_by_key(|b| b["n"].as_i64());
    assert_eq!(
        bodies,
        [json!({"n": 1}), json!({"n": 2}), json!({"n": 99})],
        "only the edited replay calls /first again"
    );

    let entry = h.store.dlq_entry(entry_of(second_run)).await.unwrap();
    assert_eq!(
        (entry.status, entry.replay_run),
        (DlqStatus::Replayed, Some(edited))
    );
    let again = h
        .engine
        .replay(entry.id, ReplayOn::Same, None, "oncall")
        .await;
    assert!(again.is_err(), "a replayed entry cannot be replayed twice");
}

#[tokio::test]
async fn discard_needs_a_reason_and_closes_the_entry() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/second", vec![Reply::status(400)]);
    wait_final(&h.store, start_one(&h, 1).await).await;
    let entry = h
        .store
        .dlq(&RunQuery::default())
        .await
        .unwrap()
        .items
        .remove(0);
    assert!(h.engine.discard(entry.id, "  ", "oncall").await.is_err());
    h.engine
        .discard(entry.id, "bad test data", "oncall")
        .await
        .unwrap();
    let entry = h.store.dlq_entry(entry.id).await.unwrap();
    assert_eq!(
        (
            entry.status,
            entry.close_reason.as_deref(),
            entry.closed_by.as_deref()
        ),
        (DlqStatus::Discarded, Some("bad test data"), Some("oncall"))
    );
    assert!(h.engine.discard(entry.id, "again", "oncall").await.is_err());
}

#[tokio::test]
async fn cancel_stops_waiting_and_running_runs() {
    let h = harness(&[FLAKY]).await;
    h.world.script(
        "/second",
        vec![Reply::status(503).header("Retry-After", "30")],
    );
    // A 503 with Retry-After holds the run (and every call to its host) for 30 s.
    let waiting = start_one(&h, 1).await;
    wait_until(&h.store, waiting, |d| d.run.status == RunStatus::Held).await;
    assert_eq!(
        h.engine.cancel(waiting, "oncall").await.unwrap(),
        RunStatus::Cancelled
    );
    assert_eq!(
        h.store.run(waiting).await.unwrap().run.status,
        RunStatus::Cancelled
    );
    // Releasing the host's automatic hold lifts the wait.
    let holds = h.engine.holds(false).await.unwrap().holds;
    assert_eq!(holds.len(), 1, "{holds:?}");
    h.engine.release_hold(holds[0].id, "oncall").await.unwrap();

    h.world.script(
        "/second",
        vec![Reply::ok(json!({})).after(Duration::from_millis(400))],
    );
    let running = start_one(&h, 2).await;
    wait_until(&h.store, running, |d| {
        d.attempts.iter().any(|a| a.step_id == "second")
    })
    .await;
    assert_eq!(
        h.engine.cancel(running, "oncall").await.unwrap(),
        RunStatus::Running
    );
    let detail = wait_final(&h.store, running).await;
    assert_eq!(detail.run.status, RunStatus::Cancelled);
    assert!(attempts_of(&detail, "third").is_empty());
    assert!(
        h.engine.cancel(running, "oncall").await.is_err(),
        "a finished run cannot be cancelled"
    );
}

#[tokio::test]
async fn secrets_reach_the_server_but_never_the_database() {
    let h = harness(&[FLAKY]).await;
    h.world.script(
        "/second",
        vec![
            Reply::status(500),
            Reply::ok(json!({"token": SECRET, "echo": format!("key={SECRET}")})),
        ],
    );
    let detail = wait_final(&h.store, start_one(&h, 1).await).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    let sent = &h.world.hits("/first")[0];
    assert_eq!(sent.headers["authorization"], format!("Bearer {SECRET}"));
    assert_eq!(h.world.hits("/second")[0].query, format!("key={SECRET}"));

    let first = &attempts_of(&detail, "first")[0];
    assert_eq!(first.input["headers"]["Authorization"], "[redacted]");
    let second = attempts_of(&detail, "second");
    assert!(
        second[0].input["url"]
            .as_str()
            .unwrap()
            .ends_with("key=[redacted]")
    );
    assert_eq!(
        second[1].output,
        json!({"token": "[redacted]", "echo": "key=[redacted]"})
    );
    let events = h.store.events_since(0, 10_000).await.unwrap();
    assert!(!serde_json::to_string(&events).unwrap().contains(SECRET));

    h.engine.shutdown().await;
    h.store.close();
    for file in std::fs::read_dir(h.dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "the secret is stored in the database files");
    }
}
