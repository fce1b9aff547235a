//! The health numbers: runs, outcomes, durations, throughput buckets and failure reasons per
//! workflow and team over a window.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError};
use crate::domain::signature::signature;
use crate::store::RunFact;
use crate::wire::{
    ControlStatus, Counts, FailureReason, Health, HealthQuery, RunStatus, TeamHealth,
    WorkflowHealth,
};

/// Most failure reasons listed.
const TOP_REASONS: usize = 20;

impl Engine {
    /// Health over `query.window` (default one hour) ending now.
    pub async fn health(&self, query: &HealthQuery) -> Result<Health, EngineError> {
        let window = match &query.window {
            Some(text) => crate::domain::validate::parse_duration(text)
                .map_err(|e| EngineError::Invalid(e.to_string()))?,
            None => Duration::from_secs(3600),
        };
        if window.is_zero() {
            return Err(EngineError::Invalid(
                "the window must be longer than 0s".into(),
            ));
        }
        let buckets = query.buckets.unwrap_or(12).clamp(1, 240);
        let until = self.inner.config.clock.now();
        let since = crate::domain::clock::earlier(until, window).ok_or_else(|| {
            EngineError::Invalid(format!("the window {window:?} reaches before the year 0"))
        })?;
        let wanted = |workflow: &str, team: &str| {
            query.workflow.as_deref().is_none_or(|w| w == workflow)
                && query.team.as_deref().is_none_or(|t| t == team)
        };
        let facts: Vec<RunFact> = self
            .inner
            .store
            .run_facts(since)
            .await?
            .into_iter()
            .filter(|f| wanted(&f.workflow, &f.team))
            .collect();
        let depths: BTreeMap<String, i64> =
            self.inner.store.dlq_depths().await?.into_iter().collect();
        let teams: BTreeMap<String, String> = self
            .inner
            .store
            .workflows()
            .await?
            .into_iter()
            .map(|w| (w.key, w.team))
            .collect();
        let bucket = (until - since) / buckets as i32;
        let mut workflows = Vec::new();
        for (key, team) in &teams {
            if !wanted(key, team) {
                continue;
            }
            let runs: Vec<&RunFact> = facts.iter().filter(|f| &f.workflow == key).collect();
            workflows.push(workflow_health(
                key,
                team,
                &runs,
                depths.get(key).copied().unwrap_or(0),
                since,
                bucket,
                buckets,
            ));
        }
        let mut team_counts: BTreeMap<String, Counts> = BTreeMap::new();
        for w in &workflows {
            let c = team_counts.entry(w.team.clone()).or_default();
            c.runs += w.counts.runs;
            c.succeeded += w.counts.succeeded;
            c.failed += w.counts.failed;
            c.dlq_depth += w.counts.dlq_depth;
        }
        let teams = team_counts
            .into_iter()
            .map(|(team, mut counts)| {
                counts.failure_rate = rate(counts.failed, counts.succeeded);
                TeamHealth { team, counts }
            })
            .collect();
        Ok(Health {
            since,
            until,
            bucket_secs: bucket.num_seconds(),
            dlq_depth: workflows.iter().map(|w| w.counts.dlq_depth).sum(),
            workflows,
            teams,
            failure_reasons: reasons(&facts),
            control: ControlStatus::default(),
            unnotified: Default::default(),
        })
    }
}

fn rate(failed: i64, succeeded: i64) -> f64 {
    match failed + succeeded {
        0 => 0.0,
        done => failed as f64 / done as f64,
    }
}

fn workflow_health(
    key: &str,
    team: &str,
    runs: &[&RunFact],
    dlq_depth: i64,
    since: DateTime<Utc>,
    bucket: chrono::Duration,
    buckets: usize,
) -> WorkflowHealth {
    let count = |status: RunStatus| runs.iter().filter(|r| r.status == status).count() as i64;
    let (succeeded, failed) = (count(RunStatus::Succeeded), count(RunStatus::Failed));
    let mut durations: Vec<i64> = runs
        .iter()
        .filter_map(|r| Some((r.finished_at? - r.started_at?).num_milliseconds()))
        .collect();
    durations.sort_unstable();
    let percentile = |p: f64| {
        durations
            .get(((durations.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
    };
    let index = |at: DateTime<Utc>| {
        ((at - since).num_milliseconds() / bucket.num_milliseconds().max(1))
            .clamp(0, buckets as i64 - 1) as usize
    };
    let mut throughput = vec![0; buckets];
    let mut failures = vec![0; buckets];
    for run in runs {
        throughput[index(run.queued_at)] += 1;
        if run.status == RunStatus::Failed {
            failures[index(run.finished_at.unwrap_or(run.queued_at))] += 1;
        }
    }
    WorkflowHealth {
        workflow: key.to_owned(),
        team: team.to_owned(),
        counts: Counts {
            runs: runs.len() as i64,
            succeeded,
            failed,
            failure_rate: rate(failed, succeeded),
            dlq_depth,
        },
        p50_ms: percentile(0.50),
        p95_ms: percentile(0.95),
        throughput,
        failures,
        unnotified: Default::default(),
    }
}

fn reasons(facts: &[RunFact]) -> Vec<FailureReason> {
    let mut grouped: BTreeMap<(String, String), FailureReason> = BTreeMap::new();
    for fact in facts.iter().filter(|f| f.status == RunStatus::Failed) {
        let message = fact.error.clone().unwrap_or_default();
        let at = fact.finished_at.unwrap_or(fact.queued_at);
        let sig = signature(&message);
        let reason = grouped
            .entry((fact.workflow.clone(), sig.clone()))
            .or_insert_with(|| FailureReason {
                signature: sig,
                workflow: fact.workflow.clone(),
                count: 0,
                first_seen: at,
                last_seen: at,
                example: message.clone(),
            });
        reason.count += 1;
        reason.first_seen = reason.first_seen.min(at);
        reason.last_seen = reason.last_seen.max(at);
    }
    let mut list: Vec<FailureReason> = grouped.into_values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
    list.truncate(TOP_REASONS);
    list
}
