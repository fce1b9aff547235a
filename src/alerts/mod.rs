//! Alerting: rules evaluated against the run log, alerts with a lifecycle (pending -> firing ->
//! resolved, a firing alert resolving only after its condition has been clear for the policy's
//! `resolve_after`, so a flapping condition stays one alert), acknowledgements and silences, and notifications to channels (Slack, email,
//! signed webhooks) through a durable queue, grouped per alert, repeated until acknowledged,
//! with a record of which notification told someone about which failed run.
//!
//! The evaluator is a pure function of the store's contents and a moment: [`Evaluator::evaluate_at`]
//! takes `now` as an argument, so tests move time by passing a later moment.

mod conditions;
pub mod rules;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::domain::alert::{Condition, HELD_TOO_LONG, Rule, Severity};
use crate::domain::clock::Heartbeat;
use crate::domain::config::Policy;
use crate::domain::notice;
use crate::domain::rollup::{Bucket, spans};
use crate::engine::Engine;
use crate::store::HeldRuns;
use crate::store::{AlertChange, NewNotice, Store, StoreError};
use crate::wire::{AlertState, AlertView};
use conditions::{Scene, holds, queue_limits};

/// Resolved alerts looked through for the previous one of a rule (newest first).
const PREVIOUS_LOOKED_AT: usize = 200;

/// Incidents a notification names at most.
const NOTICE_INCIDENTS: usize = 3;

/// The shortest look-back, even when every rule looks at less.
const MIN_LOOKBACK: Duration = Duration::from_secs(3600);

/// Evaluates every published workflow's rules and moves alerts through their lifecycle.
pub struct Evaluator {
    engine: Engine,
    store: Arc<dyn Store>,
    heartbeat: Arc<Heartbeat>,
    policy: Arc<Policy>,
    /// When each workflow was first watched (a silence rule needs a whole window of watching).
    first_seen: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Active alerts whose condition is clear, since when: they resolve once it has been clear
    /// for the policy's `resolve_after` (kept in memory: a restart restarts the hold-down).
    clear_since: Mutex<HashMap<i64, DateTime<Utc>>>,
}

/// What routing and grouping need to know about an alert's rule.
struct Origin {
    severity: Severity,
    team: String,
    window: Duration,
}

impl Evaluator {
    pub fn new(engine: Engine, store: Arc<dyn Store>, heartbeat: Arc<Heartbeat>) -> Self {
        Self {
            engine,
            store,
            heartbeat,
            policy: Arc::default(),
            first_seen: Mutex::new(HashMap::new()),
            clear_since: Mutex::new(HashMap::new()),
        }
    }

