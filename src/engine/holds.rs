//! Holds: placing and releasing them (API, maintenance windows, host backpressure), the loop
//! that ends them at their `until` and opens and closes windows, and the wake-ups of runs held
//! on a limit whose slot freed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::triggers::next_fire;
use super::{Engine, EngineError, Inner};
use crate::domain::Held;
use crate::domain::clock::{MAX_DURATION, later, later_or_max};
use crate::domain::policy::{HoldScope, NewHold, Rate, Window};
use crate::wire::{HoldList, HoldRequest, HoldSource, HoldView, WindowView};

/// How often the loop looks at holds and windows when nothing wakes it.
const HOLDS_EVERY: Duration = Duration::from_secs(1);

/// Who releases a hold whose `until` came.
pub const EXPIRED: &str = "expired";

/// Released holds `GET /holds?all=true` lists besides the open ones.
const RELEASED_LISTED: usize = 100;

impl Engine {
    /// Places a hold from the API: `scope`, a `reason`, `for` a duration or `until` a time (or
    /// neither: until released) and the `drain_rate` its runs continue at when it ends.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] naming the field: a bad scope, duration, time (past, or both
    /// `for` and `until`), rate, an empty reason, or a workflow that does not exist.
    pub async fn create_hold(
        &self,
        request: HoldRequest,
        actor: &str,
    ) -> Result<HoldView, EngineError> {
        let invalid = |m: String| EngineError::Invalid(m);
        let scope = HoldScope::parse(&request.scope).map_err(|e| invalid(format!("scope: {e}")))?;
        if let HoldScope::Workflow(key) = &scope {
            let known = self.inner.store.workflows().await?;
            if !known.iter().any(|w| &w.key == key) {
                return Err(EngineError::NotFound(format!("workflow `{key}`")));
            }
        }
        let reason = request.reason.trim();
        if reason.is_empty() {
            return Err(invalid(
                "reason: say why (it is shown beside every run it holds)".into(),
            ));
        }
        if reason.chars().count() > 1000 || reason.contains(crate::wire::is_unsafe_char) {
            return Err(invalid(
                "reason: at most 1,000 characters, on one line, without control or invisible \
                 formatting characters"
                    .into(),
            ));
        }
        let now = self.inner.config.clock.now();
        let until = match (request.for_.as_deref(), request.until) {
            (Some(_), Some(_)) => {
                return Err(invalid("give `for` or `until`, not both".into()));
            }
            (Some(text), None) => {
                let wait = crate::domain::clock::parse_duration(text)
                    .map_err(|e| invalid(format!("for: {e}")))?;
                if wait.is_zero() {
                    return Err(invalid("for: must be longer than zero".into()));
                }
                Some(later(now, wait).ok_or_else(|| invalid("for: too long".into()))?)
            }
            (None, Some(until)) if until <= now => {
                return Err(invalid(format!(
                    "until: {} is not in the future",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
            (None, Some(until)) if until > later_or_max(now, MAX_DURATION) => {
                return Err(invalid("until: more than 100 years away".into()));
            }
            (None, until) => until,
        };
        let drain_rate = request
            .drain_rate
            .as_deref()
            .map(Rate::parse)
            .transpose()
            .map_err(|e| invalid(format!("drain_rate: {e}")))?;
        let hold = self
            .inner
            .store
            .create_hold(NewHold {
                scope,
                reason: reason.to_owned(),
                source: HoldSource::Api,
                actor: actor.to_owned(),
                until,
                drain_rate,
                dedupe_key: None,
            })
            .await?;
        self.inner.refresh_holds().await?;
        Ok(hold)
    }

    /// Releases a hold now: its runs continue at its drain rate, oldest first.
    ///
    /// # Errors
    /// `NotFound` for an unknown hold, a conflict for one released already.
    pub async fn release_hold(&self, id: i64, actor: &str) -> Result<HoldView, EngineError> {
        let hold = self.inner.store.hold(id).await?;
        let released = self.inner.release(&hold, actor).await?;
        Ok(released)
    }

    /// The holds not released yet (with `all`, also the newest released ones), the
    /// maintenance windows with their next occurrence, and how many runs are held.
    pub async fn holds(&self, all: bool) -> Result<HoldList, EngineError> {
        let now = self.inner.config.clock.now();
        Ok(HoldList {
            holds: self.inner.store.holds(all, RELEASED_LISTED).await?,
            windows: self
                .inner
                .config
                .policies
                .windows
                .iter()
                .map(|w| window_view(w, now))
                .collect(),
            held_runs: self
                .inner
                .store
                .held_runs()
                .await?
                .iter()
                .map(|h| h.runs)
                .sum(),
        })
    }
}

impl Inner {
    /// Reads the unreleased holds into the gate.
    pub(super) async fn refresh_holds(&self) -> Result<(), EngineError> {
        let holds = self.store.holds(false, 0).await?;
        self.gate.set_holds(holds);
        Ok(())
    }

    /// Releases `hold` and wakes the claim loop for its runs.
    async fn release(&self, hold: &HoldView, actor: &str) -> Result<HoldView, EngineError> {
        let interval = hold
            .drain_rate
            .as_deref()
            .and_then(|r| Rate::parse(r).ok())
            .map(|r| r.interval());
        let now = self.config.clock.now();
        let released = self
            .store
            .release_hold(hold.id, actor, now, interval)
            .await?;
        // Releasing a host's request to wait (an admin who knows the host is back) lifts it
        // for every run waiting on that host.
        if let (HoldSource::Backpressure, Ok(HoldScope::Host(host))) =
            (hold.source, HoldScope::parse(&hold.scope))
        {
            self.gate.lift_pause(&host);
            if actor != EXPIRED {
                let waiting = format!("host:{host}");
                self.store.wake_held(&waiting, usize::MAX, now).await?;
            }
        }
        self.refresh_holds().await?;
        self.wake.notify_one();
        Ok(released)
    }

    /// Records a host's request to wait as an automatic hold (shown with the others, and
    /// kept across a restart); one per host and end time.
    pub(super) async fn backpressure(&self, host: &str, held: &Held) {
        let (Some(until), Ok(scope)) = (held.until, HoldScope::parse(&format!("host:{host}")))
        else {
            return;
        };
        let hold = NewHold {
            dedupe_key: Some(format!("backpressure:{scope}:{}", until.timestamp())),
            scope,
            reason: held.reason.clone(),
            source: HoldSource::Backpressure,
            actor: "backpressure".into(),
            until: Some(until),
            drain_rate: None,
        };
        if let Err(e) = self.store.create_hold(hold).await {
            tracing::warn!("recording a host's backpressure failed: {e}");
        }
    }
}

/// A window's next (or current) occurrence: its start and end, and whether it lasts now.
fn occurrence(window: &Window, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let cron = croner::Cron::new(&window.cron)
        .with_seconds_optional()
        .parse()
        .ok()?;
    let tz: chrono_tz::Tz = window.timezone.parse().ok()?;
    // An occurrence that started within the last `duration` still lasts.
    let from = crate::domain::clock::earlier_or_min(now, window.duration);
    let start = next_fire(&cron, &tz, from)?;
    Some((start, later_or_max(start, window.duration)))
}

fn window_view(window: &Window, now: DateTime<Utc>) -> WindowView {
    let next = occurrence(window, now);
    WindowView {
        name: window.name.clone(),
        scope: window.scope.to_string(),
        cron: window.cron.clone(),
        timezone: window.timezone.clone(),
        duration_s: window.duration.as_secs(),
        drain_rate: window.drain_rate.map(|r| r.to_string()),
        next_start: next.map(|(s, _)| s),
        next_end: next.map(|(_, e)| e),
        active: next.is_some_and(|(s, e)| s <= now && now < e),
    }
}

/// Ends holds whose `until` came, places the hold of each maintenance window that lasts now,
/// and wakes a run held on each limit whose slot freed.
pub async fn holds_loop(inner: Arc<Inner>) {
    loop {
        if let Err(e) = holds_round(&inner).await {
            tracing::warn!("holds: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(HOLDS_EVERY) => {}
            _ = inner.gate.freed.notified() => {}
            _ = inner.shutdown.cancelled() => return,
        }
    }
}

async fn holds_round(inner: &Arc<Inner>) -> Result<(), EngineError> {
    let now = inner.config.clock.now();
    for window in &inner.config.policies.windows {
        let Some((start, end)) = occurrence(window, now) else {
            continue;
        };
        if start <= now && now < end {
            let key = format!("window:{}:{}", window.name, start.timestamp());
            inner
                .store
                .create_hold(NewHold {
                    scope: window.scope.clone(),
                    reason: format!("maintenance window {}", window.name),
                    source: HoldSource::Window,
                    actor: format!("window:{}", window.name),
                    until: Some(end),
                    drain_rate: window.drain_rate,
                    dedupe_key: Some(key),
                })
                .await?;
        }
    }
    let holds = inner.store.holds(false, 0).await?;
    inner.gate.set_holds(holds.clone());
    for hold in holds.iter().filter(|h| h.until.is_some_and(|u| u <= now)) {
        inner.release(hold, EXPIRED).await?;
    }
    for key in inner.gate.take_freed() {
        if inner.store.wake_held(&key, 1, now).await? > 0 {
            inner.wake.notify_one();
        }
    }
    inner.gate.tidy();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            name: "crm-maintenance".into(),
            scope: HoldScope::Host("api.attio.com".into()),
            cron: "0 2 * * SAT".into(),
            duration: Duration::from_secs(2 * 3600),
            timezone: "Europe/Berlin".into(),
            drain_rate: Rate::parse("5/s").ok(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_starts_and_ends_at_its_local_wall_clock_times() {
        // Saturday 5 December 2026, 02:00 in Berlin (CET, UTC+1) is 01:00Z.
        let before = window_view(&window(), at("2026-12-05T00:59:59Z"));
        assert!(!before.active);
        assert_eq!(before.next_start, Some(at("2026-12-05T01:00:00Z")));
        assert_eq!(before.next_end, Some(at("2026-12-05T03:00:00Z")));
        let during = window_view(&window(), at("2026-12-05T02:59:59Z"));
        assert!(during.active);
        assert_eq!(during.next_start, Some(at("2026-12-05T01:00:00Z")));
        let after = window_view(&window(), at("2026-12-05T03:00:00Z"));
        assert!(!after.active);
        assert_eq!(after.next_start, Some(at("2026-12-12T01:00:00Z")));
        // In summer (CEST, UTC+2) the same wall time is 00:00Z.
        let summer = window_view(&window(), at("2026-07-03T12:00:00Z"));
        assert_eq!(summer.next_start, Some(at("2026-07-04T00:00:00Z")));
        assert_eq!(summer.duration_s, 7200);
        assert_eq!(summer.drain_rate.as_deref(), Some("5/s"));
    }
}
