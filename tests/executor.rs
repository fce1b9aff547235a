//! The executor in virtual time: retries, backoff, `Retry-After`, delays and leases under
//! `tokio::time::pause`. The engine reads a clock that follows tokio's (`TokioClock`), so an
//! hour of backoff takes no wall time and every wait is measured exactly; the store is the
//! real SQLite one, and the outside world answers from a script in the process (sockets and
//! paused time do not mix: a paused runtime would time out a request while it waits).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio::time::Instant;

use acp::actions::{Actions, HttpRequest, HttpResponse, HttpSend};
use acp::domain::StepFailure;
use acp::engine::{Engine, EngineConfig, TokioClock};
use acp::store::Store;
use acp::wire::{RunDetail, RunStatus, TriggerKind};

/// A status and an optional `Retry-After`.
type Answer = (u16, Option<&'static str>);

/// Answers each URL from its script (the last answer repeats) and notes when each call came.
#[derive(Default)]
struct Script {
    replies: Mutex<HashMap<String, VecDeque<Answer>>>,
    calls: Mutex<Vec<(String, Instant)>>,
}

impl Script {
    fn new(url: &str, replies: &[Answer]) -> Arc<Self> {
        let script = Self::default();
        script
            .replies
            .lock()
            .unwrap()
            .insert(url.into(), replies.iter().copied().collect());
        Arc::new(script)
    }

    /// When each call to `url` came.
    fn times(&self, url: &str) -> Vec<Instant> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(u, _)| u == url)
            .map(|(_, t)| *t)
            .collect()
    }
}

#[async_trait]
impl HttpSend for Script {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure> {
        self.calls
            .lock()
            .unwrap()
            .push((request.url.clone(), Instant::now()));
        let mut replies = self.replies.lock().unwrap();
        let queue = replies.entry(request.url).or_default();
        let (status, retry_after) = match queue.len() {
            0 => (200, None),
            1 => queue[0],
            _ => queue.pop_front().unwrap_or((200, None)),
        };
        let headers: BTreeMap<String, String> = retry_after
            .map(|v| ("retry-after".to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        Ok(HttpResponse {
            status,
            headers,
            body: json!({"status": status}),
            latency_ms: 0,
        })
    }
}

struct Setup {
    store: Arc<dyn Store>,
    engine: Engine,
    started: Instant,
    _dir: tempfile::TempDir,
}

/// The engine's settings; `poll` is how often it looks for due runs unwoken (retries and
/// delays wake it when they fall due; an expired lease is only found by looking).
fn config(lease: Duration, poll: Duration, sole_owner: bool) -> EngineConfig {
    EngineConfig {
        workers: 4,
        lease,
        poll,
        grace: Duration::from_secs(1),
        sole_owner,
        clock: Arc::new(TokioClock::new()),
        ..EngineConfig::default()
    }
}

fn open() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?wait=blocking",
        dir.path().join("acp.db").display()
    );
    (acp::store::open(&url).unwrap(), dir)
}

async fn start(workflow: &str, script: Arc<Script>) -> Setup {
    let (store, dir) = open();
    let engine = Engine::start(
        store.clone(),
        config(Duration::from_secs(30), Duration::from_secs(60), true),
        Actions::with_http(script),
    )
    .await
    .unwrap();
    let key = engine.save_draft(workflow, "test").await.unwrap();
    engine.publish(&key, "test").await.unwrap();
    Setup {
        store,
        engine,
        started: Instant::now(),
        _dir: dir,
    }
}

/// Waits, in virtual time, until the run is final.
async fn finished(store: &Arc<dyn Store>, run: i64) -> RunDetail {
    for _ in 0..100_000 {
        let detail = store.run(run).await.unwrap();
        if detail.run.status.is_final() {
            return detail;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    panic!("run {run} never finished");
}

async fn start_run(engine: &Engine, key: &str) -> i64 {
    engine
        .start_runs(key, TriggerKind::Manual, vec![json!({})])
        .await
        .unwrap()[0]
}

const BACKOFF: &str = r#"(
    key: "backoff", name: "Backoff", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "http://crm.test/call"),
        retry: (max_attempts: 4, initial_delay: "30s", max_delay: "2m"))],
)"#;

#[tokio::test(start_paused = true)]
async fn each_retry_waits_the_delay_it_recorded_in_virtual_time() {
    let wall = std::time::Instant::now();
    let script = Script::new(
        "http://crm.test/call",
        &[(503, None), (503, None), (503, None), (200, None)],
    );
    let s = start(BACKOFF, script.clone()).await;
    let run = start_run(&s.engine, "backoff").await;
    let detail = finished(&s.store, run).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    let times = script.times("http://crm.test/call");
    assert_eq!(times.len(), 4);
    for (i, pair) in times.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        let delay = Duration::from_millis(detail.attempts[i].retry_delay_ms.unwrap() as u64);
        let ceiling = Duration::from_secs(30 * (1 << i)).min(Duration::from_secs(120));
        assert!(delay <= ceiling, "attempt {i}: {delay:?} over {ceiling:?}");
        assert!(
            waited >= delay && waited <= delay + Duration::from_secs(2),
            "attempt {i} waited {waited:?} for a delay of {delay:?}"
        );
    }
    assert!(
        wall.elapsed() < Duration::from_secs(20),
        "minutes of backoff took {:?} of wall time",
        wall.elapsed()
    );
    s.engine.shutdown().await;
}

