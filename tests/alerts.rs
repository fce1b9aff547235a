//! Alert rules fire and resolve as time moves (an injected clock: the evaluator takes `now`),
//! a firing alert resolves only after its condition has stayed clear for `resolve_after`
//! (5 minutes by default), and people acknowledge and silence alerts through the API.

mod common;

use std::sync::Arc;

use chrono::{Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use acp::alerts::Evaluator;
use acp::store::Store;
use acp::wire::{AlertState, AlertView, EventKind, TriggerKind};
use common::{Harness, Reply, harness, serve_api, wait_final};

fn evaluator(h: &Harness) -> Evaluator {
    Evaluator::new(
        h.engine.clone(),
        h.store.clone() as Arc<dyn Store>,
        Arc::default(),
    )
}

async fn run(h: &Harness, key: &str, n: usize) {
    let payloads = (0..n).map(|i| json!({"i": i})).collect();
    for id in h
        .engine
        .start_runs(key, TriggerKind::Manual, payloads)
        .await
        .unwrap()
    {
        wait_final(&h.store, id).await;
    }
}

fn states(changed: &[AlertView]) -> Vec<(String, AlertState)> {
    changed.iter().map(|a| (a.rule.clone(), a.state)).collect()
}

const RATE: &str = r#"(key: "rate", name: "Rate", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))],
    alerts: [(name: "too_many_failures", severity: Critical, when: FailureRate(above: 0.5, min_runs: 5, window: "15m"))])"#;

#[tokio::test]
async fn failure_rate_fires_past_the_threshold_and_resolves_when_the_window_slides() {
    let h = harness(&[RATE]).await;
    let ev = evaluator(&h);
    h.world.script("/call", vec![Reply::status(503)]);
    run(&h, "rate", 4).await;
    assert!(
        ev.evaluate_at(Utc::now()).await.unwrap().is_empty(),
        "4 runs are below min_runs"
    );
    h.world.script("/call", vec![Reply::ok(json!({}))]);
    run(&h, "rate", 1).await;
    let now = Utc::now();
    let fired = ev.evaluate_at(now).await.unwrap();
    assert_eq!(
        states(&fired),
        [("too_many_failures".to_owned(), AlertState::Firing)]
    );
    assert_eq!(fired[0].severity, "critical");
    assert_eq!(
        (
            fired[0].detail["failed"].clone(),
            fired[0].detail["finished"].clone()
        ),
        (json!(4), json!(5))
    );
    assert!(
        fired[0].detail["top_error"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 503")
    );
    assert!(
        ev.evaluate_at(now).await.unwrap().is_empty(),
        "no change, no noise"
    );
    assert!(
        ev.evaluate_at(now + Duration::minutes(16))
            .await
            .unwrap()
            .is_empty(),
        "clear, but not yet for resolve_after"
    );
    let resolved = ev.evaluate_at(now + Duration::minutes(21)).await.unwrap();
    assert_eq!(
        states(&resolved),
        [("too_many_failures".to_owned(), AlertState::Resolved)]
    );
    assert!(resolved[0].resolved_at.is_some());
    let kinds: Vec<EventKind> = h
        .store
        .events_since(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind())
        .filter(|k| k.as_str().starts_with("alert."))
        .collect();
    assert_eq!(kinds, [EventKind::AlertFiring, EventKind::AlertResolved]);
}

#[tokio::test]
async fn a_condition_that_clears_and_comes_back_within_resolve_after_stays_one_alert() {
    let h = harness(&[RATE]).await;
    let ev = evaluator(&h);
    h.world.script("/call", vec![Reply::status(503)]);
    run(&h, "rate", 5).await;
    let now = Utc::now();
    let fired = ev.evaluate_at(now).await.unwrap();
    assert_eq!(
        states(&fired),
        [("too_many_failures".to_owned(), AlertState::Firing)]
    );
    let id = fired[0].id;
    assert!(
        ev.evaluate_at(now + Duration::minutes(16))
            .await
            .unwrap()
            .is_empty(),
        "clear, held down"
    );
    run(&h, "rate", 5).await;
    ev.evaluate_at(Utc::now()).await.unwrap();
    let active = h.store.active_alerts().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        (active[0].id, active[0].state),
        (id, AlertState::Firing),
        "the re-fire continues the same alert"
    );
    // Clear again: the hold-down starts over from the new clearing.
    let again = Utc::now() + Duration::minutes(16);
    assert!(ev.evaluate_at(again).await.unwrap().is_empty());
    let resolved = ev.evaluate_at(again + Duration::minutes(5)).await.unwrap();
    assert_eq!(
        (resolved[0].id, resolved[0].state),
        (id, AlertState::Resolved)
    );
}

