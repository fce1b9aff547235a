//! Policies that make runs wait, never drop: rates (`"10/s"`), a workflow's own limits, the
//! limits of a destination host shared by every workflow, the scopes a hold covers and the
//! maintenance windows that hold a scope on a schedule. Checked here; enforced by the engine.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::{MAX_DURATION, parse_duration};

/// A rate: `count` events per `per`, written `"10/s"`, `"600/m"`, `"5/h"` or `"1/30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

/// A rate that could not be read; the message names the text and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a rate; write a count per unit, e.g. \"10/s\", \"600/m\" or \"1/30s\"")]
pub struct RateError(pub String);

impl Rate {
    /// Parses `"<count>/<unit>"`, where the unit is `s`, `m`, `h` or any duration (`30s`).
    ///
    /// # Errors
    /// [`RateError`] for another shape, a count of 0, or a period of 0 or over 100 years.
    pub fn parse(text: &str) -> Result<Self, RateError> {
        let bad = || RateError(text.to_owned());
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => parse_duration(other).map_err(|_| bad())?,
        };
        if per.is_zero() || per > MAX_DURATION {
            return Err(bad());
        }
        Ok(Self { count, per })
    }

    /// `n` events per second as a whole count per whole seconds where there is one within
    /// 1,000 seconds (`1.5` is `3/2s`, `0.1` is `1/10s`), else one per the nearest
    /// millisecond interval.
    ///
    /// # Errors
    /// [`RateError`] for a number that is not finite and positive, or over `u32::MAX`.
    pub fn per_second(n: f64) -> Result<Self, RateError> {
        let bad = || RateError(n.to_string());
        if !(n.is_finite() && n > 0.0 && n <= f64::from(u32::MAX)) {
            return Err(bad());
        }
        for seconds in 1..=1000u32 {
            let count = n * f64::from(seconds);
            if count > f64::from(u32::MAX) {
                break;
            }
            if (count - count.round()).abs() < 1e-9 && count.round() >= 1.0 {
                let count = NonZeroU32::new(count.round() as u32).ok_or_else(bad)?;
                let per = Duration::from_secs(u64::from(seconds));
                return Ok(Self { count, per });
            }
        }
        let per = Duration::try_from_secs_f64(1.0 / n).map_err(|_| bad())?;
        let per = Duration::from_millis(per.as_millis().max(1) as u64);
        if per > MAX_DURATION {
            return Err(bad());
        }
        Ok(Self {
            count: NonZeroU32::MIN,
            per,
        })
    }

    /// The time between two events at this rate (GCRA's emission interval), at least 1 ns.
    pub fn interval(&self) -> Duration {
        (self.per / self.count.get()).max(Duration::from_nanos(1))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => write!(f, "{}/s", self.count),
            60 if self.per.subsec_nanos() == 0 => write!(f, "{}/m", self.count),
            3600 if self.per.subsec_nanos() == 0 => write!(f, "{}/h", self.count),
            _ => write!(f, "{}/{}", self.count, humantime::format_duration(self.per)),
        }
    }
}

/// A workflow's own limits as written in its file:
/// `policy: (concurrency: 5, rate: "10/s", burst: 10, key: "{{ trigger.record.values.owner }}")`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Policy")]
pub struct PolicyDef {
    /// Runs of the workflow (per key) executing at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Runs of the workflow (per key) started per unit of time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Runs that may start at once above the rate (default 1: evenly spaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// A template over the run (`trigger`, `run`): each value gets its own limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Limits on something runs do: how many at once and how fast, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub concurrency: Option<NonZeroU32>,
    pub rate: Option<Rate>,
    /// Events allowed at once above the rate; at least 1.
    pub burst: NonZeroU32,
}

/// A workflow's checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPolicy {
    pub limits: Limits,
    /// The key template, when the limits are per key.
    pub key: Option<String>,
}