const LIMITED: &str = r#"(
    key: "limited", name: "Limited", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "http://crm.test/limited"),
        retry: (max_attempts: 3, initial_delay: "1s", max_delay: "5s"))],
)"#;

#[tokio::test(start_paused = true)]
async fn retry_after_is_a_floor_under_the_backoff() {
    let script = Script::new(
        "http://crm.test/limited",
        &[(429, Some("120")), (200, None)],
    );
    let s = start(LIMITED, script.clone()).await;
    let run = start_run(&s.engine, "limited").await;
    assert_eq!(
        finished(&s.store, run).await.run.status,
        RunStatus::Succeeded
    );
    let times = script.times("http://crm.test/limited");
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_secs(120) && waited <= Duration::from_secs(248),
        "the server asked for 120 s; the retry came after {waited:?}"
    );
    s.engine.shutdown().await;
}

const SLEEPY: &str = r#"(
    key: "sleepy", name: "Sleepy", team: "qa", trigger: Manual,
    steps: [
        (id: "nap", action: Delay(duration: "2h")),
        (id: "call", action: Http(method: "POST", url: "http://crm.test/after")),
    ],
)"#;

#[tokio::test(start_paused = true)]
async fn a_delay_step_sleeps_without_a_worker_and_wakes_on_time() {
    let script = Script::new("http://crm.test/after", &[(200, None)]);
    let s = start(SLEEPY, script.clone()).await;
    let run = start_run(&s.engine, "sleepy").await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let waiting = s.store.run(run).await.unwrap().run;
    assert_eq!(waiting.status, RunStatus::Waiting);
    assert_eq!(
        s.store
            .claim_runs("other", 10, chrono::Utc::now(), chrono::Utc::now())
            .await
            .unwrap()
            .len(),
        0,
        "a sleeping run is not due, and holds no lease"
    );
    assert_eq!(
        finished(&s.store, run).await.run.status,
        RunStatus::Succeeded
    );
    let called = script.times("http://crm.test/after")[0] - s.started;
    assert!(
        called >= Duration::from_secs(7200) && called <= Duration::from_secs(7205),
        "the step after a 2h delay ran after {called:?}"
    );
    s.engine.shutdown().await;
}

const ONE_CALL: &str = r#"(
    key: "one", name: "One", team: "qa", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "http://crm.test/one"))],
)"#;

#[tokio::test(start_paused = true)]
async fn a_run_held_by_a_dead_worker_is_taken_over_when_its_lease_expires() {
    let (store, _dir) = open();
    let script = Script::new("http://crm.test/one", &[(200, None)]);
    // A worker that claimed the run and died: its lease runs 45 s from now.
    let clock = TokioClock::new();
    let engine = Engine::start(
        store.clone(),
        EngineConfig {
            clock: Arc::new(clock.clone()),
            ..config(Duration::from_secs(30), Duration::from_secs(1), false)
        },
        Actions::with_http(script.clone()),
    )
    .await
    .unwrap();
    engine.save_draft(ONE_CALL, "test").await.unwrap();
    engine.publish("one", "test").await.unwrap();
    engine.shutdown().await;
    let run = store
        .create_runs(vec![acp::domain::NewRun::live(
            "one",
            1,
            "qa",
            TriggerKind::Manual,
            json!({}),
        )])
        .await
        .unwrap()[0];
    use acp::domain::clock::{Clock, later_or_max};
    // The dead worker read the wall clock, which is ahead of the paused one.
    let lease_until = later_or_max(clock.now(), Duration::from_secs(45));
    let claimed = store
        .claim_runs("dead-worker", 1, chrono::Utc::now(), lease_until)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let started = Instant::now();
    let engine = Engine::start(
        store.clone(),
        EngineConfig {
            clock: Arc::new(clock),
            ..config(Duration::from_secs(30), Duration::from_secs(1), false)
        },
        Actions::with_http(script.clone()),
    )
    .await
    .unwrap();
    let detail = finished(&store, run).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    let taken = script.times("http://crm.test/one")[0] - started;
    assert!(
        taken >= Duration::from_secs(45) && taken <= Duration::from_secs(47),
        "the run was taken over after {taken:?}, not when the lease ran out"
    );
    let kinds: Vec<&str> = store
        .events_since(0, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.run_id == Some(run))
        .map(|e| e.kind().as_str())
        .collect();
    assert_eq!(
        kinds[..3],
        ["run.queued", "run.started", "run.resumed"],
        "the takeover is a resume of a running run"
    );
    engine.shutdown().await;
}
