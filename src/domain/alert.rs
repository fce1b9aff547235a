//! Alert rules: what to watch on a workflow, and how bad it is when it happens.
//!
//! Rules are written in a workflow file (`alerts: [...]`); a workflow without any gets
//! [`default_rules`], so nothing is unwatched.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::wire::{AlertChanged, AlertState, AlertView, EventBody};

/// The alert evaluator's name as a background loop (in `control.*` events and `GET /health`).
pub const EVALUATOR_LOOP: &str = "alert evaluator";

/// How bad an alert is; routing picks channels by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Alert")]
pub struct RuleDef {
    /// Unique within the workflow; an alert is identified by (rule name, workflow).
    pub name: String,
    pub severity: Severity,
    pub when: ConditionDef,
    /// How long the condition must hold before the alert fires (default: at once).
    #[serde(default)]
    pub after: Option<String>,
}

/// When a rule's alert is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Condition")]
pub enum ConditionDef {
    /// More than `above` (0 to 1) of the runs finished in `window` failed, counting only when
    /// at least `min_runs` finished.
    FailureRate {
        above: f64,
        min_runs: u32,
        window: String,
    },
    /// Any run failed in `window` (default 15m): every failure is seen, grouped into one alert.
    AnyFailure {
        #[serde(default)]
        window: Option<String>,
    },
    /// A run in `window` took longer than the workflow's `sla`, or waited in the queue longer
    /// than `queued_longer_than`.
    SlaBreach {
        #[serde(default)]
        queued_longer_than: Option<String>,
        #[serde(default)]
        window: Option<String>,
    },
    /// Dead-man's switch: no run started (or, with `succeeded`, none succeeded) in `window`.
    Silence {
        window: String,
        #[serde(default)]
        succeeded: bool,
    },
    /// More than `above` dead-letter entries are open.
    DlqDepth { above: u32 },
    /// A run has been held (by a hold, a limit or a host that asked to wait) longer than
    /// `than`: held work is piling up. Every workflow has one, `held_too_long`, from
    /// `hold_warning` in `acp.ron` (default `1h`), unless a rule of that name replaces it.
    HeldLonger { than: String },
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub severity: Severity,
    pub condition: Condition,
    pub after: Duration,
}

/// A checked condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    FailureRate {
        above: f64,
        min_runs: u32,
        window: Duration,
    },
    AnyFailure {
        window: Duration,
    },
    SlaBreach {
        queued_longer_than: Option<Duration>,
        window: Duration,
    },
    Silence {
        window: Duration,
        succeeded: bool,
    },
    DlqDepth {
        above: u32,
    },
    HeldLonger {
        than: Duration,
    },
}

/// The name of every workflow's built-in held-work rule.
pub const HELD_TOO_LONG: &str = "held_too_long";

const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The rules of a workflow no rule reaches: every failure (warning), a failure rate above 10%
/// of at least 20 runs in 15 minutes (critical), and any dead letter left open (warning).
pub fn default_rule_defs() -> Vec<RuleDef> {
    let rule = |name: &str, severity, when| RuleDef {
        name: name.into(),
        severity,
        when,
        after: None,
    };
    vec![
        rule(
            "any_failure",
            Severity::Warning,
            ConditionDef::AnyFailure {
                window: Some("15m".into()),
            },
        ),
        rule(
            "failure_rate",
            Severity::Critical,
            ConditionDef::FailureRate {
                above: 0.10,
                min_runs: 20,
                window: "15m".into(),
            },
        ),
        rule(
            "dead_letters",
            Severity::Warning,
            ConditionDef::DlqDepth { above: 0 },
        ),
    ]
}

/// [`default_rule_defs`], checked.
pub fn default_rules() -> Vec<Rule> {
    default_rule_defs()
        .iter()
        .filter_map(|d| d.check(super::clock::parse_duration).ok())
        .collect()
}

