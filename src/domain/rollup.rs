//! Rollups: what the health numbers and the workflow list need of the run log, summed per
//! workflow and time bucket as runs are queued and end. Reading a window then costs its number
//! of buckets, not its number of runs, and the sums outlive the runs retention prunes.
//!
//! Two grains are kept: minutes (for short windows and the edges of long ones) and hours.
//! [`spans`] says which rows of which grain tile a window. Durations are summed as a DDSketch
//! (relative error 1%, Masson, Rim and Lee, "DDSketch: a fast and fully-mergeable quantile
//! sketch with relative-error guarantees", VLDB 2019), stored in its standard binary format.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch, DecodeError};

use super::signature::signature;
use crate::wire::{RunMode, RunStatus};

/// One minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// The grains kept, in milliseconds, finest first.
pub const GRAINS: [i64; 2] = [MINUTE_MS, HOUR_MS];
/// How long minute rows are kept (windows longer than this read hours in the middle).
pub const MINUTE_ROWS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(2);
/// Most failure signatures one bucket keeps (the most frequent; `failed` counts them all).
pub const MAX_SIGNATURES: usize = 50;

/// What one run adds to the buckets it falls in.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub workflow: String,
    pub team: String,
    pub at: DateTime<Utc>,
    pub kind: TallyKind,
}

/// A run was queued, ended, or (retried) ended no longer.
#[derive(Debug, Clone, PartialEq)]
pub enum TallyKind {
    Queued,
    Ended {
        status: RunStatus,
        /// From its first claim to its end; none when it never started (or was cancelled:
        /// a cancelled run's time says nothing about the workflow's).
        duration_ms: Option<i64>,
        /// The error message of a failed run.
        error: Option<String>,
    },
    /// A run that had ended with `status` at the tally's `at` runs again (a retry): its
    /// outcome leaves that bucket, so a run counts once, by its last end (its duration stays
    /// in the sketch, which cannot forget a value).
    Reopened {
        status: RunStatus,
        error: Option<String>,
    },
}

impl Tally {
    /// The tally of a queued run; none for a test run (test runs never count).
    pub fn queued(workflow: &str, team: &str, mode: RunMode, at: DateTime<Utc>) -> Option<Self> {
        Self::of((workflow, team, mode), at, TallyKind::Queued)
    }

    /// A tally of a live run (workflow, team, mode); none for a test run.
    fn of(run: (&str, &str, RunMode), at: DateTime<Utc>, kind: TallyKind) -> Option<Self> {
        let (workflow, team, mode) = run;
        (mode == RunMode::Live).then(|| Self {
            workflow: workflow.to_owned(),
            team: team.to_owned(),
            at,
            kind,
        })
    }

