//! Snapshots of every screen at 80x24 and 160x48 in the `default` and `mono` themes, drawn
//! from fixed data with ratatui's `TestBackend` (styles included, so a theme change shows).

use chrono::{DateTime, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

use super::draw;
use crate::console::keymap;
use crate::console::state::{App, Conn, Load, Overlay, Pending, View};
use crate::console::theme;
use crate::wire::*;

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_900_000 + minute * 60, 0).expect("a time")
}

fn error(message: &str) -> StepError {
    StepError {
        class: ErrorClass::Transient,
        message: message.into(),
        retryable: true,
        status: Some(503),
        host: None,
    }
}

fn run(id: i64, workflow: &str, status: RunStatus) -> RunView {
    RunView {
        id,
        workflow: workflow.into(),
        version: 3,
        team: "revops".into(),
        status,
        mode: RunMode::Live,
        trigger_kind: TriggerKind::Record,
        trigger: json!({"record": {"id": 40 + id}}),
        record_id: Some(40 + id),
        origin_run: None,
        queued_at: at(id),
        started_at: Some(at(id)),
        finished_at: status
            .is_final()
            .then(|| at(id) + chrono::Duration::milliseconds(1234 * id)),
        next_attempt_at: None,
        attempts: id % 3 + 1,
        error: (status == RunStatus::Failed)
            .then(|| error("HTTP 503 from enrichment for lead 1841")),
        failed_step: (status == RunStatus::Failed).then(|| "enrich".into()),
        dead_letter: None,
        replayed_as: None,
        held_reason: None,
    }
}

fn attempt(id: i64, index: i64, step: &str, number: i64, status: AttemptStatus) -> AttemptView {
    AttemptView {
        id,
        step_index: index,
        step_id: step.into(),
        number,
        status,
        idempotency_key: format!("run-7:{step}"),
        input: json!({"Http": {"method": "GET", "url": "https://enrich.example.com/v1/person?email=ada%40example.com", "headers": {"Authorization": "[redacted]"}}}),
        output: if status == AttemptStatus::Succeeded {
            json!({"score": 87, "segment": "enterprise", "verified": true})
        } else {
            json!(null)
        },
        error: (status == AttemptStatus::Failed)
            .then(|| error("HTTP 503 from enrichment for lead 1841")),
        detail: if step == "score" {
            json!({"provider": "builtin", "model": "acp-score-1", "policy_id": "lead-scoring-v2", "tokens": 212})
        } else {
            json!({})
        },
        started_at: at(7),
        finished_at: Some(at(7) + chrono::Duration::milliseconds(300 * number)),
        carried_from: None,
        retry_delay_ms: (status == AttemptStatus::Failed).then_some(2000),
    }
}

