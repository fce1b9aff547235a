//! Test mode end to end: `POST /workflows/{key}/test` against a real server and a real
//! SQLite file. A test run sends nothing, writes nothing, counts nowhere, and shows the
//! per-field diff, the requests it would send and the workflows it would start.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every step kind: an enrichment call, two writes to the lead (the second reads the
/// first's would-be state), a created task whose placeholder id the next write uses, an AI
/// step, a Slack message nobody reads, a long delay.
const ROUTE: &str = r#"(
    key: "route_lead", name: "Route lead", team: "revops",
    trigger: Record(object: "leads", on: [Created, Updated], fields: ["email"]),
    steps: [
        (id: "enrich", action: Http(method: "POST", url: "{world}/enrich",
            headers: {"Authorization": "Bearer {{ secret(\"API_KEY\") }}"},
            body: {"email": "{{ trigger.record.values.email }}"})),
        (id: "assign", action: UpdateRecord(record: "{{ trigger.record.id }}", values: {
            "owner": "{{ steps.enrich.output.owner }}",
            "segment": "{{ trigger.record.values.segment }}",
            "score": 10,
        })),
        (id: "task", action: CreateRecord(object: "tasks", values: {
            "title": "Call {{ trigger.record.values.name }}",
            "lead": "{{ trigger.record.id }}",
        })),
        (id: "link", action: UpdateRecord(record: "{{ trigger.record.id }}", values: {
            "task_id": "{{ steps.task.output.record_id }}",
            "score": 20,
        })),
        (id: "summary", action: Ai(provider: "builtin", model: "scorer", policy_id: "p-1",
            prompt: "Summarise {{ trigger.record.values.name }}")),
        (id: "tell", action: Notify(channel: Slack, url: "{world}/slack",
            text: "{{ trigger.record.values.name }} goes to {{ steps.enrich.output.owner }}")),
        (id: "later", action: Delay(duration: "2h")),
        (id: "close", action: UpdateRecord(record: "{{ steps.task.output.record_id }}", values: {"state": "open"})),
    ],
)"#;

/// Moves a deal to the stage in its payload: the write `deal_stage_followup` listens for.
const STAGE: &str = r#"(
    key: "set_stage", name: "Set stage", team: "sales-ops", trigger: Manual,
    steps: [(id: "move", action: UpdateRecord(record: "{{ trigger.deal }}", values: {"stage": "{{ trigger.stage }}"}))],
)"#;

const FOLLOWUP: &str = include_str!("../assets/workflows/deal_stage_followup.ron");

