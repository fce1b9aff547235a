//! Smoke test of the real binaries in a real terminal: `acp serve` on a free port, `acp console`
//! in a tmux session (`.ci/run` installs tmux where it is missing), keys sent with
//! `tmux send-keys`, the screen read with `tmux capture-pane`.

#![cfg(all(feature = "console", feature = "server"))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "acp_tmux_smoke_test_token";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmux server of our own (its own socket), killed at the end.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` in a 120x35 session named `console`.
    fn start(&self, command: &str) {
        self.start_sized(command, 120, 35);
    }

    /// Runs `command` in a `width` x `height` session named `console`.
    fn start_sized(&self, command: &str, width: u16, height: u16) {
        let (width, height) = (width.to_string(), height.to_string());
        self.run(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            &width,
            "-y",
            &height,
            command,
        ]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "console"])
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "console", key]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{what} never showed:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn quits(&self) {
        self.keys(&["q"]);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.run(&["list-sessions"]).is_empty() {
            assert!(
                Instant::now() < deadline,
                "q did not quit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("`{text}`"), |screen| screen.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

fn start_server(dir: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--workflows"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/workflows"))
        .arg("--db")
        .arg(dir.join("acp.db"))
        .env("ACP_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(at) = line.find("ACP serving ") {
            let rest = &line[at + "ACP serving ".len()..];
            url = Some(rest.split("/api/v1").next().unwrap().to_owned());
            break;
        }
    }
    (Server(child), url.expect("the server printed its address"))
}

#[test]
fn the_console_shows_live_runs_and_moves_between_views() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(dir.path());
    post(
        &url,
        "/api/v1/records",
        r#"{"object": "deals", "values": {"name": "Acme", "amount": 90000}}"#,
    );

    let tmux = Tmux(format!("acp-smoke-{}", std::process::id()));
    let command = format!(
        "env ACP_TOKEN={TOKEN} NO_COLOR= {} console --server {url} --theme ansi16",
        env!("CARGO_BIN_EXE_acp")
    );
    tmux.start(&command);
    let screen = tmux.wait_for("● live");
    assert!(screen.contains("admin (admin)"), "{screen}");
    tmux.wait_for("big_deal_alert@1");

    // A run created while the console is open appears without a keypress.
    post(
        &url,
        "/api/v1/records",
        r#"{"object": "deals", "values": {"name": "Globex", "amount": 75000}}"#,
    );
    tmux.wait_for("Runs 2/2");

    tmux.keys(&["2"]);
    let dlq = tmux.wait_for("Dead letters");
    assert!(dlq.contains("template error in step `post`"), "{dlq}");
    tmux.keys(&["?"]);
    let help = tmux.wait_for("Keys: dlq");
    assert!(help.contains("replay marked"), "{help}");
    tmux.keys(&["x", ":", "a", "l", "e", "r", "t", "s", "Enter"]);
    tmux.wait_for(" Alerts ");
    tmux.quits();
}

/// The on-call path at 80x24 without colour: the alert, its failed runs, the failing step's
/// error and input, the fix, and a replay through its preview.
#[test]
fn the_demo_triage_works_at_80x24_without_colour() {
    let tmux = Tmux(format!("acp-demo-{}", std::process::id()));
    let command = format!(
        "env -u ACP_ADMIN_TOKEN NO_COLOR=1 {} demo --speed 10",
        env!("CARGO_BIN_EXE_acp")
    );
    tmux.start_sized(&command, 80, 24);
    tmux.wait_for("● live");
    tmux.wait_for("lead_routing@1");
    tmux.wait_for(":incident");
    let firing = tmux.wait_until("a firing alert in the header", |screen| {
        screen
            .lines()
            .next()
            .is_some_and(|header| header.contains("alerts ") && !header.contains("alerts 0"))
    });
    assert!(firing.contains("failed"), "{firing}");
    tmux.keys(&[":", "i", "n", "c", "i", "d", "e", "n", "t", "Enter"]);
    let incident = tmux.wait_for("The demo's incident");
    assert!(
        incident.contains("scroll"),
        "the message scrolls: {incident}"
    );
    tmux.keys(&["x", "4"]);
    let alerts = tmux.wait_for("top error:");
    assert!(alerts.contains("runs failed"), "what Slack says: {alerts}");
    tmux.keys(&["Enter"]);
    let runs = tmux.wait_for("status:failed");
    assert!(
        runs.contains("c clears"),
        "the filter shows with its key: {runs}"
    );
    tmux.wait_for("✗ failed");
    tmux.keys(&["Enter"]);
    let inspector = tmux.wait_for(" error:");
    assert!(inspector.contains("queued 20"), "a full date: {inspector}");
    tmux.keys(&["z"]);
    let zoomed = tmux.wait_for("input");
    assert!(
        zoomed.contains("error"),
        "error and input together: {zoomed}"
    );
    tmux.keys(&["Escape", "Escape"]);
    tmux.keys(&[":", "f", "i", "x", "Enter"]);
    tmux.wait_for("the enrichment API is healthy again");
    tmux.keys(&["2"]);
    tmux.wait_for("Dead letters");
    tmux.keys(&["A"]);
    let preview = tmux.wait_for("the entries, by error:");
    assert!(
        preview.contains("y: replay") || preview.contains("nothing to replay"),
        "the action line shows at 80x24: {preview}"
    );
    tmux.keys(&["y"]);
    tmux.wait_for("replay");
    tmux.keys(&["4"]);
    tmux.wait_for("failure_rate");
    tmux.quits();
}

/// A console started against nothing never looks like all-clear, and a wrong token says so.
#[test]
fn a_dead_server_and_a_wrong_token_never_look_like_all_clear() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmux = Tmux(format!("acp-dead-{}", std::process::id()));
    let command = format!(
        "env ACP_TOKEN={TOKEN} NO_COLOR=1 {} console --server http://127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_acp")
    );
    tmux.start_sized(&command, 80, 24);
    let screen = tmux.wait_for("cannot reach");
    let header = screen.lines().next().unwrap_or("");
    assert!(
        header.contains("failed ?") && header.contains("dlq ?"),
        "{screen}"
    );
    assert!(!screen.contains("loading runs"), "{screen}");
    tmux.quits();

    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(dir.path());
    let command = format!(
        "env ACP_TOKEN=acp_wrong_token NO_COLOR=1 {} console --server {url}",
        env!("CARGO_BIN_EXE_acp")
    );
    tmux.start_sized(&command, 80, 24);
    let screen = tmux.wait_for("token rejected");
    assert!(screen.contains("failed ?"), "{screen}");
    std::thread::sleep(Duration::from_secs(3));
    let later = tmux.screen();
    assert!(
        later.contains("token rejected") && !later.contains("reconnecting"),
        "no retrying with a rejected token: {later}"
    );
    tmux.quits();
}

/// POSTs JSON with the admin token (the test itself runs outside an async runtime).
fn post(base: &str, path: &str, body: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    });
}
