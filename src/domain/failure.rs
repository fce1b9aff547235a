//! Step failures: the error itself says whether to retry and when.

use std::time::{Duration, SystemTime};

use crate::wire::{ErrorClass, StepError};

/// A failed step attempt: the stored error plus the server's `Retry-After`, if it sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFailure {
    pub error: StepError,
    pub retry_after: Option<Duration>,
}

impl StepFailure {
    /// A failure worth retrying: network trouble, timeouts, 429, 5xx, 409.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message, None)
    }

    /// A failure that will not go away by retrying: validation, templates, bad configuration.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message, None)
    }

    /// Classifies a non-success HTTP status: 408, 409, 425, 429 and 5xx are transient, other
    /// statuses permanent.
    pub fn from_status(
        status: u16,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let class = if matches!(status, 408 | 409 | 425 | 429) || status >= 500 {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        };
        Self {
            retry_after,
            ..Self::new(class, message, Some(status))
        }
    }

    fn new(class: ErrorClass, message: impl Into<String>, status: Option<u16>) -> Self {
        Self {
            error: StepError {
                class,
                message: message.into(),
                retryable: class == ErrorClass::Transient,
                status,
                host: None,
            },
            retry_after: None,
        }
    }

    /// True when the step's retry policy may try again.
    /// A permanent failure for code that panicked while running a step: the run fails and
    /// is dead-lettered instead of taking the server down (or retrying the panic forever).
    pub fn panicked(panic: &(dyn std::any::Any + Send)) -> Self {
        Self::permanent(format!("the step panicked: {}", panic_message(panic)))
    }

    pub fn is_retryable(&self) -> bool {
        self.error.retryable
    }
}

/// Parses a `Retry-After` header in either form: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, taken relative to `now`; a date in the past means zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The text of a caught panic (`panic!("...")` payloads are `&str` or `String`).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_real_apis_behave() {
        for transient in [408, 409, 429, 500, 502, 503, 504] {
            assert!(
                StepFailure::from_status(transient, "x", None).is_retryable(),
                "{transient}"
            );
        }
        for permanent in [400, 401, 403, 404, 422] {
            assert!(
                !StepFailure::from_status(permanent, "x", None).is_retryable(),
                "{permanent}"
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let in_80s = httpdate::fmt_http_date(now + Duration::from_secs(80));
        assert_eq!(
            parse_retry_after(&in_80s, now),
            Some(Duration::from_secs(80))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