fn app() -> App {
    let mut app = App::new(
        "http://acp.example.com:7700".into(),
        keymap::load("default", None).expect("the default keymap"),
        false,
    );
    app.me = Load::Loaded(Me {
        name: "oncall".into(),
        role: Role::Operator,
        seq: 99,
    });
    app.conn = Conn::Live;
    let statuses = [
        RunStatus::Failed,
        RunStatus::Succeeded,
        RunStatus::Running,
        RunStatus::Retrying,
        RunStatus::Succeeded,
        RunStatus::Queued,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Waiting,
    ];
    let workflows = ["lead_routing", "deal_stage_followup", "big_deal_alert"];
    for (i, status) in statuses.iter().cycle().take(40).enumerate() {
        let id = i as i64 + 1;
        app.runs.rows.insert(id, run(id, workflows[i % 3], *status));
    }
    // Run 1 failed and was replayed as run 40.
    if let Some(first) = app.runs.rows.get_mut(&1) {
        first.dead_letter = Some(DlqStatus::Replayed);
        first.replayed_as = Some(40);
    }
    if let Some(replay) = app.runs.rows.get_mut(&40) {
        replay.trigger_kind = TriggerKind::Replay;
        replay.origin_run = Some(1);
    }
    app.runs.loaded = true;
    app.runs.failures_complete = true;
    app.inspector.detail = Load::Loaded(RunDetail {
        run: run(7, "lead_routing", RunStatus::Failed),
        attempts: vec![
            attempt(1, 0, "enrich", 1, AttemptStatus::Failed),
            attempt(2, 0, "enrich", 2, AttemptStatus::Succeeded),
            attempt(3, 1, "score", 1, AttemptStatus::Succeeded),
            attempt(4, 2, "tell_sales", 1, AttemptStatus::Failed),
        ],
    });
    app.inspector.step = 1;
    app.dlq.entries = Load::Loaded(
        (1..=6)
            .map(|id| DlqView {
                id,
                run_id: id * 7,
                workflow: workflows[id as usize % 3].into(),
                version: 3,
                team: "revops".into(),
                step_id: "enrich".into(),
                error: error("HTTP 503 from enrichment for lead 1841"),
                status: DlqStatus::Open,
                created_at: at(id),
                closed_at: None,
                closed_by: None,
                close_reason: None,
                replay_run: None,
                record_id: Some(40 + id),
            })
            .collect(),
    );
    app.dlq.marked.extend([2, 3]);
    app.alerts.items = Load::Loaded(vec![
        AlertView {
            id: 4,
            rule: "failure_rate".into(),
            workflow: "lead_routing".into(),
            severity: "critical".into(),
            state: AlertState::Firing,
            opened_at: at(3),
            fired_at: Some(at(3)),
            resolved_at: None,
            acked_at: None,
            acked_by: None,
            silenced_until: None,
            notified_at: Some(at(3)),
            detail: json!({"failed": 12, "finished": 40, "rate": 0.3, "top_error": {"signature": "HTTP 503 from enrichment for lead #", "count": 9, "example": "HTTP 503 from enrichment for lead 1841"}}),
        },
        AlertView {
            id: 3,
            rule: "dead_letters".into(),
            workflow: "big_deal_alert".into(),
            severity: "warning".into(),
            state: AlertState::Resolved,
            opened_at: at(1),
            fired_at: Some(at(1)),
            resolved_at: Some(at(2)),
            acked_at: Some(at(1)),
            acked_by: Some("oncall".into()),
            silenced_until: None,
            notified_at: None,
            detail: json!({}),
        },
    ]);
    let buckets = |base: i64| (0..30).map(|i| (i * 7 + base) % 11).collect::<Vec<i64>>();
    app.health = Load::Loaded(Health {
        since: at(0),
        until: at(60),
        bucket_secs: 120,
        workflows: workflows
            .iter()
            .enumerate()
            .map(|(i, w)| WorkflowHealth {
                workflow: (*w).into(),
                team: "revops".into(),
                counts: Counts {
                    runs: 120 + i as i64,
                    succeeded: 100,
                    failed: 20 - i as i64 * 9,
                    failure_rate: 0.16 - i as f64 * 0.07,
                    dlq_depth: 2 - i as i64,
                    held: 0,
                },
                p50_ms: Some(420),
                p95_ms: Some(2300 + i as i64 * 1000),
                throughput: buckets(i as i64),
                failures: buckets(i as i64 + 3).into_iter().map(|v| v / 4).collect(),
                unnotified: Unnotified::default(),
            })
            .collect(),
        held: 0,
        teams: Vec::new(),
        failure_reasons: vec![FailureReason {
            signature: "HTTP 503 from enrichment for lead #".into(),
            workflow: "lead_routing".into(),
            count: 18,
            first_seen: at(2),
            last_seen: at(50),
            example: "HTTP 503 from enrichment for lead 1841".into(),
        }],
        dlq_depth: 6,
        control: ControlStatus {
            evaluator_last_run: Some(at(59)),
            evaluator_healthy: true,
            loops: Vec::new(),
            deliveries: Vec::new(),
        },
        unnotified: Unnotified {
            within_ms: 600_000,
            failed: 20,
            unnotified: 0,
            rate: 0.0,
        },
    });
    // The header's 24 h outcomes come from the same rollups as the health screen.
    app.totals = app.health.clone();
    app.workflows.items = Load::Loaded(
        workflows
            .iter()
            .map(|w| WorkflowView {
                key: (*w).into(),
                name: w.replace('_', " "),
                team: "revops".into(),
                published_version: Some(3),
                latest_version: 4,
                has_draft: *w == "lead_routing",
                updated_at: at(5),
                runs_24h: 120,
                failed_24h: 7,
            })
            .collect(),
    );
    app.versions.items = Load::Loaded(
        (1..=4)
            .rev()
            .map(|v| VersionView {
                workflow: "lead_routing".into(),
                version: v,
                published: v == 3,
                source: String::new(),
                created_at: at(v),
                created_by: "admin".into(),
            })
            .collect(),
    );
    app.diff = Load::Loaded(Diff {
        from: 2,
        to: 3,
        unified: "--- v2\n+++ v3\n@@ -4,3 +4,3 @@\n     steps: [\n-        (id: \"enrich\", retry: (max_attempts: 3)),\n+        (id: \"enrich\", retry: (max_attempts: 5)),\n     ]\n".into(),
    });
    app.audit.items = Load::Loaded(vec![AuditEntry {
        id: 1,
        at: at(9),
        actor: "oncall".into(),
        role: Role::Operator,
        action: "dlq.replay_matching".into(),
        target: "dlq:2,3".into(),
        reason: Some("enrichment back".into()),
        outcome: "ok".into(),
    }]);
    app.record = Load::Loaded((
        RecordView {
            id: 47,
            object: "people".into(),
            values: serde_json::Map::new(),
            created_at: at(1),
            updated_at: at(8),
        },
        vec![FieldChange {
            id: 1,
            record_id: 47,
            field: "score".into(),
            old: json!(null),
            new: json!(87),
            at: at(8),
            source: Source::Ai,
            actor: "lead_routing".into(),
            workflow: Some("lead_routing".into()),
            workflow_version: Some(3),
            run_id: Some(7),
            step_id: Some("score".into()),
            ai_policy_id: Some("lead-scoring-v2".into()),
        }],
    ));
    app.incidents.items = Load::Loaded(incidents_sample());
    app.summary = Load::Loaded(crate::wire::SummaryReport {
        since: at(-10_080),
        until: at(0),
        totals: crate::wire::MetricsSummary {
            runs: 1_240,
            runs_per_week: 1_240.0,
            mttr_p50_s: Some(1_200.0),
            mttr_p90_s: Some(5_400.0),
            run_mttr_p50_s: Some(900.0),
            run_mttr_p90_s: Some(3_600.0),
            mtta_p50_s: Some(180.0),
            mtta_p90_s: Some(600.0),
            unnotified_rate: 0.0,
            healthy_workflows: 2,
            workflows: 3,
            healthy_pct: 66.7,
        },
        per_workflow: Vec::new(),
    });
    app.runs.changed = true;
    app.refresh_lists();
    app
}

