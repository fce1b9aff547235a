//! The product's success metrics over a window (`GET /metrics/summary`, `acp metrics`): runs
//! and runs per week, MTTR (incident and run level) and MTTA as median and p90, the
//! unnotified-failure rate, and the share of workflows with healthy automation.
//!
//! A workflow is **healthy** over a window when, at the end of it,
//! 1. it has no open (or regressed) incident,
//! 2. its failure rate in the window is at most its alert threshold (the lowest `above` of
//!    its `FailureRate` rules; without one, the default rule's 10%), and
//! 3. no run in the window took longer than its `sla` (a workflow without an SLA has none to
//!    breach).
//!
//! Everything comes from stored facts that outlive run retention: the rollups (runs,
//! outcomes, durations), the incidents' state history, the run-level outages and the alerts.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::alerts::rules;
use crate::domain::alert::{Condition, default_rules};
use crate::domain::config::Policy;
use crate::domain::incident::quantile;
use crate::domain::rollup::{Bucket, spans};
use crate::engine::{Engine, EngineError};
use crate::store::{IncidentFacts, Interval, Store};
use crate::wire::{MetricsSummary, SummaryQuery, SummaryReport, WorkflowSummary};

/// The window when none is asked for.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest window (the rollups are per minute).
const MIN_WINDOW: Duration = Duration::from_secs(60);
/// The longest window (a year of hourly rollups).
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);
const WEEK_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// One workflow's inputs to the summary.
#[derive(Debug, Clone, Default)]
pub struct WorkflowFacts {
    pub key: String,
    pub team: String,
    /// Its runs over the window, summed.
    pub bucket: Bucket,
    pub sla: Option<Duration>,
    /// Its failure-rate alert threshold (0 to 1).
    pub threshold: f64,
    /// Failed runs in the window and those no notification covered in time.
    pub failed: i64,
    pub unnotified: i64,
}

/// The summary over `query.window` (default 7 days) ending now, for `query.team` or all.
///
/// # Errors
/// [`EngineError::Invalid`] for a window that does not read or is out of 1m..366d; a store
/// error otherwise.
pub async fn summary(
    engine: &Engine,
    store: &dyn Store,
    policy: &Policy,
    notify_within: Duration,
    query: &SummaryQuery,
) -> Result<SummaryReport, EngineError> {
    let window = match &query.window {
        Some(text) => crate::domain::clock::parse_duration(text)
            .map_err(|e| EngineError::Invalid(format!("window: {e}")))?,
        None => DEFAULT_WINDOW,
    };
    if !(MIN_WINDOW..=MAX_WINDOW).contains(&window) {
        return Err(EngineError::Invalid(format!(
            "window: 1m to 366d, not {}",
            humantime::format_duration(window)
        )));
    }
    let until = Utc::now();
    let since = crate::domain::clock::earlier_or_min(until, window);
    let mut sums: BTreeMap<String, Bucket> = BTreeMap::new();
    for row in store.rollups(spans(since, until)).await? {
        sums.entry(row.workflow).or_default().merge(&row.bucket);
    }
    let unnotified: BTreeMap<String, (i64, i64)> = store
        .unnotified(since, until, notify_within)
        .await?
        .into_iter()
        .map(|c| (c.workflow, (c.failed, c.unnotified)))
        .collect();
    let api = rules::checked(&store.alert_rules().await?);
    let fallback = threshold(&default_rules()).unwrap_or(0.10);
    let workflows = engine
        .watched()
        .into_iter()
        .filter(|w| query.team.as_deref().is_none_or(|t| t == w.team))
        .map(|w| {
            let effective = rules::effective(&w, policy, &api);
            let (failed, unnotified) = unnotified.get(&w.key).copied().unwrap_or_default();
            WorkflowFacts {
                bucket: sums.remove(&w.key).unwrap_or_default(),
                sla: w.sla,
                threshold: threshold(&effective).unwrap_or(fallback),
                failed,
                unnotified,
                key: w.key,
                team: w.team,
            }
        })
        .collect();
    let facts = store.incident_facts(since).await?;
    Ok(summarize(since, until, workflows, &facts))
}

/// The lowest failure-rate threshold among `rules`.
fn threshold(rules: &[crate::domain::alert::Rule]) -> Option<f64> {
    rules
        .iter()
        .filter_map(|r| match r.condition {
            Condition::FailureRate { above, .. } => Some(above),
            _ => None,
        })
        .min_by(f64::total_cmp)
}

