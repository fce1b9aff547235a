//! The store contract: what any backend of `acp::store::Store` must do, written once against
//! the trait and run per backend. A backend joins by adding one `contract!` line with a
//! function that opens a fresh, empty store (PostgreSQL: a database created for the test).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};

use acp::domain::delivery::{Class, Next};
use acp::domain::{
    NewRun, PreparedWrite, Provenance, RecordWrite, RetryAt, StepFailure, Transition, Triggered,
};
use acp::store::{
    AlertChange, Attempt, NewMessage, NewNotice, Replay, Store, StoreError, Target, WebhookRow,
};
use acp::wire::{
    AlertState, AttemptStatus, DlqStatus, EventKind, RunMode, RunQuery, RunStatus, TriggerKind,
    WebhookView,
};

/// A fresh store and whatever keeps it alive (a temporary directory, a database).
struct Backend {
    store: Arc<dyn Store>,
    _keep: Box<dyn std::any::Any + Send>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?durability=normal",
        dir.path().join("acp.db").display()
    );
    Backend {
        store: acp::store::open(&url).unwrap(),
        _keep: Box::new(dir),
    }
}

/// One test per contract for a backend.
macro_rules! contract {
    ($backend:ident: $($name:ident),+ $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = super::$backend();
                    super::$name(&backend.store).await;
                    backend.store.close();
                }
            )+
        }
    };
}

contract!(sqlite:
    two_claimers_never_get_the_same_run,
    an_expired_lease_is_claimed_again_and_its_holder_refused,
    every_run_transition_applies_or_is_refused_by_the_lifecycle,
    a_person_cancels_and_retries_only_what_the_lifecycle_allows,
    sequence_numbers_are_gap_free_under_concurrent_writers,
    record_writes_are_idempotent_and_keep_field_history,
    the_outbox_delivers_each_target_in_order,
    given_up_messages_hold_up_nothing_and_gone_disables_a_subscription,
    alert_changes_follow_the_alert_lifecycle,
    cursor_pages_neither_skip_nor_repeat_while_rows_arrive,
    retention_keeps_the_newest_event_and_what_a_cursor_has_not_passed,
    a_dead_letter_closes_once,
    a_closed_store_answers_nothing,
    text_search_finds_literal_substrings_of_errors,
    rollups_sum_runs_as_they_are_queued_and_end,
    retention_prunes_finished_runs_in_batches_and_keeps_open_dead_letters,
    a_held_run_waits_without_a_lease_and_a_release_drains_its_hold_in_order,
    holds_are_placed_once_per_key_and_released_once,
    an_incident_counts_its_failures_records_and_dead_letters,
    link_keys_are_made_once_and_a_rotation_retires_every_one_before,
);

fn new_run(workflow: &str) -> NewRun {
    NewRun::live(workflow, 1, "qa", TriggerKind::Manual, json!({}))
}

fn later() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::seconds(60)
}

async fn status(store: &Arc<dyn Store>, id: i64) -> RunStatus {
    store.run(id).await.unwrap().run.status
}

/// The kinds of every event in the log, in order.
async fn every_kind(store: &Arc<dyn Store>) -> Vec<EventKind> {
    let events = store.events_since(0, 100_000).await.unwrap();
    events.iter().map(|e| e.kind()).collect()
}

async fn kinds_of(store: &Arc<dyn Store>, run: i64) -> Vec<EventKind> {
    let events = store.events_since(0, 100_000).await.unwrap();
    events
        .iter()
        .filter(|e| e.run_id == Some(run))
        .map(|e| e.kind())
        .collect()
}

fn started(index: usize, number: u32) -> Transition {
    Transition::StepStarted {
        index,
        step_id: format!("s{index}"),
        number,
        input: json!({}),
        idempotency_key: format!("k{index}"),
    }
}

fn ended(attempt: i64, index: usize, number: u32, failed: bool) -> Transition {
    Transition::StepEnded {
        attempt,
        step_id: format!("s{index}"),
        number,
        status: if failed {
            AttemptStatus::Failed
        } else {
            AttemptStatus::Succeeded
        },
        output: Value::Null,
        error: failed.then(|| StepFailure::permanent("HTTP 400").error),
        detail: Value::Null,
        retry: None,
    }
}

fn failed_finish() -> Vec<Transition> {
    let error = StepFailure::permanent("HTTP 400").error;
    vec![
        Transition::Finish {
            status: RunStatus::Failed,
            failed_step: Some("s0".into()),
            error: Some(error.clone()),
        },
        Transition::DeadLetter {
            step_id: "s0".into(),
            error,
        },
    ]
}

/// Claims `id` alone for `owner` (it must be the only due run).
async fn claim_one(store: &Arc<dyn Store>, owner: &str) -> i64 {
    let claimed = store
        .claim_runs(owner, 10, Utc::now(), later())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "exactly one run is due");
    claimed[0].run.id
}

async fn two_claimers_never_get_the_same_run(store: &Arc<dyn Store>) {
    let ids = store
        .create_runs((0..60).map(|_| new_run("w")).collect())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for owner in ["a", "b", "c", "d"] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim_runs(owner, 3, Utc::now(), later())
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.run.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a run was claimed twice");
    assert_eq!(unique, ids.into_iter().collect());
}

async fn an_expired_lease_is_claimed_again_and_its_holder_refused(store: &Arc<dyn Store>) {
    let id = store.create_runs(vec![new_run("w")]).await.unwrap()[0];
    let past = Utc::now() - Duration::seconds(1);
    let claimed = store.claim_runs("a", 1, Utc::now(), past).await.unwrap();
    assert_eq!(claimed[0].run.id, id);
    store.apply(id, "a", vec![started(0, 1)]).await.unwrap();
    let again = store.claim_runs("b", 1, Utc::now(), later()).await.unwrap();
    assert_eq!(again.len(), 1, "an expired lease is claimable");
    assert_eq!(
        again[0].attempts[0].status,
        AttemptStatus::Abandoned,
        "the first holder's attempt is marked abandoned"
    );
    let refused = store.apply(id, "a", vec![started(1, 1)]).await;
    assert!(matches!(refused, Err(StoreError::LeaseLost(r)) if r == id));
    assert!(
        store
            .claim_runs("c", 1, Utc::now(), later())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        kinds_of(store, id).await,
        [
            EventKind::RunQueued,
            EventKind::RunStarted,
            EventKind::StepStarted,
            EventKind::RunResumed
        ]
    );
}

