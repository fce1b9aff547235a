use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::wire::{
    ByActor, DlqAdded, DlqDiscarded, DlqReplayed, ErrorClass, RunEnded, StepEnded,
    WorkflowPublished,
};

fn t0() -> DateTime<Utc> {
    "2026-12-01T09:00:00Z".parse().unwrap()
}

fn minutes(m: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(m)
}

fn event(at: DateTime<Utc>, run_id: Option<i64>, body: EventBody) -> Event {
    Event {
        seq: 0,
        at,
        workflow: Some("lead_routing".into()),
        run_id,
        body,
    }
}

fn error(message: &str, host: &str) -> StepError {
    StepError {
        class: ErrorClass::Transient,
        message: message.into(),
        retryable: true,
        status: Some(503),
        host: Some(host.into()),
    }
}

fn run_failed(at: DateTime<Utc>, run: i64, message: &str, host: &str) -> Event {
    event(
        at,
        Some(run),
        EventBody::RunFailed(RunEnded {
            step_id: Some("enrich".into()),
            error: Some(error(message, host)),
        }),
    )
}

fn dlq_added(at: DateTime<Utc>, run: i64) -> Event {
    event(
        at,
        Some(run),
        EventBody::DlqAdded(DlqAdded {
            dlq_id: run * 10,
            step_id: "enrich".into(),
            class: ErrorClass::Transient,
            message: String::new(),
        }),
    )
}

fn step_succeeded(at: DateTime<Utc>, run: i64) -> Event {
    event(
        at,
        Some(run),
        EventBody::StepSucceeded(StepEnded {
            step_id: "enrich".into(),
            attempt: 1,
            status: crate::wire::AttemptStatus::Succeeded,
            error: None,
        }),
    )
}

fn run_succeeded(at: DateTime<Utc>, run: i64) -> Event {
    event(
        at,
        Some(run),
        EventBody::RunSucceeded(RunEnded {
            step_id: None,
            error: None,
        }),
    )
}

fn replayed(at: DateTime<Utc>, run: i64, replay_run: i64) -> Event {
    event(
        at,
        Some(run),
        EventBody::DlqReplayed(DlqReplayed {
            dlq_id: run * 10,
            replay_run,
            actor: "ana".into(),
        }),
    )
}

fn fold(book: &mut Book, events: &[Event]) -> Vec<Change> {
    let mut out = Vec::new();
    for e in events {
        book.fold(e, &mut out);
    }
    out
}

fn opened(changes: &[Change]) -> Vec<(String, DateTime<Utc>)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Opened { signature, at, .. } => Some((signature.key.clone(), *at)),
            _ => None,
        })
        .collect()
}

fn resolved(changes: &[Change]) -> Vec<DateTime<Utc>> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Resolved { at, .. } => Some(*at),
            _ => None,
        })
        .collect()
}

#[test]
fn one_signature_opens_once_and_resolves_after_the_fix_and_the_replay() {
    let mut book = Book::default();
    let mut script = vec![run_succeeded(minutes(0), 1)];
    // Five failures over ten minutes; their messages differ only in the lead's id.
    for (i, m) in [1, 3, 5, 8, 11].into_iter().enumerate() {
        let run = 10 + i as i64;
        script.push(run_failed(
            minutes(m),
            run,
            &format!("HTTP 503 for lead {}", 1000 + run),
            "enrich.example",
        ));
        script.push(dlq_added(minutes(m), run));
    }
    // The fix is published; a new run's step succeeds while the dead letters are still open.
    script.push(step_succeeded(minutes(15), 30));
    let changes = fold(&mut book, &script);
    assert_eq!(opened(&changes).len(), 1, "{changes:#?}");
    assert_eq!(opened(&changes)[0].1, minutes(1));
    let failed = changes
        .iter()
        .filter(|c| matches!(c, Change::Failed { .. }))
        .count();
    assert_eq!(failed, 5);
    assert!(resolved(&changes).is_empty(), "dead letters are still open");
    // The five are replayed at +20 (the first four) and +21; the last replay closes it.
    let mut replays: Vec<Event> = (10..14)
        .map(|r| replayed(minutes(20), r, r + 100))
        .collect();
    replays.push(replayed(minutes(21), 14, 114));
    let changes = fold(&mut book, &replays);
    assert_eq!(resolved(&changes), vec![minutes(21)]);
    // MTTR: opened at +1, resolved at +21.
    assert_eq!(minutes(21) - minutes(1), TimeDelta::minutes(20));
}

#[test]
fn a_second_signature_is_a_second_incident_and_a_failure_after_resolve_regresses() {
    let mut book = Book::default();
    let changes = fold(
        &mut book,
        &[
            run_failed(minutes(1), 1, "HTTP 503 for lead 7", "enrich.example"),
            dlq_added(minutes(1), 1),
            run_failed(minutes(2), 2, "HTTP 503 for lead 7", "other.example"),
            dlq_added(minutes(2), 2),
        ],
    );
    let keys = opened(&changes);
    assert_eq!(keys.len(), 2, "different hosts are different incidents");
    let first = keys[0].0.clone();
    let changes = fold(
        &mut book,
        &[
            event(
                minutes(3),
                Some(1),
                EventBody::DlqDiscarded(DlqDiscarded {
                    dlq_id: 10,
                    reason: "bad lead".into(),
                    actor: "ana".into(),
                }),
            ),
            step_succeeded(minutes(4), 3),
        ],
    );
    // Both incidents share the step: the success recovers both, but only the first has no
    // dead letter open.
    assert_eq!(resolved(&changes), vec![minutes(4)]);
    assert_eq!(book.incidents[&first].state, IncidentState::Resolved);
    let changes = fold(
        &mut book,
        &[run_failed(
            minutes(9),
            5,
            "HTTP 503 for lead 99",
            "enrich.example",
        )],
    );
    assert!(opened(&changes).is_empty(), "the same incident comes back");
    assert!(changes.contains(&Change::Regressed {
        key: first.clone(),
        at: minutes(9),
        cause: None,
    }));
    assert_eq!(book.incidents[&first].state, IncidentState::Regressed);
}

