//! Alerting: rules evaluated against the run log, alerts with a lifecycle (pending -> firing ->
//! resolved), acknowledgements and silences. Notification channels come next (issue 4).
//!
//! The evaluator is a pure function of the store's contents and a moment: [`Evaluator::evaluate_at`]
//! takes `now` as an argument, so tests move time by passing a later moment.

mod conditions;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::domain::alert::Condition;
use crate::engine::Engine;
use crate::store::{AlertChange, RunFact, Store, StoreError};
use crate::wire::{AlertState, AlertView, EventKind};
use conditions::{Scene, holds};

/// The shortest look-back, even when every rule looks at less.
const MIN_LOOKBACK: Duration = Duration::from_secs(3600);

/// When the evaluator last finished a round, for the watchdog and the health numbers.
#[derive(Debug, Default)]
pub struct Heartbeat(AtomicI64);

impl Heartbeat {
    fn beat(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// The last finished round, if any.
    pub fn last(&self) -> Option<DateTime<Utc>> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// True when the last round is older than `limit` (or there was none).
    pub fn is_stale(&self, limit: Duration) -> bool {
        self.last()
            .is_none_or(|at| (Utc::now() - at).to_std().unwrap_or_default() > limit)
    }
}

/// Evaluates every published workflow's rules and moves alerts through their lifecycle.
pub struct Evaluator {
    engine: Engine,
    store: Arc<dyn Store>,
    heartbeat: Arc<Heartbeat>,
    /// When each workflow was first watched (a silence rule needs a whole window of watching).
    first_seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Evaluator {
    pub fn new(engine: Engine, store: Arc<dyn Store>, heartbeat: Arc<Heartbeat>) -> Self {
        Self {
            engine,
            store,
            heartbeat,
            first_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Evaluates at `now`; answers the alerts that changed.
    pub async fn evaluate_at(&self, now: DateTime<Utc>) -> Result<Vec<AlertView>, StoreError> {
        let watched = self.engine.watched();
        let lookback = watched
            .iter()
            .flat_map(|w| w.rules.iter())
            .map(|r| window(&r.condition))
            .fold(MIN_LOOKBACK, Duration::max);
        let since = now - chrono::Duration::from_std(lookback * 2).unwrap_or_default();
        let facts = self.store.run_facts(since).await?;
        let depths: HashMap<String, i64> = self.store.dlq_depths().await?.into_iter().collect();
        let mut active: HashMap<(String, String), AlertView> = self
            .store
            .active_alerts()
            .await?
            .into_iter()
            .map(|a| ((a.rule.clone(), a.workflow.clone()), a))
            .collect();
        let mut changes = Vec::new();
        let mut live = HashSet::new();
        for w in &watched {
            let runs: Vec<&RunFact> = facts.iter().filter(|f| f.workflow == w.key).collect();
            let watched_since = *self
                .first_seen
                .lock()
                .map_err(|_| StoreError::Other("poisoned".into()))?
                .entry(w.key.clone())
                .or_insert(now);
            let scene = Scene {
                now,
                runs: &runs,
                sla: w.sla,
                dlq_depth: depths.get(&w.key).copied().unwrap_or(0),
                watched_since,
            };
            for rule in &w.rules {
                let id = (rule.name.clone(), w.key.clone());
                live.insert(id.clone());
                let change = match (holds(&rule.condition, &scene), active.remove(&id)) {
                    (Some(detail), None) => Some(AlertChange::Open {
                        rule: rule.name.clone(),
                        workflow: w.key.clone(),
                        severity: rule.severity.as_str().to_owned(),
                        firing: rule.after.is_zero(),
                        detail,
                    }),
                    (Some(detail), Some(a))
                        if a.state == AlertState::Pending && waited(&a, now) >= rule.after =>
                    {
                        Some(AlertChange::Fire { id: a.id, detail })
                    }
                    (Some(detail), Some(a)) if a.detail != detail => {
                        Some(AlertChange::Update { id: a.id, detail })
                    }
                    (None, Some(a)) => Some(AlertChange::Resolve { id: a.id }),
                    _ => None,
                };
                changes.extend(change);
            }
        }
        // Alerts of rules or workflows that are gone resolve too.
        changes.extend(
            active
                .into_values()
                .filter(|a| !live.contains(&(a.rule.clone(), a.workflow.clone())))
                .map(|a| AlertChange::Resolve { id: a.id }),
        );
        let mut changed = Vec::with_capacity(changes.len());
        for change in changes {
            changed.push(self.store.alert_change(change).await?);
        }
        Ok(changed)
    }
}

fn waited(alert: &AlertView, now: DateTime<Utc>) -> Duration {
    (now - alert.opened_at).to_std().unwrap_or_default()
}

/// How far back a condition looks.
fn window(condition: &Condition) -> Duration {
    match condition {
        Condition::FailureRate { window, .. }
        | Condition::AnyFailure { window }
        | Condition::SlaBreach { window, .. }
        | Condition::Silence { window, .. } => *window,
        Condition::DlqDepth { .. } => Duration::ZERO,
    }
}

/// Evaluates every `every` until shutdown.
pub async fn run(evaluator: Evaluator, every: Duration, shutdown: CancellationToken) {
    loop {
        match evaluator.evaluate_at(Utc::now()).await {
            Ok(_) => evaluator.heartbeat.beat(Utc::now()),
            Err(e) => tracing::warn!("alert evaluation failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Monitors the monitor: when the evaluator has not finished a round for `stale_after`, appends
/// `control.degraded` to the run log (so every stream client sees it), and
/// `control.recovered` once it runs again.
pub async fn watchdog(
    heartbeat: Arc<Heartbeat>,
    store: Arc<dyn Store>,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    let mut degraded = false;
    let every = (stale_after / 4).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        let stale = heartbeat.is_stale(stale_after);
        if stale == degraded {
            continue;
        }
        let kind = if stale {
            EventKind::ControlDegraded
        } else {
            EventKind::ControlRecovered
        };
        let data = serde_json::json!({"part": "alert evaluator", "last_run": heartbeat.last()});
        match store.record_event(kind, data).await {
            Ok(()) => degraded = stale,
            Err(e) => tracing::warn!("recording the evaluator's state failed: {e}"),
        }
    }
}
