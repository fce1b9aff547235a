//! Versions, and the step and trigger kinds end to end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use acp::actions::{Actions, AiProvider, OpenAiCompatible, ReqwestSender};
use acp::store::Store;
use acp::wire::{AttemptStatus, RunQuery, RunStatus, TriggerKind};
use common::{Reply, harness, wait_final, wait_until};

const V1: &str = r#"(
    key: "greet", name: "Greet", team: "qa", trigger: Webhook(),
    steps: [(id: "post", action: Notify(channel: Slack, url: "{world}/slack", text: "v1 hello {{ trigger.name }}"))],
)"#;

#[tokio::test]
async fn runs_record_their_version_and_rollback_is_a_new_publish_not_a_deletion() {
    let h = harness(&[V1]).await;
    let run1 = h
        .engine
        .start_runs("greet", TriggerKind::Webhook, vec![json!({"name": "Ada"})])
        .await
        .unwrap()[0];
    assert_eq!(wait_final(&h.store, run1).await.run.version, 1);
    h.engine
        .save_draft(
            &V1.replace("{world}", &h.world.url).replace("v1", "v2"),
            "ada",
        )
        .await
        .unwrap();
    assert!(h.store.draft("greet").await.unwrap().is_some());
    assert_eq!(h.engine.publish("greet", "ada").await.unwrap(), 2);
    let run2 = h
        .engine
        .start_runs("greet", TriggerKind::Webhook, vec![json!({"name": "Bob"})])
        .await
        .unwrap()[0];
    assert_eq!(wait_final(&h.store, run2).await.run.version, 2);
    h.engine.rollback("greet", 1, "ada").await.unwrap();
    let run3 = h
        .engine
        .start_runs("greet", TriggerKind::Webhook, vec![json!({"name": "Cy"})])
        .await
        .unwrap()[0];
    assert_eq!(wait_final(&h.store, run3).await.run.version, 1);
    let texts: Vec<_> = h
        .world
        .hits("/slack")
        .into_iter()
        .map(|h| h.body["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("v1 hello Ada"),
            json!("v2 hello Bob"),
            json!("v1 hello Cy")
        ]
    );

    let versions = h.store.versions("greet").await.unwrap();
    let state: Vec<_> = versions.iter().map(|v| (v.version, v.published)).collect();
    assert_eq!(state, [(1, true), (2, false)]);
    assert!(
        h.engine.rollback("greet", 1, "ada").await.is_err(),
        "already published"
    );
    assert!(
        h.engine.rollback("greet", 7, "ada").await.is_err(),
        "no such version"
    );
    assert!(h.engine.publish("greet", "ada").await.is_err(), "no draft");
    let listed = &h.store.workflows().await.unwrap()[0];
    assert_eq!(
        (
            listed.published_version,
            listed.latest_version,
            listed.has_draft
        ),
        (Some(1), 2, false)
    );
    assert!(
        h.engine.save_draft("(key: ", "ada").await.is_err(),
        "an invalid draft is refused"
    );
    assert_eq!(
        h.store.versions("greet").await.unwrap().len(),
        2,
        "and nothing stored is lost"
    );
}

const FLOW: &str = r#"(
    key: "flow", name: "Flow", team: "qa", trigger: Manual,
    steps: [
        (id: "only_vip", when: "trigger.vip", action: Http(method: "POST", url: "{world}/vip")),
        (id: "pause", action: Delay(duration: "300ms")),
        (id: "gate", action: Condition(expr: "trigger.amount > 100")),
        (id: "big", action: Http(method: "POST", url: "{world}/big")),
    ],
)"#;

#[tokio::test]
async fn when_delay_and_condition_steer_the_run() {
    let h = harness(&[FLOW]).await;
    let small = h
        .engine
        .start_runs(
            "flow",
            TriggerKind::Manual,
            vec![json!({"vip": false, "amount": 5})],
        )
        .await
        .unwrap()[0];
    let waiting = wait_until(&h.store, small, |d| d.run.status == RunStatus::Waiting).await;
    assert!(waiting.run.next_attempt_at.is_some());
    let done = wait_final(&h.store, small).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    let statuses: Vec<_> = done
        .attempts
        .iter()
        .map(|a| (a.step_id.as_str(), a.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("only_vip", AttemptStatus::Skipped),
            ("pause", AttemptStatus::Succeeded),
            ("gate", AttemptStatus::Succeeded),
            ("big", AttemptStatus::Skipped)
        ]
    );
    let paused = done.attempts[2].started_at - done.attempts[1].finished_at.unwrap();
    assert!(
        paused >= chrono::Duration::milliseconds(300),
        "the delay held the run for {paused}"
    );

    let big = h
        .engine
        .start_runs(
            "flow",
            TriggerKind::Manual,
            vec![json!({"vip": true, "amount": 500})],
        )
        .await
        .unwrap()[0];
    assert_eq!(
        wait_final(&h.store, big).await.run.status,
        RunStatus::Succeeded
    );
    assert_eq!(
        (h.world.hits("/vip").len(), h.world.hits("/big").len()),
        (1, 1)
    );
}

const TICK: &str = r#"(
    key: "tick", name: "Tick", team: "qa", trigger: Schedule(cron: "* * * * * *", timezone: "Europe/Berlin"),
    steps: [(id: "ping", action: Http(method: "POST", url: "{world}/tick"))],
)"#;