#[test]
fn a_retried_run_closes_its_dead_letter_and_a_run_level_outage_spans_failure_to_success() {
    let mut book = Book::default();
    let changes = fold(
        &mut book,
        &[
            run_failed(minutes(1), 1, "HTTP 503", "enrich.example"),
            dlq_added(minutes(1), 1),
            run_failed(minutes(2), 2, "HTTP 503", "enrich.example"),
            event(
                minutes(5),
                Some(1),
                EventBody::RunRetried(ByActor {
                    actor: "ana".into(),
                }),
            ),
            step_succeeded(minutes(6), 1),
            run_succeeded(minutes(6), 1),
        ],
    );
    assert!(changes.contains(&Change::OutageStarted {
        workflow: "lead_routing".into(),
        at: minutes(1)
    }));
    assert!(changes.contains(&Change::OutageEnded {
        workflow: "lead_routing".into(),
        at: minutes(6)
    }));
    let starts = changes
        .iter()
        .filter(|c| matches!(c, Change::OutageStarted { .. }))
        .count();
    assert_eq!(starts, 1, "the second failure is the same outage");
    assert_eq!(resolved(&changes), vec![minutes(6)]);
}

#[test]
fn an_incident_soon_after_a_publish_names_it_and_one_without_does_not() {
    let publish = |at| {
        event(
            at,
            None,
            EventBody::WorkflowPublished(WorkflowPublished {
                version: 7,
                actor: "ana".into(),
            }),
        )
    };
    let mut book = Book::default();
    let changes = fold(
        &mut book,
        &[
            publish(minutes(0)),
            run_failed(minutes(4), 1, "HTTP 500", "enrich.example"),
        ],
    );
    let cause = changes.iter().find_map(|c| match c {
        Change::Opened { cause, .. } => cause.clone(),
        _ => None,
    });
    let cause = cause.expect("linked to the publish");
    assert_eq!((cause.version, cause.after_s), (7, 240));
    assert_eq!(
        cause.sentence(),
        "began 4 minutes after version 7 was published by ana"
    );
    let mut book = Book::default();
    let changes = fold(
        &mut book,
        &[
            publish(minutes(0)),
            run_failed(minutes(61), 1, "HTTP 500", "enrich.example"),
        ],
    );
    assert!(
        changes
            .iter()
            .all(|c| !matches!(c, Change::Opened { cause: Some(_), .. })),
        "an hour and a minute later is not caused by the publish"
    );
}

/// A regression takes the cause of its own time: the publish it followed, with the version
/// live before it (what a rollback goes back to); the first publish has none before it.
#[test]
fn a_regression_names_the_publish_it_followed_and_the_version_before() {
    let publish = |at, version| {
        event(
            at,
            None,
            EventBody::WorkflowPublished(WorkflowPublished {
                version,
                actor: "ana".into(),
            }),
        )
    };
    let mut book = Book::default();
    let changes = fold(
        &mut book,
        &[
            publish(minutes(0), 1),
            run_failed(minutes(1), 1, "HTTP 500", "enrich.example"),
            step_succeeded(minutes(2), 2),
            publish(minutes(90), 2),
            run_failed(minutes(93), 3, "HTTP 500", "enrich.example"),
        ],
    );
    let first = changes.iter().find_map(|c| match c {
        Change::Opened { cause, .. } => cause.clone(),
        _ => None,
    });
    assert_eq!(first.map(|c| (c.version, c.previous)), Some((1, None)));
    let again = changes.iter().find_map(|c| match c {
        Change::Regressed { cause, .. } => Some(cause.clone()),
        _ => None,
    });
    let again = again.expect("regressed").expect("after the second publish");
    assert_eq!(
        (again.version, again.previous, again.after_s),
        (2, Some(1), 180)
    );
}

#[test]
fn the_book_query_names_what_a_batch_touches() {
    let events = [
        run_failed(minutes(1), 1, "HTTP 503", "enrich.example"),
        dlq_added(minutes(1), 1),
        replayed(minutes(2), 4, 9),
    ];
    let query = BookQuery::of(&events);
    assert_eq!(query.keys.len(), 1);
    assert_eq!(query.runs, vec![1]);
    assert_eq!(query.dlqs, vec![40]);
    assert_eq!(query.workflows, vec!["lead_routing".to_owned()]);
}

#[test]
fn quantiles_use_the_nearest_rank() {
    let mut values = vec![60.0, 10.0, 30.0, 20.0, 50.0, 40.0, 70.0, 80.0, 90.0, 100.0];
    assert_eq!(quantile(&mut values, 0.5), Some(50.0));
    assert_eq!(quantile(&mut values, 0.9), Some(90.0));
    assert_eq!(quantile(&mut [], 0.5), None);
    assert_eq!(quantile(&mut [5.0], 0.9), Some(5.0));
}
