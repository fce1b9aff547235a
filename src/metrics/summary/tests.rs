use chrono::TimeDelta;

use super::*;
use crate::domain::incident::{Book, Change};
use crate::wire::{
    AttemptStatus, DlqAdded, DlqReplayed, ErrorClass, Event, EventBody, RunEnded, StepEnded,
    StepError,
};

fn t0() -> DateTime<Utc> {
    "2026-12-01T09:00:00Z".parse().unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(seconds)
}

fn event(seconds: i64, run: i64, body: EventBody) -> Event {
    Event {
        seq: 0,
        at: at(seconds),
        workflow: Some("lead_routing".into()),
        run_id: Some(run),
        body,
    }
}

fn failed(seconds: i64, run: i64) -> Vec<Event> {
    let error = StepError {
        class: ErrorClass::Transient,
        message: format!("HTTP 503 from enrichment for lead {run}"),
        retryable: true,
        status: Some(503),
        host: Some("enrich.example".into()),
    };
    vec![
        event(
            seconds,
            run,
            EventBody::RunFailed(RunEnded {
                step_id: Some("enrich".into()),
                error: Some(error),
            }),
        ),
        event(
            seconds,
            run,
            EventBody::DlqAdded(DlqAdded {
                dlq_id: run * 10,
                step_id: "enrich".into(),
                class: ErrorClass::Transient,
                message: String::new(),
            }),
        ),
    ]
}

fn succeeded(seconds: i64, run: i64) -> Vec<Event> {
    vec![
        event(
            seconds,
            run,
            EventBody::StepSucceeded(StepEnded {
                step_id: "enrich".into(),
                attempt: 1,
                status: AttemptStatus::Succeeded,
                error: None,
            }),
        ),
        event(
            seconds,
            run,
            EventBody::RunSucceeded(RunEnded {
                step_id: None,
                error: None,
            }),
        ),
    ]
}

/// The intervals the store keeps from a fold's changes (opened or regressed → resolved,
/// outage start → end), as the tracker's writes record them.
fn facts_of(changes: &[Change]) -> IncidentFacts {
    let mut facts = IncidentFacts::default();
    let mut cycle = BTreeMap::new();
    let mut outage = BTreeMap::new();
    let interval = |seconds: TimeDelta| Interval {
        workflow: "lead_routing".into(),
        team: "revops".into(),
        seconds: seconds.num_milliseconds() as f64 / 1000.0,
    };
    for change in changes {
        match change {
            Change::Opened { signature, at, .. } => {
                cycle.insert(signature.key.clone(), *at);
            }
            Change::Regressed { key, at, .. } => {
                cycle.insert(key.clone(), *at);
            }
            Change::Resolved { key, at } => facts.resolutions.push(interval(*at - cycle[key])),
            Change::OutageStarted { workflow, at } => {
                outage.insert(workflow.clone(), *at);
            }
            Change::OutageEnded { workflow, at } => {
                facts.outages.push(interval(*at - outage[workflow]));
            }
            _ => {}
        }
    }
    facts
}

fn workflow(key: &str) -> WorkflowFacts {
    WorkflowFacts {
        key: key.into(),
        team: "revops".into(),
        threshold: 0.10,
        ..WorkflowFacts::default()
    }
}

/// Success; five failures of one signature over ten minutes (the alert fires with the first
/// and is acknowledged 3 minutes later); the fix at +15 min; the replay of the five dead
/// letters at +20 min: MTTA 180 s, MTTR 1200 s (opened → resolved), run-level MTTR 900 s
/// (first failed run → next succeeded run).
#[test]
fn a_scripted_incident_gives_exactly_its_mtta_and_mttr() {
    let mut events = succeeded(-60, 1);
    for (i, seconds) in [0, 150, 300, 450, 600].into_iter().enumerate() {
        events.extend(failed(seconds, 10 + i as i64));
    }
    events.extend(succeeded(900, 20));
    for i in 0..5 {
        events.push(event(
            1200,
            10 + i,
            EventBody::DlqReplayed(DlqReplayed {
                dlq_id: (10 + i) * 10,
                replay_run: 30 + i,
                actor: "ana".into(),
            }),
        ));
    }
    let mut book = Book::default();
    let mut changes = Vec::new();
    for e in &events {
        book.fold(e, &mut changes);
    }
    let mut facts = facts_of(&changes);
    facts.acknowledgements.push(Interval {
        workflow: "lead_routing".into(),
        team: "revops".into(),
        seconds: (at(180) - at(0)).num_seconds() as f64,
    });
    let report = summarize(at(-3600), at(3600), vec![workflow("lead_routing")], &facts);
    let m = &report.totals;
    assert_eq!(m.mtta_p50_s, Some(180.0));
    assert_eq!(m.mttr_p50_s, Some(1200.0));
    assert_eq!(m.mttr_p90_s, Some(1200.0));
    assert_eq!(m.run_mttr_p50_s, Some(900.0));
    assert_eq!(report.per_workflow[0].metrics.mttr_p50_s, Some(1200.0));
}

/// Four workflows: one healthy, one with an open incident, one failing above its threshold,
/// one with a run slower than its SLA: 25% healthy, each with its reason.
#[test]
fn healthy_needs_no_open_incident_a_rate_under_threshold_and_no_sla_breach() {
    let mut fine = workflow("fine");
    fine.bucket.queued = 100;
    fine.bucket.succeeded = 95;
    fine.bucket.failed = 5;
    let mut open = workflow("open");
    open.bucket.succeeded = 10;
    let mut failing = workflow("failing");
    failing.bucket.succeeded = 8;
    failing.bucket.failed = 2;
    let mut slow = workflow("slow");
    slow.sla = Some(Duration::from_secs(60));
    slow.bucket.succeeded = 2;
    slow.bucket.durations.add(1_000.0);
    slow.bucket.durations.add(120_000.0);
    let facts = IncidentFacts {
        open: vec![("open".into(), 2)],
        ..IncidentFacts::default()
    };
    let week = TimeDelta::days(7);
    let report = summarize(t0() - week, t0(), vec![fine, open, failing, slow], &facts);
    assert_eq!(report.totals.workflows, 4);
    assert_eq!(report.totals.healthy_workflows, 1);
    assert_eq!(report.totals.healthy_pct, 25.0);
    assert_eq!(report.totals.runs, 100);
    assert!((report.totals.runs_per_week - 100.0).abs() < 1e-9);
    let because: Vec<(&str, bool, Vec<String>)> = report
        .per_workflow
        .iter()
        .map(|w| (w.workflow.as_str(), w.healthy, w.unhealthy_because.clone()))
        .collect();
    assert_eq!(
        because,
        vec![
            ("fine", true, vec![]),
            ("open", false, vec!["2 open incidents".to_owned()]),
            (
                "failing",
                false,
                vec!["failure rate 20.0% above its 10.0% threshold".to_owned()]
            ),
            (
                "slow",
                false,
                vec!["1 run(s) slower than its SLA of 1m".to_owned()]
            ),
        ]
    );
}

/// The unnotified rate is unnotified over failed, summed over workflows.
#[test]
fn the_unnotified_rate_sums_over_workflows() {
    let mut a = workflow("a");
    a.failed = 900;
    a.unnotified = 1;
    let mut b = workflow("b");
    b.failed = 100;
    let report = summarize(
        t0() - TimeDelta::days(7),
        t0(),
        vec![a, b],
        &IncidentFacts::default(),
    );
    assert_eq!(report.totals.unnotified_rate, 0.001);
    assert_eq!(report.per_workflow[1].metrics.unnotified_rate, 0.0);
}
