//! Crash safety: an engine dropped mid-run, a new engine on the same file, every run finishes
//! exactly once and no idempotency key's effect happens twice.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use acp::store::Store;
use acp::wire::{AttemptStatus, EventKind, RunQuery, RunStatus, TriggerKind};
use common::{Reply, World, start_engine, wait_final};

const SLOW: &str = r#"(
    key: "slow", name: "Slow", team: "qa", trigger: Manual,
    steps: [
        (id: "charge", action: Http(method: "POST", url: "{world}/charge", body: {"n": "{{ trigger.n }}"}), timeout: "5s"),
        (id: "receipt", action: Http(method: "POST", url: "{world}/receipt")),
    ],
)"#;

const RUNS: i64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_interrupted_by_a_crash_complete_exactly_once_after_restart() {
    let world = World::start().await;
    world.script(
        "/charge",
        vec![Reply::ok(json!({"charged": true})).after(Duration::from_millis(600))],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("acp.db");

    // The first engine runs on its own runtime, which is torn down mid-run: no shutdown, no
    // lease release, attempts in flight; as if the process had been killed.
    let (db_a, source) = (db.clone(), SLOW.replace("{world}", &world.url));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store =
                acp::store::open(&format!("sqlite://{}?durability=full", db_a.display())).unwrap();
            let engine = start_engine(store.clone()).await;
            engine.save_draft(&source, "test").await.unwrap();
            engine.publish("slow", "test").await.unwrap();
            let payloads = (0..RUNS).map(|n| json!({"n": n})).collect();
            engine
                .start_runs("slow", TriggerKind::Manual, payloads)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(900)).await;
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();
    let charged_before = world.hits("/charge").len();
    assert!(
        charged_before > 0 && charged_before < RUNS as usize,
        "the crash came mid-run ({charged_before} charges)"
    );

    let store = acp::store::open(&format!("sqlite://{}?durability=full", db.display())).unwrap();
    let engine = start_engine(store.clone()).await;
    let runs = store
        .runs(&RunQuery {
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(runs.len(), RUNS as usize);
    for run in &runs {
        assert_eq!(
            wait_final(&store, run.id).await.run.status,
            RunStatus::Succeeded
        );
    }

    let events = store.events_since(0, 100_000).await.unwrap();
    let mut finished: BTreeMap<i64, usize> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind() == EventKind::RunSucceeded)
    {
        *finished.entry(e.run_id.unwrap()).or_default() += 1;
    }
    assert_eq!(finished.len(), RUNS as usize);
    assert!(
        finished.values().all(|n| *n == 1),
        "every run finished exactly once: {finished:?}"
    );

    let mut abandoned = 0;
    for run in &runs {
        let detail = store.run(run.id).await.unwrap();
        let keys: std::collections::BTreeSet<_> = detail
            .attempts
            .iter()
            .filter(|a| a.step_id == "charge")
            .map(|a| a.idempotency_key.clone())
            .collect();
        assert_eq!(keys.len(), 1, "run {} used one key for its charge", run.id);
        abandoned += detail
            .attempts
            .iter()
            .filter(|a| a.status == AttemptStatus::Abandoned)
            .count();
    }
    assert!(abandoned > 0, "some attempts were in flight at the crash");
    let charge_keys: std::collections::BTreeSet<_> = world
        .hits("/charge")
        .into_iter()
        .filter_map(|h| h.key)
        .collect();
    assert_eq!(charge_keys.len(), RUNS as usize, "one charge key per run");
    assert!(
        world.hits("/charge").len() > RUNS as usize,
        "some charges were sent twice..."
    );
    let applied = world
        .applied_keys()
        .into_iter()
        .filter(|k| k.ends_with(":charge"))
        .count();
    assert_eq!(
        applied, RUNS as usize,
        "...and applied once each, thanks to the key"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_clean_shutdown_releases_runs_for_an_immediate_restart() {
    let world = World::start().await;
    world.script(
        "/charge",
        vec![Reply::ok(json!({})).after(Duration::from_millis(300))],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("acp.db");
    let store = acp::store::open(&format!("sqlite://{}?durability=normal", db.display())).unwrap();
    let engine = start_engine(store.clone()).await;
    engine
        .save_draft(&SLOW.replace("{world}", &world.url), "test")
        .await
        .unwrap();
    engine.publish("slow", "test").await.unwrap();
    let ids = engine
        .start_runs(
            "slow",
            TriggerKind::Manual,
            (0..RUNS).map(|n| json!({"n": n})).collect(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    engine.shutdown().await;
    let statuses: Vec<RunStatus> = futures_statuses(&store, &ids).await;
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, RunStatus::Queued | RunStatus::Succeeded)),
        "{statuses:?}"
    );
    store.close();

    let store = acp::store::open(&format!("sqlite://{}?durability=normal", db.display())).unwrap();
    let started = std::time::Instant::now();
    let engine = start_engine(store.clone()).await;
    for id in ids {
        assert_eq!(
            wait_final(&store, id).await.run.status,
            RunStatus::Succeeded
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "released runs do not wait for a lease to expire"
    );
    let abandoned = store
        .run(1)
        .await
        .unwrap()
        .attempts
        .iter()
        .filter(|a| a.status == AttemptStatus::Abandoned)
        .count();
    assert_eq!(abandoned, 0);
    engine.shutdown().await;
}

async fn futures_statuses(store: &Arc<dyn Store>, ids: &[i64]) -> Vec<RunStatus> {
    let mut out = Vec::new();
    for id in ids {
        out.push(store.run(*id).await.unwrap().run.status);
    }
    out
}