    /// Uses global and team rules, channels, routes and timing from a policy.
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// Evaluates at `now`; answers the alerts that changed.
    pub async fn evaluate_at(&self, now: DateTime<Utc>) -> Result<Vec<AlertView>, StoreError> {
        let api = rules::checked(&self.store.alert_rules().await?);
        let watched: Vec<(crate::engine::Watched, Vec<Rule>)> = self
            .engine
            .watched()
            .into_iter()
            .map(|w| {
                let mut rules = rules::effective(&w, &self.policy, &api);
                if !rules.iter().any(|r| r.name == HELD_TOO_LONG) {
                    rules.push(Rule {
                        name: HELD_TOO_LONG.into(),
                        severity: Severity::Warning,
                        condition: Condition::HeldLonger {
                            than: self.policy.policies.hold_warning,
                        },
                        after: Duration::ZERO,
                    });
                }
                (w, rules)
            })
            .collect();
        let windows: BTreeSet<Duration> = watched
            .iter()
            .flat_map(|(_, rules)| rules.iter())
            .map(|r| window(&r.condition))
            .filter(|w| !w.is_zero())
            .collect();
        let mut sums: HashMap<Duration, HashMap<String, Bucket>> = HashMap::new();
        for length in windows {
            let since = crate::domain::clock::earlier_or_min(now, length);
            let per_workflow = sums.entry(length).or_default();
            for row in self.store.rollups(spans(since, now)).await? {
                per_workflow
                    .entry(row.workflow)
                    .or_default()
                    .merge(&row.bucket);
            }
        }
        let limits: BTreeSet<Duration> = watched
            .iter()
            .flat_map(|(_, rules)| rules.iter())
            .filter_map(|r| queue_limits(&r.condition))
            .collect();
        let mut waiting: HashMap<Duration, HashMap<String, i64>> = HashMap::new();
        for limit in limits {
            let before = crate::domain::clock::earlier_or_min(now, limit);
            let counts = self
                .store
                .queued_before(before)
                .await?
                .into_iter()
                .collect();
            waiting.insert(limit, counts);
        }
        let depths: HashMap<String, i64> = self.store.dlq_depths().await?.into_iter().collect();
        let held: HashMap<String, HeldRuns> = self
            .store
            .held_runs()
            .await?
            .into_iter()
            .map(|h| (h.workflow.clone(), h))
            .collect();
        let mut active: HashMap<(String, String), AlertView> = self
            .store
            .active_alerts()
            .await?
            .into_iter()
            .map(|a| ((a.rule.clone(), a.workflow.clone()), a))
            .collect();
        let mut live = HashSet::new();
        let mut origins = HashMap::new();
        let changes = {
            let mut changes = Vec::new();
            let mut clear = self
                .clear_since
                .lock()
                .map_err(|_| StoreError::Other("poisoned".into()))?;
            for (w, rules) in &watched {
                let sums: HashMap<Duration, Bucket> = sums
                    .iter()
                    .filter_map(|(length, per)| Some((*length, per.get(&w.key)?.clone())))
                    .collect();
                let waiting: HashMap<Duration, i64> = waiting
                    .iter()
                    .filter_map(|(limit, per)| Some((*limit, *per.get(&w.key)?)))
                    .collect();
                let watched_since = *self
                    .first_seen
                    .lock()
                    .map_err(|_| StoreError::Other("poisoned".into()))?
                    .entry(w.key.clone())
                    .or_insert(now);
                let scene = Scene {
                    now,
                    sums: &sums,
                    waiting: &waiting,
                    sla: w.sla,
                    dlq_depth: depths.get(&w.key).copied().unwrap_or(0),
                    watched_since,
                    held: held.get(&w.key),
                    paused: w.paused,
                };
                for rule in rules {
                    let id = (rule.name.clone(), w.key.clone());
                    live.insert(id.clone());
                    origins.insert(
                        id.clone(),
                        Origin {
                            severity: rule.severity,
                            team: w.team.clone(),
                            window: window(&rule.condition),
                        },
                    );
                    let active = active.remove(&id);
                    let detail = holds(&rule.condition, &scene).or_else(|| {
                        // A dead-letter alert stays on while any of the entries it is about is open.
                        matches!(rule.condition, Condition::DlqDepth { .. })
                            .then_some(())
                            .filter(|()| active.is_some() && scene.dlq_depth > 0)
                            .map(|()| serde_json::json!({"dlq_depth": scene.dlq_depth}))
                    });
                    let change = match (detail, active) {
                        (Some(detail), None) => Some(AlertChange::Open {
                            rule: rule.name.clone(),
                            workflow: w.key.clone(),
                            severity: rule.severity.as_str().to_owned(),
                            firing: rule.after.is_zero(),
                            detail,
                        }),
                        (Some(detail), Some(a)) => {
                            clear.remove(&a.id);
                            if a.state == AlertState::Pending && waited(&a, now) >= rule.after {
                                Some(AlertChange::Fire { id: a.id, detail })
                            } else if a.detail != detail {
                                Some(AlertChange::Update { id: a.id, detail })
                            } else {
                                None
                            }
                        }
                        // A pending alert never fired: nothing to hold down.
                        (None, Some(a)) if a.state == AlertState::Pending => {
                            Some(AlertChange::Resolve { id: a.id })
                        }
                        (None, Some(a)) => {
                            let since = *clear.entry(a.id).or_insert(now);
                            let held = (now - since).to_std().unwrap_or_default();
                            (held >= self.policy.resolve_after)
                                .then_some(AlertChange::Resolve { id: a.id })
                        }
                        (None, None) => None,
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
            let resolving: HashSet<i64> = changes
                .iter()
                .filter_map(|c| match c {
                    AlertChange::Resolve { id } => Some(*id),
                    _ => None,
                })
                .collect();
            clear.retain(|id, _| !resolving.contains(id));
            changes
        };
        let mut changed = Vec::with_capacity(changes.len());
        for change in changes {
            changed.push(self.store.alert_change(change).await?);
        }
        self.notify(now, &changed, &origins).await?;
        Ok(changed)
    }

    /// Queues notifications: when an alert fires; when new failures join a firing alert (at
    /// most every `group_interval`); again every `renotify` until someone acknowledges it; and
    /// when it resolves. Silenced alerts stay quiet.
    async fn notify(
        &self,
        now: DateTime<Utc>,
        changed: &[AlertView],
        origins: &HashMap<(String, String), Origin>,
    ) -> Result<(), StoreError> {
        if self.policy.channels.is_empty() {
            return Ok(());
        }
        let silenced = |a: &AlertView| a.silenced_until.is_some_and(|until| until > now);
        let resolved = changed
            .iter()
            .filter(|a| a.state == AlertState::Resolved && a.notified_at.is_some() && !silenced(a));
        let firing = self.store.active_alerts().await?;
        let firing = firing
            .iter()
            .filter(|a| a.state == AlertState::Firing && !silenced(a));
        // Resolved alerts, read once a round and only when an alert is looked at.
        let mut earlier: Option<Vec<AlertView>> = None;
        for alert in resolved.chain(firing) {
            let Some(origin) = origins.get(&(alert.rule.clone(), alert.workflow.clone())) else {
                continue;
            };
            let channels = self
                .policy
                .channels_for(origin.severity, &origin.team, &alert.workflow);
            if channels.is_empty() {
                continue;
            }
            let lookback = origin.window.max(MIN_LOOKBACK / 4);
            let since = crate::domain::clock::earlier_or_min(
                alert.fired_at.unwrap_or(alert.opened_at),
                lookback,
            );
            // Failures an earlier alert of the same rule reported until it resolved are that
            // alert's, not this one's (its message, count and page start after them).
            if earlier.is_none() {
                let list = self
                    .store
                    .alerts(Some(AlertState::Resolved), PREVIOUS_LOOKED_AT)
                    .await?;
                earlier = Some(list);
            }
            let since = match previous_resolution(earlier.as_deref().unwrap_or_default(), alert) {
                Some(resolved) if resolved > since => resolved,
                _ => since,
            };
            let fresh = match alert.state {
                AlertState::Resolved => Vec::new(),
                _ => {
                    self.store
                        .uncovered_failures(alert.id, &alert.workflow, since)
                        .await?
                }
            };
            let quiet_for = |since: DateTime<Utc>| (now - since).to_std().unwrap_or_default();
            let reason = match (alert.state, alert.notified_at) {
                (AlertState::Resolved, _) => "resolved",
                (_, None) => "firing",
                (_, Some(at))
                    if !fresh.is_empty() && quiet_for(at) >= self.policy.group_interval =>
                {
                    "update"
                }
                (_, Some(at))
                    if alert.acked_at.is_none() && quiet_for(at) >= self.policy.renotify =>
                {
                    "reminder"
                }
                _ => continue,
            };
            let public_url = self.policy.base_url();
            let incidents = self
                .engine
                .recent_incidents(&alert.workflow, since, NOTICE_INCIDENTS)
                .await?;
            let cx = notice::Context {
                team: &origin.team,
                public_url,
                since,
                new_failures: fresh.len(),
                incidents: &incidents,
            };
            self.store
                .notify(NewNotice {
                    alert_id: alert.id,
                    reason: reason.to_owned(),
                    channels,
                    payload: notice::payload(alert, reason, &cx),
                    runs: fresh,
                })
                .await?;
        }
        Ok(())
    }
}

/// When the newest earlier alert of the same rule and workflow resolved, if one did
/// (`resolved` newest first).
fn previous_resolution(resolved: &[AlertView], alert: &AlertView) -> Option<DateTime<Utc>> {
    resolved
        .iter()
        .filter(|a| a.id < alert.id && a.rule == alert.rule && a.workflow == alert.workflow)
        .find_map(|a| a.resolved_at)
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
        Condition::DlqDepth { .. } | Condition::HeldLonger { .. } => Duration::ZERO,
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
