//! Which rules watch a workflow: its own (workflow file), its team's and the global ones (from
//! `acp.ron` and the API). A name used at a narrower scope hides the same name at a wider one;
//! a workflow that ends up with no rule at all gets the default rules.

use crate::domain::alert::{Rule, RuleDef, default_rule_defs, default_rules};
use crate::domain::config::Policy;
use crate::domain::validate::parse_duration;
use crate::engine::Watched;
use crate::store::StoredRule;
use crate::wire::RuleView;

/// A rule created through the API, checked.
#[derive(Debug, Clone)]
pub struct ApiRule {
    pub scope: String,
    pub rule: Rule,
}

/// Why an API rule's definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Not the shape of a rule (serde's message names the field).
    #[error("{0}")]
    Shape(#[from] serde_json::Error),
    /// A rule, but its values do not check: every problem, in the rule's field order.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Reads an API rule's definition: the rule as written and checked.
///
/// # Errors
/// [`RuleError`] when it is not a rule or its values do not check.
pub fn read(definition: &serde_json::Value) -> Result<(RuleDef, Rule), RuleError> {
    let def: RuleDef = serde_json::from_value(definition.clone())?;
    let rule = def.check(parse_duration).map_err(|problems| {
        RuleError::Invalid(problems.into_iter().map(|(_, message)| message).collect())
    })?;
    Ok((def, rule))
}

/// Checks the stored rules; one that no longer reads is skipped with a warning.
pub fn checked(stored: &[StoredRule]) -> Vec<ApiRule> {
    stored
        .iter()
        .filter_map(|s| match read(&s.definition) {
            Ok((_, rule)) => Some(ApiRule {
                scope: s.scope.clone(),
                rule,
            }),
            Err(e) => {
                tracing::warn!(rule = %s.name, scope = %s.scope, "skipping a stored rule: {e}");
                None
            }
        })
        .collect()
}

/// The rules that watch one workflow.
pub fn effective(workflow: &Watched, policy: &Policy, api: &[ApiRule]) -> Vec<Rule> {
    let rules = chosen(workflow, policy, api);
    if rules.is_empty() {
        default_rules()
    } else {
        rules
    }
}

/// The workflow's own, team and global rules, without the defaults.
fn chosen(workflow: &Watched, policy: &Policy, api: &[ApiRule]) -> Vec<Rule> {
    let team_scope = format!("team:{}", workflow.team);
    let scoped = |scope: &str| -> Vec<&Rule> {
        api.iter()
            .filter(|r| r.scope == scope)
            .map(|r| &r.rule)
            .collect()
    };
    let wider = scoped(&team_scope)
        .into_iter()
        .chain(policy.team_rules.get(&workflow.team).into_iter().flatten())
        .chain(scoped("global"))
        .chain(policy.rules.iter());
    let mut rules = workflow.rules.clone();
    for rule in wider {
        if !rules.iter().any(|r| r.name == rule.name) {
            rules.push(rule.clone());
        }
    }
    rules
}

/// Every rule with where it comes from, for `GET /rules`.
pub fn list(watched: &[Watched], policy: &Policy, stored: &[StoredRule]) -> Vec<RuleView> {
    let view = |id: Option<i64>, scope: String, source: &str, def: &RuleDef| RuleView {
        id,
        scope,
        source: source.to_owned(),
        name: def.name.clone(),
        rule: serde_json::to_value(def).unwrap_or_default(),
    };
    let mut list: Vec<RuleView> = stored
        .iter()
        .map(|s| RuleView {
            id: Some(s.id),
            scope: s.scope.clone(),
            source: "api".into(),
            name: s.name.clone(),
            rule: s.definition.clone(),
        })
        .collect();
    list.extend(
        policy
            .rule_defs
            .iter()
            .map(|d| view(None, "global".into(), "config", d)),
    );
    for (team, defs) in &policy.team_rule_defs {
        list.extend(
            defs.iter()
                .map(|d| view(None, format!("team:{team}"), "config", d)),
        );
    }
    for w in watched {
        list.extend(
            w.rule_defs
                .iter()
                .map(|d| view(None, format!("workflow:{}", w.key), "workflow_file", d)),
        );
    }
    let api = checked(stored);
    if watched.iter().any(|w| chosen(w, policy, &api).is_empty()) {
        list.extend(
            default_rule_defs()
                .iter()
                .map(|d| view(None, "default".into(), "default", d)),
        );
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Condition, Severity};
    use std::time::Duration;

    fn rule(name: &str, severity: Severity) -> Rule {
        Rule {
            name: name.into(),
            severity,
            condition: Condition::DlqDepth { above: 1 },
            after: Duration::ZERO,
        }
    }

    fn watched(team: &str, rules: Vec<Rule>) -> Watched {
        Watched {
            key: "w".into(),
            team: team.into(),
            sla: None,
            rules,
            rule_defs: Vec::new(),
            paused: false,
        }
    }

    #[test]
    fn narrower_scopes_hide_wider_ones_and_defaults_fill_the_gap() {
        let mut policy = Policy::default();
        let names = |rules: Vec<Rule>| -> Vec<(String, Severity)> {
            rules.into_iter().map(|r| (r.name, r.severity)).collect()
        };
        assert_eq!(
            names(effective(&watched("ops", vec![]), &policy, &[])),
            names(default_rules())
        );
        policy.rules = vec![rule("dlq", Severity::Warning)];
        policy
            .team_rules
            .insert("ops".into(), vec![rule("dlq", Severity::Critical)]);
        let api = [ApiRule {
            scope: "global".into(),
            rule: rule("burst", Severity::Warning),
        }];
        assert_eq!(
            names(effective(
                &watched("ops", vec![rule("own", Severity::Warning)]),
                &policy,
                &api
            )),
            [
                ("own".to_owned(), Severity::Warning),
                ("dlq".to_owned(), Severity::Critical),
                ("burst".to_owned(), Severity::Warning),
            ]
        );
        assert_eq!(
            names(effective(&watched("sales", vec![]), &policy, &api)),
            [
                ("burst".to_owned(), Severity::Warning),
                ("dlq".to_owned(), Severity::Warning),
            ]
        );
    }
}
