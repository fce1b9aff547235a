//! The record store: field history with every audit field, idempotent writes, record triggers.

mod common;

use serde_json::{Map, Value, json};

use acp::domain::{Provenance, RecordWrite};
use acp::wire::{RunQuery, RunStatus, Source};
use common::{harness, wait_final};

const SCORE: &str = r#"(
    key: "score_lead", name: "Score lead", team: "revops",
    trigger: Record(object: "people", on: [Created]),
    steps: [
        (id: "score", action: Ai(provider: "builtin", model: "scorer", policy_id: "lead-scoring-v3",
            prompt: "Score {{ trigger.record.values.email }}", json: true)),
        (id: "route", action: UpdateRecord(record: "{{ trigger.record.id }}", values: {
            "lead_score": "{{ steps.score.output.score }}",
            "owner": "smb-desk",
        })),
    ],
)"#;

const STAGE: &str = r#"(
    key: "stage_watch", name: "Stage watch", team: "sales-ops",
    trigger: Record(object: "deals", on: [Updated], fields: ["stage"], filter: "trigger.record.values.stage == 'proposal'"),
    steps: [(id: "touch", action: UpdateRecord(record: "{{ trigger.record.id }}", values: {"stage_seen": "{{ trigger.record.values.stage }}"}))],
)"#;