/// A problem with a policy, named by field.
pub type PolicyProblem = (&'static str, String);

impl PolicyDef {
    /// Checks the numbers and the rate; the key's template is checked with the workflow's
    /// other templates.
    ///
    /// # Errors
    /// Every problem, each with the field it belongs to.
    pub fn check(&self) -> Result<RunPolicy, Vec<PolicyProblem>> {
        let limits = LimitsDef {
            concurrency: self.concurrency,
            rate: self.rate.clone(),
            burst: self.burst,
        }
        .check()?;
        if self.key.is_some() && limits.concurrency.is_none() && limits.rate.is_none() {
            return Err(vec![(
                "key",
                "a policy key needs a concurrency or a rate to apply per key".into(),
            )]);
        }
        Ok(RunPolicy {
            limits,
            key: self.key.clone(),
        })
    }
}

/// The limits of one destination host as written in `acp.ron`:
/// `hosts: {"api.attio.com": (rate: "25/s", burst: 5, concurrency: 10)}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename = "Host")]
pub struct LimitsDef {
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub burst: Option<u32>,
}

impl LimitsDef {
    /// # Errors
    /// Every problem, each with the field it belongs to.
    pub fn check(&self) -> Result<Limits, Vec<PolicyProblem>> {
        let mut problems = Vec::new();
        let concurrency = match self.concurrency {
            None => None,
            Some(n) => NonZeroU32::new(n).or_else(|| {
                problems.push(("concurrency", "concurrency must be at least 1".into()));
                None
            }),
        };
        let rate = match self.rate.as_deref().map(Rate::parse) {
            None => None,
            Some(Ok(rate)) => Some(rate),
            Some(Err(e)) => {
                problems.push(("rate", e.to_string()));
                None
            }
        };
        let burst = match self.burst {
            None => NonZeroU32::MIN,
            Some(n) => {
                if self.rate.is_none() {
                    problems.push(("burst", "a burst needs a rate".into()));
                }
                NonZeroU32::new(n).unwrap_or_else(|| {
                    problems.push(("burst", "burst must be at least 1".into()));
                    NonZeroU32::MIN
                })
            }
        };
        if self.concurrency.is_none() && self.rate.is_none() && problems.is_empty() {
            problems.push((
                "rate",
                "give a rate, a concurrency or both (an empty policy limits nothing)".into(),
            ));
        }
        match problems.is_empty() {
            true => Ok(Limits {
                concurrency,
                rate,
                burst,
            }),
            false => Err(problems),
        }
    }
}

/// What a hold covers: the runs of one workflow, of one team, or every call to one host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HoldScope {
    Workflow(String),
    Team(String),
    Host(String),
}

/// A scope that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a hold scope; write \"workflow:KEY\", \"team:NAME\" or \"host:HOST\" (a host name, no scheme or path)"
)]
pub struct ScopeError(pub String);

impl HoldScope {
    /// Parses `workflow:KEY`, `team:NAME` or `host:HOST`; a host is lower-cased.
    ///
    /// # Errors
    /// [`ScopeError`] for another prefix, an empty name, or a host with a scheme, path, port
    /// separator misuse or spaces.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let bad = || ScopeError(text.to_owned());
        let (kind, name) = text.trim().split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty()
            || name.len() > 253
            || name
                .chars()
                .any(|c| c.is_whitespace() || crate::wire::is_unsafe_char(c))
        {
            return Err(bad());
        }
        match kind.trim() {
            "workflow" => Ok(Self::Workflow(name.to_owned())),
            "team" => Ok(Self::Team(name.to_owned())),
            "host" if is_host(name) => Ok(Self::Host(name.to_ascii_lowercase())),
            _ => Err(bad()),
        }
    }

    /// True when a run of `workflow` (of `team`) is covered before each of its steps; host
    /// scopes cover calls, see [`HoldScope::covers_host`].
    pub fn covers_run(&self, workflow: &str, team: &str) -> bool {
        match self {
            Self::Workflow(key) => key == workflow,
            Self::Team(name) => name == team,
            Self::Host(_) => false,
        }
    }

    /// The workflow a `workflow:KEY` scope names (its hold events carry it, so a webhook
    /// subscription for that workflow sees them).
    pub fn workflow(&self) -> Option<&str> {
        match self {
            Self::Workflow(key) => Some(key),
            Self::Team(_) | Self::Host(_) => None,
        }
    }

    /// True when a call to `host` is covered.
    pub fn covers_host(&self, host: &str) -> bool {
        matches!(self, Self::Host(h) if h.eq_ignore_ascii_case(host))
    }
}

/// A host name as URLs carry it (letters, digits, `-`, `.`, `_`; an IPv6 literal in brackets),
/// without scheme, port or path.
fn is_host(name: &str) -> bool {
    let bracketed = name.starts_with('[') && name.ends_with(']');
    bracketed
        || name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

impl fmt::Display for HoldScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Workflow(key) => write!(f, "workflow:{key}"),
            Self::Team(name) => write!(f, "team:{name}"),
            Self::Host(host) => write!(f, "host:{host}"),
        }
    }
}

/// A maintenance window as written in `acp.ron`: holds `scope` from each cron occurrence (in
/// `timezone`) for `duration`, then lets the held runs drain at `drain_rate`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename = "Window")]
pub struct WindowDef {
    pub name: String,
    pub scope: String,
    pub cron: String,
    pub duration: String,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub drain_rate: Option<String>,
}

/// A checked maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub name: String,
    pub scope: HoldScope,
    /// The cron expression (5 or 6 fields), checked by croner.
    pub cron: String,
    pub duration: Duration,
    /// An IANA time zone name.
    pub timezone: String,
    pub drain_rate: Option<Rate>,
}

/// The policies of `acp.ron`: host limits, maintenance windows and when held work warns.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Limits per destination host (lower-case names).
    pub hosts: std::collections::BTreeMap<String, Limits>,
    pub windows: Vec<Window>,
    /// A run held longer than this raises a warning alert (default 1 hour).
    pub hold_warning: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            hosts: Default::default(),
            windows: Vec::new(),
            hold_warning: Duration::from_secs(3600),
        }
    }
}

