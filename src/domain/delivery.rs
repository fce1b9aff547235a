//! What a delivery attempt's answer means and what the outbox does next: the classification
//! of HTTP and SMTP answers, the give-up rules and the wait before the next try.
//!
//! - HTTP 2xx is delivered. `410 Gone` means the receiver is gone for good: a webhook
//!   subscription is disabled (the Standard Webhooks and Svix convention), a channel's message
//!   is given up.
//! - Transient: HTTP 408, 425, 429 and 5xx, SMTP 4xx (RFC 5321 §4.2.1 "transient negative
//!   completion"), timeouts and connection errors. Retried with exponential backoff, at least
//!   as late as the receiver's `Retry-After` (RFC 9110 §10.2.3) plus jitter, until the message
//!   is [`Rules::give_up_after`] old: the last try is made at that age (or when the receiver's
//!   `Retry-After` ends, if later), and a refusal then gives it up.
//! - Permanent: any other HTTP answer (4xx, and a 3xx that was not followed), SMTP 5xx
//!   ("permanent negative completion"), and a message that cannot be built (a bad address).
//!   Retried once, after the backoff of a fifth try (8 to 16 s by default), in case the receiver
//!   was restarting, then given up.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::clock::later_or_max;
use super::retry::{MAX_RETRY_AFTER, RetryPolicy};

/// How one attempt's answer is classified (stored with the attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Delivered,
    Transient,
    Permanent,
    /// HTTP 410: the receiver says it will never take a message again.
    Gone,
}

impl Class {
    /// The stored and shown name: `delivered`, `transient`, `permanent` or `gone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Gone => "gone",
        }
    }

    /// The class of a final HTTP status (after the redirects that were followed).
    pub fn of_http(status: u16) -> Self {
        match status {
            200..=299 => Self::Delivered,
            410 => Self::Gone,
            408 | 425 | 429 | 500.. => Self::Transient,
            _ => Self::Permanent,
        }
    }

    /// The class of an SMTP reply code that refused a message: 4yz transient, 5yz permanent
    /// (RFC 5321 §4.2.1); anything else is treated as transient.
    pub fn of_smtp(code: u16) -> Self {
        match code {
            200..=399 => Self::Delivered,
            500..=599 => Self::Permanent,
            _ => Self::Transient,
        }
    }
}

/// When deliveries are tried again and when they are given up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The first retry's wait; it doubles with each failed try up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// A message still refused this long after it was queued is given up (`give_up_after`
    /// in `acp.ron`, default 24 hours).
    pub give_up_after: Duration,
}

/// Redirects followed in a row at most.
pub const MAX_REDIRECTS: usize = 10;

/// How a request that carries a body follows redirects: only `307` and `308` to an http(s)
/// address, which keep the method and the body (RFC 9110 §15.4.8, §15.4.9), up to
/// [`MAX_REDIRECTS`] in a row and never back to an address already asked. A 301/302/303
/// would be followed as a GET without the body (§15.4 lets clients change the method), so
/// the message or the call would be recorded as made although it never arrived; the 3xx is
/// answered instead, and is a failure naming its `Location`.
pub fn redirects_keeping_the_body() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let to = attempt.url();
        if !matches!(attempt.status().as_u16(), 307 | 308)
            || !matches!(to.scheme(), "http" | "https")
        {
            attempt.stop()
        } else if attempt.previous().contains(to) {
            let looped = format!("a redirect loop back to {}", shown_address(to.as_str()));
            attempt.error(looped)
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects in a row"))
        } else {
            attempt.follow()
        }
    })
}

/// Characters of a `Location` kept in an error.
const LOCATION_SHOWN: usize = 200;

/// Why a redirect answered with `status` to `location` was not followed, for an error: a
/// 307/308 only when its address was not http(s), any other 3xx because it would lose the
/// body. The address is shown as [`shown_address`] keeps it, without control characters.
pub fn unfollowed_redirect(status: u16, location: Option<&str>) -> String {
    let to: String = location.map_or_else(
        || "nowhere".to_owned(),
        |l| {
            shown_address(l)
                .chars()
                .filter(|c| !c.is_control())
                .take(LOCATION_SHOWN)
                .collect()
        },
    );
    if matches!(status, 307 | 308) {
        format!("HTTP {status} redirect to {to} could not be followed (not an http(s) address)")
    } else {
        format!(
            "HTTP {status} redirect to {to}, not followed (only 307 and 308 keep the method and body)"
        )
    }
}

/// An address as an attempt keeps it: without a user name, a password or a query, any of
/// which may hold a credential (a query becomes `?…`). Relative addresses keep their path.
pub fn shown_address(address: &str) -> String {
    let (mut kept, query) = match reqwest::Url::parse(address) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let query = url.query().is_some();
            url.set_query(None);
            (url.to_string(), query)
        }
        Err(_) => match address.split_once('?') {
            Some((path, _)) => (path.to_owned(), true),
            None => (address.to_owned(), false),
        },
    };
    if query {
        kept.push_str("?…");
    }
    kept
}

