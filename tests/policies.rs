//! Policies against a real outside world on 127.0.0.1 that notes when each call arrives and
//! how many are open at once: host rates shared by workflows, a workflow's concurrency, a
//! host's 429/503 with `Retry-After`, holds on a workflow and on a host, and holds that
//! survive a restart.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use acp::actions::Actions;
use acp::domain::policy::{LimitsDef, PolicyConfig};
use acp::engine::EngineConfig;
use acp::wire::{AttemptStatus, HoldList, HoldSource, HoldView, RunStatus, TriggerKind};
use common::{Harness, Reply, harness_custom, serve_api, until, wait_final, wait_until};

fn limits(rate: Option<&str>, burst: Option<u32>, concurrency: Option<u32>) -> PolicyConfig {
    let mut policies = PolicyConfig::default();
    let def = LimitsDef {
        rate: rate.map(str::to_owned),
        burst,
        concurrency,
    };
    policies
        .hosts
        .insert("127.0.0.1".into(), def.check().unwrap());
    policies
}

async fn start(workflows: &[&str], policies: PolicyConfig, workers: usize) -> Harness {
    let config = EngineConfig {
        workers,
        policies,
        ..common::config()
    };
    harness_custom(workflows, config, Actions::new(None, None).unwrap()).await
}

fn caller(key: &str, path: &str) -> String {
    format!(
        r#"(key: "{key}", name: "{key}", team: "qa", trigger: Manual,
        steps: [(id: "call", action: Http(method: "POST", url: "{{world}}{path}"))])"#
    )
}

async fn start_runs(h: &Harness, key: &str, n: usize) -> Vec<i64> {
    h.engine
        .start_runs(key, TriggerKind::Manual, vec![json!({}); n])
        .await
        .unwrap()
}

