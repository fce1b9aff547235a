//! Whether a rule's condition holds for one workflow at a moment, from the rollups of its
//! windows (minute rows at the edges: a window starts at its first whole minute, so it may
//! count up to a minute more than it says) and the count of its runs queued too long.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::domain::alert::Condition;
use crate::domain::rollup::Bucket;
use crate::store::HeldRuns;

/// What the evaluator knows about one workflow at `now`.
pub struct Scene<'a> {
    pub now: DateTime<Utc>,
    /// The workflow's sums over each window a rule looks at.
    pub sums: &'a HashMap<Duration, Bucket>,
    /// Its runs still queued, never started, queued before `now - limit`, per limit (see
    /// [`queue_limits`]).
    pub waiting: &'a HashMap<Duration, i64>,
    pub sla: Option<Duration>,
    pub dlq_depth: i64,
    /// Since when the evaluator has watched this workflow (silence needs a full window).
    pub watched_since: DateTime<Utc>,
    /// Its runs held now, if any.
    pub held: Option<&'a HeldRuns>,
    /// A hold on the workflow or its team lasts now.
    pub paused: bool,
}

impl Scene<'_> {
    fn sums(&self, window: Duration) -> Bucket {
        self.sums.get(&window).cloned().unwrap_or_default()
    }
}

/// The queueing limit whose count `condition` needs.
pub fn queue_limits(condition: &Condition) -> Option<Duration> {
    match condition {
        Condition::SlaBreach {
            queued_longer_than, ..
        } => *queued_longer_than,
        _ => None,
    }
}

fn ago(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    crate::domain::clock::earlier_or_min(now, window)
}

/// True with a summary when the condition holds.
pub fn holds(condition: &Condition, scene: &Scene<'_>) -> Option<Value> {
    match condition {
        Condition::FailureRate {
            above,
            min_runs,
            window,
        } => {
            let sums = scene.sums(*window);
            let done = sums.succeeded + sums.failed;
            let rate = sums.failed as f64 / done.max(1) as f64;
            (done >= i64::from(*min_runs) && rate > *above).then(|| json!({"failed": sums.failed, "finished": done, "rate": rate, "top_error": top_error(&sums)}))
        }
        Condition::AnyFailure { window } => {
            let sums = scene.sums(*window);
            (sums.failed > 0).then(|| json!({"failed": sums.failed, "top_error": top_error(&sums)}))
        }
        Condition::SlaBreach {
            queued_longer_than,
            window,
        } => {
            let slow = scene.sla.map_or(0, |sla| {
                scene.sums(*window).count_above_ms(sla.as_millis() as f64)
            });
            let waiting = queued_longer_than
                .and_then(|limit| scene.waiting.get(&limit).copied())
                .unwrap_or(0);
            (slow + waiting > 0)
                .then(|| json!({"slower_than_sla": slow, "queued_too_long": waiting}))
        }
        Condition::Silence { window, succeeded } => {
            // A paused workflow, or one whose runs wait on a hold or a limit, is quiet on
            // purpose: its silence rule waits too.
            if scene.watched_since > ago(scene.now, *window) || scene.paused || scene.held.is_some()
            {
                return None;
            }
            let sums = scene.sums(*window);
            let alive = match succeeded {
                true => sums.succeeded > 0,
                false => sums.queued > 0,
            };
            (!alive).then(|| json!({"silent_for_secs": window.as_secs(), "needs": if *succeeded { "succeeded" } else { "started" }}))
        }
        Condition::DlqDepth { above } => {
            (scene.dlq_depth > i64::from(*above)).then(|| json!({"dlq_depth": scene.dlq_depth}))
        }
        Condition::HeldLonger { than } => {
            let held = scene.held?;
            let for_secs = (scene.now - held.since).num_seconds();
            (for_secs >= than.as_secs() as i64).then(|| {
                json!({"held": held.runs, "oldest_held_secs": for_secs, "limit_secs": than.as_secs()})
            })
        }
    }
}

/// The most frequent error signature among failed runs, with one example.
fn top_error(sums: &Bucket) -> Value {
    match sums.failures.iter().max_by_key(|(_, seen)| seen.count) {
        Some((signature, seen)) => {
            json!({"signature": signature, "count": seen.count, "example": seen.example})
        }
        None => Value::Null,
    }
}