    /// The tally of a run that ended at `at` with `status`; none for a test run.
    pub fn ended(
        run: (&str, &str, RunMode),
        status: RunStatus,
        started_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Option<Self> {
        let kind = TallyKind::Ended {
            status,
            duration_ms: started_at
                .filter(|_| status != RunStatus::Cancelled)
                .map(|s| (at - s).num_milliseconds().max(0)),
            error: error.map(str::to_owned),
        };
        Self::of(run, at, kind)
    }

    /// The tally of a run that had ended at `ended_at` with `status` and is queued again;
    /// none for a test run.
    pub fn reopened(
        run: (&str, &str, RunMode),
        status: RunStatus,
        ended_at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Option<Self> {
        let kind = TallyKind::Reopened {
            status,
            error: error.map(str::to_owned),
        };
        Self::of(run, ended_at, kind)
    }
}

/// The start of the `grain` bucket holding `at` (ms since the epoch).
pub fn bucket_start(at: DateTime<Utc>, grain: i64) -> i64 {
    at.timestamp_millis().div_euclid(grain) * grain
}

/// Rows of one grain whose start is in `from..to` (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub grain: i64,
    pub from: i64,
    pub to: i64,
}

/// The rows that tile `since..=until`: whole hours in the middle, minutes at the edges (and
/// minutes only where there is no whole hour). The first minute is taken whole, so a window
/// counts up to a minute more than it asks for; a window reaching back past the minute rows
/// kept ([`MINUTE_ROWS_KEPT`] before `until`) takes its first hour whole instead.
pub fn spans(since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Span> {
    let from = bucket_start(since, MINUTE_MS);
    let to = bucket_start(until, MINUTE_MS) + MINUTE_MS;
    let minutes_kept = (until - MINUTE_ROWS_KEPT).timestamp_millis();
    let partial = from % HOUR_MS != 0 && from >= minutes_kept;
    let hours_from = from.div_euclid(HOUR_MS) * HOUR_MS + if partial { HOUR_MS } else { 0 };
    let hours_to = to.div_euclid(HOUR_MS) * HOUR_MS;
    let minute = |from, to| Span {
        grain: MINUTE_MS,
        from,
        to,
    };
    if hours_from >= hours_to {
        return vec![minute(from, to)];
    }
    let mut list = Vec::with_capacity(3);
    if from < hours_from {
        list.push(minute(from, hours_from));
    }
    list.push(Span {
        grain: HOUR_MS,
        from: hours_from,
        to: hours_to,
    });
    if hours_to < to {
        list.push(minute(hours_to, to));
    }
    list
}

/// One failure signature within a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureTally {
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// One message that had this signature.
    pub example: String,
}

/// The sums of one bucket (or of several merged).
#[derive(Clone)]
pub struct Bucket {
    pub queued: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Durations of the runs that ended, in milliseconds.
    pub durations: DDSketch,
    /// Failed runs by error signature (at most [`MAX_SIGNATURES`]; past that a count may
    /// include the runs of signatures it displaced, never fewer than its own).
    pub failures: BTreeMap<String, SignatureTally>,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            queued: 0,
            succeeded: 0,
            failed: 0,
            cancelled: 0,
            durations: DDSketch::new(Config::defaults()),
            failures: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("queued", &self.queued)
            .field("succeeded", &self.succeeded)
            .field("failed", &self.failed)
            .field("cancelled", &self.cancelled)
            .field("durations", &self.durations.count())
            .field("failures", &self.failures)
            .finish()
    }
}

impl Bucket {
    /// Adds one run's tally.
    pub fn add(&mut self, tally: &Tally) {
        match &tally.kind {
            TallyKind::Queued => self.queued += 1,
            TallyKind::Ended {
                status,
                duration_ms,
                error,
            } => {
                match status {
                    RunStatus::Succeeded => self.succeeded += 1,
                    RunStatus::Failed => self.failed += 1,
                    RunStatus::Cancelled => self.cancelled += 1,
                    _ => {}
                }
                if let Some(ms) = duration_ms {
                    self.durations.add(*ms as f64);
                }
                if *status == RunStatus::Failed {
                    let message = error.clone().unwrap_or_default();
                    self.note_failure(
                        signature(&message),
                        SignatureTally {
                            count: 1,
                            first_seen: tally.at,
                            last_seen: tally.at,
                            example: message,
                        },
                    );
                }
            }
            TallyKind::Reopened { status, error } => {
                match status {
                    RunStatus::Succeeded => self.succeeded -= 1,
                    RunStatus::Failed => self.failed -= 1,
                    RunStatus::Cancelled => self.cancelled -= 1,
                    _ => {}
                }
                if *status == RunStatus::Failed {
                    let sig = signature(error.as_deref().unwrap_or_default());
                    let seen = self.failures.entry(sig).or_insert_with(|| SignatureTally {
                        count: 0,
                        first_seen: tally.at,
                        last_seen: tally.at,
                        example: String::new(),
                    });
                    seen.count -= 1;
                }
            }
        }
    }

    /// Adds another bucket's sums (which may take some away: see [`TallyKind::Reopened`]);
    /// no count goes below zero, and a signature whose count reaches zero goes.
    pub fn merge(&mut self, other: &Bucket) {
        self.queued = (self.queued + other.queued).max(0);
        self.succeeded = (self.succeeded + other.succeeded).max(0);
        self.failed = (self.failed + other.failed).max(0);
        self.cancelled = (self.cancelled + other.cancelled).max(0);
        // Both sketches use `Config::defaults()` (decoding restores it), so merging cannot fail.
        let _ = self.durations.merge(&other.durations);
        for (sig, tally) in &other.failures {
            self.note_failure(sig.clone(), tally.clone());
        }
        self.failures.retain(|_, seen| seen.count > 0);
    }