#[tokio::test]
async fn schedules_start_runs_once_per_occurrence() {
    let h = harness(&[TICK]).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let runs = h.store.runs(&RunQuery::default()).await.unwrap().items;
    assert!(
        (2..=4).contains(&runs.len()),
        "one run per second, got {}",
        runs.len()
    );
    let mut at: Vec<_> = runs
        .iter()
        .map(|r| r.trigger["scheduled_at"].as_str().unwrap().to_owned())
        .collect();
    at.dedup();
    assert_eq!(at.len(), runs.len(), "no occurrence twice");
    assert!(runs.iter().all(
        |r| r.trigger_kind == TriggerKind::Schedule && r.trigger["timezone"] == "Europe/Berlin"
    ));
}

#[tokio::test]
async fn ai_steps_call_an_openai_compatible_endpoint_with_provenance() {
    let h = harness(&[]).await;
    h.world.script(
        "/v1/chat/completions",
        vec![Reply::ok(json!({
            "model": "gpt-test",
            "choices": [{"message": {"role": "assistant", "content": "{\"score\": 88}"}}],
            "usage": {"prompt_tokens": 21, "completion_tokens": 5},
        }))],
    );
    let http = Arc::new(ReqwestSender::new().unwrap());
    let mut actions = Actions::with_http(http.clone());
    let provider: Arc<dyn AiProvider> = Arc::new(OpenAiCompatible::new(
        format!("{}/v1", h.world.url),
        Some("sk-ai".into()),
        http,
    ));
    actions.ai.insert("openai".into(), provider);
    let engine =
        acp::engine::Engine::start(h.store.clone() as Arc<dyn Store>, common::config(), actions)
            .await
            .unwrap();
    h.engine.shutdown().await;
    let source = r#"(key: "ai", name: "AI", team: "qa", trigger: Manual, steps: [
        (id: "score", action: Ai(provider: "openai", model: "gpt-test", policy_id: "p-7", system: "Be brief.", prompt: "Score {{ trigger.who }}", json: true)),
        (id: "save", action: CreateRecord(object: "scores", values: {"score": "{{ steps.score.output.score }}"})),
    ])"#;
    engine.save_draft(source, "t").await.unwrap();
    engine.publish("ai", "t").await.unwrap();
    let run = engine
        .start_runs("ai", TriggerKind::Manual, vec![json!({"who": "Ada"})])
        .await
        .unwrap()[0];
    let detail = wait_final(&h.store, run).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded, "{detail:#?}");
    let score = &detail.attempts[0];
    assert_eq!(score.output, json!({"score": 88}));
    assert_eq!(score.detail["provider"], "openai");
    assert_eq!(score.detail["model"], "gpt-test");
    assert_eq!(score.detail["policy_id"], "p-7");
    assert_eq!(
        (
            score.detail["prompt_tokens"].clone(),
            score.detail["completion_tokens"].clone()
        ),
        (json!(21), json!(5))
    );
    let sent = &h.world.hits("/v1/chat/completions")[0];
    assert_eq!(sent.headers["authorization"], "Bearer sk-ai");
    assert_eq!(sent.body["messages"][1]["content"], "Score Ada");
    let history = h
        .store
        .field_history(detail.attempts[1].output["record_id"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(history[0].ai_policy_id.as_deref(), Some("p-7"));
    engine.shutdown().await;
}

const NOTIFY: &str = r#"(
    key: "hook", name: "Hook", team: "qa", trigger: Manual,
    steps: [
        (id: "check", when: "trigger.account.tier == 'gold'", action: Notify(channel: Webhook, url: "{world}/hook", text: "gold!")),
        (id: "tell", action: Notify(channel: Webhook, url: "{world}/hook", text: "account {{ trigger.account.name }}")),
    ],
)"#;

#[tokio::test]
async fn webhook_notifications_carry_context_and_a_broken_when_fails_the_step() {
    let h = harness(&[NOTIFY]).await;
    let ok = h
        .engine
        .start_runs(
            "hook",
            TriggerKind::Manual,
            vec![json!({"account": {"tier": "gold", "name": "Acme"}})],
        )
        .await
        .unwrap()[0];
    assert_eq!(
        wait_final(&h.store, ok).await.run.status,
        RunStatus::Succeeded
    );
    let bodies: Vec<_> = h.world.hits("/hook").into_iter().map(|h| h.body).collect();
    assert_eq!(bodies[0]["text"], "gold!");
    assert_eq!(bodies[1]["text"], "account Acme");
    assert_eq!(
        bodies[1]["context"],
        json!({"workflow": "hook", "version": 1, "run_id": ok})
    );

    let broken = h
        .engine
        .start_runs(
            "hook",
            TriggerKind::Manual,
            vec![json!({"name": "no account"})],
        )
        .await
        .unwrap()[0];
    let detail = wait_final(&h.store, broken).await;
    assert_eq!(detail.run.status, RunStatus::Failed);
    let error = detail.run.error.unwrap();
    assert!(
        error.message.starts_with("`when` could not be evaluated"),
        "{error:?}"
    );
    assert_eq!(error.class, acp::wire::ErrorClass::Permanent);
    assert_eq!(
        h.world.hits("/hook").len(),
        2,
        "nothing was sent for the broken run"
    );
}