/// The backoff of the one retry after a permanent refusal: that of this many failed tries
/// (a ceiling of 16 times `retry_initial`, 8 to 16 s by default, within `retry_max`).
const PERMANENT_RETRY_AS_TRY: i64 = 4;

/// Failed tries past which the backoff stops growing (it reached `retry_max` long before).
const MAX_DOUBLINGS: i64 = 30;

/// The default of [`Rules::give_up_after`]: a day.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What an attempt leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Stop trying this message, for this reason.
    GiveUp(String),
    /// Stop trying this message and disable the subscription, for this reason.
    Disable(String),
}

/// One failed (or successful) attempt, as the rules need it.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub class: Class,
    /// The status (HTTP or SMTP) it answered, if any.
    pub status: Option<u16>,
    /// The receiver's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

/// A message's tries before this one.
#[derive(Debug, Clone, Copy)]
pub struct History {
    /// Failed tries (every earlier try failed, or it would not be tried again).
    pub failures: i64,
    /// Of them, the ones refused permanently.
    pub permanent: i64,
    pub queued_at: DateTime<Utc>,
}

impl Rules {
    /// What follows an attempt of a message with this `history`; `subscription` is true for
    /// a webhook subscription (which a 410 disables) and false for an alert channel. `unit`
    /// is a uniform draw in `[0, 1)` for the jitter.
    pub fn next(
        &self,
        outcome: Outcome,
        history: History,
        now: DateTime<Utc>,
        subscription: bool,
        unit: f64,
    ) -> Next {
        let History {
            failures,
            permanent,
            queued_at,
        } = history;
        let status = outcome
            .status
            .map_or_else(String::new, |s| format!(" ({s})"));
        match outcome.class {
            Class::Delivered => Next::Delivered,
            Class::Gone if subscription => Next::Disable(
                "the receiver answered 410 Gone: the subscription is disabled until an admin \
                 enables it again"
                    .into(),
            ),
            Class::Gone => Next::GiveUp(
                "the receiver answered 410 Gone: the channel's address no longer exists".into(),
            ),
            Class::Permanent if permanent >= 1 => Next::GiveUp(format!(
                "refused permanently twice{status}: the message cannot be delivered as it is"
            )),
            Class::Permanent | Class::Transient => {
                let deadline = later_or_max(queued_at, self.give_up_after);
                if now >= deadline {
                    return Next::GiveUp(format!(
                        "still refused{status} {} after it was queued (give_up_after)",
                        humantime::format_duration(self.give_up_after)
                    ));
                }
                // The one retry of a permanent refusal waits as a fifth try would: long
                // enough for a receiver that was restarting.
                let tries = match outcome.class {
                    Class::Permanent => failures.max(PERMANENT_RETRY_AS_TRY),
                    _ => failures,
                };
                let at = later_or_max(now, self.wait(tries, outcome.retry_after, unit));
                // The last try is made when the message is give_up_after old, or later when
                // the receiver asked to be left alone until then.
                let asked = outcome
                    .retry_after
                    .map_or(now, |asked| later_or_max(now, asked.min(MAX_RETRY_AFTER)));
                Next::RetryAt(at.min(deadline.max(asked)))
            }
        }
    }

