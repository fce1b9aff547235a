//! Faults found by using ACP as its users and its attackers would, each kept as a test: no
//! input crashes the server, secrets leave in no encoding, bulk calls are explicit, replays do
//! not stampede, outside data has bounds, inbound webhooks are safe to expose, protocol edges.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};

use acp::actions::{Actions, HttpRequest, HttpResponse, HttpSend};
use acp::domain::StepFailure;
use acp::wire::{RunDetail, RunStatus, TriggerKind};
use common::{Reply, harness, harness_custom, serve_api, wait_final};

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: not a JSON body: {text:.200}"));
    (status, value)
}

/// Sends a request and reads its JSON answer.
async fn call(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    json_of(request.send().await.unwrap()).await
}

/// An HTTP implementation whose every call panics, as a bug in a step's code would.
struct Panicking;

#[async_trait]
impl HttpSend for Panicking {
    async fn send(&self, _: HttpRequest) -> Result<HttpResponse, StepFailure> {
        panic!("a bug in the step's code")
    }
}

const CALL: &str = r#"(key: "call", name: "Call", team: "qa", trigger: Manual, steps: [
    (id: "call", action: Http(method: "POST", url: "{world}/call", body: {"n": "{{ trigger.n }}"}),
     retry: (max_attempts: 1)),
])"#;

