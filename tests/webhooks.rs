//! Outbound webhooks: signed per Standard Webhooks (checked here with an independent HMAC),
//! delivered in order from a durable outbox, retried while the receiver is down, and every
//! attempt visible through the API.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use acp::wire::{DeliveryView, TriggerKind};
use common::{harness, serve_api, until, wait_final};

const QUICK: &str = r#"(key: "quick", name: "Quick", team: "qa", trigger: Manual,
    steps: [(id: "a", action: Delay(duration: "0s"))])"#;

#[derive(Default)]
struct Receiver {
    up: bool,
    secret: Vec<u8>,
    received: Vec<Value>,
    refused: usize,
}

/// A receiver that checks every signature itself and can be taken down.
async fn receiver(state: Arc<Mutex<Receiver>>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let mut r = state.lock().unwrap();
                if !r.up {
                    r.refused += 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let header = |name: &str| headers[name].to_str().unwrap().to_owned();
                let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&r.secret).unwrap();
                mac.update(format!("{id}.{timestamp}.").as_bytes());
                mac.update(&body);
                let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
                assert_eq!(header("webhook-signature"), expected, "signature of {id}");
                let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
                assert!(age.abs() < 60, "fresh timestamp");
                r.received.push(serde_json::from_slice(&body).unwrap());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Creates a subscription and hands its signing secret to the receiver; answers its id and
/// the secret.
async fn subscribe(api: &common::Api, state: &Arc<Mutex<Receiver>>, body: Value) -> (i64, String) {
    let created: Value = api
        .post("/webhooks", &api.admin)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    state.lock().unwrap().secret = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    (created["id"].as_i64().unwrap(), secret.to_owned())
}

#[tokio::test]
async fn signed_deliveries_survive_a_receiver_outage_in_order() {
    let h = harness(&[QUICK]).await;
    let api = serve_api(&h).await;
    let state = Arc::new(Mutex::new(Receiver {
        up: true,
        ..Default::default()
    }));
    let url = receiver(state.clone()).await;
    let body = json!({"url": url, "events": ["run.succeeded", "run.failed"], "workflow": "quick"});
    let (hook, secret) = subscribe(&api, &state, body).await;

    let start = |n: usize| {
        let engine = h.engine.clone();
        async move {
            engine
                .start_runs(
                    "quick",
                    TriggerKind::Manual,
                    (0..n).map(|i| json!({"i": i})).collect(),
                )
                .await
                .unwrap()
        }
    };
    for id in start(3).await {
        wait_final(&h.store, id).await;
    }
    until("three deliveries", || {
        state.lock().unwrap().received.len() == 3
    })
    .await;

    state.lock().unwrap().up = false;
    let during = start(5).await;
    for id in &during {
        wait_final(&h.store, *id).await;
    }
    until("refused attempts", || state.lock().unwrap().refused >= 3).await;
    assert_eq!(state.lock().unwrap().received.len(), 3);
    state.lock().unwrap().up = true;
    until("every delivery after the outage", || {
        state.lock().unwrap().received.len() == 8
    })
    .await;

    let received = state.lock().unwrap().received.clone();
    let seqs: Vec<i64> = received
        .iter()
        .map(|m| m["data"]["seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "delivered in order: {seqs:?}"
    );
    // Runs started together finish in any order; their messages leave in the log's order.
    let mut runs: Vec<i64> = received[3..]
        .iter()
        .map(|m| m["data"]["run_id"].as_i64().unwrap())
        .collect();
    runs.sort_unstable();
    assert_eq!(runs, during);
    assert!(
        received
            .iter()
            .all(|m| m["type"] == "run.succeeded" && m["data"]["workflow"] == "quick")
    );

    let attempts: Vec<DeliveryView> = api
        .get(&format!("/webhooks/{hook}/deliveries"), &api.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = attempts
        .iter()
        .filter(|a| a.status_code == Some(503))
        .count();
    let ok = attempts
        .iter()
        .filter(|a| a.status_code == Some(204))
        .count();
    assert!(refused >= 3 && ok == 8, "{refused} refused, {ok} delivered");
    assert!(
        attempts
            .iter()
            .all(|a| a.latency_ms >= 0 && a.kind == "run.succeeded")
    );
    let listed: Value = api
        .get("/webhooks", &api.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["pending"], 0);
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );
    assert_eq!(
        api.get("/webhooks", &api.operator)
            .send()
            .await
            .unwrap()
            .status(),
        reqwest::StatusCode::FORBIDDEN
    );
    let bad = api
        .post("/webhooks", &api.admin)
        .json(&json!({"url": "ftp://x", "events": ["run.failed"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let bad = api
        .post("/webhooks", &api.admin)
        .json(&json!({"url": url, "events": ["run.exploded"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
}

/// Hold changes go out like run changes: a subscription to `hold.*` for a workflow gets its
/// pause and its release (and every other kind's prefix is accepted, `alert.*` included).
#[tokio::test]
async fn hold_changes_reach_a_workflow_subscription() {
    let h = harness(&[QUICK]).await;
    let api = serve_api(&h).await;
    let state = Arc::new(Mutex::new(Receiver {
        up: true,
        ..Default::default()
    }));
    let url = receiver(state.clone()).await;
    let body = json!({"url": url, "events": ["hold.*", "alert.*"], "workflow": "quick"});
    subscribe(&api, &state, body).await;
    let refused = api
        .post("/webhooks", &api.admin)
        .json(&json!({"url": url, "events": ["hold.nothing*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let request = serde_json::from_value(json!({"scope": "workflow:quick", "reason": "migration"}));
    let hold = h.engine.create_hold(request.unwrap(), "ops").await.unwrap();
    h.engine.release_hold(hold.id, "ops").await.unwrap();
    until("the pause and the release", || {
        state.lock().unwrap().received.len() == 2
    })
    .await;
    let received = state.lock().unwrap().received.clone();
    assert_eq!(received[0]["type"], "hold.created");
    assert_eq!(received[0]["data"]["data"]["reason"], "migration");
    assert_eq!(received[1]["type"], "hold.released");
    assert_eq!(received[1]["data"]["workflow"], "quick");
}

#[tokio::test]
async fn a_redirecting_receiver_gets_no_delivery_recorded_and_the_attempt_says_where() {
    let h = harness(&[QUICK]).await;
    let api = serve_api(&h).await;
    let finals = Arc::new(Mutex::new(0usize));
    let hits = finals.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(|| async {
                (
                    StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/final")],
                )
            }),
        )
        .route(
            "/final",
            axum::routing::any(move || {
                *hits.lock().unwrap() += 1;
                async { StatusCode::OK }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let state = Arc::new(Mutex::new(Receiver::default()));
    let (hook, _) = subscribe(
        &api,
        &state,
        json!({"url": url, "events": ["run.succeeded"]}),
    )
    .await;
    let ids = h
        .engine
        .start_runs("quick", TriggerKind::Manual, vec![json!({})])
        .await
        .unwrap();
    wait_final(&h.store, ids[0]).await;
    let attempts = || async {
        let list: Vec<DeliveryView> = api
            .json(&format!("/webhooks/{hook}/deliveries"), &api.admin)
            .await;
        list
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while attempts().await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retried attempt");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let list = attempts().await;
    assert!(
        list.iter().all(|a| a.status_code == Some(302)
            && a.error
                .as_deref()
                .is_some_and(|e| e.starts_with("HTTP 302 redirect to /final, not followed"))),
        "{list:?}"
    );
    assert_eq!(
        *finals.lock().unwrap(),
        0,
        "the redirect was never followed"
    );
}