fn values(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn create(object: &str, v: Value, key: Option<&str>) -> RecordWrite {
    RecordWrite {
        object: object.into(),
        id: None,
        values: values(v),
        provenance: Provenance::api("ada@ops"),
        idempotency_key: key.map(str::to_owned),
    }
}

fn update(id: i64, v: Value) -> RecordWrite {
    RecordWrite {
        object: String::new(),
        id: Some(id),
        values: values(v),
        provenance: Provenance::api("ada@ops"),
        idempotency_key: None,
    }
}

#[tokio::test]
async fn field_history_names_source_actor_version_run_step_and_ai_policy() {
    let h = harness(&[SCORE]).await;
    let outcome = h
        .engine
        .write_record(create(
            "people",
            json!({"email": "grace@example.com"}),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(outcome.runs.len(), 1);
    let run = wait_final(&h.store, outcome.runs[0]).await;
    assert_eq!(run.run.status, RunStatus::Succeeded);
    let score_attempt = run.attempts.iter().find(|a| a.step_id == "score").unwrap();
    assert_eq!(score_attempt.detail["policy_id"], "lead-scoring-v3");
    assert_eq!(score_attempt.detail["provider"], "builtin");
    assert!(score_attempt.detail["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(score_attempt.detail["prompt"], "Score grace@example.com");

    let history = h.store.field_history(outcome.record.id).await.unwrap();
    let by_field = |f: &str| {
        history
            .iter()
            .filter(|c| c.field == f)
            .cloned()
            .collect::<Vec<_>>()
    };
    let email = &by_field("email")[0];
    assert_eq!(
        (email.source, email.actor.as_str(), email.old.clone()),
        (Source::Api, "ada@ops", Value::Null)
    );
    let score = &by_field("lead_score")[0];
    assert_eq!(score.source, Source::Ai);
    assert_eq!(score.ai_policy_id.as_deref(), Some("lead-scoring-v3"));
    assert_eq!(score.new, score_attempt.output["score"]);
    let owner = &by_field("owner")[0];
    for change in [score, owner] {
        assert_eq!(change.actor, "workflow:score_lead");
        assert_eq!(change.workflow.as_deref(), Some("score_lead"));
        assert_eq!(change.workflow_version, Some(1));
        assert_eq!(change.run_id, Some(run.run.id));
        assert_eq!(change.step_id.as_deref(), Some("route"));
    }
    assert_eq!(
        (owner.source, owner.ai_policy_id.clone()),
        (Source::Workflow, None)
    );
    let record = h.store.record(outcome.record.id).await.unwrap();
    assert_eq!(record.values["owner"], "smb-desk");
}

#[tokio::test]
async fn an_applied_idempotency_key_makes_the_write_a_no_op() {
    let h = harness(&[SCORE]).await;
    let first = h
        .engine
        .write_record(create(
            "people",
            json!({"email": "a@b.c"}),
            Some("import-42"),
        ))
        .await
        .unwrap();
    let again = h
        .engine
        .write_record(create(
            "people",
            json!({"email": "a@b.c"}),
            Some("import-42"),
        ))
        .await
        .unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(again.record.id, first.record.id);
    assert_eq!(
        again.record.values["email"], "a@b.c",
        "the first result is returned"
    );
    let reused = h
        .engine
        .write_record(create(
            "people",
            json!({"email": "x@y.z"}),
            Some("import-42"),
        ))
        .await;
    assert!(
        matches!(
            reused,
            Err(acp::engine::EngineError::IdempotencyKeyReused(_))
        ),
        "the same key for another write is refused: {reused:?}"
    );
    assert!(again.runs.is_empty(), "no second trigger");
    wait_final(&h.store, first.runs[0]).await;
    let runs = h.store.runs(&RunQuery::default()).await.unwrap().items;
    assert_eq!(runs.len(), 1);
}

#[tokio::test]
async fn record_triggers_honour_fields_and_filters_and_do_not_retrigger_themselves() {
    let h = harness(&[STAGE]).await;
    let deal = h
        .engine
        .write_record(create(
            "deals",
            json!({"name": "Acme", "stage": "qualified", "amount": 10}),
            None,
        ))
        .await
        .unwrap();
    assert!(deal.runs.is_empty(), "the trigger listens to updates only");
    let id = deal.record.id;
    let amount = h
        .engine
        .write_record(update(id, json!({"amount": 20})))
        .await
        .unwrap();
    assert!(amount.runs.is_empty(), "stage did not change");
    let other = h
        .engine
        .write_record(update(id, json!({"stage": "negotiation"})))
        .await
        .unwrap();
    assert!(other.runs.is_empty(), "the filter is false");
    let same = h
        .engine
        .write_record(update(id, json!({"stage": "negotiation"})))
        .await
        .unwrap();
    assert!(
        same.changed.is_empty() && same.runs.is_empty(),
        "nothing changed"
    );
    let proposal = h
        .engine
        .write_record(update(id, json!({"stage": "proposal"})))
        .await
        .unwrap();
    assert_eq!(proposal.runs.len(), 1);
    let run = wait_final(&h.store, proposal.runs[0]).await;
    assert_eq!(run.run.status, RunStatus::Succeeded);
    assert_eq!(run.run.record_id, Some(id));
    assert_eq!(run.run.trigger["changed"], json!(["stage"]));
    assert_eq!(run.run.trigger["previous"]["stage"], "negotiation");
    let runs = h.store.runs(&RunQuery::default()).await.unwrap().items;
    assert_eq!(
        runs.len(),
        1,
        "the workflow's own update did not start another run"
    );
    assert_eq!(
        h.store.record(id).await.unwrap().values["stage_seen"],
        "proposal"
    );
}

#[tokio::test]
async fn the_shipped_follow_up_workflow_creates_a_task() {
    let source = std::fs::read_to_string("assets/workflows/deal_stage_followup.ron").unwrap();
    let h = harness(&[&source]).await;
    let deal = h
        .engine
        .write_record(create(
            "deals",
            json!({"name": "Globex", "stage": "qualified", "owner": "sam"}),
            None,
        ))
        .await
        .unwrap();
    let moved = h
        .engine
        .write_record(update(deal.record.id, json!({"stage": "proposal"})))
        .await
        .unwrap();
    let run = wait_final(&h.store, moved.runs[0]).await;
    assert_eq!(run.run.status, RunStatus::Succeeded, "{run:#?}");
    let task_id = run
        .attempts
        .iter()
        .find(|a| a.step_id == "create_task")
        .unwrap()
        .output["record_id"]
        .as_i64()
        .unwrap();
    let task = h.store.record(task_id).await.unwrap();
    assert_eq!(task.object, "tasks");
    assert_eq!(task.values["title"], "Follow up on proposal: Globex");
    assert_eq!(task.values["deal_id"], json!(deal.record.id));
    assert_eq!(task.values["assignee"], "sam");
    assert_eq!(
        h.store.record(deal.record.id).await.unwrap().values["followup_task_id"],
        json!(task_id)
    );
}

#[tokio::test]
async fn writes_to_missing_records_are_refused_and_store_nothing() {
    let h = harness(&[]).await;
    assert!(
        h.engine
            .write_record(update(999, json!({"a": 1})))
            .await
            .is_err()
    );
    assert!(
        h.engine
            .write_record(create("", json!({"a": 1}), None))
            .await
            .is_err()
    );
    assert!(h.store.events_since(0, 100).await.unwrap().is_empty());
}

const BROKEN: &str = r#"(
    key: "broken_touch", name: "Broken touch", team: "sales-ops",
    trigger: Record(object: "deals", on: [Created]),
    steps: [(id: "touch", action: UpdateRecord(record: "{{ trigger.record.id }}", values: {"x": "{{ trigger.record.values.missing }}"}))],
)"#;

#[tokio::test]
async fn a_dead_letter_names_the_record_its_run_was_about() {
    let h = harness(&[BROKEN]).await;
    let deal = h
        .engine
        .write_record(create("deals", json!({"name": "Acme"}), None))
        .await
        .unwrap();
    let run = wait_final(&h.store, deal.runs[0]).await;
    assert_eq!(run.run.status, RunStatus::Failed);
    let entries = h.store.dlq(&RunQuery::default()).await.unwrap().items;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].record_id, Some(deal.record.id));
    let one = h.store.dlq_entry(entries[0].id).await.unwrap();
    assert_eq!(one.record_id, Some(deal.record.id));
}

/// Writers racing for one record: each write is merged into the record as it is when the
/// write applies (a write prepared from values that changed meanwhile is prepared again), so
/// none is lost, every one is in the field history, and each triggers from its own change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_record_all_land_and_each_triggers() {
    let h = harness(&[STAGE]).await;
    let deal = h
        .engine
        .write_record(create("deals", json!({"stage": "new"}), None))
        .await
        .unwrap()
        .record
        .id;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let engine = h.engine.clone();
        tasks.push(tokio::spawn(async move {
            let stage = if i == 7 { "proposal" } else { "open" };
            engine
                .write_record(update(deal, json!({format!("f{i}"): i, "stage": stage})))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("no write is refused as stale");
    }
    let record = h.store.record(deal).await.unwrap();
    for i in 0..24 {
        assert_eq!(record.values[&format!("f{i}")], json!(i), "f{i} was lost");
    }
    let history = h.store.field_history(deal).await.unwrap();
    assert_eq!(
        history.iter().filter(|c| c.field.starts_with('f')).count(),
        24
    );
    let runs = h
        .store
        .runs(&RunQuery {
            workflow: Some("stage_watch".into()),
            ..RunQuery::default()
        })
        .await
        .unwrap()
        .items;
    assert!(
        runs.iter()
            .all(|r| r.trigger["record"]["values"]["stage"] == "proposal"),
        "a run starts only from a change its filter accepts: {runs:?}"
    );
    assert!(!runs.is_empty(), "the write that set `proposal` triggered");
}