#[tokio::test]
async fn deep_expressions_huge_windows_and_panicking_steps_never_take_the_server_down() {
    let bomb = r#"(key: "bomb", name: "Bomb", team: "qa", trigger: Manual, steps: [
        (id: "a", action: CreateRecord(object: "o", values: {"x": "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}"})),
    ])"#;
    let h = harness_custom(
        &[CALL, bomb],
        common::config(),
        Actions::with_http(Arc::new(Panicking)),
    )
    .await;
    let api = serve_api(&h).await;

    let chain = vec!["1"; 10_000].join(" + ");
    let source = format!(
        "(key: \"deep\", name: \"Deep\", team: \"qa\", trigger: Manual, steps: [\n    (id: \"a\", when: \"{chain} > 1\", action: Delay(duration: \"1s\")),\n])"
    );
    let (status, body) = call(api.post("/workflows/validate", &api.viewer).body(source)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let problem = &body["error"]["problems"][0];
    assert_eq!(
        (problem["line"].as_u64(), problem["col"].as_u64()),
        (Some(2), Some(22)),
        "{body}"
    );
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("at most 4096 bytes"),
        "{body}"
    );

    for window in ["100000000000d", "36501d", "99999999999999999999s"] {
        let (status, body) = call(api.get(&format!("/health?window={window}"), &api.viewer)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{window}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(window),
            "{body}"
        );
    }
    let (status, _) = call(
        api.post("/alerts/1/silence", &api.admin)
            .json(&json!({"for": "100000000000d"})),
    )
    .await;
    assert!(status.is_client_error(), "{status}");

    let detail = finished(&h, "call", vec![json!({"n": 1})]).await.remove(0);
    let run = detail.run.id;
    assert_eq!(detail.run.status, RunStatus::Failed);
    let error = detail.attempts[0].error.clone().unwrap();
    assert!(!error.retryable, "a panic is permanent: {error:?}");
    assert!(
        error
            .message
            .contains("the step panicked: a bug in the step's code"),
        "{error:?}"
    );
    let (status, dlq) = call(api.get("/dlq", &api.viewer)).await;
    assert_eq!(status, StatusCode::OK, "the server still serves");
    assert_eq!(dlq["items"][0]["run_id"], run, "{dlq}");

    let started = Instant::now();
    let detail = finished(&h, "bomb", vec![json!({})]).await.remove(0);
    assert_eq!(detail.run.status, RunStatus::Failed);
    let error = detail.attempts[0].error.clone().unwrap();
    assert!(error.message.contains("fuel"), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn no_encoding_of_a_secret_is_stored_streamed_or_dead_lettered() {
    let secret = "sk/live+Q7x9==";
    let mut config = common::config();
    config.secrets = Arc::new(move |name| (name == "API_KEY").then(|| secret.to_owned()));
    let flow = r#"(key: "leaky", name: "Leaky", team: "qa", trigger: Manual, steps: [
        (id: "echo", action: Http(method: "GET", url: "{world}/echo?key={{ secret('API_KEY') | urlencode }}",
            headers: {"X-Key": "{{ secret('API_KEY') | tojson }}"})),
        (id: "save", action: CreateRecord(object: "keys", values: {
            "u": "{{ secret('API_KEY') | upper }}", "e": "{{ secret('API_KEY') | urlencode }}",
            "r": "{{ secret('API_KEY') | reverse }}", "s": "{{ secret('API_KEY')[1:] }}",
            "m": "{{ secret('API_KEY') }}-{{ secret('API_KEY') | upper }}",
            "p": "{{ secret('API_KEY') | split('+') | list }}"})),
        (id: "deny", action: Http(method: "POST", url: "{world}/deny", body: {"k": "{{ secret('API_KEY') }}"}),
         retry: (max_attempts: 1)),
    ])"#;
    let unreachable = r#"(key: "unreachable", name: "Unreachable", team: "qa", trigger: Manual, steps: [
        (id: "call", action: Http(method: "GET", url: "http://127.0.0.1:9/?k={{ secret('API_KEY') | reverse }}"),
         retry: (max_attempts: 1)),
    ])"#;
    let h = harness_custom(
        &[flow, unreachable],
        config,
        Actions::new(None, None).unwrap(),
    )
    .await;
    let api = serve_api(&h).await;
    let encoded = "sk/live%2BQ7x9%3D%3D";
    h.world.script(
        "/echo",
        vec![Reply::ok(json!({
            "query": format!("key={encoded}"),
            "basic": format!("Basic {}", base64_of(&format!("ada:{secret}"))),
            "raw": format!("\"{secret}\""),
        }))],
    );
    let mut deny = Reply::status(401);
    deny.body = Value::String(format!("{}{secret} is not a valid key", "e".repeat(190)));
    h.world.script("/deny", vec![deny]);
    let detail = finished(&h, "leaky", vec![json!({})]).await.remove(0);
    let run = detail.run.id;
    assert_eq!(detail.run.status, RunStatus::Failed);
    assert_eq!(
        h.world.hits("/echo")[0].query,
        format!("key={encoded}"),
        "the real value was sent"
    );

    let mut seen = String::new();
    let record = detail.attempts[1].output["record_id"].as_i64().unwrap();
    for path in [
        format!("/runs/{run}"),
        "/events?since=0&limit=1000".to_owned(),
        "/dlq".to_owned(),
        format!("/records/{record}"),
        format!("/records/{record}/history"),
        format!(
            "/runs/{}",
            finished(&h, "unreachable", vec![json!({})]).await[0].run.id
        ),
    ] {
        let (_, body) = call(api.get(&path, &api.viewer)).await;
        seen.push_str(&body.to_string());
    }
    let mut stream = common::stream(&api, "since=0").await;
    seen.push_str(&common::next_frames(&mut stream, 5).await);
    let forms = [
        secret.to_owned(),
        encoded.to_owned(),
        base64_of(secret),
        "sk/live+Q7x".to_owned(),
        "Q7x9".to_owned(),
        "SK/LIVE".to_owned(),
        "==9x7Q".to_owned(),
        "k/live".to_owned(),
        "==9x7Q".to_owned(),
        "Q7x9==".to_owned(),
    ];
    for form in forms {
        assert!(!seen.contains(&form), "`{form}` leaked");
    }
    for file in std::fs::read_dir(h.dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(secret) && !text.contains(encoded),
            "the database files hold it"
        );
    }
    assert!(seen.contains("[redacted]"));
}

