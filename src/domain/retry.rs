//! Retry policy: how many attempts a step gets and how long to wait between them.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The longest `Retry-After` ACP will honour; a server asking for more is retried after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Exponential backoff with full jitter, capped, honouring `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1 means never retry).
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub multiplier: f32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff after failed attempt number `attempt` (1-based), before jitter:
    /// `min(max_delay, initial_delay * multiplier^(attempt-1))`, in whole milliseconds.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exact = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.multiplier)
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay);
        Duration::from_millis((exact.as_secs_f64() * 1000.0).round() as u64)
    }

    /// The wait before the next attempt after failed attempt number `attempt`.
    ///
    /// Full jitter: a uniform draw (`unit` in `[0, 1)`) from zero to the ceiling. A server's
    /// `Retry-After` (RFC 9110 §10.2.3, up to [`MAX_RETRY_AFTER`]) is a floor *plus* jitter:
    /// the wait is the asked delay and a draw over at least that delay again (or the ceiling,
    /// when larger), so clients told the same `Retry-After` do not all come back at the same
    /// instant.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        let ceiling = self.ceiling(attempt);
        match retry_after {
            Some(asked) => {
                let floor = asked.min(MAX_RETRY_AFTER);
                floor + floor.max(ceiling).mul_f64(unit)
            }
            None => ceiling.mul_f64(unit),
        }
    }

    /// True when another attempt is allowed after `attempts_made` attempts.
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            multiplier: 2.0,
        }
    }

    #[test]
    fn ceiling_grows_exponentially_and_is_capped() {
        let p = policy();
        let ms: Vec<u128> = (1..=6).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let p = policy();
        assert_eq!(p.delay(3, None, 0.0), Duration::ZERO);
        assert_eq!(p.delay(3, None, 0.5), Duration::from_millis(200));
        assert_eq!(p.delay(3, None, 1.0), Duration::from_millis(400));
    }

    #[test]
    fn retry_after_is_a_floor_plus_jitter_with_a_ceiling_of_its_own() {
        let p = policy();
        let asked = Some(Duration::from_secs(2));
        assert_eq!(p.delay(1, asked, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(1, asked, 0.5), Duration::from_secs(3));
        assert_eq!(p.delay(1, asked, 0.999).as_millis(), 3998);
        assert_eq!(
            p.delay(4, Some(Duration::from_millis(10)), 1.0),
            Duration::from_millis(810)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(86_400)), 0.0),
            MAX_RETRY_AFTER
        );
        let spread: std::collections::BTreeSet<u128> = (0..60)
            .map(|i| p.delay(2, asked, i as f64 / 60.0).as_millis())
            .collect();
        assert_eq!(
            spread.len(),
            60,
            "60 clients told the same Retry-After spread out"
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy();
        assert!(p.allows_another(5));
        assert!(!p.allows_another(6));
    }
}
