//! `kill -9` the real `acp serve` under load, restart it on the same database, and check
//! through the API that every accepted run finished exactly once and that each idempotency
//! key's effect reached the outside world once.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use acp::wire::{Event, EventKind, Page, RunStatus, RunView};
use common::{Reply, World};

const TOKEN: &str = "acp_crash_test_admin";
const RUNS: usize = 30;

const PAY: &str = r#"(
    key: "pay", name: "Pay", team: "billing", trigger: Manual,
    steps: [
        (id: "charge", action: Http(method: "POST", url: "{world}/charge", body: {"n": "{{ trigger.n }}"}), timeout: "10s"),
        (id: "receipt", action: Http(method: "POST", url: "{world}/receipt")),
    ],
)"#;

/// Starts `acp serve` and answers the process and its API base URL.
fn serve(db: &std::path::Path, workflows: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            // Far longer than the test waits: a restarted server must resume abandoned runs
            // at once, not when their lease runs out.
            "--lease",
            "120s",
            "--durability",
            "full",
            "--workers",
            "4",
        ])
        .arg("--db")
        .arg(db)
        .arg("--workflows")
        .arg(workflows)
        .env("ACP_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("acp serve exited").unwrap();
        if let Some(at) = line.find("serving http://") {
            let rest = &line[at + "serving ".len()..];
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(';')
                .to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_and_repeats_no_effect() {
    let world = World::start().await;
    world.script(
        "/charge",
        vec![Reply::ok(json!({"charged": true})).after(Duration::from_millis(400))],
    );
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("workflows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(flows.join("pay.ron"), PAY.replace("{world}", &world.url)).unwrap();
    let db = dir.path().join("acp.db");
    let http = reqwest::Client::new();

    let (mut first, url) = serve(&db, &flows);
    let mut accepted = Vec::new();
    for n in 0..RUNS {
        let response = http
            .post(format!("{url}/runs"))
            .bearer_auth(TOKEN)
            .json(&json!({"workflow": "pay", "payload": {"n": n}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        accepted.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_i64()
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let charged = world.hits("/charge").len();
    let receipts = world.hits("/receipt").len();
    assert!(
        charged > 0 && receipts < RUNS,
        "killed mid-load ({charged} charges, {receipts} receipts)"
    );

    let (mut second, url) = serve(&db, &flows);
    let alias = dir.path().join("alias.db");
    std::os::unix::fs::symlink(&db, &alias).unwrap();
    for path in [&db, &alias] {
        let refused = Command::new(env!("CARGO_BIN_EXE_acp"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "a second server on the same file is refused"
        );
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("another `acp serve` is using"), "{said}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page: Page<RunView> = http
            .get(format!("{url}/runs?limit=500"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page.items.len(), RUNS, "every accepted run is still there");
        if page.items.iter().all(|r| r.status == RunStatus::Succeeded) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs did not finish: {:?}",
            page.items.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events: Vec<Event> = http
        .get(format!("{url}/events?since=0&limit=10000"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut finished: BTreeMap<i64, usize> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind() == EventKind::RunSucceeded)
    {
        *finished.entry(e.run_id.unwrap()).or_default() += 1;
    }
    assert_eq!(finished.keys().copied().collect::<Vec<_>>(), accepted);
    assert!(
        finished.values().all(|n| *n == 1),
        "each run finished once: {finished:?}"
    );
    for path in ["/charge", "/receipt"] {
        let keys: std::collections::BTreeSet<String> =
            world.hits(path).into_iter().filter_map(|h| h.key).collect();
        assert_eq!(keys.len(), RUNS, "{path}: one key per run");
    }
    assert!(
        world.hits("/charge").len() > RUNS,
        "some charges were sent twice after the crash..."
    );
    let applied = world
        .applied_keys()
        .into_iter()
        .filter(|k| k.ends_with(":charge"))
        .count();
    assert_eq!(applied, RUNS, "...and their effect applied once each");
    second.kill().unwrap();
    second.wait().unwrap();
}
