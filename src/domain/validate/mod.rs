//! Parses a workflow file and checks it, reporting every problem with its line and column.
//!
//! RON syntax and shape errors come from `ron` with its position and stop the parse. The
//! checks after that (names, durations, cron, retry ranges, template references) all run, and
//! each problem is placed on the line that causes it by finding its anchor in the source text.

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::Environment;

pub(crate) mod locate;
mod steps;

use super::alert;
use super::policy::{PolicyDef, RunPolicy};
use super::template::{self, References};
use super::workflow::{StepDef, Trigger, TriggerDef, Workflow, WorkflowDef};
use locate::{Anchor, Locator};

/// One problem in a workflow file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Parses and checks a workflow file's text.
pub fn parse_workflow(source: &str) -> Result<Workflow, Vec<Problem>> {
    let def: WorkflowDef = ron_options().from_str(source).map_err(|e| {
        vec![Problem {
            line: e.position.line,
            col: e.position.col,
            message: ron_message(&e.code),
        }]
    })?;
    Checker::new(source).check(def)
}

/// A RON error in the file author's terms (ron's own text for nesting names its internals).
pub(crate) fn ron_message(code: &ron::Error) -> String {
    match code {
        ron::Error::ExceededRecursionLimit => {
            "values are nested too deeply (more than 128 levels)".to_owned()
        }
        other => other.to_string(),
    }
}

/// How ACP reads RON files: `Some(...)` may be left out around optional values.
pub(crate) fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

pub use super::clock::parse_duration;

struct Checker<'s> {
    at: Locator<'s>,
    env: Environment<'static>,
    problems: Vec<Problem>,
}

impl<'s> Checker<'s> {
    fn new(source: &'s str) -> Self {
        Self {
            at: Locator::new(source),
            env: template::environment(Arc::new(|_| Some(String::new()))),
            problems: Vec::new(),
        }
    }

    fn fail(&mut self, anchor: Anchor, message: impl Into<String>) {
        let (line, col) = self.at.position(&anchor);
        self.problems.push(Problem {
            line,
            col,
            message: message.into(),
        });
    }