/// Starts runs of `key` and waits until each has finished.
async fn finished(h: &common::Harness, key: &str, payloads: Vec<Value>) -> Vec<RunDetail> {
    let runs = h
        .engine
        .start_runs(key, TriggerKind::Manual, payloads)
        .await
        .unwrap();
    let mut details = Vec::new();
    for run in runs {
        details.push(wait_final(&h.store, run).await);
    }
    details
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn bulk_calls_must_be_explicit_and_unknown_fields_are_named() {
    let h = harness(&[CALL]).await;
    let api = serve_api(&h).await;
    h.world.script("/call", vec![Reply::status(422)]);
    finished(&h, "call", vec![json!({"n": 1}), json!({"n": 2})]).await;
    let cases = [
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "all"),
        (
            json!({"filter": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "all",
        ),
        (
            json!({"filter": {"workflw": "call"}}),
            StatusCode::BAD_REQUEST,
            "workflw",
        ),
        (
            json!({"filter": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "object",
        ),
        (
            json!({"all": true, "rate": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rate",
        ),
        (json!({"al": true}), StatusCode::BAD_REQUEST, "`al`"),
        (
            json!({"filter": {"q": ""}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "all",
        ),
        (
            json!({"filter": {"q": "  ", "limit": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "all",
        ),
        (
            json!({"filter": {"status": ""}}),
            StatusCode::BAD_REQUEST,
            "not a status",
        ),
        (
            json!({"filter": {"status": "open"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "all",
        ),
        (
            json!({"filter": {"q": "\u{0}x"}}),
            StatusCode::BAD_REQUEST,
            "control",
        ),
    ];
    for (body, expected, names) in cases {
        let (status, answer) = call(api.post("/dlq/replay", &api.operator).json(&body)).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(names),
            "{answer}"
        );
    }
    for (path, body) in [
        ("/runs", json!({"workflow": "call", "payloda": {}})),
        (
            "/records",
            json!({"object": "x", "values": {}, "idempotency": "k"}),
        ),
        (
            "/tokens",
            json!({"name": "x", "role": "viewer", "expires": "1d"}),
        ),
        ("/dlq/1/discard", json!({"reason": "x", "force": true})),
    ] {
        let (status, answer) = call(api.post(path, &api.admin).json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "unknown_field", "{answer}");
    }
    // A key named twice is refused (serde would act on the last one), nested ones too, and
    // through the optional bodies of the replay calls.
    for (path, body) in [
        (
            "/dlq/replay",
            r#"{"all": true, "dry_run": true, "dry_run": false}"#,
        ),
        (
            "/tokens",
            r#"{"name": "x", "role": "viewer", "role": "admin"}"#,
        ),
        (
            "/dlq/replay",
            r#"{"filter": {"workflow": "a", "workflow": "b"}, "dry_run": true}"#,
        ),
        (
            "/dlq/1/replay",
            r#"{"version": "same", "version": "latest"}"#,
        ),
        (
            "/incidents/1/replay",
            r#"{"dry_run": true, "dry_run": false}"#,
        ),
    ] {
        let request = api
            .post(path, &api.admin)
            .header("content-type", "application/json")
            .body(body);
        let (status, answer) = call(request).await;
        assert!(status.is_client_error(), "{path}: {status} {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("appears twice in one object"),
            "{path}: {answer}"
        );
    }
    for (path, body) in [
        ("/runs/1/rerun", r#"{"paylod": {}}"#),
        ("/runs/1/retry", "not json"),
        ("/alerts/1/ack", r#"{"bogus": 1}"#),
        ("/workflows/call/publish", r#"{"bogus": 1}"#),
    ] {
        let (status, answer) = call(api.post(path, &api.admin).body(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "unexpected_body", "{answer}");
    }
    let long = "x".repeat(2_000);
    for body in [
        json!({"for": "0s"}),
        json!({"until": "9999-12-31T23:59:59Z"}),
        json!({"for": "1h", "reason": long}),
    ] {
        let (status, answer) = call(api.post("/alerts/1/silence", &api.admin).json(&body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    let (status, _) = call(
        api.post("/dlq/1/discard", &api.operator)
            .json(&json!({"reason": long})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let write = |email: &str| json!({"object": "people", "values": {"email": email}, "idempotency_key": "r1"});
    let (status, first) = call(api.post("/records", &api.operator).json(&write("z@z"))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = call(api.post("/records", &api.operator).json(&write("z@z"))).await;
    assert_eq!(
        (status, &again["record"]["id"], &again["duplicate"]),
        (StatusCode::CREATED, &first["record"]["id"], &json!(true))
    );
    let (status, reused) = call(api.post("/records", &api.operator).json(&write("other@z"))).await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        ),
        "{reused}"
    );
    let (status, plan) = call(
        api.post("/dlq/replay", &api.operator)
            .json(&json!({"dry_run": true, "include_permanent": true})),
    )
    .await;
    assert_eq!(
        (status, plan["count"].as_u64()),
        (StatusCode::OK, Some(2)),
        "a dry run may look at everything (these 422s only when asked to)"
    );
    let (status, plan) = call(
        api.post("/dlq/replay", &api.operator)
            .json(&json!({"all": true, "include_permanent": true})),
    )
    .await;
    assert_eq!(
        (status, plan["total"].as_u64()),
        (StatusCode::ACCEPTED, Some(2)),
        "{plan}"
    );
}

/// An API that serves five calls at once and answers 429 with `Retry-After: 2` beyond that,
/// or 503 to everyone while it is down.
#[derive(Clone, Default)]
struct Limited {
    in_flight: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    arrivals: Arc<std::sync::Mutex<Vec<(Instant, u16)>>>,
}

async fn limited_api(limited: Limited) -> String {
    let app = axum::Router::new().fallback(move || {
        let l = limited.clone();
        async move {
            use axum::response::IntoResponse;
            let now = l.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            // Down is a plain 500: a 503 with Retry-After would hold the runs (host
            // backpressure) instead of sending them to the DLQ this test replays.
            let status = if l.down.load(Ordering::SeqCst) {
                500
            } else if now > 5 {
                429
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                200
            };
            l.in_flight.fetch_sub(1, Ordering::SeqCst);
            l.arrivals.lock().unwrap().push((Instant::now(), status));
            let code = axum::http::StatusCode::from_u16(status).unwrap();
            (code, [("retry-after", "2")], "{}").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replay_against_a_limited_api_does_not_stampede() {
    let limited = Limited::default();
    limited.down.store(true, Ordering::SeqCst);
    let url = limited_api(limited.clone()).await;
    let flow = format!(
        r#"(key: "enrich", name: "Enrich", team: "qa", trigger: Manual, steps: [
        (id: "enrich", action: Http(method: "POST", url: "{url}/enrich", body: {{"n": "{{{{ trigger.n }}}}"}}),
         retry: (max_attempts: 3, initial_delay: "10ms", max_delay: "20ms")),
    ])"#
    );
    let mut config = common::config();
    config.workers = 64;
    let h = harness_custom(&[&flow], config, Actions::new(None, None).unwrap()).await;
    let api = serve_api(&h).await;
    finished(&h, "enrich", (0..60).map(|n| json!({"n": n})).collect()).await;
    limited.down.store(false, Ordering::SeqCst);
    limited.arrivals.lock().unwrap().clear();
    let started = Instant::now();
    let (status, plan) = call(
        api.post("/dlq/replay", &api.operator)
            .json(&json!({"all": true})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{plan}");
    assert_eq!(plan["total"], 60);
    let job = format!("/jobs/{}", plan["id"]);
    loop {
        let (_, progress) = call(api.get(&job, &api.viewer)).await;
        if progress["state"] == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page: Value = call(api.get("/runs?limit=500", &api.viewer)).await.1;
    let replayed: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger_kind"] == "replay")
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(replayed.len(), 60);
    let mut failed = 0;
    for run in &replayed {
        failed += usize::from(wait_final(&h.store, *run).await.run.status == RunStatus::Failed);
    }
    let arrivals = limited.arrivals.lock().unwrap().clone();
    let first_calls: Vec<Duration> = arrivals.iter().map(|(at, _)| *at - started).collect();
    let spread = first_calls
        .iter()
        .max()
        .unwrap()
        .saturating_sub(*first_calls.iter().min().unwrap());
    assert!(
        spread >= Duration::from_secs(4),
        "the replay's calls arrive spread out: {spread:?}"
    );
    assert!(
        failed * 20 < replayed.len(),
        "{failed} of 60 went back to the DLQ"
    );
}

#[tokio::test]
async fn outside_data_has_bounds_and_every_error_is_json() {
    let flow = r#"(key: "big", name: "Big", team: "qa", trigger: Webhook(), steps: [
        (id: "fetch", action: Http(method: "GET", url: "{world}/big")),
        (id: "count", action: CreateRecord(object: "counts", values: {"n": "{{ steps.fetch.output.items | length }}"})),
    ])"#;
    let h = harness(&[flow]).await;
    let api = serve_api(&h).await;
    let items: Vec<String> = (0..30_000)
        .map(|i| format!("item number {i:>60}"))
        .collect();
    h.world
        .script("/big", vec![Reply::ok(json!({ "items": items }))]);
    let original = json!({ "items": items }).to_string().len();
    let detail = finished(&h, "big", vec![json!({})]).await.remove(0);
    let run = detail.run.id;
    assert_eq!(
        detail.run.status,
        RunStatus::Succeeded,
        "{:?}",
        detail.attempts
    );
    let fetch = &detail.attempts[0].output;
    assert_eq!(fetch["truncated"], true);
    assert_eq!(fetch["original_bytes"], original);
    assert!(detail.attempts[1].output["record_id"].is_i64());
    let record = h
        .store
        .record(detail.attempts[1].output["record_id"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(
        record.values["n"], 30_000,
        "the next step saw the whole body"
    );
    let response = api
        .get(&format!("/runs/{run}"), &api.viewer)
        .send()
        .await
        .unwrap();
    let bytes = response.bytes().await.unwrap().len();
    assert!(
        bytes < 300 * 1024,
        "GET /runs/{{id}} is {bytes} bytes for a {original}-byte answer"
    );

    let big = vec![b'x'; 100 * 1024];
    for request in [
        api.post("/hooks/big", &api.operator).body(big.clone()),
        api.post("/runs", &api.operator).body(big.clone()),
        api.get("/stream", &api.viewer),
        api.get("/runs?limit=abc", &api.viewer),
    ] {
        let (status, body) = call(request).await;
        assert!(status.is_client_error(), "{status}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
}

fn signed(secret: &str, id: &str, at: i64, body: &str) -> reqwest::header::HeaderMap {
    let signature = acp::domain::standard_webhooks::signature(secret, id, at, body).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", at.to_string().parse().unwrap());
    headers.insert("webhook-signature", signature.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    headers
}

#[tokio::test]
async fn inbound_webhooks_are_replay_safe_authenticated_first_and_audited() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut config = common::config();
    config.secrets = Arc::new(move |name| (name == "HOOK_SECRET").then(|| secret.to_owned()));
    let flows = [
        r#"(key: "signed", name: "Signed", team: "qa", trigger: Webhook(hmac_secret: "HOOK_SECRET"), steps: [(id: "wait", action: Delay(duration: "0s"))])"#,
        r#"(key: "open", name: "Open", team: "qa", trigger: Webhook(), steps: [(id: "wait", action: Delay(duration: "0s"))])"#,
    ];
    let h = harness_custom(&flows, config, Actions::new(None, None).unwrap()).await;
    let api = serve_api(&h).await;
    let hook = |key: &str| format!("{}/hooks/{key}", api.url);
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"lead": "ada@example.com"}"#;

    let send = |url: String, headers: reqwest::header::HeaderMap, body: &'static str| {
        api.http.post(url).headers(headers).body(body).send()
    };
    let (status, first) = json_of(
        send(hook("signed"), signed(secret, "msg_1", now, body), body)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    for _ in 0..3 {
        let (status, again) = json_of(
            send(hook("signed"), signed(secret, "msg_1", now, body), body)
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, &again),
            (StatusCode::ACCEPTED, &first),
            "a captured delivery starts no second run"
        );
    }
    let other = r#"{"lead": "eve@example.com"}"#;
    let (status, reused) = json_of(
        send(hook("signed"), signed(secret, "msg_1", now, other), other)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    let stale = signed(secret, "msg_2", now - 301, body);
    let (status, answer) = json_of(send(hook("signed"), stale, body).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let forged = signed("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_3", now, body);
    let (status, _) = json_of(send(hook("signed"), forged, body).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let old_style = {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-acp-signature", "sha256=00".parse().unwrap());
        headers
    };
    let (status, _) = json_of(send(hook("signed"), old_style, body).await.unwrap()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the body-only signature is gone"
    );

    let (unknown, _) = json_of(
        send(
            hook("no-such-workflow"),
            signed(secret, "m", now, body),
            body,
        )
        .await
        .unwrap(),
    )
    .await;
    let (unsigned, _) = json_of(
        send(hook("no-such-workflow"), Default::default(), body)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (unknown, unsigned),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED),
        "nothing said about existence"
    );

    let lower = api
        .http
        .post(hook("open"))
        .header("authorization", format!("bearer {}", api.operator))
        .header("idempotency-key", "k-1")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, created) = json_of(lower).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let (status, _) = call(
        api.post("/hooks/open", &api.operator)
            .header("idempotency-key", "k-1")
            .body(other),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(api.post("/hooks/open", &api.viewer).body(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let huge = vec![b'x'; 100 * 1024];
    let (status, _) = call(api.http.post(hook("signed")).body(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, audit) = call(api.get("/audit?limit=100", &api.admin)).await;
    let hooks: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap_or_else(|| audit.as_array().unwrap())
        .iter()
        .filter(|e| e["action"] == "hooks.receive")
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("webhook:signed", "ok"),
        ("anonymous", "bad_signature"),
        ("anonymous", "unauthorized"),
        ("oncall", "ok"),
        ("oncall", "idempotency_key_reused"),
        ("watcher", "forbidden"),
        ("anonymous", "too_large"),
    ] {
        assert!(
            hooks
                .iter()
                .any(|(a, o)| a == expected.0 && o == expected.1),
            "{expected:?} missing from {hooks:?}"
        );
    }
}

#[tokio::test]
async fn the_stream_answers_a_close_and_text_search_is_literal() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let h = harness(&[CALL]).await;
    let api = serve_api(&h).await;
    h.world.script("/call", vec![Reply::status(422)]);
    finished(&h, "call", (0..3).map(|n| json!({"n": n})).collect()).await;
    for (q, expected) in [
        ("%25", 0),
        ("_", 0),
        ("1%25", 0),
        ("scripted%20422", 3),
        ("SCRIPTED", 3),
    ] {
        let (_, page) = call(api.get(&format!("/runs?q={q}"), &api.viewer)).await;
        assert_eq!(page["items"].as_array().unwrap().len(), expected, "q={q}");
    }
    for (query, expected) in [
        ("/runs?q=%00x", "control"),
        ("/runs?status=bogus", "not a status"),
        ("/dlq?status=failed", "not a status"),
        ("/runs?mode=dry", "not a mode"),
        ("/runs?workflw=x", "unknown field"),
    ] {
        let (status, body) = call(api.get(query, &api.viewer)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{body}"
        );
    }

    let mut stream = common::stream(&api, "since=0").await;
    stream.next().await.unwrap().unwrap();
    stream.send(Message::Close(None)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(frame)) => return Ok(frame),
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the connection ended without a close frame".to_owned())
    })
    .await
    .expect("the server answers the close");
    assert!(answer.is_ok(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_shows_times_in_the_viewers_zone() {
    let h = harness(&[CALL]).await;
    let api = serve_api(&h).await;
    h.world.script("/call", vec![Reply::ok(json!({}))]);
    let queued = finished(&h, "call", vec![json!({"n": 1})])
        .await
        .remove(0)
        .run
        .queued_at;
    let server = api.url.trim_end_matches("/api/v1").to_owned();
    let list = |tz: &str, extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
            .args(["runs", "list", "--server", &server, "--token", &api.viewer])
            .args(extra)
            .env("TZ", tz)
            .env_remove("ACP_UTC")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let berlin = queued.with_timezone(&chrono_tz::Europe::Berlin);
    let shown = list("Europe/Berlin", &[]);
    assert!(
        shown.contains(&berlin.format("%m-%d %H:%M:%S %:z").to_string()),
        "{shown}"
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
        .args(["serve", "--lease", "0s", "--db"])
        .arg(h.dir.path().join("other.db"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("shortest lease"),
        "{refused:?}"
    );
    for (flag, value) in [("--keep-runs", "0s"), ("--keep-events", "30s")] {
        let refused = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
            .args(["serve", flag, value, "--db"])
            .arg(h.dir.path().join("other.db"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && said.contains(flag) && said.contains("shortest retention"),
            "{refused:?}"
        );
    }
    let utc = list("Europe/Berlin", &["--utc"]);
    assert!(
        utc.contains(&queued.format("%m-%d %H:%M:%SZ").to_string()),
        "{utc}"
    );
    let json = list("Europe/Berlin", &["--json"]);
    let page: Value = serde_json::from_str(&json).unwrap();
    let at: chrono::DateTime<chrono::FixedOffset> = page["items"][0]["queued_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(at, queued, "JSON keeps RFC 3339 with its offset");
}