    fn note_failure(&mut self, sig: String, tally: SignatureTally) {
        let full = self.failures.len() >= MAX_SIGNATURES;
        match self.failures.get_mut(&sig) {
            // Taking away from a signature this bucket does not hold changes nothing.
            None if tally.count <= 0 => {}
            Some(known) => {
                known.count += tally.count;
                known.first_seen = known.first_seen.min(tally.first_seen);
                known.last_seen = known.last_seen.max(tally.last_seen);
            }
            None if !full => {
                self.failures.insert(sig, tally);
            }
            None => {
                // Space-Saving (Metwally, Agrawal and El Abbadi, 2005): the newcomer takes the
                // rarest entry's place and inherits its count, so a frequent new signature
                // always gets in and no count is ever too low.
                let rarest = self
                    .failures
                    .iter()
                    .min_by(|a, b| (a.1.count, a.1.last_seen).cmp(&(b.1.count, b.1.last_seen)))
                    .map(|(sig, known)| (sig.clone(), known.count, known.first_seen));
                if let Some((old, count, first_seen)) = rarest {
                    self.failures.remove(&old);
                    self.failures.insert(
                        sig,
                        SignatureTally {
                            count: count + tally.count,
                            first_seen: first_seen.min(tally.first_seen),
                            ..tally
                        },
                    );
                }
            }
        }
    }

    /// The duration at percentile `q` (0..=1) by nearest rank (the ⌈q·n⌉-th of n, so the p95
    /// of ten runs is the slowest), in whole milliseconds within the sketch's 1%; none when
    /// no run ended.
    pub fn percentile_ms(&self, q: f64) -> Option<i64> {
        let n = self.durations.count();
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n.max(1));
        // The sketch answers the value at rank ⌊q'·(n-1)⌋ (0-based).
        let at = if n > 1 {
            (rank - 1) as f64 / (n - 1) as f64
        } else {
            0.0
        };
        self.durations
            .quantile(at)
            .ok()
            .flatten()
            .map(|ms| ms.round() as i64)
    }

    /// How many durations exceed `ms`: exact when none does (the sketch keeps its maximum),
    /// else estimated from the sketch's quantiles (within its 1% relative error).
    pub fn count_above_ms(&self, ms: f64) -> i64 {
        let count = self.durations.count();
        if count == 0 || self.durations.max().is_none_or(|max| max <= ms) {
            return 0;
        }
        // The smallest quantile whose value exceeds `ms`, by bisection.
        let (mut low, mut high) = (0.0_f64, 1.0_f64);
        for _ in 0..40 {
            let mid = (low + high) / 2.0;
            match self.durations.quantile(mid) {
                Ok(Some(value)) if value > ms => high = mid,
                _ => low = mid,
            }
        }
        ((count as f64 * (1.0 - high)).round() as i64).max(1)
    }

    /// The durations in the DDSketch standard binary format.
    pub fn durations_bytes(&self) -> Vec<u8> {
        self.durations.to_java_bytes()
    }

    /// Restores durations stored by [`Bucket::durations_bytes`].
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not a DDSketch.
    pub fn durations_from(bytes: &[u8]) -> Result<DDSketch, DecodeError> {
        if bytes.is_empty() {
            return Ok(DDSketch::new(Config::defaults()));
        }
        DDSketch::from_java_bytes(bytes)
    }
}