/// What can happen to an alert once it exists (opening one is not a step: it starts the
/// lifecycle as pending or firing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStep {
    /// The rule's `after` has passed: pending → firing.
    Fire,
    /// New counts while the condition holds.
    Update,
    /// The condition has been clear long enough (or its rule is gone).
    Resolve,
    /// Someone acknowledged it.
    Ack,
    /// Quiet until a time; any alert, so a maintenance window can be set ahead.
    Silence,
}

/// A step the alert's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("is {state}: {step:?} needs an open (pending or firing) alert")]
pub struct AlertRefused {
    pub state: AlertState,
    pub step: AlertStep,
}

/// The alert lifecycle, pending → firing → resolved: the state after `step`, or why not.
///
/// | step | pending | firing | resolved |
/// |---|---|---|---|
/// | fire | firing | — | — |
/// | update, ack | pending | firing | — |
/// | resolve | resolved | resolved | — |
/// | silence | pending | firing | resolved |
///
/// # Errors
/// [`AlertRefused`] for a dash in the table.
pub fn alert_next(state: AlertState, step: AlertStep) -> Result<AlertState, AlertRefused> {
    use AlertState::{Firing, Pending, Resolved};
    match (state, step) {
        (Pending, AlertStep::Fire) => Ok(Firing),
        (Pending | Firing, AlertStep::Update | AlertStep::Ack) => Ok(state),
        (Pending | Firing, AlertStep::Resolve) => Ok(Resolved),
        (_, AlertStep::Silence) => Ok(state),
        _ => Err(AlertRefused { state, step }),
    }
}

/// A change to an alert, decided by the evaluator or a person.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    /// The condition became true: a new alert, pending or (with no waiting time) firing.
    Open {
        rule: String,
        workflow: String,
        severity: String,
        firing: bool,
        detail: serde_json::Value,
    },
    Fire {
        id: i64,
        detail: serde_json::Value,
    },
    /// New counts while the condition holds (no event).
    Update {
        id: i64,
        detail: serde_json::Value,
    },
    Resolve {
        id: i64,
    },
    Ack {
        id: i64,
        actor: String,
    },
    Silence {
        id: i64,
        until: DateTime<Utc>,
        actor: String,
    },
}

impl AlertChange {
    /// The alert this change is about and the lifecycle step it is; `None` for opening a
    /// new alert.
    pub fn target(&self) -> Option<(i64, AlertStep)> {
        Some(match self {
            Self::Open { .. } => return None,
            Self::Fire { id, .. } => (*id, AlertStep::Fire),
            Self::Update { id, .. } => (*id, AlertStep::Update),
            Self::Resolve { id } => (*id, AlertStep::Resolve),
            Self::Ack { id, .. } => (*id, AlertStep::Ack),
            Self::Silence { id, .. } => (*id, AlertStep::Silence),
        })
    }

    /// The event this change appends, given the alert as it is after the change; an update
    /// of the counts appends none.
    pub fn event(&self, alert: &AlertView) -> Option<EventBody> {
        let changed = AlertChanged {
            alert_id: alert.id,
            rule: alert.rule.clone(),
            state: alert.state,
            severity: None,
            detail: None,
            actor: None,
            until: None,
        };
        Some(match self {
            Self::Open {
                severity,
                firing,
                detail,
                ..
            } => {
                let opened = AlertChanged {
                    severity: Some(severity.clone()),
                    detail: Some(detail.clone()),
                    ..changed
                };
                if *firing {
                    EventBody::AlertFiring(opened)
                } else {
                    EventBody::AlertPending(opened)
                }
            }
            Self::Fire { detail, .. } => EventBody::AlertFiring(AlertChanged {
                detail: Some(detail.clone()),
                ..changed
            }),
            Self::Update { .. } => return None,
            Self::Resolve { .. } => EventBody::AlertResolved(changed),
            Self::Ack { actor, .. } => EventBody::AlertAcked(AlertChanged {
                actor: Some(actor.clone()),
                ..changed
            }),
            Self::Silence { until, actor, .. } => EventBody::AlertSilenced(AlertChanged {
                actor: Some(actor.clone()),
                until: Some(*until),
                ..changed
            }),
        })
    }
}