/// Two incidents: an open one that followed a publish, with a held host, and a resolved one.
fn incidents_sample() -> Vec<crate::wire::IncidentView> {
    use crate::wire::{ErrorClass, IncidentCause, IncidentState, IncidentView, SignatureView};
    let incident = |id, workflow: &str, state, count, message: &str| IncidentView {
        id,
        signature: SignatureView {
            key: format!("v1:{id:016x}"),
            version: 1,
            workflow: workflow.into(),
            step: "enrich".into(),
            class: ErrorClass::Transient,
            host: Some("api.clearbit.test".into()),
            message: message.into(),
        },
        team: "revops".into(),
        state,
        count,
        first_seen: at(2),
        last_seen: at(9),
        opened_at: at(2),
        resolved_at: None,
        example: message.replace('#', "1841"),
        open_dead_letters: count / 2,
        records: count - 1,
        versions: vec![3, 4],
        cause: None,
        held: Vec::new(),
    };
    let mut open = incident(
        7,
        "lead_routing",
        IncidentState::Open,
        12,
        "HTTP 503 from enrichment for lead #",
    );
    open.cause = Some(IncidentCause {
        change: "published".into(),
        version: 4,
        actor: "ana".into(),
        at: at(-2),
        after_s: 240,
        previous: Some(3),
    });
    open.held = vec!["host:api.clearbit.test is held: vendor outage".into()];
    let mut resolved = incident(
        5,
        "big_deal_alert",
        IncidentState::Resolved,
        3,
        "template error: owner_email is undefined",
    );
    resolved.resolved_at = Some(at(8));
    vec![open, resolved]
}

