//! A clock that follows tokio's time, for tests that pause it.

use chrono::{DateTime, Utc};

use crate::domain::clock::{Clock, later_or_max};

/// The wall time when it was made, moved on by tokio's clock since: under
/// `tokio::time::pause` (`#[tokio::test(start_paused = true)]`) the engine's retries, delays
/// and leases then take virtual time, which tokio skips while nothing else is to be done.
/// Read it from tasks of the runtime it was made in.
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting at the wall time now.
    pub fn new() -> Self {
        Self {
            wall: Utc::now(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        later_or_max(self.wall, self.start.elapsed())
    }
}
