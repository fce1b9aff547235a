//! Incidents end to end on a real server: failures of one signature open one incident (ids
//! in messages do not split it), another error is another incident, a fix plus the replay of
//! its dead letters through `POST /incidents/{id}/replay` resolves it, a failure after that
//! regresses the same incident, and `GET /metrics/summary` counts its MTTR.

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use acp::wire::{
    IncidentDetail, IncidentState, IncidentView, RunStatus, SummaryReport, TriggerKind,
};
use common::{Api, Harness, Reply, harness, serve_api, wait_final};

const ENRICH: &str = r#"(key: "enrich", name: "Enrich", team: "revops", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/enrich"), retry: (max_attempts: 1))])"#;

fn failing(status: u16, message: &str) -> Reply {
    Reply {
        body: json!({ "error": message }),
        ..Reply::status(status)
    }
}

async fn run(h: &Harness, n: usize) -> Vec<RunStatus> {
    let payloads = (0..n).map(|i| json!({ "i": i })).collect();
    let mut statuses = Vec::new();
    for id in h
        .engine
        .start_runs("enrich", TriggerKind::Manual, payloads)
        .await
        .unwrap()
    {
        statuses.push(wait_final(&h.store, id).await.run.status);
    }
    statuses
}

/// Polls `GET /incidents` until `done` holds (the tracker folds the log as it commits).
async fn incidents_until(api: &Api, done: impl Fn(&[IncidentView]) -> bool) -> Vec<IncidentView> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list: Vec<IncidentView> = api.json("/incidents", &api.viewer).await;
        if done(&list) {
            return list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "incidents stuck: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_opens_groups_resolves_after_fix_and_replay_and_regresses() {
    let h = harness(&[ENRICH]).await;
    let api = serve_api(&h).await;
    h.world.script(
        "/enrich",
        vec![
            failing(503, "lead 1001 could not be enriched"),
            failing(503, "lead 1002 could not be enriched"),
            failing(503, "lead 1003 could not be enriched"),
            failing(422, "email is required"),
        ],
    );
    assert_eq!(run(&h, 4).await, vec![RunStatus::Failed; 4]);
    let list = incidents_until(&api, |l| l.iter().map(|i| i.count).sum::<i64>() == 4).await;
    assert_eq!(list.len(), 2, "two signatures, two incidents: {list:#?}");
    let outage = list
        .iter()
        .find(|i| i.count == 3)
        .expect("the 503s share one incident");
    assert_eq!(outage.state, IncidentState::Open);
    assert_eq!(outage.open_dead_letters, 3);
    assert_eq!(outage.versions, vec![1]);
    assert_eq!(outage.signature.host.as_deref(), Some("127.0.0.1"));
    assert!(
        outage.signature.message.contains("lead # could not"),
        "{:?}",
        outage.signature
    );
    let cause = outage
        .cause
        .as_ref()
        .expect("it began soon after the publish");
    assert_eq!(
        (cause.change.as_str(), cause.version, cause.actor.as_str()),
        ("published", 1, "test")
    );
    assert!(
        cause
            .sentence()
            .contains("after version 1 was published by test")
    );

    // The fix: the step succeeds again, but the dead letters are still open.
    h.world.script("/enrich", vec![Reply::ok(json!({}))]);
    assert_eq!(run(&h, 1).await, vec![RunStatus::Succeeded]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let detail: IncidentDetail = api
        .json(&format!("/incidents/{}", outage.id), &api.viewer)
        .await;
    assert_eq!(
        detail.incident.state,
        IncidentState::Open,
        "its dead letters are open"
    );

    // Replay through the preview, then for real.
    let path = format!("/api/v1/incidents/{}/replay", outage.id);
    let path = path.trim_start_matches("/api/v1");
    let refused = api
        .post(path, &api.viewer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let plan: Value = api
        .post(path, &api.operator)
        .json(&json!({ "dry_run": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["count"], 3, "{plan}");
    let started = api.post(path, &api.operator).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let resolved = incidents_until(&api, |l| {
        l.iter()
            .any(|i| i.id == outage.id && i.state == IncidentState::Resolved)
    })
    .await;
    let again = api.post(path, &api.operator).send().await.unwrap();
    assert_eq!(again.status(), 409, "nothing left to replay");
    let other = resolved.iter().find(|i| i.id != outage.id).unwrap();
    assert_eq!(other.state, IncidentState::Open, "the 422 is still open");

    // The same failure again: the same incident, regressed, its history kept.
    h.world.script(
        "/enrich",
        vec![failing(503, "lead 2001 could not be enriched")],
    );
    assert_eq!(run(&h, 1).await, vec![RunStatus::Failed]);
    incidents_until(&api, |l| {
        l.iter()
            .any(|i| i.id == outage.id && i.state == IncidentState::Regressed)
    })
    .await;
    let detail: IncidentDetail = api
        .json(&format!("/incidents/{}", outage.id), &api.viewer)
        .await;
    let states: Vec<IncidentState> = detail.history.iter().map(|h| h.state).collect();
    assert_eq!(
        states,
        vec![
            IncidentState::Open,
            IncidentState::Resolved,
            IncidentState::Regressed
        ]
    );
    assert_eq!(detail.incident.count, 4);
    assert_eq!(detail.runs.len(), 4);

    // Filters.
    let open: Vec<IncidentView> = api.json("/incidents?state=open", &api.viewer).await;
    assert_eq!(open.len(), 1);
    let none: Vec<IncidentView> = api.json("/incidents?team=nobody", &api.viewer).await;
    assert!(none.is_empty());
    let bad = api
        .get("/incidents?sate=open", &api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let missing = api.get("/incidents/999", &api.viewer).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // The summary: one resolved cycle, two open incidents, so not healthy.
    let report: SummaryReport = api.json("/metrics/summary?window=1d", &api.viewer).await;
    assert_eq!(report.totals.workflows, 1);
    assert_eq!(report.totals.healthy_workflows, 0);
    assert_eq!(report.totals.runs, 9, "4 + 1 + 3 replays + 1");
    let mttr = report.totals.mttr_p50_s.expect("one resolved incident");
    assert!(mttr > 0.0 && mttr < 60.0, "{mttr}");
    assert!(
        report.totals.run_mttr_p50_s.is_some(),
        "failure → next success"
    );
    assert_eq!(report.per_workflow[0].open_incidents, 2);
    let bad = api
        .get("/metrics/summary?window=0s", &api.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}