/// Every row of the tables a test run must not touch, as text.
fn untouched_tables(h: &Harness) -> String {
    let conn = rusqlite::Connection::open(h.dir.path().join("acp.db")).unwrap();
    let mut out = String::new();
    for table in [
        "records",
        "field_history",
        "applied_writes",
        "dlq",
        "messages",
        "rollups",
        "alerts",
        "coverage",
    ] {
        let mut statement = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let columns = statement.column_count();
        let rows = statement
            .query_map([], |r| {
                let cells: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(cells.join("|"))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        out.push_str(&format!("{table}: {}\n", rows.join("\n  ")));
    }
    out
}

async fn create(api: &Api, object: &str, values: Value) -> i64 {
    let created: Value = api
        .post("/records", &api.operator)
        .json(&json!({"object": object, "values": values}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["record"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{created}"))
}

async fn test(api: &Api, key: &str, body: Value) -> (StatusCode, Value) {
    test_as(api, &api.operator, key, body).await
}

async fn test_as(api: &Api, token: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let response = api
        .post(&format!("/workflows/{key}/test"), token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// The id of the newest run.
async fn newest_run(h: &Harness) -> i64 {
    let page = h.store.runs(&acp::wire::RunQuery::default()).await.unwrap();
    page.items[0].id
}

/// The status a request is answered with.
async fn code(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.unwrap().status()
}

fn step<'a>(result: &'a Value, id: &str) -> &'a Value {
    result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {result}"))
}

#[tokio::test]
async fn a_test_run_sends_nothing_writes_nothing_counts_nowhere_and_shows_the_net_diff() {
    let h = harness(&[ROUTE]).await;
    let api = serve_api(&h).await;
    // Creating the lead starts a live run; the enrichment API refuses it, so the run fails at
    // its first step (a dead letter, rollups) and the lead stays as created.
    h.world.script("/enrich", vec![Reply::status(400)]);
    let lead = create(
        &api,
        "leads",
        json!({"name": "Ada", "email": "ada@example.com", "segment": "smb", "score": 10}),
    )
    .await;
    let live = newest_run(&h).await;
    let live = wait_final(&h.store, live).await;
    assert_eq!(live.run.status, acp::wire::RunStatus::Failed);
    let hits_before = h.world.hits("/enrich").len() + h.world.hits("/slack").len();
    let record_before: Value = api.json(&format!("/records/{lead}"), &api.viewer).await;
    let tables = untouched_tables(&h);
    let health_before: Value = api.json("/health?window=1h", &api.viewer).await;

    let (status, report) = test(
        &api,
        "route_lead",
        json!({
            "version": "published",
            "inputs": [{"record_id": lead}],
            "mocks": {
                "enrich": {"status": 200, "body": {"owner": "mock-owner", "echo": common::SECRET}},
                "summary": {"body": "A good lead."},
            },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let result = &report["results"][0];
    assert_eq!(result["status"], "succeeded", "{result:#}");

    // Nothing left: no request reached the world, no row changed, no health number moved.
    assert_eq!(
        h.world.hits("/enrich").len() + h.world.hits("/slack").len(),
        hits_before
    );
    assert_eq!(untouched_tables(&h), tables);
    let record_after: Value = api.json(&format!("/records/{lead}"), &api.viewer).await;
    assert_eq!(record_after, record_before);
    let health_after: Value = api.json("/health?window=1h", &api.viewer).await;
    for part in [
        "workflows",
        "teams",
        "failure_reasons",
        "dlq_depth",
        "unnotified",
    ] {
        assert_eq!(health_after[part], health_before[part], "{part}");
    }
    assert_eq!(
        health_before["workflows"][0]["failed"], 1,
        "{health_before:#}"
    );

    // What would have been sent, redacted as the run log keeps it.
    let enrich = step(result, "enrich");
    assert_eq!(enrich["status"], "succeeded");
    assert_eq!(enrich["would_call"]["method"], "POST");
    assert_eq!(
        enrich["would_call"]["url"],
        format!("{}/enrich", h.world.url)
    );
    assert_eq!(
        enrich["would_call"]["body"],
        json!({"email": "ada@example.com"})
    );
    assert_eq!(enrich["response"]["source"], "mock");
    let text = report.to_string();
    assert!(!text.contains(common::SECRET), "a secret leaked: {text}");

    // Each step's own writes, field by field against what the earlier steps left.
    let assign = step(result, "assign");
    assert_eq!(
        assign["writes"][0],
        json!({"object": "leads", "record_id": lead, "op": "update", "changes": [
            {"field": "owner", "before": null, "after": "mock-owner", "changed": true},
            {"field": "score", "before": 10, "after": 10, "changed": false},
            {"field": "segment", "before": "smb", "after": "smb", "changed": false},
        ]})
    );
    let task = step(result, "task");
    assert_eq!(task["writes"][0]["op"], "create");
    assert_eq!(task["writes"][0]["record_id"], Value::Null);
    assert_eq!(task["output"]["record_id"], -1);
    assert_eq!(task["output"]["placeholder"], true);
    let link = step(result, "link");
    assert_eq!(
        link["writes"][0]["changes"],
        json!([
            {"field": "score", "before": 10, "after": 20, "changed": true},
            {"field": "task_id", "before": null, "after": -1, "changed": true, "note": "placeholder for the new tasks record"},
        ])
    );
    // A write to the record the run would create lands on its placeholder.
    let close = step(result, "close");
    assert_eq!(close["status"], "succeeded", "{close}");
    assert_eq!(close["writes"][0]["record_id"], Value::Null);
    assert_eq!(close["writes"][0]["op"], "update");

    // The net effect per record: two steps writing the lead are one diff.
    assert_eq!(
        result["writes"],
        json!([
            {"object": "leads", "record_id": lead, "op": "update", "changes": [
                {"field": "owner", "before": null, "after": "mock-owner", "changed": true},
                {"field": "score", "before": 10, "after": 20, "changed": true},
                {"field": "segment", "before": "smb", "after": "smb", "changed": false},
                {"field": "task_id", "before": null, "after": -1, "changed": true, "note": "placeholder for the new tasks record"},
            ]},
            {"object": "tasks", "record_id": null, "op": "create", "changes": [
                {"field": "lead", "before": null, "after": lead, "changed": true},
                {"field": "title", "before": null, "after": "Call Ada", "changed": true},
                {"field": "state", "before": null, "after": "open", "changed": true},
            ]},
        ])
    );

    // The AI step got its mock; the Slack message nobody reads was not sent; the delay
    // did not wait.
    assert_eq!(step(result, "summary")["output"], "A good lead.");
    let tell = step(result, "tell");
    assert_eq!(tell["status"], "not_sent");
    assert_eq!(tell["response"], Value::Null);
    assert_eq!(tell["would_call"]["url"], format!("{}/slack", h.world.url));
    assert_eq!(step(result, "later")["status"], "succeeded");

    // The test run is stored, readable, and listed only when asked for.
    let run_id = result["run_id"].as_i64().unwrap();
    let stored: Value = api.json(&format!("/runs/{run_id}"), &api.viewer).await;
    assert_eq!(stored["run"]["mode"], "test");
    assert_eq!(stored["run"]["status"], "succeeded");
    assert_eq!(stored["attempts"].as_array().unwrap().len(), 8);
    assert!(!stored.to_string().contains(common::SECRET));
    let live_list: Value = api.json("/runs", &api.viewer).await;
    assert!(
        live_list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["mode"] == "live")
    );
    let test_list: Value = api.json("/runs?mode=test", &api.viewer).await;
    assert_eq!(test_list["items"][0]["id"], run_id);
    // No event names it: nothing streams or delivers a test run.
    let events: Value = api.json("/events?since=0&limit=1000", &api.viewer).await;
    let events = events.as_array().unwrap();
    assert!(events.len() > 3, "{events:?}");
    assert!(events.iter().all(|e| e["run_id"] != run_id), "{events:?}");
    // It cannot be retried or re-run into a live run, nor cancelled (an event about it).
    for action in ["retry", "rerun", "cancel"] {
        let refused = code(api.post(&format!("/runs/{run_id}/{action}"), &api.operator)).await;
        assert_eq!(refused, StatusCode::UNPROCESSABLE_ENTITY, "{action}");
    }
}

#[tokio::test]
async fn a_step_without_an_answer_stops_the_run_only_when_a_later_step_reads_it() {
    let h = harness(&[ROUTE]).await;
    let api = serve_api(&h).await;
    let lead = create(&api, "people", json!({"name": "Bo"})).await;
    let (status, report) = test(
        &api,
        "route_lead",
        json!({"version": "published", "inputs": [{"payload": {"record": {"id": lead, "values": {"name": "Bo", "email": "bo@x.test"}}}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let result = &report["results"][0];
    assert_eq!(result["status"], "failed");
    let enrich = step(result, "enrich");
    assert_eq!(enrich["status"], "failed");
    assert!(enrich["would_call"].is_object());
    let message = enrich["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("give it a mock (step `assign` reads its output)"),
        "{message}"
    );
    assert_eq!(step(result, "assign")["status"], "not_run");
    // Recorded answers: none yet for this workflow, so the same stop.
    let (_, again) = test(
        &api,
        "route_lead",
        json!({"version": "published", "responses": "recorded", "inputs": [{"payload": {"record": {"id": lead, "values": {}}}}]}),
    )
    .await;
    assert_eq!(again["results"][0]["status"], "failed");
}

#[tokio::test]
async fn recorded_answers_replay_the_last_live_response_of_the_step() {
    let h = harness(&[ROUTE]).await;
    let api = serve_api(&h).await;
    h.world.script(
        "/enrich",
        vec![Reply::ok(json!({"owner": "recorded-owner"}))],
    );
    let lead = create(
        &api,
        "leads",
        json!({"name": "Cy", "email": "cy@x.test", "segment": "mid"}),
    )
    .await;
    let live = newest_run(&h).await;
    wait_until(&h.store, live, |d| {
        d.run.status == acp::wire::RunStatus::Waiting
    })
    .await;
    let hits = h.world.hits("/enrich").len();
    let (_, report) = test(
        &api,
        "route_lead",
        json!({"version": "published", "responses": "recorded", "inputs": [{"record_id": lead}]}),
    )
    .await;
    let result = &report["results"][0];
    assert_eq!(result["status"], "succeeded", "{result:#}");
    let enrich = step(result, "enrich");
    assert_eq!(enrich["response"]["source"], "recorded");
    assert_eq!(enrich["response"]["run_id"], live);
    assert_eq!(enrich["response"]["body"]["owner"], "recorded-owner");
    assert_eq!(result["writes"][0]["changes"][0]["after"], "recorded-owner");
    assert_eq!(h.world.hits("/enrich").len(), hits);
}

#[tokio::test]
async fn would_trigger_lists_the_published_workflows_a_captured_write_starts() {
    // Moves the stage and notes who did: the follow-up watches the stage alone.
    let mover = STAGE.replace("set_stage", "move_stage").replace(
        r#"values: {"stage": "{{ trigger.stage }}"}"#,
        r#"values: {"stage": "{{ trigger.stage }}", "moved_by": "ops"}"#,
    );
    let h = harness(&[&mover, FOLLOWUP]).await;
    let api = serve_api(&h).await;
    let deal = create(&api, "deals", json!({"name": "Acme", "stage": "qualified"})).await;
    let (status, report) = test(
        &api,
        "move_stage",
        json!({"version": "published", "inputs": [
            {"payload": {"deal": deal, "stage": "proposal"}},
            {"payload": {"deal": deal, "stage": "won"}},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["results"][0]["would_trigger"],
        json!([{"workflow": "deal_stage_followup", "version": 1, "record_id": deal, "fields": ["stage"]}])
    );
    assert_eq!(
        report["results"][0]["writes"][0]["changes"][1],
        json!({"field": "stage", "before": "qualified", "after": "proposal", "changed": true})
    );
    // `won` does not pass the follow-up's filter.
    assert_eq!(report["results"][1]["would_trigger"], json!([]));
    // Testing the follow-up itself on that deal: its filter is false for a `qualified` deal,
    // and the test says a live change would not start it.
    let (_, followup) = test(
        &api,
        "deal_stage_followup",
        json!({"inputs": [{"record_id": deal}]}),
    )
    .await;
    let note = followup["results"][0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("would not start the workflow"), "{followup}");
    // Payloads that name another object, an event it does not listen for, or no watched
    // field changed say so too.
    let (_, payloads) = test(
        &api,
        "deal_stage_followup",
        json!({"inputs": [
            {"payload": {"object": "people", "record": {"id": deal, "values": {"stage": "proposal"}}}},
            {"payload": {"event": "created", "record": {"id": deal, "values": {"stage": "proposal"}}}},
            {"payload": {"changed": ["name"], "record": {"id": deal, "values": {"stage": "proposal"}}}},
        ]}),
    )
    .await;
    for (at, reason) in [
        "it is a `people` change, the trigger reads `deals`",
        "the trigger does not listen for `created` changes",
        "none of its fields (stage) changed",
    ]
    .iter()
    .enumerate()
    {
        let note = payloads["results"][at]["note"].as_str().unwrap_or_default();
        assert!(note.ends_with(reason), "{at}: {payloads}");
    }
    // A request no client could send fails as it would live, mocked or not.
    let bad_url = STAGE.replace("set_stage", "bad_url").replace(
        r#"(id: "move", action: UpdateRecord(record: "{{ trigger.deal }}", values: {"stage": "{{ trigger.stage }}"}))"#,
        r#"(id: "call", action: Http(method: "POST", url: "{{ trigger.url }}"))"#,
    );
    // (A file of a workflow the server has never seen can be tested too, before its first push.)
    let (status, tried) = test_as(
        &api,
        &api.admin,
        "bad_url",
        json!({"source": bad_url, "inputs": [{"payload": {"url": "no scheme here"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tried}");
    let call = step(&tried["results"][0], "call");
    assert_eq!(call["status"], "failed", "{call}");
    let message = call["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the URL is not valid"), "{message}");
    // And nothing was started.
    let runs: Value = api
        .json("/runs?workflow=deal_stage_followup", &api.viewer)
        .await;
    assert_eq!(runs["items"], json!([]));
}

#[tokio::test]
async fn compare_reports_inputs_a_draft_would_now_fail_and_nothing_for_an_identical_draft() {
    let h = harness(&[STAGE]).await;
    let api = serve_api(&h).await;
    let mut deals = Vec::new();
    for n in 0..3 {
        let deal = create(
            &api,
            "deals",
            json!({"name": format!("D{n}"), "stage": "new"}),
        )
        .await;
        let started = api.post("/runs", &api.operator).json(
            &json!({"workflow": "set_stage", "payload": {"deal": deal, "stage": "proposal"}}),
        );
        assert_eq!(code(started).await, StatusCode::CREATED);
        deals.push(deal);
    }
    for run in h
        .store
        .runs(&acp::wire::RunQuery::default())
        .await
        .unwrap()
        .items
    {
        wait_final(&h.store, run.id).await;
    }
    // The same file as a draft: no differences.
    let (status, same) = test_as(
        &api,
        &api.admin,
        "set_stage",
        json!({"source": STAGE, "compare": "published", "recent": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["compare"]["differ"], 0, "{same:#}");
    assert_eq!(same["results"].as_array().unwrap().len(), 3);
    // A draft that reads a field deals do not have fails every input the published passes.
    let broken = STAGE.replace("{{ trigger.stage }}", "{{ trigger.stage_name }}");
    let (_, worse) = test_as(
        &api,
        &api.admin,
        "set_stage",
        json!({"source": broken, "compare": "published", "recent": 3}),
    )
    .await;
    let compare = &worse["compare"];
    assert_eq!(compare["now_fail"], 3, "{compare:#}");
    assert_eq!(compare["differ"], 3);
    assert_eq!(
        compare["summary"],
        "3 of 3 would now fail; 0 write the same fields; 3 make the same calls"
    );
    let error = worse["results"][0]["error"]["message"].as_str().unwrap();
    assert!(error.contains("trigger.stage_name"), "{error}");
}

#[tokio::test]
async fn bad_test_requests_say_what_is_wrong() {
    let h = harness(&[STAGE, FOLLOWUP]).await;
    let api = serve_api(&h).await;
    for (body, status, needle) in [
        (json!({"version": "published"}), 422, "a test needs inputs"),
        (
            json!({"version": "draft", "inputs": [{"payload": {}}]}),
            404,
            "a draft of workflow `set_stage`",
        ),
        (
            json!({"version": "published", "inputs": [{"recordid": 1}]}),
            400,
            "unknown field `recordid`",
        ),
        (
            json!({"version": "published", "inputs": [{"payload": {}}], "mocks": {"move": {"status": 999}}}),
            422,
            "not the status of a final HTTP answer",
        ),
        (
            json!({"version": "published", "inputs": [{"record_id": 1}]}),
            422,
            "not started by record changes",
        ),
        (
            json!({"version": 9, "inputs": [{"payload": {}}]}),
            404,
            "not found",
        ),
        (
            json!({"version": "published", "inputs": [{"payload": {}}], "mocks": {"nope": {}}}),
            422,
            "the workflow has no step `nope`",
        ),
        (
            json!({"version": "published", "inputs": [{"payload": {}}], "mocks": {"move": {}}}),
            422,
            "does not call out",
        ),
        (
            json!({"version": "published", "recent": 101}),
            422,
            "at most 100 inputs",
        ),
        (
            json!({"version": "latest", "inputs": []}),
            422,
            "version is",
        ),
        (
            json!({"source": STAGE, "inputs": [{"payload": {}}]}),
            403,
            "needs the admin role",
        ),
    ] {
        let (got, answer) = test(&api, "set_stage", body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} → {answer}");
        assert!(answer.to_string().contains(needle), "{body} → {answer}");
    }
    let (got, answer) = test(
        &api,
        "deal_stage_followup",
        json!({"inputs": [{"record_id": 999}]}),
    )
    .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer
            .to_string()
            .contains("inputs[0]: record 999 not found"),
        "{answer}"
    );
    // A file that names another workflow, or a file and a version at once, is refused.
    for (body, needle) in [
        (
            json!({"source": STAGE.replace("set_stage", "other"), "inputs": [{"payload": {}}]}),
            "the file's key is `other`",
        ),
        (
            json!({"source": STAGE, "version": "published", "inputs": [{"payload": {}}]}),
            "not both",
        ),
    ] {
        let (got, answer) = test_as(&api, &api.admin, "set_stage", body.clone()).await;
        assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {answer}");
        assert!(answer.to_string().contains(needle), "{body} → {answer}");
    }
    // Without a version: the draft when there is one, else the published version.
    let (got, answer) = test(&api, "set_stage", json!({"inputs": [{"payload": {}}]})).await;
    assert_eq!(
        (got, answer["version"].clone()),
        (StatusCode::OK, json!(1)),
        "{answer}"
    );
    // A viewer may not test.
    let (got, _) = test_as(
        &api,
        &api.viewer,
        "set_stage",
        json!({"version": "published", "inputs": [{"payload": {}}]}),
    )
    .await;
    assert_eq!(got, StatusCode::FORBIDDEN);
}

/// Test runs go after their own short retention; live runs of the same age stay.
#[tokio::test]
async fn test_runs_are_pruned_on_their_own_retention() {
    use acp::domain::clock::Heartbeat;
    use acp::server::Retention;
    use std::time::Duration;
    let h = harness(&[STAGE]).await;
    let api = serve_api(&h).await;
    let deal = create(&api, "deals", json!({"stage": "new"})).await;
    let (_, report) = test(
        &api,
        "set_stage",
        json!({"version": "published", "inputs": [{"payload": {"deal": deal, "stage": "won"}}]}),
    )
    .await;
    let test_run = report["results"][0]["run_id"].as_i64().unwrap();
    let live = h
        .engine
        .start_runs(
            "set_stage",
            acp::wire::TriggerKind::Manual,
            vec![json!({"deal": deal, "stage": "won"}); 2],
        )
        .await
        .unwrap();
    for id in &live {
        wait_final(&h.store, *id).await;
    }
    let keep = Retention {
        keep_runs: Duration::from_secs(3600),
        keep_events: Duration::from_secs(3600),
        keep_test_runs: Duration::ZERO,
        every: Duration::from_secs(3600),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    acp::runtime::prune_pass(h.store.as_ref(), keep, &Heartbeat::default(), &shutdown)
        .await
        .unwrap();
    let gone = code(api.get(&format!("/runs/{test_run}"), &api.viewer)).await;
    assert_eq!(gone, StatusCode::NOT_FOUND);
    for id in live {
        let kept = code(api.get(&format!("/runs/{id}"), &api.viewer)).await;
        assert_eq!(kept, StatusCode::OK);
    }
}

/// `acp workflow test` prints the diff and what would start, and exits 1 when a test run
/// fails or a compared version differs, so a repository's CI can run it.
#[tokio::test]
async fn the_cli_prints_the_diff_and_fails_ci_when_a_test_run_fails() {
    let h = harness(&[STAGE, FOLLOWUP]).await;
    let api = serve_api(&h).await;
    let deal = create(&api, "deals", json!({"name": "Acme", "stage": "qualified"})).await;
    let dir = h.dir.path();
    std::fs::write(dir.join("set_stage.ron"), STAGE).unwrap();
    std::fs::write(
        dir.join("broken.ron"),
        STAGE.replace("{{ trigger.stage }}", "{{ trigger.stage_name }}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("proposal.json"),
        json!({"deal": deal, "stage": "proposal"}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("bad.json"), "{\"status\": 200,\n  \"body\": }").unwrap();
    let server = api.url.trim_end_matches("/api/v1").to_owned();
    let acp = |args: Vec<String>| {
        let (server, token) = (server.clone(), api.admin.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
                .args(["workflow", "test"])
                .args(args)
                .args(["--server", &server, "--token", &token])
                .output()
                .unwrap()
        })
    };
    let path = |name: &str| dir.join(name).display().to_string();

    let ok = acp(vec![
        path("set_stage.ron"),
        "--payload".into(),
        path("proposal.json"),
    ])
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    for line in [
        "set_stage (unsaved file ",
        &format!("    deals {deal} (update)"),
        "    - stage: \"qualified\"",
        "    + stage: \"proposal\"",
        &format!("would start deal_stage_followup (version 1) on record {deal}: stage changed"),
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }

    let broken = acp(vec![
        path("broken.ron"),
        "--payload".into(),
        path("proposal.json"),
    ])
    .await
    .unwrap();
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(out.contains("trigger.stage_name"), "{out}");
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("1 of 1 test runs failed"),
        "{broken:?}"
    );

    // A file that writes another value: both versions succeed on the last live run's trigger,
    // the writes differ, and CI hears it.
    let live = h
        .engine
        .start_runs(
            "set_stage",
            acp::wire::TriggerKind::Manual,
            vec![json!({"deal": deal, "stage": "proposal"})],
        )
        .await
        .unwrap()[0];
    wait_final(&h.store, live).await;
    std::fs::write(
        dir.join("lost.ron"),
        STAGE.replace("{{ trigger.stage }}", "lost"),
    )
    .unwrap();
    let differs = acp(vec![
        path("lost.ron"),
        "--recent".into(),
        "1".into(),
        "--compare".into(),
        "published".into(),
    ])
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(1), "{differs:?}");
    assert!(
        out.contains("compared with version 1: 0 of 1 would now fail; 0 write the same fields"),
        "{out}"
    );
    assert!(out.contains("input 1: writes differ"), "{out}");
    assert!(
        String::from_utf8_lossy(&differs.stderr)
            .contains("1 of 1 inputs differ from the compared version"),
        "{differs:?}"
    );

    let mock = acp(vec![
        "set_stage".into(),
        "--record".into(),
        deal.to_string(),
        "--mock".into(),
        format!("move={}", path("bad.json")),
    ])
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&mock.stderr);
    assert!(
        !mock.status.success() && said.contains("bad.json:2:11"),
        "{mock:?}"
    );
}

/// A test run whose request died with the server is ended as failed when the server starts
/// again, not left `running`.
#[tokio::test]
async fn a_test_run_a_crash_left_running_is_ended_at_the_next_start() {
    let h = harness(&[STAGE]).await;
    let orphan = h
        .store
        .begin_test_run(acp::domain::NewRun {
            mode: acp::wire::RunMode::Test,
            ..acp::domain::NewRun::live(
                "set_stage",
                1,
                "sales-ops",
                acp::wire::TriggerKind::Manual,
                json!({}),
            )
        })
        .await
        .unwrap();
    let restarted = start_engine(h.store.clone()).await;
    let detail = h.store.run(orphan).await.unwrap();
    assert_eq!(detail.run.status, acp::wire::RunStatus::Failed);
    assert_eq!(
        detail.run.error.unwrap().message,
        "the server stopped while this test ran"
    );
    restarted.shutdown().await;
}

/// A false condition skips the rest, as live; a delay does not wait.
#[tokio::test]
async fn conditions_skip_and_delays_do_not_wait_in_test_runs() {
    const GATED: &str = r#"(
        key: "gated", name: "Gated", team: "ops", trigger: Manual,
        steps: [
            (id: "nap", action: Delay(duration: "3h")),
            (id: "gate", action: Condition(expr: "trigger.go")),
            (id: "move", action: UpdateRecord(record: "{{ trigger.deal }}", values: {"stage": "won"})),
        ],
    )"#;
    let h = harness(&[GATED]).await;
    let api = serve_api(&h).await;
    let deal = create(&api, "deals", json!({"stage": "new"})).await;
    let (status, report) = test(
        &api,
        "gated",
        json!({"version": "published", "inputs": [
            {"payload": {"deal": deal, "go": false}},
            {"payload": {"deal": deal, "go": true}},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let stopped = &report["results"][0];
    assert_eq!(stopped["status"], "succeeded");
    assert_eq!(step(stopped, "move")["status"], "skipped");
    assert_eq!(stopped["writes"], json!([]));
    let went = &report["results"][1];
    // The delay's until is three hours away, and the run went on past it at once.
    assert_eq!(step(went, "nap")["status"], "succeeded");
    assert!(step(went, "nap")["output"]["until"].is_string());
    assert_eq!(
        step(went, "move")["writes"][0]["changes"][0]["after"],
        "won"
    );
}

/// A secret reshaped by a filter (`| list`) is masked in what a test shows, as in the run log.
#[tokio::test]
async fn a_reshaped_secret_is_masked_in_the_request_a_test_shows() {
    const LEAKY: &str = r#"(
        key: "leaky", name: "Leaky", team: "ops", trigger: Manual,
        steps: [(id: "call", action: Http(method: "POST", url: "{world}/x",
            body: {"a": "{{ secret('API_KEY') | list }}", "b": "{{ secret('API_KEY') | upper }}"}))],
    )"#;
    let h = harness(&[LEAKY]).await;
    let api = serve_api(&h).await;
    let (status, report) = test(
        &api,
        "leaky",
        json!({"inputs": [{"payload": {}}], "mocks": {"call": {"body": {}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let text = report.to_string();
    let spelled: Vec<String> = common::SECRET.chars().map(String::from).collect();
    assert!(!text.contains(&json!(spelled).to_string()), "{text}");
    assert!(!text.contains(&common::SECRET.to_uppercase()), "{text}");
    let body = &report["results"][0]["steps"][0]["would_call"]["body"];
    assert_eq!(body, &json!({"a": "[redacted]", "b": "[redacted]"}));
    assert!(h.world.hits("/x").is_empty());
}

/// A test of `set_stage` on a hundred inputs: long enough to be interrupted.
fn hundred_inputs(api: &Api, deal: i64) -> reqwest::RequestBuilder {
    let inputs: Vec<Value> = (0..100)
        .map(|_| json!({"payload": {"deal": deal, "stage": "won"}}))
        .collect();
    api.post("/workflows/set_stage/test", &api.operator)
        .json(&json!({"version": "published", "inputs": inputs}))
}

/// A caller that stops waiting does not leave test runs half done: the test finishes on the
/// engine and every test run ends.
#[tokio::test]
async fn a_caller_that_gives_up_leaves_no_test_run_running() {
    let h = harness(&[STAGE]).await;
    let api = serve_api(&h).await;
    let deal = create(&api, "deals", json!({"stage": "new"})).await;
    let gave_up = hundred_inputs(&api, deal)
        .timeout(std::time::Duration::from_millis(5))
        .send()
        .await;
    assert!(gave_up.is_err(), "the test answered within 5 ms");
    let mut ended = false;
    for _ in 0..500 {
        let page: Value = api.json("/runs?mode=test&limit=500", &api.viewer).await;
        let runs = page["items"].as_array().unwrap();
        if runs.len() == 100 && runs.iter().all(|r| r["status"] == "succeeded") {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ended, "every test run ends");
}

/// A secret transformed inside a `{% %}` block or by `| escape` never reaches a live run's
/// log, a record, or a test's answer, in any of the shapes those give it.
#[tokio::test]
async fn secrets_transformed_by_blocks_or_escaping_are_masked_live_and_in_tests() {
    const BLOCKS: &str = r#"(
        key: "blocks", name: "Blocks", team: "ops", trigger: Manual,
        steps: [
            (id: "call", action: Http(method: "POST",
                url: "{world}/x?k={{ secret('API_KEY') | e }}",
                headers: {"X-Up": "{% filter upper %}{{ secret('API_KEY') }}{% endfilter %}"},
                body: {
                    "rev": "{% filter reverse %}{{ secret('API_KEY') }}{% endfilter %}",
                    "esc": "{{ secret('API_KEY') | escape }}",
                    "cond": "{% if true %}{{ secret('API_KEY') }}{% endif %}",
                })),
            (id: "keep", action: UpdateRecord(record: "{{ trigger.deal }}", values: {
                "tag": "{% filter upper %}{{ secret('API_KEY') }}{% endfilter %}",
            })),
        ],
    )"#;
    let h = harness(&[BLOCKS]).await;
    let api = serve_api(&h).await;
    let deal = create(&api, "deals", json!({"stage": "new"})).await;
    let live = h
        .engine
        .start_runs(
            "blocks",
            acp::wire::TriggerKind::Manual,
            vec![json!({"deal": deal})],
        )
        .await
        .unwrap()[0];
    let stored = wait_final(&h.store, live).await;
    let (_, report) = test(
        &api,
        "blocks",
        json!({"inputs": [{"payload": {"deal": deal}}], "mocks": {"call": {"body": {}}}}),
    )
    .await;
    let record: Value = api.json(&format!("/records/{deal}"), &api.viewer).await;
    let history: Value = api
        .json(&format!("/records/{deal}/history"), &api.viewer)
        .await;
    let secret = common::SECRET;
    let reversed: String = secret.chars().rev().collect();
    for (what, text) in [
        ("the live run", serde_json::to_string(&stored).unwrap()),
        ("the test", report.to_string()),
        ("the record", record.to_string()),
        ("its history", history.to_string()),
    ] {
        for form in [
            secret.to_owned(),
            secret.to_uppercase(),
            reversed.clone(),
            secret.to_uppercase().chars().rev().collect(),
        ] {
            assert!(!text.contains(&form), "{what} holds {form}: {text}");
        }
    }
    assert_eq!(
        stored.run.status,
        acp::wire::RunStatus::Succeeded,
        "{stored:?}"
    );
}

/// A long test does not hold up a shutdown: its caller hears at once, the test stops at its
/// next input, and no test run is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stops_a_long_test_without_leaving_test_runs_running() {
    let h = harness(&[STAGE]).await;
    let api = serve_api(&h).await;
    let deal = create(&api, "deals", json!({"stage": "new"})).await;
    let request = hundred_inputs(&api, deal).send();
    let answer = tokio::spawn(request);
    let test_runs = |status: Option<&str>| acp::wire::RunQuery {
        mode: Some("test".into()),
        status: status.map(str::to_owned),
        limit: Some(500),
        ..acp::wire::RunQuery::default()
    };
    for _ in 0..1000 {
        if !h
            .store
            .runs(&test_runs(None))
            .await
            .unwrap()
            .items
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    api.shutdown.cancel();
    let answered = answer.await.unwrap().unwrap();
    assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["error"]["code"], "shutting_down", "{body}");
    h.engine.shutdown().await;
    let stored = h.store.runs(&test_runs(None)).await.unwrap().items;
    assert!(
        stored.len() < 100,
        "the test stopped early: {} test runs",
        stored.len()
    );
    let running = h
        .store
        .runs(&test_runs(Some("running")))
        .await
        .unwrap()
        .items;
    assert!(running.is_empty(), "{running:?}");
}

/// A record given to a workflow started only by new records is seen as just created.
#[tokio::test]
async fn a_record_input_takes_the_event_its_trigger_listens_for() {
    const ON_CREATE: &str = r#"(
        key: "greet", name: "Greet", team: "ops",
        trigger: Record(object: "people", on: [Created], filter: "trigger.event == 'created'"),
        steps: [(id: "seen", action: UpdateRecord(record: "{{ trigger.record.id }}", values: {"seen": "{{ trigger.event }}"}))],
    )"#;
    let h = harness(&[ON_CREATE]).await;
    let api = serve_api(&h).await;
    let person = create(&api, "people", json!({"name": "Ada"})).await;
    wait_final(&h.store, newest_run(&h).await).await;
    let (status, report) = test(&api, "greet", json!({"inputs": [{"record_id": person}]})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let result = &report["results"][0];
    assert_eq!(result["note"], Value::Null, "{result}");
    assert_eq!(
        step(result, "seen")["writes"][0]["changes"][0]["after"],
        "created"
    );
}