/// The summary of `workflows` from their facts: per workflow and in total (the total's
/// quantiles are over every interval, not an average of the workflows').
pub fn summarize(
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    workflows: Vec<WorkflowFacts>,
    facts: &IncidentFacts,
) -> SummaryReport {
    let weeks = ((until - since).num_milliseconds() as f64 / 1000.0 / WEEK_SECS).max(f64::EPSILON);
    let open: BTreeMap<&str, i64> = facts.open.iter().map(|(w, n)| (w.as_str(), *n)).collect();
    let of = |list: &[Interval], key: &str| -> Vec<f64> {
        list.iter()
            .filter(|i| i.workflow == key)
            .map(|i| i.seconds)
            .collect()
    };
    let mut all = Totals::default();
    let per_workflow: Vec<WorkflowSummary> = workflows
        .into_iter()
        .map(|w| {
            let mut because = Vec::new();
            let open_incidents = open.get(w.key.as_str()).copied().unwrap_or(0);
            if open_incidents > 0 {
                because.push(match open_incidents {
                    1 => "1 open incident".to_owned(),
                    n => format!("{n} open incidents"),
                });
            }
            let done = w.bucket.succeeded + w.bucket.failed;
            let failure_rate = if done == 0 {
                0.0
            } else {
                w.bucket.failed as f64 / done as f64
            };
            if failure_rate > w.threshold {
                because.push(format!(
                    "failure rate {:.1}% above its {:.1}% threshold",
                    failure_rate * 100.0,
                    w.threshold * 100.0
                ));
            }
            if let Some(sla) = w.sla {
                let slow = w.bucket.count_above_ms(sla.as_millis() as f64);
                if slow > 0 {
                    because.push(format!(
                        "{slow} run(s) slower than its SLA of {}",
                        humantime::format_duration(sla)
                    ));
                }
            }
            let mut totals = Totals {
                runs: w.bucket.queued,
                failed: w.failed,
                unnotified: w.unnotified,
                workflows: 1,
                healthy: i64::from(because.is_empty()),
                resolutions: of(&facts.resolutions, &w.key),
                outages: of(&facts.outages, &w.key),
                acknowledgements: of(&facts.acknowledgements, &w.key),
            };
            let metrics = totals.metrics(weeks);
            all.add(&mut totals);
            WorkflowSummary {
                workflow: w.key,
                team: w.team,
                healthy: because.is_empty(),
                unhealthy_because: because,
                open_incidents,
                failure_rate,
                metrics,
            }
        })
        .collect();
    SummaryReport {
        since,
        until,
        totals: all.metrics(weeks),
        per_workflow,
    }
}

/// What the figures are computed from, summed over workflows.
#[derive(Debug, Default)]
struct Totals {
    runs: i64,
    failed: i64,
    unnotified: i64,
    workflows: i64,
    healthy: i64,
    resolutions: Vec<f64>,
    outages: Vec<f64>,
    acknowledgements: Vec<f64>,
}

impl Totals {
    fn add(&mut self, other: &mut Totals) {
        self.runs += other.runs;
        self.failed += other.failed;
        self.unnotified += other.unnotified;
        self.workflows += other.workflows;
        self.healthy += other.healthy;
        self.resolutions.append(&mut other.resolutions);
        self.outages.append(&mut other.outages);
        self.acknowledgements.append(&mut other.acknowledgements);
    }

    fn metrics(&mut self, weeks: f64) -> MetricsSummary {
        MetricsSummary {
            runs: self.runs,
            runs_per_week: self.runs as f64 / weeks,
            mttr_p50_s: quantile(&mut self.resolutions, 0.5),
            mttr_p90_s: quantile(&mut self.resolutions, 0.9),
            run_mttr_p50_s: quantile(&mut self.outages, 0.5),
            run_mttr_p90_s: quantile(&mut self.outages, 0.9),
            mtta_p50_s: quantile(&mut self.acknowledgements, 0.5),
            mtta_p90_s: quantile(&mut self.acknowledgements, 0.9),
            unnotified_rate: if self.failed == 0 {
                0.0
            } else {
                self.unnotified as f64 / self.failed as f64
            },
            healthy_workflows: self.healthy,
            workflows: self.workflows,
            healthy_pct: if self.workflows == 0 {
                0.0
            } else {
                self.healthy as f64 * 100.0 / self.workflows as f64
            },
        }
    }
}

#[cfg(test)]
mod tests;
