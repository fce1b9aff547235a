//! The REST API end to end: a real server on 127.0.0.1:0, driven with reqwest.

mod common;

use reqwest::StatusCode;
use serde_json::{Value, json};

use acp::wire::{Page, RunView};
use common::{Reply, harness, serve_api, wait_final};

const FLAKY: &str = r#"(
    key: "flaky", name: "Flaky", team: "qa", trigger: Manual,
    steps: [
        (id: "first", action: Http(method: "POST", url: "{world}/first")),
        (id: "second", action: Http(method: "POST", url: "{world}/second"), retry: (max_attempts: 1)),
    ],
)"#;

async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_mutating_endpoint_checks_the_role() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/second", vec![Reply::status(500)]);
    let api = serve_api(&h).await;
    let failed = h
        .engine
        .start_runs("flaky", acp::wire::TriggerKind::Manual, vec![json!({})])
        .await
        .unwrap()[0];
    wait_final(&h.store, failed).await;
    let source = FLAKY.replace("{world}", &h.world.url);
    // (method, path, body, least role) for every mutating endpoint.
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "POST",
            "/runs".into(),
            Some(json!({"workflow": "flaky"})),
            "operator",
        ),
        ("POST", format!("/runs/{failed}/rerun"), None, "operator"),
        ("POST", format!("/runs/{failed}/cancel"), None, "operator"),
        (
            "POST",
            "/dlq/replay".into(),
            Some(json!({"dry_run": true})),
            "operator",
        ),
        (
            "POST",
            "/dlq/1/discard".into(),
            Some(json!({"reason": "test"})),
            "operator",
        ),
        (
            "POST",
            "/records".into(),
            Some(json!({"object": "people", "values": {"a": 1}})),
            "operator",
        ),
        (
            "PATCH",
            "/records/1".into(),
            Some(json!({"values": {"a": 2}})),
            "operator",
        ),
        ("PUT", "/workflows/flaky/draft".into(), None, "admin"),
        ("POST", "/workflows/flaky/publish".into(), None, "admin"),
        (
            "POST",
            "/workflows/flaky/rollback".into(),
            Some(json!({"version": 1})),
            "admin",
        ),
        (
            "POST",
            "/tokens".into(),
            Some(json!({"name": "ci", "role": "viewer"})),
            "admin",
        ),
        ("DELETE", "/tokens/99".into(), None, "admin"),
        (
            "POST",
            "/webhooks".into(),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["run.failed"]})),
            "admin",
        ),
        ("DELETE", "/webhooks/99".into(), None, "admin"),
    ];
    for (method, path, body, least) in &cases {
        let send = |token: Option<&str>| {
            let mut request = api
                .http
                .request(method.parse().unwrap(), format!("{}{path}", api.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            match (body, *path == "/workflows/flaky/draft") {
                (_, true) => request.body(source.clone()),
                (Some(body), _) => request.json(body),
                (None, _) => request,
            }
        };
        let expect = |role: &str| -> bool {
            let rank = |r: &str| {
                ["viewer", "operator", "admin"]
                    .iter()
                    .position(|x| *x == r)
                    .unwrap()
            };
            rank(role) >= rank(least)
        };
        assert_eq!(
            send(None).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        assert_eq!(
            send(Some("acp_nope")).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} bad token"
        );
        for (role, token) in [
            ("viewer", &api.viewer),
            ("operator", &api.operator),
            ("admin", &api.admin),
        ] {
            let (status, body) = json(send(Some(token)).send().await.unwrap()).await;
            if expect(role) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{method} {path} as {role}: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {role}: {body}"
                );
                assert_eq!(body["error"]["code"], "forbidden");
            }
        }
    }
    let audit: Page<acp::wire::AuditEntry> = api
        .get("/audit?limit=500", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = audit
        .items
        .iter()
        .filter(|e| e.outcome == "forbidden")
        .count();
    assert!(
        refused >= cases.len(),
        "refusals are audited too ({refused})"
    );
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "run.rerun" && e.actor == "oncall" && e.outcome == "ok")
    );
}