    fn check(mut self, def: WorkflowDef) -> Result<Workflow, Vec<Problem>> {
        self.check_names(&def);
        let sla = def
            .sla
            .as_deref()
            .and_then(|text| match parse_duration(text) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    self.fail(Anchor::Field("sla", None), "sla must be longer than zero");
                    None
                }
                Err(e) => {
                    self.fail(Anchor::Field("sla", None), format!("sla: {e}"));
                    None
                }
            });
        let trigger = self.check_trigger(&def.trigger);
        if def.steps.is_empty() {
            self.fail(
                Anchor::Field("steps", None),
                "a workflow needs at least one step",
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut steps = Vec::with_capacity(def.steps.len());
        for (index, step) in def.steps.iter().enumerate() {
            if let Some(first) = seen.insert(&step.id, index) {
                self.fail(
                    Anchor::Step(index, None),
                    format!(
                        "duplicate step id `{}` (step {} already uses it)",
                        step.id,
                        first + 1
                    ),
                );
            }
            steps.push(self.check_step(&def.steps, index));
        }
        let rules = self.check_rules(&def);
        let policy = def.policy.as_ref().and_then(|p| self.check_policy(p));
        match (trigger, self.problems.is_empty()) {
            (Some(trigger), true) => Ok(Workflow {
                steps: steps.into_iter().flatten().collect(),
                def,
                sla,
                trigger,
                rules,
                policy,
            }),
            _ => {
                self.problems.sort_by_key(|p| (p.line, p.col));
                Err(self.problems)
            }
        }
    }

    /// Checks the workflow's policy: its numbers and rate, and its key as a template over the
    /// trigger and the run (no step has run when a run is admitted).
    fn check_policy(&mut self, def: &PolicyDef) -> Option<RunPolicy> {
        if let Some(key) = &def.key {
            self.check_template(Anchor::Field("policy", Some("key".into())), key, false, &[]);
        }
        match def.check() {
            Ok(policy) => Some(policy),
            Err(problems) => {
                for (field, message) in problems {
                    self.fail(
                        Anchor::Field("policy", Some(field.to_owned())),
                        format!("policy: {message}"),
                    );
                }
                None
            }
        }
    }

    /// Checks the alert rules (none is fine: team, global or default rules apply then).
    fn check_rules(&mut self, def: &WorkflowDef) -> Vec<alert::Rule> {
        let mut names = std::collections::HashSet::new();
        let mut rules = Vec::new();
        for (index, rule) in def.alerts.iter().enumerate() {
            if !names.insert(rule.name.as_str()) {
                self.fail(
                    Anchor::Alert(index, None),
                    format!("duplicate alert name `{}`", rule.name),
                );
            }
            match rule.check(parse_duration) {
                Ok(rule) => rules.push(rule),
                Err(problems) => {
                    for (field, message) in problems {
                        self.fail(Anchor::Alert(index, Some(field.to_owned())), message);
                    }
                }
            }
        }
        rules
    }

    fn check_names(&mut self, def: &WorkflowDef) {
        if !is_key(&def.key) {
            self.fail(
                Anchor::Field("key", None),
                format!(
                    "key `{}` must be lowercase letters, digits, `_` or `-` (at most 64)",
                    def.key
                ),
            );
        }
        if def.name.trim().is_empty() {
            self.fail(Anchor::Field("name", None), "name must not be empty");
        }
        if def.team.trim().is_empty() {
            self.fail(Anchor::Field("team", None), "team must not be empty");
        }
        // Names are shown on terminals and used in hold scopes (`team:NAME`).
        for (field, text) in [("name", &def.name), ("team", &def.team)] {
            if text.contains(crate::wire::is_unsafe_char) {
                self.fail(
                    Anchor::Field(field, None),
                    format!("{field} must not contain control or invisible formatting characters"),
                );
            }
        }
    }

    fn check_trigger(&mut self, trigger: &TriggerDef) -> Option<Trigger> {
        match trigger {
            TriggerDef::Record {
                object,
                on,
                fields,
                filter,
            } => {
                if object.trim().is_empty() {
                    self.fail(
                        Anchor::Field("object", None),
                        "the record trigger needs an object",
                    );
                }
                if on.is_empty() {
                    self.fail(
                        Anchor::Field("on", None),
                        "`on` must list Created, Updated or both",
                    );
                }
                if let Some(filter) = filter {
                    self.check_template(Anchor::Field("filter", None), filter, true, &[]);
                }
                Some(Trigger::Record {
                    object: object.clone(),
                    on: on.clone(),
                    fields: fields.clone(),
                    filter: filter.clone(),
                })
            }
            TriggerDef::Schedule { cron, timezone } => {
                let parsed = croner::Cron::new(cron).with_seconds_optional().parse();
                let tz = timezone.parse::<chrono_tz::Tz>();
                if let Err(e) = &parsed {
                    self.fail(
                        Anchor::Field("cron", None),
                        format!("cron `{cron}` is not valid: {e}"),
                    );
                }
                if tz.is_err() {
                    self.fail(
                        Anchor::Field("timezone", None),
                        format!(
                            "timezone `{timezone}` is not an IANA name such as \"Europe/Berlin\""
                        ),
                    );
                }
                Some(Trigger::Schedule {
                    cron: parsed.ok()?,
                    timezone: tz.ok()?,
                })
            }
            TriggerDef::Webhook { hmac_secret } => Some(Trigger::Webhook {
                hmac_secret: hmac_secret.clone(),
            }),
            TriggerDef::Manual => Some(Trigger::Manual),
        }
    }

    /// Compiles a template or expression and checks what it reads against `earlier` steps.
    fn check_template(
        &mut self,
        anchor: Anchor,
        text: &str,
        expression: bool,
        earlier: &[StepDef],
    ) -> References {
        let refs = match template::references(&self.env, text, expression) {
            Ok(refs) => refs,
            Err(problem) => {
                self.fail(
                    anchor,
                    format!("template `{}`: {}", first_line(text), problem.message),
                );
                return References::default();
            }
        };
        for name in &refs.unknown {
            let message =
                format!("`{name}` is not defined: templates can read trigger, steps and run");
            self.fail(anchor.near(name), message);
        }
        for id in &refs.steps {
            let needle = format!("steps.{id}");
            let message = match (earlier.iter().any(|s| &s.id == id), anchor.step()) {
                (true, _) => continue,
                (false, None) => {
                    format!("`{needle}`: steps cannot be read here, no step has run yet")
                }
                (false, Some(i)) if self.step_exists_at_or_after(i, id) => {
                    format!("`{needle}` refers to a step that runs later (or to this step itself)")
                }
                (false, Some(_)) => format!("`{needle}` refers to an unknown step `{id}`"),
            };
            self.fail(anchor.near(&needle), message);
        }
        refs
    }

    fn step_exists_at_or_after(&self, index: usize, id: &str) -> bool {
        self.at.step_ids_from(index).any(|s| s == id)
    }
}

/// The template's first line, cut to 60 characters, to quote it in a problem.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