async fn every_run_transition_applies_or_is_refused_by_the_lifecycle(store: &Arc<dyn Store>) {
    let id = store.create_runs(vec![new_run("w")]).await.unwrap()[0];
    claim_one(store, "a").await;
    let attempt = store.apply(id, "a", vec![started(0, 1)]).await.unwrap()[0];
    let retry = RetryAt {
        at: Utc::now() - Duration::milliseconds(1),
        delay_ms: 1,
    };
    let mut failed = ended(attempt, 0, 1, true);
    if let Transition::StepEnded { retry: r, .. } = &mut failed {
        *r = Some(retry);
    }
    store.apply(id, "a", vec![failed]).await.unwrap();
    assert_eq!(status(store, id).await, RunStatus::Retrying);
    assert!(
        matches!(
            store.apply(id, "a", vec![started(0, 2)]).await,
            Err(StoreError::LeaseLost(_))
        ),
        "a retrying run has no lease"
    );

    claim_one(store, "a").await;
    let refused = store
        .apply(id, "a", vec![started(0, 2), failed_finish().remove(1)])
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("is running")),
        "{refused:?}"
    );
    let attempts = store.run(id).await.unwrap().attempts.len();
    assert_eq!(attempts, 1, "a refused batch applies nothing");

    store
        .apply(id, "a", vec![Transition::Wait { until: Utc::now() }])
        .await
        .unwrap();
    assert_eq!(status(store, id).await, RunStatus::Waiting);
    claim_one(store, "a").await;
    store
        .apply(id, "a", vec![Transition::Release])
        .await
        .unwrap();
    assert_eq!(status(store, id).await, RunStatus::Queued);
    claim_one(store, "b").await;
    let attempt = store.apply(id, "b", vec![started(0, 2)]).await.unwrap()[0];
    let mut end = vec![ended(attempt, 0, 2, true)];
    end.extend(failed_finish());
    store.apply(id, "b", end).await.unwrap();
    let detail = store.run(id).await.unwrap();
    assert_eq!(
        (detail.run.status, detail.run.dead_letter),
        (RunStatus::Failed, Some(DlqStatus::Open))
    );
    assert!(
        matches!(
            store.apply(id, "b", vec![Transition::Release]).await,
            Err(StoreError::LeaseLost(_))
        ),
        "a finished run has no lease"
    );
    assert_eq!(
        kinds_of(store, id).await,
        [
            EventKind::RunQueued,
            EventKind::RunStarted,
            EventKind::StepStarted,
            EventKind::StepFailed,
            EventKind::StepRetryScheduled,
            EventKind::RunResumed,
            EventKind::RunWaiting,
            EventKind::RunResumed,
            EventKind::RunReleased,
            EventKind::RunResumed,
            EventKind::StepStarted,
            EventKind::StepFailed,
            EventKind::RunFailed,
            EventKind::DlqAdded,
        ]
    );
}