#[tokio::test]
async fn bad_input_gets_the_documented_status_and_code() {
    let h = harness(&[FLAKY]).await;
    let api = serve_api(&h).await;
    let t = &api.admin;
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            api.post("/records", t)
                .header("content-type", "application/json")
                .body("{\"object\":"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            api.post("/records", t)
                .json(&json!({"object": "people", "values": 7})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            api.post("/records", t)
                .json(&json!(["people", {"name": "Ada"}])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        // Calls whose body is optional read it the same way.
        (
            api.post("/runs/12345/cancel", t)
                .json(&json!(["array reason"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            api.post("/dlq/12345/replay", t)
                .json(&json!({"version": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            api.post("/records", t).body("x=1"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            api.post("/records", t)
                .json(&json!({"object": "people", "values": {"blob": "x".repeat(100_000)}})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            api.post("/runs", t).json(&json!({"workflow": "nope"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            api.get("/runs?cursor=abc", t),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            api.get("/runs?limit=minus", t),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            api.get("/runs/12345", t),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            api.get("/runs/abc", t),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (api.get("/nowhere", t), StatusCode::NOT_FOUND, "not_found"),
        (
            api.http.delete(format!("{}/runs", api.url)).bearer_auth(t),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            api.post("/dlq/1/discard", t).json(&json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
        ),
        (
            api.post("/workflows/flaky/publish", t),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            api.post("/workflows/flaky/rollback", t)
                .json(&json!({"version": 9})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            api.http
                .put(format!("{}/workflows/other/draft", api.url))
                .bearer_auth(t)
                .body(FLAKY.to_owned()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key_mismatch",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = json(request.send().await.unwrap()).await;
        assert_eq!(
            (got, body["error"]["code"].as_str().unwrap_or_default()),
            (status, code),
            "{body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }

    let broken = "(\n    key: \"flaky\",\n    name: \"x\",\n    team: \"t\",\n    trigger: Manual,\n    steps: [(id: \"a\", action: Delay(duration: \"soon\"))],\n)";
    let (status, body) = json(
        api.http
            .put(format!("{}/workflows/flaky/draft", api.url))
            .bearer_auth(t)
            .body(broken)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_workflow"))
    );
    assert_eq!(body["error"]["problems"][0]["line"], 6);
    assert_eq!(body["error"]["problems"][0]["col"], 37);
    let (status, _) = json(
        api.post("/workflows/validate", t)
            .body(broken)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let versions: Vec<Value> = api
        .get("/workflows/flaky/versions", t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions.len(), 1, "nothing stored was lost");
    let (_, body) = json(api.get("/runs/abc", t).send().await.unwrap()).await;
    assert_eq!(
        body["error"]["message"],
        "`abc` in the path is not valid: expected a whole number"
    );
}

#[tokio::test]
async fn runs_are_listed_with_filters_and_keyset_pages_and_the_dlq_replays_through_the_api() {
    let h = harness(&[FLAKY]).await;
    h.world.script("/second", vec![Reply::status(422)]);
    let api = serve_api(&h).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (status, body) = json(
            api.post("/runs", &api.operator)
                .json(&json!({"workflow": "flaky", "payload": {"n": n}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(body["id"].as_i64().unwrap());
    }
    for id in &ids {
        wait_final(&h.store, *id).await;
    }
    let page: Page<RunView> = api
        .get("/runs?status=failed&limit=2", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[4], ids[3]]
    );
    let cursor = page.next_cursor.unwrap();
    let next: Page<RunView> = api
        .get(
            &format!("/runs?status=failed&limit=2&cursor={cursor}"),
            &api.viewer,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        next.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let none: Page<RunView> = api
        .get("/runs?q=nothing-like-this", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let by_error: Page<RunView> = api
        .get("/runs?q=HTTP%20422&team=qa", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_error.items.len(), 5);

    // The entries failed permanently (422) and would run the same version: held back.
    let held: Value = api
        .post("/dlq/replay", &api.operator)
        .json(&json!({"dry_run": true, "filter": {"workflow": "flaky"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (held["count"].clone(), held["held_back"].clone()),
        (json!(0), json!(5))
    );
    assert_eq!(held["groups"].as_array().unwrap().len(), 1, "{held}");
    let group = &held["groups"][0];
    assert_eq!(
        (
            group["class"].clone(),
            group["count"].clone(),
            group["replayed"].clone()
        ),
        (json!("permanent"), json!(5), json!(false))
    );
    assert!(
        group["signature"].as_str().unwrap().starts_with("HTTP 422"),
        "{group}"
    );
    let plan: Value = api
        .post("/dlq/replay", &api.operator)
        .json(&json!({"dry_run": true, "filter": {"workflow": "flaky"}, "include_permanent": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["count"], 5);
    assert_eq!(plan["groups"][0]["replayed"], true);
    assert_eq!(plan["runs"], json!([]));
    assert_eq!(
        plan["external_steps"],
        json!([{"workflow": "flaky", "version": 1, "step_id": "second", "kind": "http", "idempotency_key": true, "runs": 5}])
    );
    h.world.script("/second", vec![Reply::ok(json!({}))]);
    let (status, done) = json(
        api.post("/dlq/replay", &api.operator)
            .json(&json!({"filter": {"workflow": "flaky"}, "include_permanent": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{done}");
    assert_eq!(
        (done["total"].clone(), done["state"].clone()),
        (json!(5), json!("running"))
    );
    let path = format!("/jobs/{}", done["id"]);
    let job = loop {
        let job: Value = api.json(&path, &api.viewer).await;
        if job["succeeded"] == 5 {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (
            job["started"].clone(),
            job["failed"].clone(),
            job["state"].clone()
        ),
        (json!(5), json!(0), json!("finished"))
    );
    let runs: Page<RunView> = api
        .json("/runs?status=succeeded&limit=500", &api.viewer)
        .await;
    let replayed: Vec<&RunView> = runs
        .items
        .iter()
        .filter(|r| r.trigger_kind == acp::wire::TriggerKind::Replay)
        .collect();
    assert_eq!(replayed.len(), 5);
    assert_eq!(
        h.world.hits("/first").len(),
        5,
        "carried replays did not call /first again"
    );
    let open: Page<Value> = api
        .get("/dlq?status=open", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(open.items.is_empty());
}

#[tokio::test]
async fn tokens_are_shown_once_and_revocation_takes_effect() {
    let h = harness(&[]).await;
    let api = serve_api(&h).await;
    let (status, created) = json(
        api.post("/tokens", &api.admin)
            .json(&json!({"name": "ci", "role": "viewer"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get("/runs", &secret).send().await.unwrap().status(),
        StatusCode::OK
    );
    let listed: Value = api
        .get("/tokens", &api.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(&secret),
        "tokens are never listed with their secret"
    );
    let id = created["id"].as_i64().unwrap();
    let revoked = api
        .http
        .delete(format!("{}/tokens/{id}", api.url))
        .bearer_auth(&api.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/runs", &secret).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn inbound_webhooks_are_signed_or_authenticated_and_deduplicated() {
    let signed = r#"(key: "signup", name: "Signup", team: "revops", trigger: Webhook(hmac_secret: "API_KEY"),
        steps: [(id: "wait", action: Delay(duration: "0s"))])"#;
    let open = r#"(key: "ping", name: "Ping", team: "revops", trigger: Webhook(),
        steps: [(id: "wait", action: Delay(duration: "0s"))])"#;
    let h = harness(&[signed, open, FLAKY]).await;
    let api = serve_api(&h).await;
    let body = r#"{"email": "Ada@Example.com"}"#;
    let now = chrono::Utc::now().timestamp();
    let signature =
        acp::domain::standard_webhooks::signature(common::SECRET, "delivery-1", now, body).unwrap();
    let hook = |key: &str| api.http.post(format!("{}/hooks/{key}", api.url));
    let delivery = || {
        hook("signup")
            .header("webhook-id", "delivery-1")
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", &signature)
            .body(body)
    };

    let (status, first) = json(delivery().send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (_, again) = json(delivery().send().await.unwrap()).await;
    assert_eq!(
        first["id"], again["id"],
        "a redelivery starts no second run"
    );
    let run = wait_final(&h.store, first["id"].as_i64().unwrap()).await;
    assert_eq!(
        (run.run.trigger_kind, run.run.trigger["email"].clone()),
        (acp::wire::TriggerKind::Webhook, json!("Ada@Example.com"))
    );

    let (status, err) = json(
        hook("signup")
            .header("webhook-id", "delivery-2")
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", "v1,AAAA")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_signature"))
    );
    let (status, _) = json(hook("signup").body(body).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert_eq!(
        hook("ping").body("{}").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hook("ping")
            .bearer_auth(&api.viewer)
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        hook("ping")
            .bearer_auth(&api.operator)
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        hook("ping")
            .bearer_auth(&api.operator)
            .body("not json")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        hook("flaky")
            .bearer_auth(&api.operator)
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        hook("missing").body("{}").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "nothing is said about a workflow before the caller is authenticated"
    );
}

#[tokio::test]
async fn health_counts_outcomes_durations_buckets_and_groups_failure_reasons() {
    let h = harness(&[FLAKY]).await;
    h.world.script(
        "/second",
        vec![
            Reply::status(422),
            Reply::status(422),
            Reply::status(422),
            Reply::ok(json!({})),
        ],
    );
    let api = serve_api(&h).await;
    for n in 0..5 {
        let id = h
            .engine
            .start_runs(
                "flaky",
                acp::wire::TriggerKind::Manual,
                vec![json!({"n": n})],
            )
            .await
            .unwrap()[0];
        wait_final(&h.store, id).await;
    }
    let health: acp::wire::Health = api
        .get("/health?window=15m&buckets=5", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flaky = &health.workflows[0];
    assert_eq!(
        (
            flaky.counts.runs,
            flaky.counts.succeeded,
            flaky.counts.failed
        ),
        (5, 2, 3)
    );
    assert!((flaky.counts.failure_rate - 0.6).abs() < 1e-9);
    assert_eq!((flaky.counts.dlq_depth, health.dlq_depth), (3, 3));
    assert_eq!(flaky.throughput.len(), 5);
    assert_eq!(flaky.throughput.iter().sum::<i64>(), 5);
    assert_eq!(
        *flaky.throughput.last().unwrap(),
        5,
        "all runs are in the newest bucket"
    );
    assert_eq!(flaky.failures.iter().sum::<i64>(), 3);
    assert!(flaky.p50_ms.is_some() && flaky.p95_ms >= flaky.p50_ms);
    assert_eq!(health.teams[0].team, "qa");
    assert_eq!(health.teams[0].counts.failed, 3);
    assert_eq!(
        health.failure_reasons.len(),
        1,
        "{:?}",
        health.failure_reasons
    );
    let reason = &health.failure_reasons[0];
    assert_eq!((reason.count, reason.workflow.as_str()), (3, "flaky"));
    assert!(
        reason.signature.starts_with("HTTP 422"),
        "{}",
        reason.signature
    );
    assert!(reason.first_seen <= reason.last_seen);

    let other_team: acp::wire::Health = api
        .get("/health?team=sales", &api.viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(other_team.workflows.is_empty());
    let (status, body) = json(
        api.get("/health?window=soon", &api.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid"))
    );
    // Rollups are per minute: a shorter window, or buckets out of range, are refused by name.
    for (query, names) in [
        ("window=10s", "window"),
        ("window=1ms", "window"),
        ("buckets=0", "buckets"),
        ("buckets=241", "buckets"),
        ("window=1m&buckets=2", "buckets: 1 to 1"),
        ("window=abc", "window"),
    ] {
        let (status, body) = json(
            api.get(&format!("/health?{query}"), &api.viewer)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{query}: {message}");
    }
    let aligned: acp::wire::Health = api.json("/health?window=90s", &api.viewer).await;
    assert_eq!(
        aligned.bucket_secs, 90,
        "one bucket: a 90 s window holds one whole minute"
    );
    assert_eq!(
        aligned.since.timestamp() % 60,
        0,
        "since says where the rollups begin: {}",
        aligned.since
    );
    assert!(aligned.since <= aligned.until - chrono::Duration::seconds(90));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_that_exists() {
    let h = harness(&[FLAKY]).await;
    let api = serve_api(&h).await;
    let doc: Value = api
        .http
        .get(format!("{}/openapi.json", api.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["schemas"]["RunView"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let schemas = &doc["components"]["schemas"];
    for shape in [
        "StreamMessage",
        "WebhookPayload",
        "Event",
        "RunQueued",
        "DlqAdded",
        "TestRequest",
        "TestReport",
        "PlannedWrite",
        "WouldTrigger",
        "HoldList",
        "HoldView",
        "HoldRequest",
    ] {
        assert!(schemas[shape].is_object(), "{shape} is documented");
    }
    let bodies = schemas["EventBody"].to_string();
    for name in [
        "run.queued",
        "run.released",
        "step.retry_scheduled",
        "dlq.replayed",
        "alert.silenced",
        "control.degraded",
        "run.held",
        "hold.created",
        "hold.released",
    ] {
        assert!(bodies.contains(name), "the payload of {name} is documented");
    }
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let url = format!(
                "{}{}",
                api.url.trim_end_matches("/api/v1"),
                path.replace("{key}", "flaky")
                    .replace("{id}", "1")
                    .replace("{version}", "1")
            );
            let request = api
                .http
                .request(method.to_uppercase().parse().unwrap(), url)
                .bearer_auth(&api.admin);
            let (_, body) = json(request.send().await.unwrap()).await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("no such route") && code != "method_not_allowed",
                "{method} {path} is documented but not served"
            );
        }
    }
    assert_eq!(operations, 56, "every route is documented");
}

/// A query parameter on a call that reads none is refused by name, as unknown body fields are;
/// the calls that read some still answer.
#[tokio::test]
async fn query_parameters_a_call_does_not_read_are_refused_by_name() {
    let h = harness(&[FLAKY]).await;
    let api = serve_api(&h).await;
    for path in [
        "/workflows?window=1h",
        "/workflows/flaky?foo=1",
        "/tokens?limit=1",
    ] {
        let (status, body) = json(api.get(path, &api.admin).send().await.unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unknown_field")),
            "{path}: {body}"
        );
        let name = path.split(['?', '=']).nth(1).unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{body}"
        );
    }
    let (status, body) = json(api.get("/runs?since=1h", &api.viewer).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("since") && m.contains("RFC 3339")),
        "{body}"
    );
    for path in [
        "/runs?limit=1",
        "/runs?since=2026-01-01T00:00:00Z",
        "/health?window=1h",
        "/workflows",
        "/dlq?status=open",
    ] {
        let status = api.get(path, &api.viewer).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}
