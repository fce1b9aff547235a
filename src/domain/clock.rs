//! Checked time arithmetic: durations from input are bounded when parsed, and moving a time
//! by a duration never panics (chrono's `+`/`-` do on overflow).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The longest duration ACP accepts anywhere (API, workflow and config files, CLI flags):
/// 100 years.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration that could not be read, or one over [`MAX_DURATION`]; its message names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{text}` is not a duration ({reason}); write e.g. \"30s\", \"5m\", \"1h\"")]
    Unreadable { text: String, reason: String },
    #[error("`{text}` is longer than the longest duration accepted (100 years)")]
    TooLong { text: String },
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `1h 30m` or `90d` (humantime's syntax),
/// at most [`MAX_DURATION`].
///
/// # Errors
/// [`DurationError`] for anything humantime cannot read or longer than 100 years.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let duration =
        humantime::parse_duration(text.trim()).map_err(|e| DurationError::Unreadable {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
    if duration > MAX_DURATION {
        return Err(DurationError::TooLong {
            text: text.to_owned(),
        });
    }
    Ok(duration)
}

/// `at + duration`, or `None` past the range of times chrono represents.
pub fn later(at: DateTime<Utc>, duration: Duration) -> Option<DateTime<Utc>> {
    at.checked_add_signed(TimeDelta::from_std(duration).ok()?)
}

/// `at - duration`, or `None` past the range of times chrono represents.
pub fn earlier(at: DateTime<Utc>, duration: Duration) -> Option<DateTime<Utc>> {
    at.checked_sub_signed(TimeDelta::from_std(duration).ok()?)
}

/// `at + duration`, saturating at the latest time chrono represents (for internal delays,
/// which are bounded anyway).
pub fn later_or_max(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    later(at, duration).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - duration`, saturating at the earliest time chrono represents.
pub fn earlier_or_min(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    earlier(at, duration).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A `std` duration as chrono's, saturating at chrono's largest.
pub fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Where the engine reads the time. [`SystemClock`] in production; tests hand the engine a
/// clock that follows tokio's (paused) time, so retries, delays and leases play out in
/// virtual time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// When a background loop last finished a round: what the watchdog and the health numbers
/// read. Milliseconds since the epoch in an atomic; 0 before the first round.
#[derive(Debug, Default)]
pub struct Heartbeat(std::sync::atomic::AtomicI64);

impl Heartbeat {
    /// Records a finished round at `at`.
    pub fn beat(&self, at: DateTime<Utc>) {
        self.0
            .store(at.timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The last finished round, if any.
    pub fn last(&self) -> Option<DateTime<Utc>> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// True when the last round is older than `limit` at `now` (or there was none).
    pub fn is_stale_at(&self, limit: Duration, now: DateTime<Utc>) -> bool {
        self.last()
            .is_none_or(|at| (now - at).to_std().unwrap_or_default() > limit)
    }
}

/// A background loop as the watchdog and the health numbers see it: its name, its
/// heartbeat, and how long it may go without a round before it counts as stalled.
#[derive(Debug, Clone)]
pub struct Loop {
    pub name: &'static str,
    pub heartbeat: std::sync::Arc<Heartbeat>,
    pub stale_after: Duration,
}

impl Loop {
    /// A loop with a fresh heartbeat.
    pub fn new(name: &'static str, stale_after: Duration) -> Self {
        Self {
            name,
            heartbeat: std::sync::Arc::default(),
            stale_after,
        }
    }

    /// True when it has not finished a round for longer than `stale_after` at `now`.
    pub fn is_stale_at(&self, now: DateTime<Utc>) -> bool {
        self.heartbeat.is_stale_at(self.stale_after, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded_and_arithmetic_is_checked() {
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        let err = parse_duration("100000000000d").unwrap_err();
        assert!(err.to_string().contains("100 years"), "{err}");
        assert!(parse_duration("36500d").is_ok());
        assert!(parse_duration("36501d").is_err());
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
        let now = Utc::now();
        assert!(later(now, Duration::from_secs(u64::MAX)).is_none());
        assert!(earlier(now, Duration::from_secs(u64::MAX)).is_none());
        assert_eq!(
            later_or_max(now, Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            earlier_or_min(now, MAX_DURATION * 10_000_000),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            later(now, Duration::from_secs(60)).unwrap() - now,
            TimeDelta::seconds(60)
        );
    }
}