    /// The wait after `failures` earlier failed tries and this one: an exponential ceiling
    /// from `retry_initial` up to `retry_max` with its upper half jittered, and at least the
    /// receiver's `Retry-After` (up to [`MAX_RETRY_AFTER`]) plus up to a tenth of it again,
    /// so senders told the same time do not all come back at once.
    pub fn wait(&self, failures: i64, retry_after: Option<Duration>, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        let doubling = RetryPolicy {
            max_attempts: u32::MAX,
            initial_delay: self.retry_initial,
            max_delay: self.retry_max,
            multiplier: 2.0,
        };
        // The attempt after `failures` failed tries is number `failures + 1`.
        let ceiling = doubling.ceiling(failures.clamp(0, MAX_DOUBLINGS) as u32 + 1);
        let backoff = ceiling.mul_f64(0.5 + unit / 2.0);
        match retry_after {
            Some(asked) => {
                let floor = asked.min(MAX_RETRY_AFTER);
                floor.max(backoff) + floor.mul_f64(unit / 10.0)
            }
            None => backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(300),
        give_up_after: DEFAULT_GIVE_UP_AFTER,
    };

    fn history(failures: i64, permanent: i64, queued_at: DateTime<Utc>) -> History {
        History {
            failures,
            permanent,
            queued_at,
        }
    }

    fn outcome(class: Class, status: u16, retry_after: Option<u64>) -> Outcome {
        Outcome {
            class,
            status: Some(status),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn answers_are_classified_as_the_issue_lists_them() {
        for (status, class) in [
            (200, Class::Delivered),
            (204, Class::Delivered),
            (302, Class::Permanent),
            (307, Class::Permanent),
            (400, Class::Permanent),
            (401, Class::Permanent),
            (404, Class::Permanent),
            (409, Class::Permanent),
            (413, Class::Permanent),
            (408, Class::Transient),
            (425, Class::Transient),
            (429, Class::Transient),
            (500, Class::Transient),
            (503, Class::Transient),
            (410, Class::Gone),
        ] {
            assert_eq!(Class::of_http(status), class, "HTTP {status}");
        }
        for (code, class) in [
            (250, Class::Delivered),
            (421, Class::Transient),
            (451, Class::Transient),
            (452, Class::Transient),
            (550, Class::Permanent),
            (554, Class::Permanent),
        ] {
            assert_eq!(Class::of_smtp(code), class, "SMTP {code}");
        }
    }

    #[test]
    fn a_permanent_refusal_is_retried_once_then_given_up() {
        let now = Utc::now();
        let first = RULES.next(
            outcome(Class::Permanent, 400, None),
            history(0, 0, now),
            now,
            false,
            0.0,
        );
        // The backoff of a fifth try: half of 16 s with the draw at 0.
        assert_eq!(first, Next::RetryAt(now + Duration::from_secs(8)));
        let second = RULES.next(
            outcome(Class::Permanent, 400, None),
            history(1, 1, now),
            now,
            false,
            0.0,
        );
        assert_eq!(
            second,
            Next::GiveUp(
                "refused permanently twice (400): the message cannot be delivered as it is".into()
            )
        );
    }

    #[test]
    fn gone_disables_a_subscription_and_gives_up_a_channel_message() {
        let now = Utc::now();
        let gone = outcome(Class::Gone, 410, None);
        assert!(matches!(
            RULES.next(gone, history(0, 0, now), now, true, 0.5),
            Next::Disable(_)
        ));
        assert!(matches!(
            RULES.next(gone, history(0, 0, now), now, false, 0.5),
            Next::GiveUp(_)
        ));
    }

    #[test]
    fn transient_refusals_back_off_exponentially_until_the_message_is_a_day_old() {
        let queued = Utc::now();
        // Ceilings 1, 2, 4 ... 300 s; with the draw at 0 the wait is half the ceiling.
        for (failures, ms) in [(0, 500), (1, 1000), (2, 2000), (8, 128_000), (20, 150_000)] {
            assert_eq!(
                RULES.wait(failures, None, 0.0),
                Duration::from_millis(ms),
                "after {failures} failures"
            );
        }
        assert_eq!(RULES.wait(3, None, 0.999_999).as_secs(), 7);
        // A minute before the message is a day old, the next try is at that age, not later;
        // a refusal then gives it up.
        let day = queued + Duration::from_secs(24 * 3600);
        let late = day - Duration::from_secs(60);
        let refused = outcome(Class::Transient, 503, None);
        assert_eq!(
            RULES.next(refused, history(30, 0, queued), late, false, 0.0),
            Next::RetryAt(day)
        );
        assert_eq!(
            RULES.next(refused, history(31, 0, queued), day, false, 0.0),
            Next::GiveUp("still refused (503) 1day after it was queued (give_up_after)".into())
        );
        // A receiver that asks for an hour past that age gets its hour, then the last try.
        let asked = outcome(Class::Transient, 429, Some(3600));
        assert_eq!(
            RULES.next(asked, history(30, 0, queued), late, false, 0.0),
            Next::RetryAt(late + Duration::from_secs(3600))
        );
        let early = queued + Duration::from_secs(60);
        assert_eq!(
            RULES.next(
                outcome(Class::Transient, 503, None),
                history(30, 0, queued),
                early,
                false,
                0.0
            ),
            Next::RetryAt(early + Duration::from_secs(150))
        );
    }

    #[test]
    fn retry_after_is_a_floor_with_up_to_a_tenth_of_jitter() {
        // Slack's 429 Retry-After: 6 after one failure: never sooner than 6 s.
        assert_eq!(
            RULES.wait(1, Some(Duration::from_secs(6)), 0.0).as_secs(),
            6
        );
        let most = RULES.wait(1, Some(Duration::from_secs(6)), 0.999_999);
        assert!(
            most > Duration::from_millis(6_590) && most < Duration::from_millis(6_600),
            "{most:?}"
        );
        // A longer backoff wins over a short Retry-After; an absurd one is capped at an hour.
        assert_eq!(
            RULES.wait(8, Some(Duration::from_secs(1)), 0.0),
            Duration::from_millis(128_000)
        );
        assert_eq!(
            RULES.wait(0, Some(Duration::from_secs(86_400)), 0.0),
            MAX_RETRY_AFTER
        );
    }
}
