//! The gate runs pass before they start and before each outside call: holds, a workflow's own
//! limits, the limits of the destination host and a host's request to wait (429/503 with
//! `Retry-After`). A run the gate refuses is held (it gives its worker back) with a reason and
//! the earliest time it may try again; nothing is dropped or failed because of a limit.
//!
//! Rates are GCRA (the `governor` crate) on the engine's clock, so a paused test clock moves
//! them too. Governor decides whether an event may happen now; when it may not, the held runs
//! are given due times one emission interval apart from the earliest time governor names, so
//! a backlog comes back one run at a time, oldest first, instead of all at once.
//! Concurrency is counted here while a run (or a call) holds a [`Permit`]; a permit dropped
//! wakes the oldest run held on its limit.
//!
//! Limits are per engine: with one server per database (SQLite) that is per installation.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use governor::clock::Clock as _;
use governor::{Quota, RateLimiter};

use crate::domain::Held;
use crate::domain::clock::{Clock, later_or_max};
use crate::domain::policy::{HoldScope, Limits, PolicyConfig, Rate, RunPolicy, hold_key};
use crate::wire::{HoldSource, HoldView};

/// How long a run held on a concurrency limit waits at most before it looks again (a freed
/// slot wakes the oldest one at once; this is the fallback).
const CONCURRENCY_RECHECK: Duration = Duration::from_secs(30);

/// Limiters not used for this long are dropped (per-key limits would otherwise grow with
/// every key ever seen).
const IDLE_LIMITER: Duration = Duration::from_secs(3600);

/// The engine's clock as governor reads it: time since the epoch.
#[derive(Clone)]
struct GovernorClock(Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        (self.0.now() - DateTime::UNIX_EPOCH)
            .to_std()
            .unwrap_or_default()
    }
}

type Gcra = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    GovernorClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// One rate limit: governor's state plus the next due time handed to a held run.
struct Paced {
    gcra: Gcra,
    rate: Rate,
    burst: NonZeroU32,
    /// The due time after the last one handed out: held runs come back one interval apart.
    next_slot: DateTime<Utc>,
    used: DateTime<Utc>,
}

/// A host that asked to wait.
#[derive(Debug, Clone)]
struct Pause {
    until: DateTime<Utc>,
    reason: String,
}

#[derive(Default)]
struct State {
    /// Holds not released, as the store lists them, each with its scope read once.
    holds: Vec<(HoldScope, HoldView)>,
    pauses: HashMap<String, Pause>,
    rates: HashMap<String, Paced>,
    /// Permits out, per limit key.
    open: HashMap<String, u32>,
    /// Limit keys whose permit was dropped since the last look: wake a run held on each.
    freed: Vec<String>,
}

impl State {
    /// Pauses `host` until `until`, unless a longer pause already holds it.
    fn pause(&mut self, host: String, until: DateTime<Utc>, reason: &str) {
        if self.pauses.get(&host).is_none_or(|p| until > p.until) {
            let reason = reason.to_owned();
            self.pauses.insert(host, Pause { until, reason });
        }
    }
}

impl Paced {
    fn new(rate: Rate, burst: NonZeroU32, clock: GovernorClock, now: DateTime<Utc>) -> Self {
        Self {
            gcra: gcra(rate, burst, clock),
            rate,
            burst,
            next_slot: now,
            used: now,
        }
    }
}

/// The gate: what runs and calls may do now.
pub struct Gate {
    clock: Arc<dyn Clock>,
    hosts: std::collections::BTreeMap<String, Limits>,
    state: Arc<Mutex<State>>,
    /// Woken when a permit is dropped.
    pub freed: Arc<tokio::sync::Notify>,
}

/// A slot under a concurrency limit (none when nothing limits it), given back when dropped.
pub struct Permit {
    state: Arc<Mutex<State>>,
    freed: Arc<tokio::sync::Notify>,
    key: Option<String>,
}

