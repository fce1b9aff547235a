//! Whether a rule's condition holds for one workflow at a moment, from the runs around it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::domain::alert::Condition;
use crate::domain::signature::signature;
use crate::store::RunFact;
use crate::wire::RunStatus;

/// What the evaluator knows about one workflow at `now`.
pub struct Scene<'a> {
    pub now: DateTime<Utc>,
    /// The workflow's runs queued in the longest window any rule looks at.
    pub runs: &'a [&'a RunFact],
    pub sla: Option<Duration>,
    pub dlq_depth: i64,
    /// Since when the evaluator has watched this workflow (silence needs a full window).
    pub watched_since: DateTime<Utc>,
}

fn ago(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    crate::domain::clock::earlier_or_min(now, window)
}

/// True with a summary when the condition holds.
pub fn holds(condition: &Condition, scene: &Scene<'_>) -> Option<Value> {
    let finished_in = |window: Duration| -> Vec<&RunFact> {
        let since = ago(scene.now, window);
        scene
            .runs
            .iter()
            .copied()
            .filter(|r| {
                r.finished_at
                    .is_some_and(|at| at > since && at <= scene.now)
            })
            .collect()
    };
    match condition {
        Condition::FailureRate {
            above,
            min_runs,
            window,
        } => {
            let done: Vec<&RunFact> = finished_in(*window)
                .into_iter()
                .filter(|r| r.status != RunStatus::Cancelled)
                .collect();
            let failed: Vec<&RunFact> = done
                .iter()
                .copied()
                .filter(|r| r.status == RunStatus::Failed)
                .collect();
            let rate = failed.len() as f64 / done.len().max(1) as f64;
            (done.len() >= *min_runs as usize && rate > *above).then(|| json!({"failed": failed.len(), "finished": done.len(), "rate": rate, "top_error": top_error(&failed)}))
        }
        Condition::AnyFailure { window } => {
            let failed: Vec<&RunFact> = finished_in(*window)
                .into_iter()
                .filter(|r| r.status == RunStatus::Failed)
                .collect();
            (!failed.is_empty())
                .then(|| json!({"failed": failed.len(), "top_error": top_error(&failed)}))
        }
        Condition::SlaBreach {
            queued_longer_than,
            window,
        } => {
            let slow = scene.sla.map_or(0, |sla| {
                finished_in(*window)
                    .iter()
                    .filter(|r| {
                        r.started_at
                            .zip(r.finished_at)
                            .is_some_and(|(s, f)| (f - s).to_std().unwrap_or_default() > sla)
                    })
                    .count()
            });
            let waiting = queued_longer_than.map_or(0, |limit| {
                let before = ago(scene.now, limit);
                scene
                    .runs
                    .iter()
                    .filter(|r| {
                        r.status == RunStatus::Queued
                            && r.started_at.is_none()
                            && r.queued_at < before
                    })
                    .count()
            });
            (slow + waiting > 0)
                .then(|| json!({"slower_than_sla": slow, "queued_too_long": waiting}))
        }
        Condition::Silence { window, succeeded } => {
            let since = ago(scene.now, *window);
            if scene.watched_since > since {
                return None;
            }
            let alive = match succeeded {
                true => scene.runs.iter().any(|r| {
                    r.status == RunStatus::Succeeded && r.finished_at.is_some_and(|at| at > since)
                }),
                false => scene.runs.iter().any(|r| r.queued_at > since),
            };
            (!alive).then(|| json!({"silent_for_secs": window.as_secs(), "needs": if *succeeded { "succeeded" } else { "started" }}))
        }
        Condition::DlqDepth { above } => {
            (scene.dlq_depth > i64::from(*above)).then(|| json!({"dlq_depth": scene.dlq_depth}))
        }
    }
}

/// The most frequent error signature among failed runs, with one example.
fn top_error(failed: &[&RunFact]) -> Value {
    let mut counts: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for run in failed {
        let message = run.error.clone().unwrap_or_default();
        let entry = counts.entry(signature(&message)).or_insert((0, message));
        entry.0 += 1;
    }
    match counts.into_iter().max_by_key(|(_, (n, _))| *n) {
        Some((signature, (count, example))) => {
            json!({"signature": signature, "count": count, "example": example})
        }
        None => Value::Null,
    }
}
