//! The console's state machine against a real server, without a terminal: it loads over REST,
//! follows the stream, replays dead letters through its own keys and preview, and resumes the
//! stream after the server goes away and comes back, with no gap and no duplicate.

#![cfg(feature = "console")]

mod common;

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use tokio::sync::mpsc;

use acp::console::client::Client;
use acp::console::msg::Msg;
use acp::console::state::{App, Conn, Load, Overlay, View};
use acp::console::{keymap, perform, update};
use acp::wire::{RunStatus, StreamMessage, TriggerKind};
use common::{Api, Harness, Reply, harness, serve_api, serve_api_on, wait_final};

const FLAKY: &str = r#"(key: "flaky", name: "Flaky", team: "revops", trigger: Manual,
    steps: [(id: "call", action: Http(method: "POST", url: "{world}/call"), retry: (max_attempts: 1))])"#;

struct Console {
    app: App,
    client: Client,
    rx: mpsc::UnboundedReceiver<Msg>,
    streaming: bool,
    /// Every event sequence number the stream delivered, in order.
    seqs: Vec<i64>,
}

impl Console {
    fn new(api: &Api, token: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let server = api.url.trim_end_matches("/api/v1").to_owned();
        let client = Client::new(&server, token.to_owned(), tx);
        let app = App::new(server, keymap::load("default", None).unwrap(), false);
        let mut console = Self {
            app,
            client,
            rx,
            streaming: false,
            seqs: Vec::new(),
        };
        console.perform(update::start());
        console
    }

    fn perform(&mut self, effects: Vec<acp::console::msg::Effect>) {
        perform(&self.client, effects, &mut self.streaming, &mut Vec::new());
    }

    fn apply(&mut self, msg: Msg) {
        if let Msg::Stream(message) = &msg {
            for message in message.clone().flatten() {
                if let StreamMessage::Event(event) = message {
                    self.seqs.push(event.seq);
                }
            }
        }
        let effects = update::update(&mut self.app, msg);
        update::settle(&mut self.app);
        self.perform(effects);
    }

    /// Runs the loop (ticking when idle) until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(&self.app) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.app.toast
            );
            match tokio::time::timeout(Duration::from_millis(100), self.rx.recv()).await {
                Ok(Some(msg)) => self.apply(msg),
                Ok(None) => panic!("the client stopped"),
                Err(_) => self.apply(Msg::Tick),
            }
        }
    }

    fn keys(&mut self, text: &str) {
        for word in text.split(' ') {
            let code = match word {
                "<space>" => KeyCode::Char(' '),
                "<enter>" => KeyCode::Enter,
                _ => KeyCode::Char(word.chars().next().unwrap()),
            };
            self.apply(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        }
    }
}

async fn fail(h: &Harness, n: usize) {
    let payloads = (0..n).map(|i| json!({"i": i})).collect();
    for id in h
        .engine
        .start_runs("flaky", TriggerKind::Manual, payloads)
        .await
        .unwrap()
    {
        wait_final(&h.store, id).await;
    }
}

fn failed(app: &App) -> usize {
    app.runs
        .rows
        .values()
        .filter(|r| r.status == RunStatus::Failed)
        .count()
}

#[tokio::test]
async fn triage_from_the_console_replays_the_dlq_through_the_preview() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/call", vec![Reply::status(503)]);
    let api = serve_api(&h).await;
    let mut console = Console::new(&api, &api.operator);
    console
        .until("connected and loaded", |a| {
            a.conn == Conn::Live && a.runs.loaded
        })
        .await;
    fail(&h, 3).await;
    console
        .until("three failed runs from the stream", |a| failed(a) == 3)
        .await;
    console
        .until("three dead letters", |a| {
            a.dlq.entries.get().is_some_and(|e| e.len() == 3)
        })
        .await;

    h.world
        .script("/call", vec![Reply::ok(json!({"ok": true}))]);
    console.keys("2 <space> <space> <space>");
    assert_eq!(console.app.view, View::Dlq);
    assert_eq!(console.app.dlq.marked.len(), 3);
    console.keys("p");
    console
        .until("the dry run", |a| {
            matches!(
                &a.overlay,
                Overlay::Preview {
                    plan: Load::Loaded(_),
                    ..
                }
            )
        })
        .await;
    let Overlay::Preview {
        plan: Load::Loaded(plan),
        ..
    } = &console.app.overlay
    else {
        unreachable!()
    };
    assert_eq!(
        (plan.count, plan.workflows.clone()),
        (3, vec!["flaky".to_owned()])
    );
    assert!(
        plan.external_steps.iter().all(|s| s.idempotency_key),
        "{plan:?}"
    );
    assert_eq!(
        h.store.dlq(&Default::default()).await.unwrap().items.len(),
        3,
        "a preview changes nothing"
    );
    console.keys("y");
    console
        .until("the replay job", |a| {
            a.toast
                .as_ref()
                .is_some_and(|t| t.0.starts_with("replay job 1 started: 3 runs at 10/s"))
        })
        .await;
    console
        .until("the job to start every run", |a| {
            a.job
                .as_ref()
                .is_some_and(|j| j.started == 3 && j.is_over())
        })
        .await;
    console
        .until("an empty DLQ and three successes", |a| {
            a.dlq.entries.get().is_some_and(|e| e.is_empty())
                && a.runs
                    .rows
                    .values()
                    .filter(|r| r.status == RunStatus::Succeeded)
                    .count()
                    == 3
        })
        .await;
    let audit = h.store.audit_log(None, 10).await.unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "dlq.replay_matching" && e.actor == "oncall"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn the_stream_resumes_after_the_server_comes_back_with_no_gap() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/call", vec![Reply::ok(json!({}))]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let api = serve_api_on(&h, listener).await;
    let mut console = Console::new(&api, &api.viewer);
    console
        .until("live", |a| a.conn == Conn::Live && a.runs.loaded)
        .await;
    let start = console.app.me.get().unwrap().seq;
    fail(&h, 5).await;
    console.until("five runs", |a| a.runs.rows.len() == 5).await;

    api.shutdown.cancel();
    console
        .until("the drop noticed", |a| {
            matches!(a.conn, Conn::Reconnecting { .. })
        })
        .await;
    fail(&h, 7).await;
    let again = tokio::net::TcpListener::bind(address).await.unwrap();
    let _api = serve_api_on(&h, again).await;
    console
        .until("twelve runs after reconnecting", |a| {
            a.conn == Conn::Live
                && a.runs.rows.len() == 12
                && a.runs.rows.values().all(|r| r.status.is_final())
        })
        .await;
    let newest = h.store.newest_seq().await.unwrap();
    while console.seqs.last() != Some(&newest) {
        let msg = tokio::time::timeout(Duration::from_secs(10), console.rx.recv())
            .await
            .unwrap()
            .unwrap();
        console.apply(msg);
    }
    let expected: Vec<i64> = (start + 1..=newest).collect();
    assert_eq!(
        console.seqs, expected,
        "no gap, no duplicate across the outage"
    );
}
