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
    let path = &format!("/incidents/{}/replay", outage.id);
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
    // Its one dead letter failed permanently (422) and would run the same version again.
    let held_back = api
        .post(&format!("/incidents/{}/replay", other.id), &api.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(held_back.status(), 409);
    let said: Value = held_back.json().await.unwrap();
    assert!(
        said["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to replay: the 1 matching entries failed permanently"),
        "{said}"
    );

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
    let active: Vec<IncidentView> = api.json("/incidents?state=active", &api.viewer).await;
    assert_eq!(active.len(), 2, "open and regressed");
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

/// The value of the sample `metric` with `labels` (none when absent).
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use prometheus_parse::Value;
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .find_map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).reduce(f64::max),
            Value::Summary(_) => None,
        })
}

async fn scrape(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> prometheus_parse::Scrape {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let kind = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = answer.text().await.unwrap();
    assert!(
        !text.contains("run_id") && !text.contains("record"),
        "no high-cardinality labels:\n{text}"
    );
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// After a known workload the exposition, read by a real Prometheus text parser, counts what
/// the API counts; the API port needs a token, the separate metrics listener does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_api_counts() {
    let h = harness(&[ENRICH]).await;
    let api = serve_api(&h).await;
    h.world.script(
        "/enrich",
        vec![
            failing(503, "lead 1 could not be enriched"),
            failing(503, "lead 2 could not be enriched"),
            failing(503, "lead 3 could not be enriched"),
            Reply::ok(json!({})),
        ],
    );
    assert_eq!(
        run(&h, 5)
            .await
            .iter()
            .filter(|s| **s == RunStatus::Failed)
            .count(),
        3
    );
    incidents_until(&api, |l| l.len() == 1 && l[0].count == 3).await;
    let root = api.url.trim_end_matches("/api/v1").to_owned();
    let refused = api
        .http
        .get(format!("{root}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let app = acp::server::metrics_router(api.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The follower counts events as they commit: wait for the last run's end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let metrics = scrape(&api.http, &format!("{root}/metrics"), Some(&api.viewer)).await;
        let finished = ["succeeded", "failed"]
            .iter()
            .filter_map(|s| {
                sample(
                    &metrics,
                    "acp_runs_finished_total",
                    &[("workflow", "enrich"), ("status", s)],
                )
            })
            .sum::<f64>();
        if finished == 5.0 {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs finished: {finished}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let runs: Value = api.json("/runs?workflow=enrich", &api.viewer).await;
    let listed = runs["items"].as_array().unwrap().len() as f64;
    assert_eq!(
        sample(
            &metrics,
            "acp_runs_started_total",
            &[("workflow", "enrich"), ("trigger", "manual")]
        ),
        Some(listed)
    );
    assert_eq!(
        sample(
            &metrics,
            "acp_runs_finished_total",
            &[("workflow", "enrich"), ("status", "failed")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "acp_step_attempts_total",
            &[
                ("workflow", "enrich"),
                ("step", "call"),
                ("kind", "http"),
                ("result", "failed")
            ]
        ),
        Some(3.0)
    );
    let dlq: Value = api.json("/dlq?workflow=enrich", &api.viewer).await;
    assert_eq!(
        sample(&metrics, "acp_dlq_open", &[("workflow", "enrich")]),
        Some(dlq["items"].as_array().unwrap().len() as f64)
    );
    assert_eq!(
        sample(&metrics, "acp_incidents_open", &[("workflow", "enrich")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "acp_run_duration_seconds_count",
            &[("workflow", "enrich")]
        )
        .or_else(|| sample(
            &metrics,
            "acp_run_duration_seconds",
            &[("workflow", "enrich")]
        )),
        Some(5.0)
    );
    assert_eq!(sample(&metrics, "acp_runs_held", &[]), Some(0.0));
    assert!(sample(&metrics, "acp_writer_commit_seconds", &[]).is_some_and(|s| s > 0.0));
    let open = scrape(&api.http, &open_url, None).await;
    assert_eq!(
        sample(
            &open,
            "acp_runs_finished_total",
            &[("workflow", "enrich"), ("status", "failed")]
        ),
        Some(3.0)
    );
}

/// Folds the log until the tracker has caught up, as the tracker loop does.
async fn fold_all(
    store: &dyn acp::store::Store,
    log: &mut acp::store::Follower,
) -> Vec<IncidentView> {
    let mut position = acp::incidents::Position::default();
    while acp::incidents::track_batch(store, log, &mut position)
        .await
        .unwrap()
    {}
    store
        .incidents(&acp::wire::IncidentQuery::default())
        .await
        .unwrap()
}

/// A restart (the store closed and opened again, the tracker starting from its stored
/// cursor) neither loses nor counts twice: 3 failures, a restart, 2 more make one incident of 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_right_across_a_restart() {
    let world = common::World::start().await;
    world.script(
        "/enrich",
        vec![failing(503, "lead 1 could not be enriched")],
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("acp.db").display());
    let fail = |store: std::sync::Arc<dyn acp::store::Store>, n: usize, publish: bool| {
        let world = world.url.clone();
        async move {
            let engine = common::start_engine(store.clone()).await;
            if publish {
                engine
                    .save_draft(&ENRICH.replace("{world}", &world), "test")
                    .await
                    .unwrap();
                engine.publish("enrich", "test").await.unwrap();
            }
            let payloads = (0..n).map(|i| json!({ "i": i })).collect();
            for id in engine
                .start_runs("enrich", TriggerKind::Manual, payloads)
                .await
                .unwrap()
            {
                wait_final(&store, id).await;
            }
            engine.shutdown().await;
        }
    };
    let store = acp::store::open(&url).unwrap();
    let mut log = acp::store::Follower::new(store.subscribe());
    fail(store.clone(), 3, true).await;
    let before = fold_all(store.as_ref(), &mut log).await;
    assert_eq!(before.len(), 1);
    assert_eq!((before[0].count, before[0].open_dead_letters), (3, 3));
    store.close();

    let store = acp::store::open(&url).unwrap();
    let mut log = acp::store::Follower::new(store.subscribe());
    assert_eq!(
        fold_all(store.as_ref(), &mut log).await,
        before,
        "nothing folded twice"
    );
    fail(store.clone(), 2, false).await;
    let after = fold_all(store.as_ref(), &mut log).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, before[0].id);
    assert_eq!((after[0].count, after[0].open_dead_letters), (5, 5));
    store.close();
}