async fn a_person_cancels_and_retries_only_what_the_lifecycle_allows(store: &Arc<dyn Store>) {
    let queued = store.create_runs(vec![new_run("w")]).await.unwrap()[0];
    assert_eq!(
        store.cancel_run(queued, "ops").await.unwrap(),
        RunStatus::Cancelled
    );
    let again = store.cancel_run(queued, "ops").await;
    assert!(matches!(&again, Err(StoreError::Conflict(m)) if m.contains("already cancelled")));
    let refused = store.retry_run(queued, "ops").await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("only failed runs")),
        "{refused:?}"
    );

    let running = store.create_runs(vec![new_run("w")]).await.unwrap()[0];
    claim_one(store, "a").await;
    assert_eq!(
        store.cancel_run(running, "ops").await.unwrap(),
        RunStatus::Running,
        "a running run is asked to stop"
    );
    assert_eq!(store.heartbeat("a", later()).await.unwrap(), [running]);
    store.apply(running, "a", failed_finish()).await.unwrap();
    store.retry_run(running, "ops").await.unwrap();
    let detail = store.run(running).await.unwrap().run;
    assert_eq!(
        (detail.status, detail.dead_letter, detail.error),
        (RunStatus::Queued, Some(DlqStatus::Retried), None)
    );
    assert!(matches!(
        store.retry_run(running, "ops").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.cancel_run(9_999, "ops").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn sequence_numbers_are_gap_free_under_concurrent_writers(store: &Arc<dyn Store>) {
    let mut bus = store.subscribe();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                store.create_runs(vec![new_run("w")]).await.unwrap();
                assert!(store.publish("nope", "t").await.is_err());
                assert!(store.retry_run(9_999, "t").await.is_err());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let seqs: Vec<i64> = store
        .events_since(0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<i64>>(), "gap-free from 1");
    let mut received = Vec::new();
    while let Ok(event) = bus.try_recv() {
        received.push(event.seq);
    }
    assert_eq!(received, seqs, "the bus sends every event once, in order");
    assert_eq!(
        (
            store.oldest_seq().await.unwrap(),
            store.newest_seq().await.unwrap()
        ),
        (1, 80)
    );
}

fn write(id: Option<i64>, values: Value, key: Option<&str>) -> RecordWrite {
    let values: Map<String, Value> = serde_json::from_value(values).unwrap();
    RecordWrite {
        object: "deal".into(),
        id,
        values,
        provenance: Provenance::api("ops"),
        idempotency_key: key.map(str::to_owned),
    }
}

/// Prepares a write as the engine does (read, merge) with the given triggered workflows.
async fn prepare(
    store: &Arc<dyn Store>,
    write: RecordWrite,
    triggered: Vec<Triggered>,
) -> PreparedWrite {
    let existing = match write.id {
        Some(id) => store.record(id).await.ok(),
        None => None,
    };
    PreparedWrite {
        merge: write.merge(existing.as_ref()).unwrap(),
        read: existing.map(|r| r.values),
        write,
        triggered,
    }
}

async fn apply(
    store: &Arc<dyn Store>,
    write: RecordWrite,
) -> Result<acp::domain::RecordWriteOutcome, StoreError> {
    let prepared = prepare(store, write, Vec::new()).await;
    store.write_record(prepared).await
}

async fn record_writes_are_idempotent_and_keep_field_history(store: &Arc<dyn Store>) {
    let created = apply(store, write(None, json!({"stage": "new"}), Some("k1")))
        .await
        .unwrap();
    let id = created.record.id;
    let repeated = apply(store, write(None, json!({"stage": "new"}), Some("k1")))
        .await
        .unwrap();
    assert!(repeated.duplicate && repeated.record.id == id);
    assert!(repeated.first_fingerprint.is_some());
    let triggered = Triggered {
        workflow: "w".into(),
        version: 1,
        team: "qa".into(),
        not_before: None,
    };
    let update = write(Some(id), json!({"stage": "won", "owner": "ann"}), None);
    let prepared = prepare(store, update, vec![triggered]).await;
    let stale = prepare(
        store,
        write(Some(id), json!({"stage": "lost"}), None),
        Vec::new(),
    )
    .await;
    let updated = store.write_record(prepared).await.unwrap();
    assert_eq!(updated.changed, ["owner", "stage"]);
    assert_eq!(
        updated.runs.len(),
        1,
        "the triggered workflow's run is queued with it"
    );
    let run = store.run(updated.runs[0]).await.unwrap().run;
    assert_eq!(
        (run.record_id, run.trigger_kind, &run.trigger["changed"]),
        (Some(id), TriggerKind::Record, &json!(["owner", "stage"]))
    );
    let refused = store.write_record(stale).await;
    assert!(
        matches!(&refused, Err(StoreError::Stale(m)) if m.contains("changed")),
        "a write prepared from values that changed since is refused: {refused:?}"
    );
    let same = apply(store, write(Some(id), json!({"stage": "won"}), None))
        .await
        .unwrap();
    assert!(same.changed.is_empty());
    let history = store.field_history(id).await.unwrap();
    let rows: Vec<(&str, Value, Value)> = history
        .iter()
        .map(|c| (c.field.as_str(), c.old.clone(), c.new.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("stage", Value::Null, json!("new")),
            ("owner", Value::Null, json!("ann")),
            ("stage", json!("new"), json!("won")),
        ]
    );
    assert!(matches!(
        apply(store, write(Some(9_999), json!({}), None)).await,
        Err(StoreError::NotFound(_))
    ));
    let events = store.events_since(0, 100).await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            EventKind::RecordCreated,
            EventKind::RecordUpdated,
            EventKind::RunQueued
        ]
    );
}

fn hook(url: &str) -> WebhookRow {
    WebhookRow {
        view: WebhookView {
            id: 0,
            url: url.into(),
            events: vec!["run.*".into()],
            workflow: None,
            team: None,
            created_at: Utc::now(),
            pending: 0,
            state: "active".into(),
            disabled_at: None,
            disabled_reason: None,
        },
        secret: "whsec_c2VjcmV0".into(),
    }
}