/// A hold to place.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHold {
    pub scope: HoldScope,
    pub reason: String,
    pub source: crate::wire::HoldSource,
    /// Who placed it (a token's name, `window:NAME`, `backpressure`).
    pub actor: String,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub drain_rate: Option<Rate>,
    /// A second hold with the same key is not placed (a window's occurrence:
    /// `window:NAME:<start>`, so a restart never holds one occurrence twice).
    pub dedupe_key: Option<String>,
}

impl NewHold {
    /// The `hold.created` event of this hold, once the store gave it `id`.
    pub fn created_event(&self, id: i64) -> crate::wire::EventBody {
        crate::wire::EventBody::HoldCreated(crate::wire::HoldChanged {
            hold_id: id,
            scope: self.scope.to_string(),
            reason: self.reason.clone(),
            source: self.source,
            until: self.until,
            actor: self.actor.clone(),
            released_runs: None,
        })
    }
}

/// What a run held by hold `id` waits on (`Held::on`): the hold's release wakes them.
pub fn hold_key(id: i64) -> String {
    format!("hold:{id}")
}

/// The `hold.released` event of `hold`, released by `actor` with `runs` runs draining.
pub fn released_event(
    hold: &crate::wire::HoldView,
    actor: &str,
    runs: i64,
) -> crate::wire::EventBody {
    crate::wire::EventBody::HoldReleased(crate::wire::HoldChanged {
        hold_id: hold.id,
        scope: hold.scope.clone(),
        reason: hold.reason.clone(),
        source: hold.source,
        until: hold.until,
        actor: actor.to_owned(),
        released_runs: Some(runs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_a_count_per_unit() {
        let rate = Rate::parse("10/s").unwrap();
        assert_eq!(rate.interval(), Duration::from_millis(100));
        assert_eq!(rate.to_string(), "10/s");
        assert_eq!(
            Rate::parse("600/m").unwrap().interval(),
            Duration::from_millis(100)
        );
        assert_eq!(
            Rate::parse("1/30s").unwrap().interval(),
            Duration::from_secs(30)
        );
        assert_eq!(Rate::parse(" 5 / h ").unwrap().to_string(), "5/h");
        let as_rate = |n: f64| Rate::per_second(n).unwrap().to_string();
        assert_eq!(
            [
                as_rate(10.0),
                as_rate(1.5),
                as_rate(0.1),
                as_rate(std::f64::consts::PI)
            ],
            ["10/s", "3/2s", "1/10s", "1/318ms"]
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            assert!(Rate::per_second(bad).is_err(), "{bad}");
        }
        for bad in [
            "10", "0/s", "-1/s", "10/x", "10/0s", "ten/s", "/s", "5/1000y",
        ] {
            let e = Rate::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad.trim()) && e.contains("10/s"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_policy_needs_something_to_limit_and_sane_numbers() {
        let def = PolicyDef {
            concurrency: Some(5),
            rate: Some("10/s".into()),
            burst: Some(10),
            key: Some("{{ trigger.owner }}".into()),
        };
        let policy = def.check().unwrap();
        assert_eq!(policy.limits.burst.get(), 10);
        assert_eq!(policy.limits.concurrency.map(NonZeroU32::get), Some(5));
        let fields = |def: PolicyDef| -> Vec<&str> {
            def.check()
                .unwrap_err()
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(fields(PolicyDef::default()), ["rate"]);
        let zero = PolicyDef {
            concurrency: Some(0),
            burst: Some(0),
            rate: Some("fast".into()),
            key: None,
        };
        assert_eq!(fields(zero), ["concurrency", "rate", "burst"]);
        let burst_alone = PolicyDef {
            concurrency: Some(2),
            burst: Some(3),
            ..PolicyDef::default()
        };
        assert_eq!(fields(burst_alone), ["burst"]);
    }

    #[test]
    fn scopes_name_a_workflow_a_team_or_a_host() {
        assert_eq!(
            HoldScope::parse("host:API.Attio.com").unwrap(),
            HoldScope::Host("api.attio.com".into())
        );
        let wf = HoldScope::parse("workflow:lead_routing").unwrap();
        assert!(wf.covers_run("lead_routing", "revops"));
        assert!(!wf.covers_run("other", "revops"));
        assert!(
            HoldScope::parse("team:revops")
                .unwrap()
                .covers_run("x", "revops")
        );
        assert_eq!(wf.to_string(), "workflow:lead_routing");
        for bad in [
            "lead_routing",
            "workflow:",
            "queue:x",
            "host:https://api.attio.com",
            "host:api.attio.com/v2",
            "team:a b",
            "team:ops\u{1b}[31m",
            "team:\u{202e}evil",
            "workflow:x\u{0}",
        ] {
            assert!(HoldScope::parse(bad).is_err(), "{bad}");
        }
    }
}