const DEEP: &str = r#"(key: "deep", name: "Deep", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))],
    alerts: [(name: "many_dead", severity: Warning, when: DlqDepth(above: 2))])"#;

#[tokio::test]
async fn a_dead_letter_alert_stays_on_while_its_entries_are_open() {
    let h = harness(&[DEEP]).await;
    let ev = evaluator(&h);
    h.world.script("/call", vec![Reply::status(422)]);
    run(&h, "deep", 3).await;
    let now = Utc::now();
    let fired = ev.evaluate_at(now).await.unwrap();
    assert_eq!(
        states(&fired),
        [("many_dead".to_owned(), AlertState::Firing)]
    );
    let entries = h.store.dlq(&Default::default()).await.unwrap().items;
    h.engine
        .discard(entries[0].id, "bad data", "test")
        .await
        .unwrap();
    let below = ev.evaluate_at(now + Duration::minutes(10)).await.unwrap();
    assert_eq!(below.len(), 1, "depth 2 is below the threshold: {below:?}");
    assert_eq!(
        (below[0].state, below[0].detail["dlq_depth"].clone()),
        (AlertState::Firing, json!(2)),
        "but two of its entries are still open"
    );
    for entry in &entries[1..] {
        h.engine
            .discard(entry.id, "bad data", "test")
            .await
            .unwrap();
    }
    assert!(
        ev.evaluate_at(now + Duration::minutes(11))
            .await
            .unwrap()
            .is_empty()
    );
    let resolved = ev.evaluate_at(now + Duration::minutes(16)).await.unwrap();
    assert_eq!(
        states(&resolved),
        [("many_dead".to_owned(), AlertState::Resolved)]
    );
}

const SLOW: &str = r#"(key: "slow", name: "Slow", team: "qa", trigger: Manual, sla: "20ms",
    steps: [(id: "nap", action: Delay(duration: "60ms"))],
    alerts: [
        (name: "late", severity: Warning, when: SlaBreach(), after: "5m"),
        (name: "quiet", severity: Critical, when: Silence(window: "10m")),
    ])"#;

#[tokio::test]
async fn sla_breaches_wait_out_their_pending_time_and_silence_needs_a_whole_window() {
    let h = harness(&[SLOW]).await;
    let ev = evaluator(&h);
    let start = Utc::now();
    assert!(ev.evaluate_at(start).await.unwrap().is_empty());
    run(&h, "slow", 1).await;
    let now = Utc::now();
    let pending = ev.evaluate_at(now).await.unwrap();
    assert_eq!(states(&pending), [("late".to_owned(), AlertState::Pending)]);
    assert_eq!(pending[0].detail["slower_than_sla"], 1);
    let firing = ev.evaluate_at(now + Duration::minutes(6)).await.unwrap();
    assert_eq!(states(&firing), [("late".to_owned(), AlertState::Firing)]);

    let silent = ev.evaluate_at(now + Duration::minutes(30)).await.unwrap();
    assert_eq!(
        states(&silent),
        [("quiet".to_owned(), AlertState::Firing)],
        "late is clear but held down"
    );
    let later = ev.evaluate_at(now + Duration::minutes(36)).await.unwrap();
    assert_eq!(states(&later), [("late".to_owned(), AlertState::Resolved)]);
    run(&h, "slow", 1).await;
    let back_at = Utc::now();
    let held = ev.evaluate_at(back_at).await.unwrap();
    assert!(
        !states(&held).contains(&("quiet".to_owned(), AlertState::Resolved)),
        "{held:?}"
    );
    let back = ev
        .evaluate_at(back_at + Duration::minutes(6))
        .await
        .unwrap();
    assert!(
        states(&back).contains(&("quiet".to_owned(), AlertState::Resolved)),
        "{back:?}"
    );
}