fn incident_sample() -> crate::wire::IncidentDetail {
    use crate::wire::{IncidentDetail, IncidentRun, IncidentState, IncidentTransition};
    let incident = incidents_sample().remove(0);
    IncidentDetail {
        runs: (0..4)
            .map(|i| IncidentRun {
                run_id: 90 - i,
                version: 4,
                record_id: Some(40 + i),
                at: at(9 - i),
                dlq_id: Some(30 - i),
                dlq_open: i % 2 == 0,
            })
            .collect(),
        record_ids: vec![40, 41, 42, 43],
        history: vec![IncidentTransition {
            state: IncidentState::Open,
            at: incident.opened_at,
        }],
        alerts: vec![4],
        incident,
    }
}

/// A screen to snapshot: its name and how to get there from [`app`].
type Screen = (&'static str, fn(&mut App));

fn at_view(app: &mut App, view: View) {
    app.history = if view == View::Runs {
        Vec::new()
    } else {
        vec![View::Runs]
    };
    app.view = view;
}

fn plan(records: i64) -> ReplayPlan {
    ReplayPlan {
        count: 2,
        workflows: vec!["lead_routing".into()],
        records: (40..40 + records).collect(),
        external_steps: vec![
            ExternalStep {
                workflow: "lead_routing".into(),
                version: 3,
                step_id: "enrich".into(),
                kind: "http".into(),
                idempotency_key: true,
                runs: 2,
            },
            ExternalStep {
                workflow: "lead_routing".into(),
                version: 4,
                step_id: "tell_sales".into(),
                kind: "notify".into(),
                idempotency_key: false,
                runs: 2,
            },
        ],
        runs: Vec::new(),
        groups: vec![
            ReplayGroup {
                class: ErrorClass::Transient,
                signature: "HTTP 503 from enrichment for lead #".into(),
                count: 2,
                replayed: true,
            },
            ReplayGroup {
                class: ErrorClass::Permanent,
                signature: "HTTP 422 invalid e-mail <id>".into(),
                count: 2,
                replayed: false,
            },
        ],
        held_back: 2,
    }
}

fn preview(app: &mut App, records: i64) {
    at_view(app, View::Dlq);
    app.overlay = Overlay::Preview {
        plan: Load::Loaded(plan(records)),
        then: Pending::Replay {
            ids: vec![2, 3],
            filter: None,
            version: ReplayOn::Same,
            include_permanent: false,
        },
    };
}

fn holds_sample() -> crate::wire::HoldList {
    use crate::wire::{HoldList, HoldSource, HoldView, WindowView};
    let hold = |id, scope: &str, source, by: &str, reason: &str, runs| HoldView {
        id,
        scope: scope.into(),
        reason: reason.into(),
        source,
        created_by: by.into(),
        created_at: at(40),
        until: (id != 1).then(|| at(70)),
        drain_rate: Some("5/s".into()),
        released_at: None,
        released_by: None,
        held_runs: runs,
    };
    HoldList {
        holds: vec![
            hold(
                1,
                "workflow:lead_routing",
                HoldSource::Api,
                "admin",
                "CRM migration",
                12,
            ),
            hold(
                2,
                "host:enrichment.example.com",
                HoldSource::Backpressure,
                "backpressure",
                "enrichment.example.com asked to wait until 10:02:03Z (429)",
                30,
            ),
            hold(
                3,
                "host:api.attio.com",
                HoldSource::Window,
                "window:crm-maintenance",
                "maintenance window crm-maintenance",
                0,
            ),
        ],
        windows: vec![WindowView {
            name: "crm-maintenance".into(),
            scope: "host:api.attio.com".into(),
            cron: "0 2 * * SAT".into(),
            timezone: "Europe/Berlin".into(),
            duration_s: 7200,
            drain_rate: Some("5/s".into()),
            next_start: Some(at(65)),
            next_end: Some(at(70)),
            active: false,
        }],
        held_runs: 42,
    }
}

fn screens() -> Vec<Screen> {
    vec![
        ("runs", |app| at_view(app, View::Runs)),
        ("runs_filtered", |app| {
            app.runs.filter_text = "status:failed".into();
            app.runs.filter = crate::console::state::Filter::parse("status:failed");
            app.runs.changed = true;
            app.refresh_lists();
        }),
        ("runs_offline", |app| {
            app.conn = Conn::Reconnecting {
                attempt: 5,
                next_in_secs: 2,
                error: "cannot reach http://acp.example.com:7700: connection refused".into(),
            };
            app.offline_since = Some(at(57));
        }),
        ("runs_rejected", |app| {
            *app = App::new(
                "http://acp.example.com:7700".into(),
                keymap::load("default", None).expect("the default keymap"),
                false,
            );
            app.conn = Conn::Rejected("unauthorized: the token was not recognised".into());
            app.me = Load::Failed("unauthorized".into());
        }),
        ("runs_message", |app| {
            app.toast = Some((
                "`abc` is not a run id: write e.g. :run 42 (the id is the number in the ID column, or in the inspector's title)".into(),
                true,
            ));
        }),
        ("inspector", |app| at_view(app, View::Inspector { run: 7 })),
        ("inspector_zoom", |app| {
            at_view(app, View::Inspector { run: 7 });
            app.inspector.step = 2;
            app.inspector.zoom = true;
        }),
        ("inspector_search", |app| {
            at_view(app, View::Inspector { run: 7 });
            app.inspector.search = "enterprise".into();
            app.overlay = Overlay::Search("enterprise".into());
        }),
        ("inspector_trigger", |app| {
            at_view(app, View::Inspector { run: 7 });
            app.inspector.trigger = true;
        }),
        ("dlq", |app| at_view(app, View::Dlq)),
        ("dlq_replay_job", |app| {
            app.job = Some(crate::wire::JobView {
                id: 3,
                kind: "dlq.replay".into(),
                state: crate::wire::JobState::Running,
                total: 120,
                started: 45,
                succeeded: 40,
                failed: 2,
                skipped: 1,
                rate: "5/s".into(),
                created_by: "oncall".into(),
                created_at: at(50),
                finished_at: None,
                plan: None,
            });
            at_view(app, View::Dlq);
        }),
        ("holds", |app| {
            app.holds.items = Load::Loaded(holds_sample());
            at_view(app, View::Holds);
        }),
        ("workflows_paused", |app| {
            app.holds.items = Load::Loaded(holds_sample());
            at_view(app, View::Workflows);
        }),
        ("inspector_held", |app| {
            at_view(app, View::Inspector { run: 7 });
            if let Load::Loaded(detail) = &mut app.inspector.detail {
                detail.run.status = RunStatus::Held;
                detail.run.error = None;
                detail.run.held_reason =
                    Some("api.attio.com asked to wait until 10:02:03Z (429)".into());
                detail.run.next_attempt_at = Some(at(59));
            }
        }),
        ("incidents", |app| at_view(app, View::Incidents)),
        ("incident", |app| {
            app.incident = Load::Loaded(incident_sample());
            at_view(app, View::Incident { id: 7 });
        }),
        ("health", |app| at_view(app, View::Health)),
        ("health_stalled", |app| {
            at_view(app, View::Health);
            if let Load::Loaded(health) = &mut app.health {
                health.control.loops = vec![crate::wire::LoopStatus {
                    name: "outbox delivery".into(),
                    last_round: Some(at(40)),
                    healthy: false,
                }];
            }
        }),
        ("health_undelivered", |app| {
            at_view(app, View::Health);
            if let Load::Loaded(health) = &mut app.health {
                health.control.deliveries = vec![
                    crate::wire::DeliveryWarning {
                        target: "webhook:3".into(),
                        disabled: true,
                        given_up: 4,
                        reason: "the receiver answered 410 Gone: the subscription is disabled \
                                 until an admin enables it again"
                            .into(),
                        at: at(41),
                    },
                    crate::wire::DeliveryWarning {
                        target: "channel:slack".into(),
                        disabled: false,
                        given_up: 2,
                        reason: "refused permanently twice (400): the message cannot be \
                                 delivered as it is"
                            .into(),
                        at: at(52),
                    },
                ];
            }
        }),
        ("alerts", |app| at_view(app, View::Alerts)),
        ("workflows", |app| at_view(app, View::Workflows)),
        ("versions", |app| {
            at_view(
                app,
                View::Versions {
                    workflow: "lead_routing".into(),
                },
            )
        }),
        ("diff", |app| {
            at_view(
                app,
                View::Diff {
                    workflow: "lead_routing".into(),
                },
            )
        }),
        ("audit", |app| at_view(app, View::Audit)),
        ("record", |app| at_view(app, View::Record { id: 47 })),
        ("help", |app| app.overlay = Overlay::Help),
        ("help_scrolled", |app| {
            at_view(app, View::Dlq);
            app.overlay = Overlay::Help;
            app.overlay_scroll = 30;
        }),
        ("confirm", |app| {
            app.overlay = Overlay::Confirm {
                question: "Retry run 7 from its failed step?".into(),
                then: Pending::Retry(7),
            }
        }),
        ("preview", |app| preview(app, 2)),
        ("preview_long", |app| preview(app, 400)),
        ("test", |app| {
            at_view(
                app,
                View::Test {
                    workflow: "lead_routing".into(),
                },
            );
            app.test.workflow = "lead_routing".into();
            app.test.report = Load::Loaded(test_report());
        }),
        ("test_picker", |app| {
            at_view(app, View::Workflows);
            let runs = vec![
                run(3, "lead_routing", RunStatus::Succeeded),
                run(7, "lead_routing", RunStatus::Failed),
            ];
            app.overlay = Overlay::Picker(Box::new(crate::console::state::Picker {
                workflow: "lead_routing".into(),
                version: TestVersion::Draft,
                runs: Load::Loaded(runs),
                query: String::new(),
                marked: [7].into(),
                selected: 1,
            }));
        }),
    ]
}

/// A test of a draft on two records, compared with the published version: the first input
/// writes, calls out and would start another workflow; the second now fails.
fn test_report() -> TestReport {
    serde_json::from_value(json!({
        "workflow": "lead_routing", "version": 0,
        "results": [
            {"run_id": 901, "input": {"record_id": 41}, "status": "succeeded", "steps": [
                {"id": "enrich", "status": "succeeded",
                 "would_call": {"method": "POST", "url": "https://enrich.example.com/v1/person", "headers": {"Authorization": "[redacted]"}, "body": {"email": "ada@example.com"}},
                 "response": {"source": "mock", "status": 200, "body": {"owner": "ann"}}},
                {"id": "assign", "status": "succeeded", "writes": [{"object": "leads", "record_id": 41, "op": "update", "changes": [
                    {"field": "owner", "before": "bo", "after": "ann", "changed": true}]}]},
                {"id": "tell", "status": "not_sent",
                 "would_call": {"method": "POST", "url": "[redacted]", "body": {"text": "Ada goes to ann"}}},
            ],
             "writes": [{"object": "leads", "record_id": 41, "op": "update", "changes": [
                 {"field": "owner", "before": "bo", "after": "ann", "changed": true},
                 {"field": "score", "before": null, "after": 87, "changed": true},
                 {"field": "segment", "before": "smb", "after": "smb", "changed": false}]}],
             "would_trigger": [{"workflow": "deal_stage_followup", "version": 4, "record_id": 41, "fields": ["owner"]}]},
            {"run_id": 902, "input": {"record_id": 42}, "status": "failed",
             "error": {"class": "permanent", "message": "template error in step `assign`: `trigger.record.values.owner_email` is undefined", "retryable": false},
             "steps": [{"id": "enrich", "status": "failed", "error": {"class": "permanent", "message": "template error in step `assign`: `trigger.record.values.owner_email` is undefined", "retryable": false}},
                       {"id": "assign", "status": "not_run"}, {"id": "tell", "status": "not_run"}]},
        ],
        "compare": {"version": 3, "results": [
            {"run_id": 903, "input": {"record_id": 41}, "status": "succeeded", "steps": []},
            {"run_id": 904, "input": {"record_id": 42}, "status": "succeeded", "steps": []},
        ], "inputs": [
            {"input": 0, "status": "succeeded", "compared_status": "succeeded", "same_status": true, "same_writes": true, "same_calls": true},
            {"input": 1, "status": "failed", "compared_status": "succeeded", "same_status": false, "same_writes": false, "same_calls": false},
        ], "differ": 1, "now_fail": 1, "summary": "1 of 2 would now fail; 1 write the same fields; 1 make the same calls"},
    }))
    .expect("a test report")
}

fn render(app: &App, theme: &theme::Theme, width: u16, height: u16) -> String {
    // Snapshots are the same whatever the machine's time zone and clock.
    super::UTC.store(true, std::sync::atomic::Ordering::Relaxed);
    super::NOW_MS.store(
        at(60).timestamp_millis(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal.draw(|f| draw(f, app, theme)).expect("a frame");
    format!("{:?}", terminal.backend().buffer())
}

#[test]
fn every_screen_in_both_sizes_and_themes() {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{2}-\d{2} \d{2}:\d{2}", "[time]");
    settings.add_filter(r"\d{2}:\d{2}:\d{2}", "[time]");
    settings.set_prepend_module_to_snapshot(false);
    let _guard = settings.bind_to_scope();
    for theme_name in ["default", "mono"] {
        let theme = theme::load(theme_name, None).expect("a built-in theme");
        for (name, setup) in screens() {
            for (width, height) in [(80, 24), (160, 48)] {
                let mut app = app();
                setup(&mut app);
                let screen = render(&app, &theme, width, height);
                insta::assert_snapshot!(format!("{name}_{width}x{height}_{theme_name}"), screen);
            }
        }
    }
}

#[test]
fn a_terminal_below_80x24_says_so() {
    let screen = render(&app(), &theme::load("default", None).unwrap(), 70, 20);
    assert!(
        screen.contains("The terminal is 70x20; the console needs at least 80x24. Enlarge it"),
        "{screen}"
    );
}

/// The first row of a rendered screen, as text.
fn header_line(app: &App, width: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, 24)).expect("a test terminal");
    let theme = theme::load("mono", None).unwrap();
    terminal.draw(|f| draw(f, app, &theme)).expect("a frame");
    let buffer = terminal.backend().buffer();
    (0..width).map(|x| buffer[(x, 0)].symbol()).collect()
}

#[test]
fn the_breadcrumb_never_runs_into_the_counters() {
    let mut app = app();
    app.history = vec![
        View::Runs,
        View::Alerts,
        View::Workflows,
        View::Versions {
            workflow: "a_workflow_with_a_rather_long_key_indeed".into(),
        },
    ];
    app.view = View::Diff {
        workflow: "a_workflow_with_a_rather_long_key_indeed".into(),
    };
    for width in [80, 100, 160] {
        let line = header_line(&app, width);
        let counters = line.find("running").expect("the counters");
        assert!(line[..counters].ends_with(' '), "{width}: {line:?}");
        assert!(
            !line[..counters].trim_end().ends_with('›'),
            "{width}: {line:?}"
        );
        assert!(line.contains("…"), "{width}: older steps fold: {line:?}");
    }
}

#[test]
fn counts_not_loaded_yet_are_unknown_not_zero() {
    let mut app = App::new(
        "http://127.0.0.1:7700".into(),
        keymap::load("default", None).unwrap(),
        false,
    );
    app.view = View::Runs;
    let line = header_line(&app, 100);
    for count in ["running ?", "failed ?", "dlq ?", "alerts ?"] {
        assert!(line.contains(count), "{line}");
    }
}

#[test]
fn messages_wrap_at_words_and_input_lines_show_their_end() {
    let mut app = app();
    app.toast = Some((
        "unknown command `x`; the commands: :runs :dlq :health [TEAM] :alerts :wf :audit :run ID :record ID :incident :fix :quit".into(),
        true,
    ));
    let screen = render(&app, &theme::load("mono", None).unwrap(), 80, 24);
    assert!(
        screen.contains(":record ID"),
        "ids stay with their command: {screen}"
    );
    app.toast = None;
    app.overlay = Overlay::Filter("w".repeat(120));
    let screen = render(&app, &theme::load("mono", None).unwrap(), 80, 24);
    assert!(screen.contains("…www"), "{screen}");
    assert!(screen.contains("w▏"), "the cursor shows: {screen}");
}

#[test]
fn header_counts_over_a_partly_loaded_list_are_floors() {
    let mut app = app();
    app.runs.next_cursor = Some("c".into());
    app.runs.failures_complete = false;
    let line = header_line(&app, 100);
    assert!(
        line.contains("running 5+") && line.contains("failed 8+"),
        "{line}"
    );
}

#[test]
fn the_header_counts_the_last_24_hours_from_the_rollups() {
    let mut app = app();
    if let Load::Loaded(totals) = &mut app.totals {
        totals.workflows[0].counts.succeeded = 1_019_999;
        totals.workflows[0].counts.failed = 12_345;
    }
    let line = header_line(&app, 80);
    assert!(line.contains("24h ✓1.0M ✗12.4k"), "{line}");
    app.totals = Load::Idle;
    assert!(header_line(&app, 80).contains("24h ?"), "unknown, never 0");
}

#[test]
fn ids_past_a_million_show_whole_at_80x24() {
    let mut app = app();
    for id in [1_019_998, 1_019_999] {
        app.runs
            .rows
            .insert(id, run(id, "lead_routing", RunStatus::Succeeded));
    }
    if let Some(failed) = app.runs.rows.get_mut(&1_019_998) {
        failed.status = RunStatus::Failed;
        failed.replayed_as = Some(1_019_999);
    }
    app.runs.changed = true;
    app.runs.refresh();
    let screen = render(&app, &theme::load("mono", None).unwrap(), 80, 24);
    assert!(
        screen.contains(" 1019999 ") && screen.contains(" 1019998 "),
        "{screen}"
    );
    assert!(screen.contains("↻ #1019999 "), "{screen}");
}

/// Data with terminal commands in it (an escape, a clipboard write, a bidi override) is shown
/// as text: no cell the console draws holds a control or format character.
#[test]
fn escapes_in_data_never_reach_the_terminal() {
    let mut app = app();
    let mut holds = holds_sample();
    holds.holds[0].scope = "team:ops\u{1b}[31mRED\u{1b}]52;c;aGVsbG8=\u{7}".into();
    holds.holds[0].reason = "\u{202e}evil".into();
    app.holds.items = Load::Loaded(holds);
    app.view = View::Holds;
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("a test terminal");
    let theme = theme::load("mono", None).unwrap();
    terminal.draw(|f| draw(f, &app, &theme)).expect("a frame");
    let buffer = terminal.backend().buffer();
    let text: String = buffer.content.iter().map(|c| c.symbol()).collect();
    assert!(!text.contains(crate::wire::is_unsafe_char), "{text:?}");
    assert!(text.contains("team:ops\u{FFFD}[31mRED"), "{text}");
}