/// Places a hold through the API as the admin.
async fn place(api: &common::Api, body: Value) -> HoldView {
    let answer = api
        .post("/holds", &api.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    answer.json().await.unwrap()
}

/// `DELETE /holds/{id}` with `token`: the status.
async fn release(api: &common::Api, id: i64, token: &str) -> u16 {
    let path = format!("/holds/{id}");
    api.delete(&path, token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Stops a harness's server and opens its database again with a new engine, as a restart.
async fn restart(h: &Harness) -> (std::sync::Arc<dyn acp::store::Store>, acp::engine::Engine) {
    h.runtime.stop().await.unwrap();
    let path = h.dir.path().join("acp.db");
    let store = acp::store::open(&format!("sqlite://{}", path.display())).unwrap();
    let engine = acp::engine::Engine::start(
        store.clone(),
        common::config(),
        Actions::new(None, None).unwrap(),
    )
    .await
    .unwrap();
    (store, engine)
}

/// The most calls any one-second window saw (windows start at each call).
fn busiest_second(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len())
        .map(|i| {
            sorted[i..]
                .iter()
                .take_while(|t| t.duration_since(sorted[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_rate_is_shared_by_every_workflow_that_calls_it() {
    let (a, b) = (caller("alpha", "/a"), caller("beta", "/b"));
    let h = start(&[&a, &b], limits(Some("5/s"), Some(5), None), 16).await;
    let mut runs = start_runs(&h, "alpha", 100).await;
    runs.extend(start_runs(&h, "beta", 100).await);
    for run in &runs {
        let detail = wait_final(&h.store, *run).await;
        assert_eq!(detail.run.status, RunStatus::Succeeded, "{detail:#?}");
    }
    let times: Vec<Instant> = [h.world.hits("/a"), h.world.hits("/b")]
        .concat()
        .iter()
        .map(|hit| hit.at)
        .collect();
    assert_eq!(times.len(), 200);
    let busiest = busiest_second(&times);
    assert!(
        busiest <= 10,
        "{busiest} calls in one second, over 5/s + burst 5"
    );
    // 200 calls at 5/s after a burst of 5 take at least 39 s.
    let first = times.iter().min().unwrap();
    let last = times.iter().max().unwrap();
    assert!(last.duration_since(*first) >= Duration::from_millis(38_500));
    // Runs over the limit were held, with the reason, and none was charged an attempt.
    let events = h.store.events_since(0, 100_000).await.unwrap();
    let held: Vec<&acp::wire::Event> = events
        .iter()
        .filter(|e| e.kind().as_str() == "run.held")
        .collect();
    assert!(held.len() > 100, "{} runs held", held.len());
    let data = held[0].body.data();
    assert_eq!(data["on"], "host:127.0.0.1");
    assert!(
        data["reason"]
            .as_str()
            .unwrap()
            .contains("rate limit (5/s, burst 5)"),
        "{data}"
    );
    for run in runs.iter().take(20) {
        assert_eq!(h.store.run(*run).await.unwrap().run.attempts, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_concurrency_keeps_its_open_calls_at_the_limit() {
    let slow = r#"(key: "slow", name: "Slow", team: "qa", trigger: Manual,
        policy: (concurrency: 3),
        steps: [(id: "call", action: Http(method: "POST", url: "{world}/slow"))])"#;
    let h = start(&[slow], PolicyConfig::default(), 8).await;
    h.world.script(
        "/slow",
        vec![Reply::ok(json!({})).after(Duration::from_millis(300))],
    );
    let runs = start_runs(&h, "slow", 12).await;
    for run in &runs {
        assert_eq!(
            wait_final(&h.store, *run).await.run.status,
            RunStatus::Succeeded
        );
    }
    assert_eq!(h.world.hits("/slow").len(), 12);
    assert_eq!(h.world.max_open(), 3, "never more than 3 open, and 3 used");
}

/// One run gets a 429 (or 503) with `Retry-After`; the runs started after it make no call
/// before that time, none is dead-lettered, and the throttled attempt is not charged.
async fn backpressure(status: u16, retry_after: impl Fn() -> String, wait: Duration) {
    let h = start(&[&caller("enrich", "/enrich")], PolicyConfig::default(), 8).await;
    h.world.script(
        "/enrich",
        vec![
            Reply::status(status).header("Retry-After", &retry_after()),
            Reply::ok(json!({"ok": true})),
        ],
    );
    let first = start_runs(&h, "enrich", 1).await[0];
    until("the throttled call", || !h.world.hits("/enrich").is_empty()).await;
    let refused_at = h.world.hits("/enrich")[0].at;
    let held = wait_until(&h.store, first, |d| d.run.status == RunStatus::Held).await;
    let reason = held.run.held_reason.clone().unwrap();
    assert!(
        reason.starts_with("127.0.0.1 asked to wait until")
            && reason.ends_with(&format!("({status})")),
        "{reason}"
    );
    assert_eq!(held.attempts[0].status, AttemptStatus::Throttled);
    let later = start_runs(&h, "enrich", 9).await;
    for run in later.iter().chain([&first]) {
        let detail = wait_final(&h.store, *run).await;
        assert_eq!(detail.run.status, RunStatus::Succeeded, "{detail:#?}");
    }
    let hits = h.world.hits("/enrich");
    assert_eq!(hits.len(), 11, "the refused call and one per run");
    for hit in &hits[1..] {
        assert!(
            hit.at.duration_since(refused_at) >= wait,
            "a call came {:?} after the refusal",
            hit.at.duration_since(refused_at)
        );
    }
    let detail = h.store.run(first).await.unwrap();
    let statuses: Vec<AttemptStatus> = detail.attempts.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [AttemptStatus::Throttled, AttemptStatus::Succeeded]
    );
    // The succeeded attempt is the step's first charged one.
    assert_eq!(detail.attempts[1].number, 1);
    let dlq = h.store.dlq(&Default::default()).await.unwrap();
    assert!(dlq.items.is_empty(), "{:?}", dlq.items);
    let holds = h.engine.holds(true).await.unwrap();
    let automatic: Vec<&HoldView> = holds
        .holds
        .iter()
        .filter(|h| h.source == HoldSource::Backpressure)
        .collect();
    assert_eq!(automatic.len(), 1, "{holds:#?}");
    assert_eq!(automatic[0].scope, "host:127.0.0.1");
    assert_eq!(automatic[0].reason, reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_in_seconds_pauses_the_host_for_every_run() {
    backpressure(429, || "2".into(), Duration::from_millis(1_950)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_as_an_http_date_pauses_the_host_for_every_run() {
    // An HTTP date has whole seconds: 3 s from now is 2 to 3 s away.
    backpressure(
        503,
        || httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3)),
        Duration::from_millis(1_950),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_workflow_queues_its_runs_and_drains_them_at_the_rate_after_release() {
    let h = start(&[&caller("routing", "/route")], PolicyConfig::default(), 8).await;
    let api = serve_api(&h).await;
    let hold = place(
        &api,
        json!({"scope": "workflow:routing", "for": "2s", "reason": "CRM migration", "drain_rate": "5/s"}),
    )
    .await;
    assert_eq!(hold.scope, "workflow:routing");
    assert_eq!(hold.created_by, "admin");
    let placed = Instant::now();
    let runs = start_runs(&h, "routing", 10).await;
    for run in &runs {
        let held = wait_until(&h.store, *run, |d| d.run.status == RunStatus::Held).await;
        assert_eq!(held.run.attempts, 0);
        assert!(
            held.run
                .held_reason
                .as_deref()
                .unwrap()
                .ends_with(": CRM migration"),
            "{:?}",
            held.run.held_reason
        );
    }
    let list: HoldList = api.json("/holds", &api.viewer).await;
    assert_eq!(list.holds[0].held_runs, 10);
    assert_eq!(list.held_runs, 10);
    assert!(h.world.hits("/route").is_empty());
    for run in &runs {
        assert_eq!(
            wait_final(&h.store, *run).await.run.status,
            RunStatus::Succeeded
        );
    }
    let mut times: Vec<Instant> = h.world.hits("/route").iter().map(|h| h.at).collect();
    times.sort();
    assert!(times[0].duration_since(placed) >= Duration::from_millis(1_900));
    // Ten runs at 5/s: the last starts 1.8 s after the first.
    let spread = times[9].duration_since(times[0]);
    assert!(spread >= Duration::from_millis(1_700), "{spread:?}");
    let released: HoldView = h.store.hold(hold.id).await.unwrap();
    assert_eq!(released.released_by.as_deref(), Some("expired"));
    let audit: Value = api.json("/audit", &api.admin).await;
    assert!(audit.to_string().contains("hold.create"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_host_stops_a_run_at_the_step_that_calls_it_until_released() {
    let two_hosts = r#"(key: "two", name: "Two", team: "qa", trigger: Manual,
        steps: [
            (id: "first", action: Http(method: "POST", url: "{world}/first")),
            (id: "second", action: Http(method: "POST", url: "{localhost}/second")),
        ])"#;
    let h = start(&[], PolicyConfig::default(), 8).await;
    let source = two_hosts.replace("{world}", &h.world.url).replace(
        "{localhost}",
        &h.world.url.replace("127.0.0.1", "localhost"),
    );
    let key = h.engine.save_draft(&source, "test").await.unwrap();
    h.engine.publish(&key, "test").await.unwrap();
    let api = serve_api(&h).await;
    let hold = place(
        &api,
        json!({"scope": "host:localhost", "reason": "vendor outage"}),
    )
    .await;
    let run = start_runs(&h, "two", 1).await[0];
    let held = wait_until(&h.store, run, |d| d.run.status == RunStatus::Held).await;
    assert_eq!(
        held.attempts.len(),
        1,
        "the first step ran, the second waits"
    );
    assert_eq!(h.world.hits("/first").len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.world.hits("/second").is_empty());
    // An operator may not release it; an admin may.
    assert_eq!(release(&api, hold.id, &api.operator).await, 403);
    assert_eq!(release(&api, hold.id, &api.admin).await, 200);
    let done = wait_final(&h.store, run).await;
    assert_eq!(done.run.status, RunStatus::Succeeded);
    assert_eq!(h.world.hits("/second").len(), 1);
    assert_eq!(release(&api, hold.id, &api.admin).await, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_requests_are_checked_field_by_field() {
    let h = start(&[&caller("routing", "/route")], PolicyConfig::default(), 2).await;
    let api = serve_api(&h).await;
    for (body, status, says) in [
        (json!({"scope": "queue:x", "reason": "r"}), 422, "scope"),
        (
            json!({"scope": "workflow:nope", "reason": "r"}),
            404,
            "nope",
        ),
        (
            json!({"scope": "workflow:routing", "reason": " "}),
            422,
            "reason",
        ),
        (
            json!({"scope": "workflow:routing", "reason": "r", "for": "2h", "until": "2030-01-01T00:00:00Z"}),
            422,
            "not both",
        ),
        (
            json!({"scope": "workflow:routing", "reason": "r", "until": "2020-01-01T00:00:00Z"}),
            422,
            "future",
        ),
        (
            json!({"scope": "workflow:routing", "reason": "r", "for": "soon"}),
            422,
            "for",
        ),
        (
            json!({"scope": "workflow:routing", "reason": "r", "drain_rate": "fast"}),
            422,
            "drain_rate",
        ),
        (
            json!({"scope": "workflow:routing", "reason": "r", "extra": 1}),
            400,
            "extra",
        ),
        (json!(["workflow:routing"]), 422, "object"),
    ] {
        let answer = api
            .post("/holds", &api.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let code = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        assert_eq!(code, status, "{body}: {text}");
        assert!(text.contains(says), "{body}: {text}");
    }
    let viewer = api
        .post("/holds", &api.viewer)
        .json(&json!({"scope": "workflow:routing", "reason": "r"}))
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_runs_and_holds_survive_a_restart() {
    let h = start(&[&caller("routing", "/route")], PolicyConfig::default(), 4).await;
    let hold = h
        .engine
        .create_hold(
            serde_json::from_value(json!({"scope": "team:qa", "reason": "quarter close"})).unwrap(),
            "ops",
        )
        .await
        .unwrap();
    let runs = start_runs(&h, "routing", 3).await;
    for run in &runs {
        wait_until(&h.store, *run, |d| d.run.status == RunStatus::Held).await;
    }
    let (store, engine) = restart(&h).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for run in &runs {
        assert_eq!(store.run(*run).await.unwrap().run.status, RunStatus::Held);
    }
    assert!(h.world.hits("/route").is_empty());
    let list = engine.holds(false).await.unwrap();
    assert_eq!(list.holds.len(), 1);
    assert_eq!(list.holds[0].held_runs, 3);
    engine.release_hold(hold.id, "ops").await.unwrap();
    for run in &runs {
        assert_eq!(
            wait_final(&store, *run).await.run.status,
            RunStatus::Succeeded
        );
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_holds_its_scope_from_each_start_to_its_end() {
    let config = acp::domain::config::parse_config(
        r#"(windows: [(name: "nightly", scope: "workflow:routing", cron: "*/4 * * * * *",
            duration: "2s", timezone: "Europe/Berlin", drain_rate: "50/s")])"#,
        |_| None,
    )
    .unwrap();
    let h = start(&[&caller("routing", "/route")], config.policies, 4).await;
    // Wait for an occurrence to begin.
    let hold = loop {
        let list = h.engine.holds(false).await.unwrap();
        if let Some(hold) = list
            .holds
            .into_iter()
            .find(|h| h.source == HoldSource::Window)
        {
            break hold;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(hold.scope, "workflow:routing");
    assert_eq!(hold.created_by, "window:nightly");
    assert_eq!(hold.drain_rate.as_deref(), Some("50/s"));
    let until = hold.until.unwrap();
    assert_eq!(
        until.timestamp() % 4,
        2,
        "starts on the cron's second, lasts 2 s: {until}"
    );
    // The engine reads the hold back from the store right after placing it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let runs = start_runs(&h, "routing", 3).await;
    for run in &runs {
        let done = wait_final(&h.store, *run).await;
        assert_eq!(done.run.status, RunStatus::Succeeded);
        // Started during the window, its call waited for the end.
        assert!(done.attempts[0].started_at >= until, "{done:#?}");
    }
    let released = h.store.hold(hold.id).await.unwrap();
    let released_at = released.released_at.unwrap();
    assert!(
        released_at >= until,
        "released at {released_at}, until {until}"
    );
    assert_eq!(released.released_by.as_deref(), Some("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replay_job_starts_at_its_rate_reports_exact_progress_and_cancels_the_rest() {
    let once = r#"(key: "sync", name: "Sync", team: "qa", trigger: Manual,
        steps: [(id: "push", action: Http(method: "POST", url: "{world}/push"), retry: (max_attempts: 1))])"#;
    let h = start(&[once], PolicyConfig::default(), 16).await;
    let api = serve_api(&h).await;
    h.world.script("/push", vec![Reply::status(500)]);
    for run in start_runs(&h, "sync", 100).await {
        assert_eq!(
            wait_final(&h.store, run).await.run.status,
            RunStatus::Failed
        );
    }
    h.world.script("/push", vec![Reply::ok(json!({}))]);
    let failed_calls = h.world.hits("/push").len();
    let started = Instant::now();
    let answer = api
        .post("/dlq/replay", &api.operator)
        .json(&json!({"all": true, "rate": "10/s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let job: acp::wire::JobView = answer.json().await.unwrap();
    assert_eq!((job.total, job.rate.as_str()), (100, "10/s"));
    assert_eq!(job.plan.as_ref().unwrap().count, 100);
    let path = format!("/jobs/{}", job.id);
    // After about 3 s (30 started), cancel the rest.
    let mut progress: acp::wire::JobView = api.json(&path, &api.viewer).await;
    while progress.started < 30 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        progress = api.json(&path, &api.viewer).await;
    }
    let refused = api.delete(&path, &api.viewer).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let cancelled: acp::wire::JobView = api
        .delete(&path, &api.operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled.state, acp::wire::JobState::Cancelled);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let last: acp::wire::JobView = api.json(&path, &api.viewer).await;
    assert!(last.started >= 30 && last.started <= 32, "{last:?}");
    // Counts are exact: every started run is one replay run, and none past the cancel.
    let runs = h
        .store
        .runs(&acp::wire::RunQuery {
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap();
    let replays: Vec<i64> = runs
        .items
        .iter()
        .filter(|r| r.trigger_kind == TriggerKind::Replay)
        .map(|r| r.id)
        .collect();
    assert_eq!(replays.len() as i64, last.started);
    for run in &replays {
        assert_eq!(
            wait_final(&h.store, *run).await.run.status,
            RunStatus::Succeeded
        );
    }
    let last: acp::wire::JobView = api.json(&path, &api.viewer).await;
    assert_eq!((last.succeeded, last.failed), (last.started, 0));
    // What did not start stays open in the DLQ.
    let open = h
        .store
        .dlq(&acp::wire::RunQuery {
            status: Some("open".into()),
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.items.len() as i64, 100 - last.started);
    // The receiver saw the replays at most 10 (+ a burst of 1) a second.
    let times: Vec<Instant> = h.world.hits("/push")[failed_calls..]
        .iter()
        .map(|hit| hit.at)
        .collect();
    assert_eq!(times.len() as i64, last.started);
    assert!(
        busiest_second(&times) <= 11,
        "{} in one second",
        busiest_second(&times)
    );
    assert!(started.elapsed() >= Duration::from_millis(2_900));
    // The job cannot be cancelled twice.
    let again = api.delete(&path, &api.operator).send().await.unwrap();
    assert_eq!(again.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_job_continues_after_a_restart_where_it_stopped() {
    let once = r#"(key: "sync", name: "Sync", team: "qa", trigger: Manual,
        steps: [(id: "push", action: Http(method: "POST", url: "{world}/push"), retry: (max_attempts: 1))])"#;
    let h = start(&[once], PolicyConfig::default(), 4).await;
    h.world.script("/push", vec![Reply::status(500)]);
    for run in start_runs(&h, "sync", 6).await {
        wait_final(&h.store, run).await;
    }
    h.world.script("/push", vec![Reply::ok(json!({}))]);
    let request = serde_json::from_value(json!({"all": true, "rate": "4/s"})).unwrap();
    let job = h.engine.start_replay_job(&request, "ops").await.unwrap();
    until("two starts", || h.world.hits("/push").len() >= 8).await;
    let (_store, engine) = restart(&h).await;
    let before = h.world.hits("/push").len() - 6;
    let done = loop {
        let progress = engine.job(job.id).await.unwrap();
        if progress.is_over() && progress.ended() == progress.started {
            break progress;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.state, acp::wire::JobState::Finished);
    assert_eq!((done.started, done.succeeded, done.skipped), (6, 6, 0));
    assert_eq!(
        h.world.hits("/push").len(),
        12,
        "each entry replayed once ({before} before)"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_over_a_workflow_rate_are_served_in_arrival_order() {
    let paced = r#"(key: "paced", name: "Paced", team: "qa", trigger: Manual,
        policy: (rate: "4/s", burst: 1),
        steps: [(id: "call", action: Http(method: "POST", url: "{world}/paced", body: {"run": "{{ run.id }}"}))])"#;
    let h = start(&[paced], PolicyConfig::default(), 8).await;
    let mut runs = Vec::new();
    for _ in 0..8 {
        runs.extend(start_runs(&h, "paced", 1).await);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    for run in &runs {
        assert_eq!(
            wait_final(&h.store, *run).await.run.status,
            RunStatus::Succeeded
        );
    }
    let order: Vec<i64> = h
        .world
        .hits("/paced")
        .iter()
        .map(|hit| hit.body["run"].as_i64().unwrap())
        .collect();
    assert_eq!(order, runs, "first come, first served");
    let times: Vec<Instant> = h.world.hits("/paced").iter().map(|hit| hit.at).collect();
    assert!(busiest_second(&times) <= 5, "4/s with a burst of 1");
}
