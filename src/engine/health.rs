//! The health numbers: runs, outcomes, durations, throughput buckets and failure reasons per
//! workflow and team over a window, read from the rollups (so their cost is the window's
//! number of buckets, not of runs). Outcomes count where runs ended, throughput where they were
//! queued; a window starts at its first whole minute and long windows read whole hours, so a
//! bucket's runs land in the bucket holding their row's start.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Engine, EngineError};
use crate::domain::rollup::{Bucket, spans};
use crate::store::RollupRow;
use crate::wire::{
    ControlStatus, Counts, FailureReason, Health, HealthQuery, TeamHealth, WorkflowHealth,
};

/// Most failure reasons listed.
const TOP_REASONS: usize = 20;
/// The shortest window: rollups are per minute.
const MIN_WINDOW: Duration = Duration::from_secs(60);
/// Most throughput buckets one answer holds.
const MAX_BUCKETS: usize = 240;

impl Engine {
    /// Health over `query.window` (default one hour) ending now.
    pub async fn health(&self, query: &HealthQuery) -> Result<Health, EngineError> {
        let window = match &query.window {
            Some(text) => crate::domain::validate::parse_duration(text)
                .map_err(|e| EngineError::Invalid(format!("window: {e}")))?,
            None => Duration::from_secs(3600),
        };
        if window < MIN_WINDOW {
            return Err(EngineError::Invalid(format!(
                "window: at least 1m (health is summed per minute), not {}",
                humantime::format_duration(window)
            )));
        }
        // A bucket is at least a minute: the rollups hold nothing finer.
        let minutes = usize::try_from(window.as_secs() / 60).unwrap_or(usize::MAX);
        let most = minutes.min(MAX_BUCKETS);
        let buckets = query.buckets.unwrap_or(12.min(most));
        if !(1..=most).contains(&buckets) {
            return Err(EngineError::Invalid(format!(
                "buckets: 1 to {most} for a window of {} (a bucket is at least a minute, at most \
                 {MAX_BUCKETS} buckets), not {buckets}",
                humantime::format_duration(window)
            )));
        }
        let until = self.inner.config.clock.now();
        let asked = crate::domain::clock::earlier(until, window).ok_or_else(|| {
            EngineError::Invalid(format!("the window {window:?} reaches before the year 0"))
        })?;
        let spans = spans(asked, until);
        // The window as the rollups cover it: from the start of its first row.
        let since = spans
            .first()
            .and_then(|s| DateTime::from_timestamp_millis(s.from))
            .unwrap_or(asked);
        let wanted = |workflow: &str, team: &str| {
            query.workflow.as_deref().is_none_or(|w| w == workflow)
                && query.team.as_deref().is_none_or(|t| t == team)
        };
        let rows: Vec<RollupRow> = self
            .inner
            .store
            .rollups(spans)
            .await?
            .into_iter()
            .filter(|r| wanted(&r.workflow, &r.team))
            .collect();
        let depths: BTreeMap<String, i64> =
            self.inner.store.dlq_depths().await?.into_iter().collect();
        let held: BTreeMap<String, i64> = self
            .inner
            .store
            .held_runs()
            .await?
            .into_iter()
            .map(|h| (h.workflow, h.runs))
            .collect();
        let teams: BTreeMap<String, String> = self
            .inner
            .store
            .workflows()
            .await?
            .into_iter()
            .map(|w| (w.key, w.team))
            .collect();
        let bucket = (until - asked) / buckets as i32;
        let mut workflows = Vec::new();
        for (key, team) in &teams {
            if !wanted(key, team) {
                continue;
            }
            let buckets_of: Vec<&RollupRow> = rows.iter().filter(|r| &r.workflow == key).collect();
            let mut health = workflow_health(
                key,
                team,
                &buckets_of,
                depths.get(key).copied().unwrap_or(0),
                asked,
                bucket,
                buckets,
            );
            health.counts.held = held.get(key).copied().unwrap_or(0);
            workflows.push(health);
        }
        let mut team_counts: BTreeMap<String, Counts> = BTreeMap::new();
        for w in &workflows {
            let c = team_counts.entry(w.team.clone()).or_default();
            c.runs += w.counts.runs;
            c.succeeded += w.counts.succeeded;
            c.failed += w.counts.failed;
            c.dlq_depth += w.counts.dlq_depth;
            c.held += w.counts.held;
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
            held: workflows.iter().map(|w| w.counts.held).sum(),
            workflows,
            teams,
            failure_reasons: reasons(&rows),
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
    rows: &[&RollupRow],
    dlq_depth: i64,
    since: DateTime<Utc>,
    bucket: chrono::Duration,
    buckets: usize,
) -> WorkflowHealth {
    let index = |at: DateTime<Utc>| {
        ((at - since).num_milliseconds() / bucket.num_milliseconds().max(1))
            .clamp(0, buckets as i64 - 1) as usize
    };
    let mut total = Bucket::default();
    let mut throughput = vec![0; buckets];
    let mut failures = vec![0; buckets];
    for row in rows {
        total.merge(&row.bucket);
        let at = index(row.start);
        throughput[at] += row.bucket.queued;
        failures[at] += row.bucket.failed;
    }
    WorkflowHealth {
        workflow: key.to_owned(),
        team: team.to_owned(),
        counts: Counts {
            runs: total.queued,
            succeeded: total.succeeded,
            failed: total.failed,
            failure_rate: rate(total.failed, total.succeeded),
            dlq_depth,
            held: 0,
        },
        p50_ms: total.percentile_ms(0.50),
        p95_ms: total.percentile_ms(0.95),
        throughput,
        failures,
        unnotified: Default::default(),
    }
}

fn reasons(rows: &[RollupRow]) -> Vec<FailureReason> {
    let mut grouped: BTreeMap<(String, String), FailureReason> = BTreeMap::new();
    for row in rows {
        for (sig, seen) in &row.bucket.failures {
            let reason = grouped
                .entry((row.workflow.clone(), sig.clone()))
                .or_insert_with(|| FailureReason {
                    signature: sig.clone(),
                    workflow: row.workflow.clone(),
                    count: 0,
                    first_seen: seen.first_seen,
                    last_seen: seen.last_seen,
                    example: seen.example.clone(),
                });
            reason.count += seen.count;
            reason.first_seen = reason.first_seen.min(seen.first_seen);
            if seen.last_seen > reason.last_seen {
                reason.last_seen = seen.last_seen;
                reason.example = seen.example.clone();
            }
        }
    }
    let mut list: Vec<FailureReason> = grouped.into_values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
    list.truncate(TOP_REASONS);
    list
}