impl RuleDef {
    /// Checks the rule; `parse` reads durations. Answers the problems as (field, message).
    pub fn check(
        &self,
        parse: impl Fn(&str) -> Result<Duration, super::clock::DurationError>,
    ) -> Result<Rule, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let mut duration = |field: &'static str, text: Option<&str>| match text.map(&parse) {
            None => Some(DEFAULT_WINDOW),
            Some(Ok(d)) if !d.is_zero() => Some(d),
            Some(Ok(_)) => {
                problems.push((
                    field,
                    format!("alert `{}`: {field} must be longer than zero", self.name),
                ));
                None
            }
            Some(Err(e)) => {
                problems.push((field, format!("alert `{}`: {field}: {e}", self.name)));
                None
            }
        };
        let condition = match &self.when {
            ConditionDef::FailureRate {
                above,
                min_runs,
                window,
            } => {
                let window = duration("window", Some(window));
                if !(*above > 0.0 && *above < 1.0) {
                    problems.push(("above", format!("alert `{}`: above is {above}; write a share between 0 and 1, e.g. 0.1 for 10%", self.name)));
                }
                if *min_runs == 0 {
                    problems.push((
                        "min_runs",
                        format!("alert `{}`: min_runs must be at least 1", self.name),
                    ));
                }
                window.map(|window| Condition::FailureRate {
                    above: *above,
                    min_runs: *min_runs,
                    window,
                })
            }
            ConditionDef::AnyFailure { window } => {
                duration("window", window.as_deref()).map(|window| Condition::AnyFailure { window })
            }
            ConditionDef::SlaBreach {
                queued_longer_than,
                window,
            } => {
                let queued = queued_longer_than
                    .as_deref()
                    .map(|q| duration("queued_longer_than", Some(q)));
                let window = duration("window", window.as_deref());
                match (queued, window) {
                    (Some(None), _) | (_, None) => None,
                    (queued, Some(window)) => Some(Condition::SlaBreach {
                        queued_longer_than: queued.flatten(),
                        window,
                    }),
                }
            }
            ConditionDef::Silence { window, succeeded } => {
                duration("window", Some(window)).map(|window| Condition::Silence {
                    window,
                    succeeded: *succeeded,
                })
            }
            ConditionDef::DlqDepth { above } => Some(Condition::DlqDepth { above: *above }),
            ConditionDef::HeldLonger { than } => {
                duration("than", Some(than)).map(|than| Condition::HeldLonger { than })
            }
        };
        let after = match self.after.as_deref().map(&parse) {
            None => Some(Duration::ZERO),
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                problems.push(("after", format!("alert `{}`: after: {e}", self.name)));
                None
            }
        };
        match (condition, after, problems.is_empty()) {
            (Some(condition), Some(after), true) => Ok(Rule {
                name: self.name.clone(),
                severity: self.severity,
                condition,
                after,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_lifecycle_allows_exactly_its_table() {
        use AlertState::{Firing, Pending, Resolved};
        use AlertStep::{Ack, Fire, Resolve, Silence, Update};
        let table = [
            (Pending, Fire, Some(Firing)),
            (Firing, Fire, None),
            (Resolved, Fire, None),
            (Pending, Update, Some(Pending)),
            (Firing, Update, Some(Firing)),
            (Resolved, Update, None),
            (Pending, Resolve, Some(Resolved)),
            (Firing, Resolve, Some(Resolved)),
            (Resolved, Resolve, None),
            (Pending, Ack, Some(Pending)),
            (Firing, Ack, Some(Firing)),
            (Resolved, Ack, None),
            (Pending, Silence, Some(Pending)),
            (Firing, Silence, Some(Firing)),
            (Resolved, Silence, Some(Resolved)),
        ];
        for (state, step, next) in table {
            assert_eq!(alert_next(state, step).ok(), next, "{state} {step:?}");
        }
    }
}