const PLAIN: &str = r#"(key: "plain", name: "Plain", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))])"#;

#[tokio::test]
async fn workflows_without_rules_get_the_defaults_and_people_ack_and_silence_through_the_api() {
    let h = harness(&[PLAIN]).await;
    let api = serve_api(&h).await;
    let ev = evaluator(&h);
    h.world.script("/call", vec![Reply::status(422)]);
    run(&h, "plain", 1).await;
    let mut fired = states(&ev.evaluate_at(Utc::now()).await.unwrap());
    fired.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        fired,
        [
            ("any_failure".to_owned(), AlertState::Firing),
            ("dead_letters".to_owned(), AlertState::Firing)
        ]
    );

    let entry = h.store.dlq(&Default::default()).await.unwrap().items[0].id;
    h.engine.discard(entry, "bad data", "test").await.unwrap();
    let cleared_at = Utc::now();
    assert!(ev.evaluate_at(cleared_at).await.unwrap().is_empty());
    let resolved = ev
        .evaluate_at(cleared_at + Duration::minutes(6))
        .await
        .unwrap();
    assert_eq!(
        states(&resolved),
        [("dead_letters".to_owned(), AlertState::Resolved)]
    );
    // The lifecycle refuses to acknowledge what is already resolved.
    let late_ack = api
        .post(&format!("/alerts/{}/ack", resolved[0].id), &api.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(late_ack.status(), 409);
    let body: Value = late_ack.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is resolved"),
        "{body}"
    );

    let firing: Vec<AlertView> = api
        .get("/alerts?state=firing", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(firing.len(), 1);
    let id = firing[0].id;
    assert_eq!(
        api.post(&format!("/alerts/{id}/ack"), &api.viewer)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let acked: AlertView = api
        .post(&format!("/alerts/{id}/ack"), &api.operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked.acked_by.as_deref(), Some("oncall"));
    let silence = json!({"for": "1h", "reason": "maintenance"});
    assert_eq!(
        api.post(&format!("/alerts/{id}/silence"), &api.operator)
            .json(&silence)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let silenced: AlertView = api
        .post(&format!("/alerts/{id}/silence"), &api.admin)
        .json(&silence)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(silenced.silenced_until.unwrap() > Utc::now() + Duration::minutes(59));
    let window_end = (Utc::now() + Duration::hours(3)).trunc_subsecs(0);
    let maintenance: AlertView = api
        .post(&format!("/alerts/{id}/silence"), &api.admin)
        .json(&json!({"until": window_end, "reason": "CRM maintenance window"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(maintenance.silenced_until, Some(window_end));
    for bad in [
        json!({"for": "a while"}),
        json!({}),
        json!({"for": "1h", "until": window_end}),
        json!({"until": Utc::now() - Duration::hours(1)}),
    ] {
        let response = api
            .post(&format!("/alerts/{id}/silence"), &api.admin)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{bad}");
    }
    let audit: Value = api
        .get("/audit", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"alert.ack") && actions.contains(&"alert.silence"),
        "{actions:?}"
    );
    let kinds: Vec<EventKind> = h
        .store
        .events_since(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind())
        .collect();
    assert!(kinds.contains(&EventKind::AlertAcked) && kinds.contains(&EventKind::AlertSilenced));
}

#[tokio::test]
async fn an_evaluator_that_stops_running_shows_in_health_and_on_the_stream() {
    let h = harness(&[PLAIN]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The evaluator runs once at start and then not for an hour: past 300 ms it counts as stuck.
    let api = common::serve_api_with(&h, listener, |c| {
        c.evaluator_stale_after = std::time::Duration::from_millis(300)
    })
    .await;
    let health = |api: &common::Api| {
        let request = api.get("/health", &api.viewer);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<acp::wire::Health>()
                .await
                .unwrap()
        }
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let fresh = health(&api).await;
    assert!(fresh.control.evaluator_healthy, "{:?}", fresh.control);
    let last = fresh.control.evaluator_last_run.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let stale = health(&api).await;
    assert!(!stale.control.evaluator_healthy);
    assert_eq!(stale.control.evaluator_last_run, Some(last));
    let events = h.store.events_since(0, 10_000).await.unwrap();
    let degraded: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::ControlDegraded)
        .collect();
    assert_eq!(degraded.len(), 1, "one event, not one per check");
    assert_eq!(degraded[0].body.data()["part"], "alert evaluator");
    let loops: Vec<(&str, bool)> = stale
        .control
        .loops
        .iter()
        .map(|l| (l.name.as_str(), l.healthy))
        .collect();
    assert_eq!(
        loops,
        [
            ("alert evaluator", false),
            ("outbox dispatch", true),
            ("outbox delivery", true),
            ("incident tracker", true),
            ("engine claims", true),
            ("lease heartbeat", true)
        ],
        "every background loop shows, and only the stalled one is unhealthy"
    );
}

const BACKLOG: &str = r#"(key: "backlog", name: "Backlog", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"))],
    alerts: [(name: "stuck", severity: Warning, when: SlaBreach(queued_longer_than: "2m"))])"#;

/// Runs waiting in the queue past the limit breach the SLA (counted from the queue, not the log).
#[tokio::test]
async fn runs_queued_longer_than_the_limit_breach_the_sla() {
    let h = harness(&[BACKLOG]).await;
    let ev = evaluator(&h);
    let later = Utc::now() + Duration::hours(1);
    let waiting = acp::domain::NewRun {
        not_before: Some(later),
        ..acp::domain::NewRun::live("backlog", 1, "qa", TriggerKind::Manual, json!({}))
    };
    h.store
        .create_runs(vec![waiting.clone(), waiting])
        .await
        .unwrap();
    let now = Utc::now();
    assert!(
        ev.evaluate_at(now).await.unwrap().is_empty(),
        "queued for less than 2m"
    );
    let stuck = ev.evaluate_at(now + Duration::minutes(3)).await.unwrap();
    assert_eq!(states(&stuck), [("stuck".to_owned(), AlertState::Firing)]);
    assert_eq!(stuck[0].detail["queued_too_long"], 2);
}

const QUIET: &str = r#"(key: "quiet", name: "Quiet", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"))],
    alerts: [(name: "silent", severity: Critical, when: Silence(window: "10m"))])"#;

/// A held workflow is quiet on purpose: its silence rule waits, its held runs are no
/// failures, and work held longer than `hold_warning` (1 hour by default) raises its own
/// warning.
#[tokio::test]
async fn held_work_pauses_silence_and_warns_when_held_too_long() {
    let h = harness(&[QUIET]).await;
    let ev = evaluator(&h);
    let now = Utc::now();
    assert!(ev.evaluate_at(now).await.unwrap().is_empty());
    let request =
        serde_json::from_value(json!({"scope": "workflow:quiet", "reason": "CRM migration"}));
    h.engine.create_hold(request.unwrap(), "ops").await.unwrap();
    let run = h
        .engine
        .start_runs("quiet", TriggerKind::Manual, vec![json!({})])
        .await
        .unwrap()[0];
    common::wait_until(&h.store, run, |d| {
        d.run.status == acp::wire::RunStatus::Held
    })
    .await;
    // Half an hour on: silent, but held on purpose and not yet for too long.
    assert!(
        ev.evaluate_at(now + Duration::minutes(30))
            .await
            .unwrap()
            .is_empty()
    );
    let fired = ev.evaluate_at(now + Duration::minutes(61)).await.unwrap();
    assert_eq!(
        states(&fired),
        [("held_too_long".to_owned(), AlertState::Firing)]
    );
    assert_eq!(fired[0].severity, "warning");
    assert_eq!(fired[0].detail["held"], 1);
    assert!(fired[0].detail["oldest_held_secs"].as_i64().unwrap() >= 3600);
    let health = h.engine.health(&Default::default()).await.unwrap();
    assert_eq!((health.held, health.workflows[0].counts.failed), (1, 0));
}