async fn the_outbox_delivers_each_target_in_order(store: &Arc<dyn Store>) {
    let a = store
        .create_webhook(hook("http://a"))
        .await
        .unwrap()
        .view
        .id;
    let b = store
        .create_webhook(hook("http://b"))
        .await
        .unwrap()
        .view
        .id;
    let (hook_a, hook_b) = (Target::Webhook(a), Target::Webhook(b));
    let slack = Target::Channel("slack".into());
    let message = |webhook_id, seq| NewMessage {
        webhook_id,
        event_seq: seq,
        kind: "run.failed".into(),
        payload: json!({"seq": seq}),
    };
    store
        .enqueue(
            vec![message(a, 1), message(b, 2), message(a, 3), message(a, 4)],
            "webhooks",
            4,
        )
        .await
        .unwrap();
    assert_eq!(store.cursor("webhooks").await.unwrap(), 4);
    let notices = store
        .notify(NewNotice {
            alert_id: 7,
            reason: "firing".into(),
            channels: vec!["slack".into(), "email".into()],
            payload: json!({"title": "failing"}),
            runs: vec![],
        })
        .await
        .unwrap();
    assert_eq!(notices.len(), 2);
    let head = store.outbox_head(&hook_a).await.unwrap().unwrap();
    assert_eq!(
        (head.event_seq, head.target.clone()),
        (Some(1), hook_a.clone())
    );
    let failed = Attempt {
        status_code: Some(503),
        latency_ms: 3,
        error: Some("HTTP 503".into()),
        class: Class::Transient,
        answer: Some("busy".into()),
        next: Next::RetryAt(later()),
    };
    store
        .record_attempt(head.id, &hook_a, failed.clone())
        .await
        .unwrap();
    let head = store.outbox_head(&hook_a).await.unwrap().unwrap();
    assert_eq!(
        (head.event_seq, head.attempts),
        (Some(1), 1),
        "a failed head stays the head"
    );
    let delivered = Attempt {
        status_code: Some(200),
        latency_ms: 3,
        error: None,
        class: Class::Delivered,
        answer: None,
        next: Next::Delivered,
    };
    store
        .record_attempt(head.id, &hook_a, delivered.clone())
        .await
        .unwrap();
    assert_eq!(
        store.outbox_head(&hook_a).await.unwrap().unwrap().event_seq,
        Some(3)
    );
    assert_eq!(
        store.outbox_head(&hook_b).await.unwrap().unwrap().event_seq,
        Some(2)
    );
    let notice = store.outbox_head(&slack).await.unwrap().unwrap();
    assert_eq!(
        (notice.id, notice.alert_id, notice.reason.as_deref()),
        (notices[0], Some(7), Some("firing"))
    );
    store
        .record_attempt(notice.id, &slack, failed)
        .await
        .unwrap();
    store
        .record_attempt(notice.id, &slack, delivered)
        .await
        .unwrap();
    assert!(store.outbox_head(&slack).await.unwrap().is_none());
    let shown = store.notifications(Some(7), 10).await.unwrap();
    let slack_shown = shown.iter().find(|n| n.channel == "slack").unwrap();
    assert_eq!(
        (slack_shown.status.as_str(), slack_shown.attempts.len()),
        ("delivered", 2)
    );
    let deliveries = store.deliveries(a, 10).await.unwrap();
    assert_eq!(
        deliveries.len(),
        2,
        "a subscription sees only its own attempts"
    );
    store.delete_webhook(b).await.unwrap();
    assert!(store.outbox_head(&hook_b).await.unwrap().is_none());
    assert!(matches!(
        store.delete_webhook(b).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn given_up_messages_hold_up_nothing_and_gone_disables_a_subscription(
    store: &Arc<dyn Store>,
) {
    let id = store
        .create_webhook(hook("http://gone"))
        .await
        .unwrap()
        .view
        .id;
    let target = Target::Webhook(id);
    let message = |seq| NewMessage {
        webhook_id: id,
        event_seq: seq,
        kind: "run.failed".into(),
        payload: json!({"seq": seq}),
    };
    store
        .enqueue(vec![message(1), message(2), message(3)], "webhooks", 3)
        .await
        .unwrap();
    let refused = |next| Attempt {
        status_code: Some(400),
        latency_ms: 2,
        error: Some("HTTP 400 Bad Request".into()),
        class: Class::Permanent,
        answer: Some("invalid_payload".into()),
        next,
    };
    let head = store.outbox_head(&target).await.unwrap().unwrap();
    assert_eq!((head.event_seq, head.permanent), (Some(1), 0));
    let retry_at = later();
    store
        .record_attempt(head.id, &target, refused(Next::RetryAt(retry_at)))
        .await
        .unwrap();
    let head = store.outbox_head(&target).await.unwrap().unwrap();
    assert_eq!(
        (head.attempts, head.permanent),
        (1, 1),
        "one permanent refusal"
    );
    let since = Utc::now() - Duration::seconds(1);
    store
        .record_attempt(
            head.id,
            &target,
            refused(Next::GiveUp("refused twice".into())),
        )
        .await
        .unwrap();
    let head = store.outbox_head(&target).await.unwrap().unwrap();
    assert_eq!(
        head.event_seq,
        Some(2),
        "a given-up message holds up nothing"
    );
    let attempts = store.deliveries(id, 10).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0].class.as_deref(),
            attempts[0].message_status.as_str(),
            attempts[0].give_up_reason.as_deref(),
            attempts[0].retry_at
        ),
        (Some("permanent"), "given_up", Some("refused twice"), None)
    );
    assert_eq!(attempts[1].answer.as_deref(), Some("invalid_payload"));
    assert_eq!(
        attempts[1].retry_at.map(|t| t.timestamp_millis()),
        Some(retry_at.timestamp_millis())
    );
    let gone = Attempt {
        status_code: Some(410),
        class: Class::Gone,
        next: Next::Disable("410 Gone".into()),
        ..refused(Next::Delivered)
    };
    store.record_attempt(head.id, &target, gone).await.unwrap();
    assert!(
        store.outbox_head(&target).await.unwrap().is_none(),
        "the subscription's other messages are given up with it"
    );
    let shown = store.webhooks().await.unwrap();
    let view = &shown.iter().find(|h| h.view.id == id).unwrap().view;
    assert_eq!(
        (
            view.state.as_str(),
            view.disabled_reason.as_deref(),
            view.pending
        ),
        ("disabled", Some("410 Gone"), 0)
    );
    assert!(view.disabled_at.is_some());
    let given_up = store.given_up(since).await.unwrap();
    assert_eq!(given_up.len(), 1);
    assert_eq!((&given_up[0].target, given_up[0].count), (&target, 3));
    assert!(
        given_up[0].reason.contains("410 Gone"),
        "{}",
        given_up[0].reason
    );
    let enabled = store.enable_webhook(id).await.unwrap().view;
    assert_eq!(
        (enabled.state.as_str(), enabled.disabled_at),
        ("active", None)
    );
    assert!(matches!(
        store.enable_webhook(id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.enable_webhook(id + 100).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn alert_changes_follow_the_alert_lifecycle(store: &Arc<dyn Store>) {
    let open = AlertChange::Open {
        rule: "failure_rate".into(),
        workflow: "w".into(),
        severity: "critical".into(),
        firing: false,
        detail: json!({"failed": 3}),
    };
    let id = store.alert_change(open).await.unwrap().id;
    let fire = || AlertChange::Fire {
        id,
        detail: json!({"failed": 4}),
    };
    assert_eq!(
        store.alert_change(fire()).await.unwrap().state,
        AlertState::Firing
    );
    let refused = store.alert_change(fire()).await;
    assert!(matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("is firing")));
    let ack = || AlertChange::Ack {
        id,
        actor: "ops".into(),
    };
    store.alert_change(ack()).await.unwrap();
    store
        .alert_change(AlertChange::Resolve { id })
        .await
        .unwrap();
    for change in [
        ack(),
        fire(),
        AlertChange::Resolve { id },
        AlertChange::Update {
            id,
            detail: json!({}),
        },
    ] {
        let refused = store.alert_change(change).await;
        assert!(
            matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("is resolved")),
            "{refused:?}"
        );
    }
    let silenced = store
        .alert_change(AlertChange::Silence {
            id,
            until: later(),
            actor: "ops".into(),
        })
        .await
        .unwrap();
    assert_eq!(silenced.state, AlertState::Resolved);
    assert!(store.active_alerts().await.unwrap().is_empty());
    assert!(matches!(
        store.alert_change(AlertChange::Resolve { id: 9_999 }).await,
        Err(StoreError::NotFound(_))
    ));
    let kinds = every_kind(store).await;
    assert_eq!(
        kinds,
        [
            EventKind::AlertPending,
            EventKind::AlertFiring,
            EventKind::AlertAcked,
            EventKind::AlertResolved,
            EventKind::AlertSilenced
        ]
    );
}

async fn cursor_pages_neither_skip_nor_repeat_while_rows_arrive(store: &Arc<dyn Store>) {
    let first = store
        .create_runs((0..5).map(|_| new_run("w")).collect())
        .await
        .unwrap();
    let query = |cursor: Option<String>| RunQuery {
        limit: Some(2),
        cursor,
        ..RunQuery::default()
    };
    let mut seen = Vec::new();
    let mut page = store.runs(&query(None)).await.unwrap();
    store
        .create_runs((0..3).map(|_| new_run("w")).collect())
        .await
        .unwrap();
    loop {
        seen.extend(page.items.iter().map(|r| r.id));
        let Some(cursor) = page.next_cursor else {
            break;
        };
        page = store.runs(&query(Some(cursor))).await.unwrap();
    }
    let mut expected = first;
    expected.reverse();
    assert_eq!(
        seen, expected,
        "newest first, each once, none of the later rows"
    );
    let bad = store.runs(&query(Some("x".into()))).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}

async fn retention_keeps_the_newest_event_and_what_a_cursor_has_not_passed(store: &Arc<dyn Store>) {
    store
        .create_runs((0..10).map(|_| new_run("w")).collect())
        .await
        .unwrap();
    store.enqueue(Vec::new(), "webhooks", 4).await.unwrap();
    store.apply_incidents(Vec::new(), 12).await.unwrap();
    let future = Utc::now() + Duration::hours(1);
    assert_eq!(store.prune_events(future, 100).await.unwrap(), 4);
    assert_eq!(store.oldest_seq().await.unwrap(), 5);
    store.enqueue(Vec::new(), "webhooks", 10).await.unwrap();
    // Each cursor holds the log back: the incident tracker's too.
    store.apply_incidents(Vec::new(), 6).await.unwrap();
    assert_eq!(store.prune_events(future, 100).await.unwrap(), 2);
    store.apply_incidents(Vec::new(), 10).await.unwrap();
    assert_eq!(
        store.prune_events(future, 2).await.unwrap(),
        2,
        "a batch deletes at most its limit"
    );
    assert_eq!(store.prune_events(future, 100).await.unwrap(), 1);
    assert_eq!(
        (
            store.oldest_seq().await.unwrap(),
            store.newest_seq().await.unwrap()
        ),
        (10, 10),
        "the newest event stays, so clients know where the log starts"
    );
    let past = Utc::now() - Duration::hours(1);
    assert_eq!(store.prune_events(past, 100).await.unwrap(), 0);
}

async fn a_dead_letter_closes_once(store: &Arc<dyn Store>) {
    let ids = store
        .create_runs(vec![new_run("w"), new_run("w")])
        .await
        .unwrap();
    for _ in &ids {
        let id = claim_one_of(store, "a").await;
        store.apply(id, "a", failed_finish()).await.unwrap();
    }
    let entries = store.dlq(&RunQuery::default()).await.unwrap().items;
    assert_eq!(entries.len(), 2);
    let (replayed, discarded) = (entries[0].id, entries[1].id);
    let replay = || Replay {
        dlq_id: replayed,
        run: NewRun {
            origin_run: Some(entries[0].run_id),
            trigger_kind: TriggerKind::Replay,
            ..new_run("w")
        },
        actor: "ops".into(),
        job: None,
    };
    let run = store.replay(replay()).await.unwrap();
    assert_eq!(
        store.run(run).await.unwrap().run.origin_run,
        Some(entries[0].run_id)
    );
    let again = store.replay(replay()).await;
    assert!(matches!(&again, Err(StoreError::Conflict(m)) if m.contains("already replayed")));
    store
        .discard_dlq(discarded, "duplicate", "ops")
        .await
        .unwrap();
    assert!(matches!(
        store.discard_dlq(discarded, "again", "ops").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.discard_dlq(replayed, "late", "ops").await,
        Err(StoreError::Conflict(_))
    ));
    let statuses: Vec<DlqStatus> = store
        .dlq(&RunQuery::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [DlqStatus::Replayed, DlqStatus::Discarded]);
    assert!(
        store
            .dlq_depths()
            .await
            .unwrap()
            .iter()
            .all(|(_, n)| *n == 0)
    );
}

/// Claims one due run for `owner`, whichever it is.
async fn claim_one_of(store: &Arc<dyn Store>, owner: &str) -> i64 {
    store
        .claim_runs(owner, 1, Utc::now(), later())
        .await
        .unwrap()[0]
        .run
        .id
}

async fn a_closed_store_answers_nothing(store: &Arc<dyn Store>) {
    let id = store.create_runs(vec![new_run("w")]).await.unwrap()[0];
    store.close();
    assert!(matches!(store.run(id).await, Err(StoreError::Other(_))));
    assert!(matches!(
        store.create_runs(vec![new_run("w")]).await,
        Err(StoreError::Other(_))
    ));
}

async fn text_search_finds_literal_substrings_of_errors(store: &Arc<dyn Store>) {
    let messages = [
        "HTTP 503 for lead ada@example.com",
        "HTTP 422: 100% of \"fields\" invalid_email",
        "HTTP 429 rate limited",
    ];
    let mut ids = Vec::new();
    for message in messages {
        let id = store.create_runs(vec![new_run("w")]).await.unwrap()[0];
        claim_one(store, "a").await;
        let error = StepFailure::permanent(message).error;
        let finish = Transition::Finish {
            status: RunStatus::Failed,
            failed_step: Some("s0".into()),
            error: Some(error),
        };
        store.apply(id, "a", vec![finish]).await.unwrap();
        ids.push(id);
    }
    let found = |q: &'static str| {
        let store = store.clone();
        async move {
            let query = RunQuery {
                q: Some(q.into()),
                ..RunQuery::default()
            };
            let page = store.runs(&query).await.unwrap();
            page.items.iter().map(|r| r.id).collect::<Vec<i64>>()
        }
    };
    assert_eq!(found("ADA@example").await, [ids[0]], "case does not matter");
    assert_eq!(found("100%").await, [ids[1]], "% is literal");
    assert!(
        found("\" OR \"").await.is_empty(),
        "quotes are literal, not query syntax"
    );
    assert_eq!(found("_email").await, [ids[1]], "_ is literal");
    assert_eq!(
        found("42").await,
        [ids[2], ids[1]],
        "short text is found too"
    );
    assert_eq!(
        found("HTTP").await,
        [ids[2], ids[1], ids[0]],
        "newest first"
    );
    assert!(found("no such words").await.is_empty());
    store.retry_run(ids[0], "ops").await.unwrap();
    assert!(
        found("ada@example").await.is_empty(),
        "a retried run's old error is no longer found"
    );
}

/// Finishes `id` (claimed) as succeeded.
fn succeeded_finish() -> Vec<Transition> {
    vec![Transition::Finish {
        status: RunStatus::Succeeded,
        failed_step: None,
        error: None,
    }]
}

/// Claims due runs one at a time: the first `succeeded` succeed, the next `failed` fail into
/// the DLQ.
async fn finish_due(store: &Arc<dyn Store>, succeeded: usize, failed: usize) {
    for n in 0..succeeded + failed {
        let id = claim_one_of(store, "a").await;
        let finish = if n < succeeded {
            succeeded_finish()
        } else {
            failed_finish()
        };
        store.apply(id, "a", finish).await.unwrap();
    }
}

/// Every rollup row of the last hour summed: (queued, succeeded, failed, durations, signatures).
async fn hour_totals(store: &Arc<dyn Store>) -> (i64, i64, i64, usize, Vec<(String, i64)>) {
    let now = Utc::now();
    let rows = store
        .rollups(acp::domain::rollup::spans(now - Duration::hours(1), now))
        .await
        .unwrap();
    let mut total = acp::domain::rollup::Bucket::default();
    for row in &rows {
        total.merge(&row.bucket);
    }
    let signatures = total
        .failures
        .iter()
        .map(|(sig, seen)| (sig.clone(), seen.count))
        .collect();
    (
        total.queued,
        total.succeeded,
        total.failed,
        total.durations.count(),
        signatures,
    )
}

async fn rollups_sum_runs_as_they_are_queued_and_end(store: &Arc<dyn Store>) {
    store.save_draft("w", "W", "qa", "", "ops").await.unwrap();
    let mut runs: Vec<NewRun> = (0..5).map(|_| new_run("w")).collect();
    runs.push(NewRun {
        mode: RunMode::Test,
        ..new_run("w")
    });
    store.create_runs(runs).await.unwrap();
    finish_due(store, 3, 2).await;
    let (queued, succeeded, failed, durations, signatures) = hour_totals(store).await;
    assert_eq!(
        (queued, succeeded, failed, durations),
        (5, 3, 2, 5),
        "live runs only: the test run never counts"
    );
    assert_eq!(signatures, vec![("HTTP 400".to_owned(), 2)]);
    let list = store.workflows().await.unwrap();
    assert_eq!((list[0].runs_24h, list[0].failed_24h), (5, 2));
    // A failed run retried into success counts once, as succeeded.
    let failed = store
        .runs(&RunQuery {
            status: Some("failed".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap()
        .items[0]
        .id;
    store.retry_run(failed, "ops").await.unwrap();
    finish_due(store, 2, 0).await; // the retried run and the test run, which never counts

    let (queued, succeeded, failed, _, signatures) = hour_totals(store).await;
    assert_eq!((queued, succeeded, failed), (5, 4, 1));
    assert_eq!(signatures, vec![("HTTP 400".to_owned(), 1)]);
}

async fn retention_prunes_finished_runs_in_batches_and_keeps_open_dead_letters(
    store: &Arc<dyn Store>,
) {
    store.save_draft("w", "W", "qa", "", "ops").await.unwrap();
    let ids = store
        .create_runs((0..7).map(|_| new_run("w")).collect())
        .await
        .unwrap();
    // Three succeed, three fail into the DLQ (one of them discarded), one stays queued.
    finish_due(store, 3, 3).await;
    let mut open = store.dlq(&RunQuery::default()).await.unwrap().items;
    assert_eq!(open.len(), 3);
    open.sort_by_key(|d| d.id);
    store
        .discard_dlq(open[0].id, "duplicate", "ops")
        .await
        .unwrap();
    let before_prune = hour_totals(store).await;
    let future = Utc::now() + Duration::hours(1);
    let (mut deleted, mut after, mut steps) = (0, 0, 0);
    loop {
        let step = store.prune_runs(future, after, 2).await.unwrap();
        assert!(step.deleted <= 2, "a step deletes at most its limit");
        deleted += step.deleted;
        steps += 1;
        match step.next {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(deleted, 4, "three succeeded and the discarded one");
    assert_eq!(steps, 4, "7 runs looked at 2 at a time");
    let kept: BTreeSet<i64> = store
        .runs(&RunQuery::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.id)
        .collect();
    let open_runs: BTreeSet<i64> = open[1..].iter().map(|d| d.run_id).collect();
    let mut expected = open_runs.clone();
    expected.insert(ids[6]);
    assert_eq!(kept, expected, "open dead letters and the queued run stay");
    assert!(matches!(
        store.run(ids[0]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.dlq_entry(open[0].id).await,
        Err(StoreError::NotFound(_))
    ));
    for run in &open_runs {
        assert_eq!(store.run(*run).await.unwrap().run.status, RunStatus::Failed);
    }
    assert_eq!(
        hour_totals(store).await,
        before_prune,
        "rollups outlive the runs they sum"
    );
    // The newest run, once finished, stays: its id must never go to the next run.
    finish_due(store, 1, 0).await;
    let step = store.prune_runs(future, 0, 100).await.unwrap();
    assert_eq!(step.deleted, 0, "{step:?}");
    let next = store.create_runs(vec![new_run("w")]).await.unwrap()[0];
    assert!(next > ids[6], "ids only go up: {next} after {}", ids[6]);
    let past = Utc::now() - Duration::hours(1);
    let step = store.prune_runs(past, 0, 100).await.unwrap();
    assert_eq!(
        (step.deleted, step.next),
        (0, None),
        "nothing is old enough"
    );
    let pruned = store
        .prune_rollups(Utc::now() + Duration::hours(2))
        .await
        .unwrap();
    assert!(
        (1..=2).contains(&pruned),
        "the minute rows go (one, two across a minute), the hour rows stay: {pruned}"
    );
    // Half an hour never covers a whole hour (a whole hour would, in the last minute of an
    // hour: the window's end rounds up to the next minute).
    let now = Utc::now();
    let half_hour: i64 = store
        .rollups(acp::domain::rollup::spans(now - Duration::minutes(30), now))
        .await
        .unwrap()
        .iter()
        .map(|r| r.bucket.queued)
        .sum();
    assert_eq!(half_hour, 0, "a window under an hour reads minutes");
    let now = Utc::now();
    let rows = store
        .rollups(acp::domain::rollup::spans(
            now - Duration::hours(3),
            now + Duration::hours(3),
        ))
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.bucket.queued).sum::<i64>(),
        8,
        "the hour rows still count every run queued"
    );
}

fn held_on(on: &str, until: Option<chrono::DateTime<Utc>>) -> Transition {
    Transition::Hold(acp::domain::Held {
        on: on.into(),
        reason: format!("waiting on {on}"),
        until,
    })
}

fn hold_of(scope: &str, key: Option<&str>) -> acp::domain::policy::NewHold {
    acp::domain::policy::NewHold {
        scope: acp::domain::policy::HoldScope::parse(scope).unwrap(),
        reason: "vendor maintenance".into(),
        source: acp::wire::HoldSource::Api,
        actor: "ops".into(),
        until: None,
        drain_rate: None,
        dedupe_key: key.map(str::to_owned),
    }
}

async fn a_held_run_waits_without_a_lease_and_a_release_drains_its_hold_in_order(
    store: &Arc<dyn Store>,
) {
    let hold = store
        .create_hold(hold_of("workflow:wf", None))
        .await
        .unwrap();
    let on = format!("hold:{}", hold.id);
    let mut ids = Vec::new();
    for _ in 0..3 {
        store.create_runs(vec![new_run("wf")]).await.unwrap();
        let id = claim_one(store, "a").await;
        ids.push(id);
        store
            .apply(id, "a", vec![held_on(&on, None)])
            .await
            .unwrap();
        let view = store.run(id).await.unwrap().run;
        assert_eq!(view.status, RunStatus::Held);
        assert_eq!(
            view.held_reason.as_deref(),
            Some(format!("waiting on {on}").as_str())
        );
        assert_eq!(view.next_attempt_at, None);
        // The lease went with the worker.
        assert!(matches!(
            store.apply(id, "a", vec![started(0, 1)]).await,
            Err(StoreError::LeaseLost(_))
        ));
    }
    let far = Utc::now() + Duration::days(365);
    assert!(
        store
            .claim_runs("b", 10, far, later())
            .await
            .unwrap()
            .is_empty()
    );
    let held = store.held_runs().await.unwrap();
    assert_eq!(
        (held[0].workflow.as_str(), held[0].runs, held.len()),
        ("wf", 3, 1)
    );
    assert!(held[0].since <= Utc::now());
    assert_eq!(store.hold(hold.id).await.unwrap().held_runs, 3);
    // The release makes them due one interval apart, oldest first (times are kept in ms).
    let at = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let released = store
        .release_hold(
            hold.id,
            "ops",
            at,
            Some(std::time::Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert_eq!(released.released_by.as_deref(), Some("ops"));
    let mut dues = Vec::new();
    for id in &ids {
        let view = store.run(*id).await.unwrap().run;
        assert_eq!(view.status, RunStatus::Held, "held until claimed");
        dues.push((view.next_attempt_at.unwrap() - at).num_milliseconds());
    }
    assert_eq!(dues, [0, 200, 400]);
    let first = store
        .claim_runs("b", 10, at + Duration::milliseconds(250), later())
        .await
        .unwrap();
    let claimed: Vec<i64> = first.iter().map(|c| c.run.id).collect();
    assert_eq!(claimed, ids[..2]);
    assert_eq!(first[0].run.held_reason, None);
    assert_eq!(
        kinds_of(store, ids[0]).await.last(),
        Some(&EventKind::RunResumed)
    );
    // A run held on a limit is woken for a freed slot, oldest first; a held run can be
    // cancelled.
    store
        .apply(ids[0], "b", vec![held_on("workflow:wf", Some(far))])
        .await
        .unwrap();
    store
        .apply(ids[1], "b", vec![held_on("workflow:wf", Some(far))])
        .await
        .unwrap();
    let now = Utc::now();
    assert_eq!(store.wake_held("workflow:wf", 1, now).await.unwrap(), 1);
    assert_eq!(
        store
            .run(ids[0])
            .await
            .unwrap()
            .run
            .next_attempt_at
            .map(|t| t.timestamp_millis()),
        Some(now.timestamp_millis())
    );
    assert_eq!(
        store.run(ids[1]).await.unwrap().run.next_attempt_at,
        Some(far).map(|t| chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap())
    );
    assert_eq!(
        store.cancel_run(ids[1], "ops").await.unwrap(),
        RunStatus::Cancelled
    );
    assert_eq!(store.held_runs().await.unwrap()[0].runs, 2);
    // A run held on a hold released meanwhile is due at once: no release would come for it.
    store.cancel_run(ids[0], "ops").await.unwrap();
    let late = store
        .create_hold(hold_of("workflow:wf", None))
        .await
        .unwrap();
    store
        .release_hold(late.id, "ops", Utc::now(), None)
        .await
        .unwrap();
    store.create_runs(vec![new_run("wf")]).await.unwrap();
    let stray = claim_one(store, "c").await;
    let on = format!("hold:{}", late.id);
    store
        .apply(stray, "c", vec![held_on(&on, None)])
        .await
        .unwrap();
    let view = store.run(stray).await.unwrap().run;
    assert_eq!(view.status, RunStatus::Held);
    assert!(view.next_attempt_at.is_some(), "due at once: {view:?}");
}

/// The ids of the holds not released, oldest first.
async fn open_hold_ids(store: &Arc<dyn Store>) -> Vec<i64> {
    let holds = store.holds(false, 0).await.unwrap();
    holds.iter().map(|h| h.id).collect()
}

async fn holds_are_placed_once_per_key_and_released_once(store: &Arc<dyn Store>) {
    let first = store
        .create_hold(hold_of("host:api.attio.com", Some("window:w:1")))
        .await
        .unwrap();
    let again = store
        .create_hold(hold_of("host:api.attio.com", Some("window:w:1")))
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    let other = store.create_hold(hold_of("team:qa", None)).await.unwrap();
    let open = open_hold_ids(store).await;
    assert_eq!(open, [first.id, other.id]);
    store
        .release_hold(first.id, "ops", Utc::now(), None)
        .await
        .unwrap();
    assert!(matches!(
        store.release_hold(first.id, "ops", Utc::now(), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.release_hold(999, "ops", Utc::now(), None).await,
        Err(StoreError::NotFound(_))
    ));
    let open = open_hold_ids(store).await;
    assert_eq!(open, [other.id]);
    let all = store.holds(true, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].released_by.as_deref(), Some("ops"));
    let kinds = every_kind(store).await;
    assert_eq!(
        kinds,
        [
            EventKind::HoldCreated,
            EventKind::HoldCreated,
            EventKind::HoldReleased
        ]
    );
}

/// An incident keeps its failures, the records they touched (each once) and its open dead
/// letters as the tracker's changes say, with the cursor moved in the same write.
async fn an_incident_counts_its_failures_records_and_dead_letters(store: &Arc<dyn Store>) {
    use acp::domain::incident::Change;
    use acp::domain::signature::failure_signature;
    let runs = [Some(5), Some(5), Some(6), None]
        .into_iter()
        .map(|record| NewRun {
            record_id: record,
            ..new_run("w")
        })
        .collect();
    let ids = store.create_runs(runs).await.unwrap();
    let error = acp::wire::StepError {
        class: acp::wire::ErrorClass::Transient,
        message: "HTTP 503 for lead 1".into(),
        retryable: true,
        status: Some(503),
        host: Some("crm.example".into()),
    };
    let signature = failure_signature("w", "call", &error);
    let key = signature.key.clone();
    let at = Utc::now();
    let mut changes = vec![Change::Opened {
        signature,
        at,
        cause: None,
    }];
    for (i, run_id) in ids.iter().enumerate() {
        changes.push(Change::Failed {
            key: key.clone(),
            run_id: *run_id,
            at,
            example: error.message.clone(),
        });
        changes.push(Change::DeadLettered {
            key: key.clone(),
            run_id: *run_id,
            dlq_id: 100 + i as i64,
        });
    }
    changes.push(Change::DlqClosed {
        key: key.clone(),
        dlq_id: 100,
    });
    store.apply_incidents(changes, 4).await.unwrap();
    assert_eq!(store.cursor("incidents").await.unwrap(), 4);
    let list = store
        .incidents(&acp::wire::IncidentQuery::default())
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let i = &list[0];
    assert_eq!((i.count, i.records, i.open_dead_letters), (4, 2, 3));
    assert_eq!(i.versions, vec![1]);
    assert_eq!(
        store.incident_dead_letters(i.id).await.unwrap(),
        vec![101, 102, 103]
    );
    let detail = store.incident(i.id).await.unwrap();
    assert_eq!(detail.record_ids, vec![6, 5], "newest first");
    assert_eq!(detail.runs.len(), 4);
    assert!(matches!(
        store.incident(i.id + 1).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn link_keys_are_made_once_and_a_rotation_retires_every_one_before(store: &Arc<dyn Store>) {
    assert_eq!(store.current_link_key().await.unwrap(), None);
    let first = store.add_link_key([1; 32], false).await.unwrap();
    assert_eq!((first.secret, first.retired_at), ([1; 32], None));
    let again = store.add_link_key([2; 32], false).await.unwrap();
    assert_eq!(again, first, "a second start keeps the key there is");
    let second = store.add_link_key([3; 32], true).await.unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(
        store.current_link_key().await.unwrap(),
        Some(second.clone())
    );
    let old = store.link_key(first.id).await.unwrap().unwrap();
    assert!(old.retired_at.is_some(), "{old:?}");
    assert_eq!(old.secret, [1; 32]);
    let third = store.add_link_key([4; 32], true).await.unwrap();
    assert!(
        store
            .link_key(second.id)
            .await
            .unwrap()
            .unwrap()
            .retired_at
            .is_some()
    );
    assert_eq!(
        store.link_key(first.id).await.unwrap().unwrap().retired_at,
        old.retired_at,
        "a key retires once"
    );
    assert_eq!(store.current_link_key().await.unwrap(), Some(third));
    assert_eq!(store.link_key(999).await.unwrap(), None);
}