/// Sums tallies per (grain, bucket start, workflow), with each workflow's team.
pub fn sum(tallies: &[Tally]) -> BTreeMap<(i64, i64, String), (String, Bucket)> {
    let mut sums: BTreeMap<(i64, i64, String), (String, Bucket)> = BTreeMap::new();
    for tally in tallies {
        for grain in GRAINS {
            let key = (grain, bucket_start(tally.at, grain), tally.workflow.clone());
            sums.entry(key)
                .or_insert_with(|| (tally.team.clone(), Bucket::default()))
                .1
                .add(tally);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn ended(status: RunStatus, ms: i64, error: Option<&str>, when: &str) -> Tally {
        let end = at(when);
        Tally::ended(
            ("wf", "ops", RunMode::Live),
            status,
            Some(end - chrono::TimeDelta::milliseconds(ms)),
            end,
            error,
        )
        .unwrap()
    }

    #[test]
    fn a_short_window_reads_minutes_only() {
        let list = spans(at("2026-12-01T10:05:30Z"), at("2026-12-01T10:35:10Z"));
        let start = at("2026-12-01T10:05:00Z").timestamp_millis();
        let end = at("2026-12-01T10:36:00Z").timestamp_millis();
        assert_eq!(
            list,
            vec![Span {
                grain: MINUTE_MS,
                from: start,
                to: end
            }]
        );
    }

    #[test]
    fn a_day_reads_hours_between_two_minute_edges() {
        let list = spans(at("2026-11-30T10:05:30Z"), at("2026-12-01T10:05:30Z"));
        let ms = |t: &str| at(t).timestamp_millis();
        assert_eq!(
            list,
            vec![
                Span {
                    grain: MINUTE_MS,
                    from: ms("2026-11-30T10:05:00Z"),
                    to: ms("2026-11-30T11:00:00Z")
                },
                Span {
                    grain: HOUR_MS,
                    from: ms("2026-11-30T11:00:00Z"),
                    to: ms("2026-12-01T10:00:00Z")
                },
                Span {
                    grain: MINUTE_MS,
                    from: ms("2026-12-01T10:00:00Z"),
                    to: ms("2026-12-01T10:06:00Z")
                },
            ]
        );
        let rows: i64 = list.iter().map(|s| (s.to - s.from) / s.grain).sum();
        assert_eq!(
            rows,
            55 + 23 + 6,
            "a day costs 84 rows per workflow, whatever its runs"
        );
    }

    #[test]
    fn a_week_takes_its_first_hour_whole_where_minute_rows_are_gone() {
        let list = spans(at("2026-11-24T10:05:30Z"), at("2026-12-01T10:05:30Z"));
        let ms = |t: &str| at(t).timestamp_millis();
        assert_eq!(list[0].grain, HOUR_MS);
        assert_eq!(list[0].from, ms("2026-11-24T10:00:00Z"));
        assert_eq!(list.len(), 2, "hours, then this hour's minutes: {list:?}");
    }

    #[test]
    fn windows_on_hour_boundaries_need_no_minute_rows_before() {
        let list = spans(at("2026-11-30T10:00:00Z"), at("2026-12-01T09:59:59Z"));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].grain, HOUR_MS);
    }

    #[test]
    fn test_runs_never_count() {
        assert!(Tally::queued("wf", "ops", RunMode::Test, Utc::now()).is_none());
        let run = ("wf", "ops", RunMode::Test);
        assert!(Tally::ended(run, RunStatus::Failed, None, Utc::now(), None).is_none());
    }

    #[test]
    fn buckets_count_outcomes_durations_and_signatures() {
        let tallies: Vec<Tally> = (1..=100)
            .map(|i| match i % 10 {
                0 => ended(
                    RunStatus::Failed,
                    i * 10,
                    Some(&format!("HTTP 503 for lead {i}")),
                    "2026-12-01T10:00:10Z",
                ),
                _ => ended(RunStatus::Succeeded, i * 10, None, "2026-12-01T10:00:20Z"),
            })
            .chain(Tally::queued(
                "wf",
                "ops",
                RunMode::Live,
                at("2026-12-01T10:00:01Z"),
            ))
            .collect();
        let sums = sum(&tallies);
        assert_eq!(sums.len(), 2, "one minute row and one hour row");
        for (team, bucket) in sums.values() {
            assert_eq!(team, "ops");
            assert_eq!(
                (bucket.queued, bucket.succeeded, bucket.failed),
                (1, 90, 10)
            );
            let p50 = bucket.percentile_ms(0.5).unwrap();
            assert!((495..=515).contains(&p50), "p50 {p50} within 1% of 500-510");
            assert_eq!(bucket.failures.len(), 1, "{:?}", bucket.failures);
            let failure = bucket.failures.values().next().unwrap();
            assert_eq!(failure.count, 10);
            assert_eq!(failure.example, "HTTP 503 for lead 10");
        }
    }

    #[test]
    fn a_retried_run_counts_once_by_its_last_end() {
        let failed = ended(
            RunStatus::Failed,
            100,
            Some("HTTP 500 for lead 7"),
            "2026-12-01T10:00:10Z",
        );
        let reopened = Tally::reopened(
            ("wf", "ops", RunMode::Live),
            RunStatus::Failed,
            at("2026-12-01T10:00:10Z"),
            Some("HTTP 500 for lead 7"),
        )
        .unwrap();
        let succeeded = ended(RunStatus::Succeeded, 100, None, "2026-12-01T10:05:00Z");
        // The failure and the retry arrive in two batches, as they would.
        let mut stored = Bucket::default();
        for batch in [vec![failed], vec![reopened, succeeded]] {
            for (_, (_, bucket)) in sum(&batch)
                .into_iter()
                .filter(|((g, _, _), _)| *g == HOUR_MS)
            {
                stored.merge(&bucket);
            }
        }
        assert_eq!((stored.succeeded, stored.failed), (1, 0));
        assert!(stored.failures.is_empty(), "{:?}", stored.failures);
        let mut fresh = Bucket::default();
        let gone = Tally::reopened(
            ("wf", "ops", RunMode::Live),
            RunStatus::Failed,
            Utc::now(),
            None,
        );
        fresh.merge(&sum(&[gone.unwrap()]).into_values().next().unwrap().1);
        assert_eq!(
            (fresh.failed, fresh.failures.len()),
            (0, 0),
            "never below zero"
        );
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let mut bucket = Bucket::default();
        for _ in 0..9 {
            bucket.add(&ended(
                RunStatus::Succeeded,
                100,
                None,
                "2026-12-01T10:00:00Z",
            ));
        }
        bucket.add(&ended(
            RunStatus::Succeeded,
            4_000,
            None,
            "2026-12-01T10:00:00Z",
        ));
        let p95 = bucket.percentile_ms(0.95).unwrap();
        assert!(
            (3_960..=4_040).contains(&p95),
            "the p95 of ten runs is the slowest: {p95}"
        );
        let p50 = bucket.percentile_ms(0.5).unwrap();
        assert!((99..=101).contains(&p50), "{p50}");
        assert_eq!(Bucket::default().percentile_ms(0.5), None);
    }

    #[test]
    fn cancelled_runs_leave_durations_alone() {
        let mut bucket = Bucket::default();
        bucket.add(&ended(
            RunStatus::Cancelled,
            5_000,
            None,
            "2026-12-01T10:00:00Z",
        ));
        assert_eq!((bucket.cancelled, bucket.durations.count()), (1, 0));
    }

    #[test]
    fn runs_slower_than_a_limit_are_counted() {
        let mut bucket = Bucket::default();
        for ms in 1..=100 {
            bucket.add(&ended(
                RunStatus::Succeeded,
                ms * 10,
                None,
                "2026-12-01T10:00:00Z",
            ));
        }
        assert_eq!(
            bucket.count_above_ms(1000.0),
            0,
            "the slowest took exactly 1000 ms"
        );
        assert_eq!(bucket.count_above_ms(995.0), 1);
        let above = bucket.count_above_ms(500.0);
        assert!((49..=51).contains(&above), "{above}");
        assert_eq!(Bucket::default().count_above_ms(0.0), 0);
    }

    #[test]
    fn durations_survive_their_stored_form_and_merge() {
        let mut a = Bucket::default();
        a.add(&ended(
            RunStatus::Succeeded,
            100,
            None,
            "2026-12-01T10:00:00Z",
        ));
        let mut b = Bucket {
            durations: Bucket::durations_from(&a.durations_bytes()).unwrap(),
            ..Bucket::default()
        };
        b.add(&ended(
            RunStatus::Succeeded,
            300,
            None,
            "2026-12-01T10:00:00Z",
        ));
        let mut merged = Bucket::default();
        merged.merge(&b);
        assert_eq!(merged.durations.count(), 2);
        let p100 = merged.percentile_ms(1.0).unwrap();
        assert!((297..=303).contains(&p100), "{p100}");
        assert_eq!(Bucket::durations_from(&[]).unwrap().count(), 0);
        assert!(Bucket::durations_from(&[0xff, 0x01]).is_err());
    }

    #[test]
    fn a_bucket_keeps_its_most_frequent_signatures() {
        let mut bucket = Bucket::default();
        for i in 0..(MAX_SIGNATURES + 5) {
            for _ in 0..=i {
                bucket.add(&ended(
                    RunStatus::Failed,
                    10,
                    Some(&format!("error kind {}", "x".repeat(i + 1))),
                    "2026-12-01T10:00:00Z",
                ));
            }
        }
        assert_eq!(bucket.failures.len(), MAX_SIGNATURES);
        let most = bucket.failures.values().max_by_key(|f| f.count).unwrap();
        assert!(
            most.example.ends_with(&"x".repeat(MAX_SIGNATURES + 5)),
            "the last and most frequent signature got in: {most:?}"
        );
        assert!(most.count >= MAX_SIGNATURES as i64 + 5);
        assert_eq!(bucket.failed, (1..=MAX_SIGNATURES as i64 + 5).sum::<i64>());
    }
}