impl Permit {
    fn empty(gate: &Gate) -> Self {
        Self {
            state: gate.state.clone(),
            freed: gate.freed.clone(),
            key: None,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        if let Ok(mut state) = self.state.lock() {
            if let Some(n) = state.open.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.open.remove(&key);
                }
            }
            state.freed.push(key);
        }
        self.freed.notify_one();
    }
}

/// A time as reasons show it: `10:02:03Z`, with the date when it is not today.
fn short_time(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at.date_naive() == now.date_naive() {
        format!("{}Z", at.format("%H:%M:%S"))
    } else {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

impl Gate {
    pub fn new(clock: Arc<dyn Clock>, config: &PolicyConfig) -> Self {
        Self {
            clock,
            hosts: config.hosts.clone(),
            state: Arc::default(),
            freed: Arc::default(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Replaces the holds the gate knows with the store's list of unreleased ones; a host's
    /// backpressure hold also pauses that host (after a restart, too).
    pub fn set_holds(&self, holds: Vec<HoldView>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let holds: Vec<(HoldScope, HoldView)> = holds
            .into_iter()
            .filter_map(|h| Some((HoldScope::parse(&h.scope).ok()?, h)))
            .collect();
        for (scope, hold) in &holds {
            if let (HoldSource::Backpressure, Some(until), HoldScope::Host(host)) =
                (hold.source, hold.until, scope)
            {
                state.pause(host.clone(), until, &hold.reason);
            }
        }
        state.holds = holds;
    }

    /// The limit keys whose permits were given back since the last call.
    pub fn take_freed(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut s.freed))
            .unwrap_or_default()
    }

    /// Why a run of `workflow` (of `team`) may not take its next step now: a hold on the
    /// workflow or its team. Such a run waits for the hold's release (no due time).
    pub fn run_hold(&self, workflow: &str, team: &str) -> Option<Held> {
        let now = self.now();
        let state = self.state.lock().ok()?;
        let (_, hold) = state
            .holds
            .iter()
            .find(|(scope, h)| h.is_active_at(now) && scope.covers_run(workflow, team))?;
        Some(held_by(hold, now))
    }

    /// Admits a run under its workflow's policy: a concurrency slot for as long as the
    /// permit lives, and (when `fresh`, i.e. before its first step) a start under the rate.
    /// `key` is the policy key's value, when the policy has one; `held_on` what the run
    /// waited for until its claim (a run returning to this limit keeps its turn).
    ///
    /// # Errors
    /// The [`Held`] the run should take: over the concurrency (woken when a slot frees) or
    /// the rate (due at its turn).
    pub fn admit_run(
        &self,
        workflow: &str,
        policy: Option<&RunPolicy>,
        key: Option<&str>,
        fresh: bool,
        held_on: Option<&str>,
    ) -> Result<Permit, Held> {
        let Some(policy) = policy else {
            return Ok(Permit::empty(self));
        };
        let limit = match key {
            Some(value) => format!("workflow:{workflow}#{value}"),
            None => format!("workflow:{workflow}"),
        };
        let who = match key {
            Some(value) => format!("{workflow} (key `{value}`)"),
            None => workflow.to_owned(),
        };
        let returning = held_on == Some(limit.as_str());
        self.admit(&limit, &who, &policy.limits, fresh, returning, "runs")
    }

    /// Admits a call to `host`: holds and backpressure on it, then its limits from
    /// `acp.ron`; `held_on` as for [`Gate::admit_run`].
    ///
    /// # Errors
    /// The [`Held`] the run should take before making the call.
    pub fn admit_call(&self, host: &str, held_on: Option<&str>) -> Result<Permit, Held> {
        let host = host.to_ascii_lowercase();
        let now = self.now();
        {
            let Ok(state) = self.state.lock() else {
                return Ok(Permit::empty(self));
            };
            if let Some((_, hold)) = state.holds.iter().find(|(scope, h)| {
                h.source != HoldSource::Backpressure
                    && h.is_active_at(now)
                    && scope.covers_host(&host)
            }) {
                return Err(held_by(hold, now));
            }
            if let Some(pause) = state.pauses.get(&host).filter(|p| p.until > now) {
                return Err(Held {
                    on: format!("host:{host}"),
                    reason: pause.reason.clone(),
                    until: Some(pause.until),
                });
            }
        }
        let limit = format!("host:{host}");
        let returning = held_on == Some(limit.as_str());
        match self.hosts.get(&host) {
            Some(limits) => self.admit(&limit, &host, limits, true, returning, "calls"),
            None => Ok(Permit::empty(self)),
        }
    }

    /// Concurrency first (so a run refused for it spends no rate), then the rate. First come,
    /// first served: while runs wait their turn on the rate, a run that was not among them
    /// (`returning` is false) queues behind them even if governor would let it through now.
    fn admit(
        &self,
        limit: &str,
        who: &str,
        limits: &Limits,
        rated: bool,
        returning: bool,
        what: &str,
    ) -> Result<Permit, Held> {
        let now = self.now();
        let Ok(mut state) = self.state.lock() else {
            return Ok(Permit::empty(self));
        };
        if let Some(max) = limits.concurrency {
            let open = state.open.get(limit).copied().unwrap_or(0);
            if open >= max.get() {
                return Err(Held {
                    on: limit.to_owned(),
                    reason: format!("{who} has {open} {what} in progress, its concurrency limit"),
                    until: Some(later_or_max(now, CONCURRENCY_RECHECK)),
                });
            }
        }
        if let (Some(rate), true) = (limits.rate, rated) {
            let clock = GovernorClock(self.clock.clone());
            let burst = limits.burst;
            let paced = state
                .rates
                .entry(limit.to_owned())
                .or_insert_with(|| Paced::new(rate, burst, clock.clone(), now));
            // A policy changed by a new version starts a limiter of its own.
            if paced.rate != rate || paced.burst != burst {
                *paced = Paced::new(rate, burst, clock.clone(), now);
            }
            paced.used = now;
            let queued_behind = !returning && paced.next_slot > now;
            let refused = match queued_behind {
                true => Some(Duration::ZERO),
                false => paced
                    .gcra
                    .check()
                    .err()
                    .map(|not_until| not_until.wait_time_from(clock.now())),
            };
            if let Some(wait) = refused {
                // A run back for its turn that governor sends away (it came a moment early,
                // or a burst went first) keeps its place: it tries again as soon as governor
                // allows, ahead of the runs queued after it. A newcomer takes the next slot.
                let due = match returning {
                    true => later_or_max(now, wait),
                    false => {
                        let due = later_or_max(now, wait).max(paced.next_slot);
                        paced.next_slot = later_or_max(due, rate.interval());
                        due
                    }
                };
                return Err(Held {
                    on: limit.to_owned(),
                    reason: format!(
                        "{who} is at its rate limit ({rate}, burst {})",
                        limits.burst
                    ),
                    until: Some(due),
                });
            }
        }
        if limits.concurrency.is_none() {
            return Ok(Permit::empty(self));
        }
        *state.open.entry(limit.to_owned()).or_insert(0) += 1;
        let mut permit = Permit::empty(self);
        permit.key = Some(limit.to_owned());
        Ok(permit)
    }

    /// Pauses every call to `host` until `until` (it answered 429/503 with `Retry-After`);
    /// answers the hold a run that got the answer should take.
    pub fn pause_host(&self, host: &str, until: DateTime<Utc>, status: u16) -> Held {
        let host = host.to_ascii_lowercase();
        let now = self.now();
        let reason = format!(
            "{host} asked to wait until {} ({status})",
            short_time(until, now)
        );
        if let Ok(mut state) = self.state.lock() {
            state.pause(host.clone(), until, &reason);
        }
        Held {
            on: format!("host:{host}"),
            reason,
            until: Some(until),
        }
    }

    /// Lifts a host's request to wait (its automatic hold was released).
    pub fn lift_pause(&self, host: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.pauses.remove(&host.to_ascii_lowercase());
        }
    }

    /// Forgets pauses that ended and limiters idle for an hour.
    pub fn tidy(&self) {
        let now = self.now();
        if let Ok(mut state) = self.state.lock() {
            state.pauses.retain(|_, p| p.until > now);
            state
                .rates
                .retain(|_, p| later_or_max(p.used, IDLE_LIMITER) > now);
        }
    }
}

/// Paces a loop of one: `ready` waits until the rate allows the next event.
pub struct Pacer {
    gcra: Gcra,
    clock: GovernorClock,
}

impl Pacer {
    /// A pacer at `rate` with a burst of one (events evenly spaced).
    pub fn new(rate: Rate, clock: Arc<dyn Clock>) -> Self {
        let clock = GovernorClock(clock);
        Self {
            gcra: gcra(rate, NonZeroU32::MIN, clock.clone()),
            clock,
        }
    }

    /// Waits (on tokio's timer) until governor lets the next event through, and takes it.
    pub async fn ready(&self) {
        while let Err(not_until) = self.gcra.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }
}

fn gcra(rate: Rate, burst: NonZeroU32, clock: GovernorClock) -> Gcra {
    let quota = Quota::with_period(rate.interval())
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    RateLimiter::direct_with_clock(quota, clock)
}

/// A run held by `hold`: it waits for the release (no due time; the release drains it).
fn held_by(hold: &HoldView, now: DateTime<Utc>) -> Held {
    let until = hold
        .until
        .map(|u| format!(" until {}", short_time(u, now)))
        .unwrap_or_default();
    Held {
        on: hold_key(hold.id),
        reason: format!(
            "held by hold {} on {}{until}: {}",
            hold.id, hold.scope, hold.reason
        ),
        until: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::{LimitsDef, PolicyDef};

    /// A clock the test moves by hand.
    #[derive(Debug)]
    struct ManualClock(Mutex<DateTime<Utc>>);

    impl ManualClock {
        fn new(at: &str) -> Self {
            Self(Mutex::new(at.parse().unwrap()))
        }

        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap();
            *now = later_or_max(*now, by);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn gate(clock: &Arc<ManualClock>, hosts: &[(&str, &str, Option<u32>, Option<u32>)]) -> Gate {
        let mut config = PolicyConfig::default();
        for (host, rate, burst, concurrency) in hosts {
            let def = LimitsDef {
                rate: Some((*rate).to_owned()),
                burst: *burst,
                concurrency: *concurrency,
            };
            config
                .hosts
                .insert((*host).to_owned(), def.check().unwrap());
        }
        Gate::new(clock.clone(), &config)
    }

    #[test]
    fn a_rate_admits_its_burst_then_paces_the_rest_one_interval_apart() {
        let clock = Arc::new(ManualClock::new("2026-12-01T10:00:00Z"));
        let gate = gate(&clock, &[("api.example.com", "5/s", Some(2), None)]);
        assert!(gate.admit_call("api.example.com", None).is_ok());
        assert!(gate.admit_call("API.example.com", None).is_ok());
        let dues: Vec<_> = (0..3)
            .map(|_| gate.admit_call("api.example.com", None).err().unwrap())
            .collect();
        let start = clock.now();
        let offsets: Vec<i64> = dues
            .iter()
            .map(|h| (h.until.unwrap() - start).num_milliseconds())
            .collect();
        assert_eq!(offsets, [200, 400, 600]);
        assert_eq!(dues[0].on, "host:api.example.com");
        assert!(
            dues[0].reason.contains("rate limit (5/s, burst 2)"),
            "{}",
            dues[0].reason
        );
        // Another host is not limited.
        assert!(gate.admit_call("other.example.com", None).is_ok());
        // First come, first served: at 200 ms the first held run returns and goes; a new run
        // arriving then queues behind the other two held ones.
        clock.advance(Duration::from_millis(200));
        let waited = Some("host:api.example.com");
        assert!(gate.admit_call("api.example.com", waited).is_ok());
        let newcomer = gate.admit_call("api.example.com", None).err().unwrap();
        assert_eq!((newcomer.until.unwrap() - start).num_milliseconds(), 800);
        // A returning run that comes a moment early keeps its place: it is sent back only
        // until governor allows, not behind the newcomer.
        clock.advance(Duration::from_millis(195));
        let early = gate.admit_call("api.example.com", waited).err().unwrap();
        assert_eq!((early.until.unwrap() - start).num_milliseconds(), 400);
        clock.advance(Duration::from_millis(5));
        assert!(gate.admit_call("api.example.com", waited).is_ok());
    }

    #[test]
    fn concurrency_is_held_while_permits_live_and_a_drop_frees_a_slot() {
        let clock = Arc::new(ManualClock::new("2026-12-01T10:00:00Z"));
        let gate = Gate::new(clock.clone(), &PolicyConfig::default());
        let policy = PolicyDef {
            concurrency: Some(2),
            key: Some("{{ trigger.owner }}".into()),
            ..PolicyDef::default()
        }
        .check()
        .unwrap();
        let a = gate
            .admit_run("wf", Some(&policy), Some("ann"), true, None)
            .unwrap();
        let _b = gate
            .admit_run("wf", Some(&policy), Some("ann"), false, None)
            .unwrap();
        let held = gate
            .admit_run("wf", Some(&policy), Some("ann"), true, None)
            .err()
            .unwrap();
        assert_eq!(held.on, "workflow:wf#ann");
        assert!(
            held.reason.contains("2 runs in progress"),
            "{}",
            held.reason
        );
        // Another key has its own slots.
        let _bob = gate
            .admit_run("wf", Some(&policy), Some("bob"), true, None)
            .unwrap();
        drop(a);
        assert_eq!(gate.take_freed(), ["workflow:wf#ann"]);
        assert!(
            gate.admit_run("wf", Some(&policy), Some("ann"), true, None)
                .is_ok()
        );
    }

    #[test]
    fn a_host_that_asked_to_wait_holds_every_call_until_then() {
        let clock = Arc::new(ManualClock::new("2026-12-01T10:00:00Z"));
        let gate = Gate::new(clock.clone(), &PolicyConfig::default());
        let until = clock.now() + chrono::TimeDelta::seconds(3);
        let held = gate.pause_host("Api.Attio.com", until, 429);
        assert_eq!(
            held.reason,
            "api.attio.com asked to wait until 10:00:03Z (429)"
        );
        let other = gate.admit_call("api.attio.com", None).err().unwrap();
        assert_eq!(
            (other.on.as_str(), other.until),
            ("host:api.attio.com", Some(until))
        );
        clock.advance(Duration::from_secs(3));
        assert!(gate.admit_call("api.attio.com", None).is_ok());
    }

    #[test]
    fn holds_cover_their_scope_until_released_or_over() {
        let clock = Arc::new(ManualClock::new("2026-12-01T10:00:00Z"));
        let gate = Gate::new(clock.clone(), &PolicyConfig::default());
        let hold = |id, scope: &str, until: Option<DateTime<Utc>>| HoldView {
            id,
            scope: scope.into(),
            reason: "vendor maintenance".into(),
            source: HoldSource::Api,
            created_by: "ops".into(),
            created_at: clock.now(),
            until,
            drain_rate: None,
            released_at: None,
            released_by: None,
            held_runs: 0,
        };
        let soon = clock.now() + chrono::TimeDelta::seconds(60);
        gate.set_holds(vec![
            hold(1, "team:revops", Some(soon)),
            hold(2, "host:api.attio.com", None),
        ]);
        let held = gate.run_hold("lead_routing", "revops").unwrap();
        assert_eq!(held.on, "hold:1");
        assert_eq!(held.until, None);
        assert_eq!(
            held.reason,
            "held by hold 1 on team:revops until 10:01:00Z: vendor maintenance"
        );
        assert!(gate.run_hold("lead_routing", "sales").is_none());
        assert_eq!(
            gate.admit_call("api.attio.com", None).err().unwrap().on,
            "hold:2"
        );
        clock.advance(Duration::from_secs(60));
        assert!(gate.run_hold("lead_routing", "revops").is_none());
    }
}
