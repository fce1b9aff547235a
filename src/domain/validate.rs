//! Parses a workflow file and checks it, reporting every problem with its line and column.
//!
//! RON syntax and shape errors come from `ron` with its position and stop the parse. The
//! checks after that (names, durations, cron, retry ranges, template references) all run, and
//! each problem is placed on the line that causes it by finding its anchor in the source text.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use minijinja::Environment;

use super::retry::RetryPolicy;
use super::template::{self, References};
use super::workflow::{
    ActionDef, RetryDef, Step, StepDef, Trigger, TriggerDef, Workflow, WorkflowDef,
};

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
    let options =
        ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
    let def: WorkflowDef = options.from_str(source).map_err(|e| {
        vec![Problem {
            line: e.position.line,
            col: e.position.col,
            message: e.code.to_string(),
        }]
    })?;
    Checker::new(source).check(def)
}

/// Parses a duration such as `500ms`, `30s`, `5m` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. \"30s\", \"5m\", \"1h\"")
    })
}

/// Where in the file a problem belongs.
#[derive(Clone)]
enum Anchor {
    /// A top-level or trigger field, found by its name; at `needle` if it occurs after it.
    Field(&'static str, Option<String>),
    /// Inside step `index`, at `needle` if it occurs there, else at the step's `id`.
    Step(usize, Option<String>),
}

impl Anchor {
    /// The same place, pointing at `needle`.
    fn near(&self, needle: &str) -> Self {
        match self {
            Self::Field(name, _) => Self::Field(name, Some(needle.to_owned())),
            Self::Step(index, _) => Self::Step(*index, Some(needle.to_owned())),
        }
    }

    fn step(&self) -> Option<usize> {
        match self {
            Self::Step(index, _) => Some(*index),
            Self::Field(..) => None,
        }
    }
}

struct Checker<'s> {
    source: &'s str,
    fields: Vec<(&'s str, usize)>,
    step_starts: Vec<usize>,
    env: Environment<'static>,
    problems: Vec<Problem>,
}

impl<'s> Checker<'s> {
    fn new(source: &'s str) -> Self {
        let fields = field_names(source);
        let steps_at = fields
            .iter()
            .find(|(name, _)| *name == "steps")
            .map_or(source.len(), |f| f.1);
        let step_starts = fields
            .iter()
            .filter(|(name, at)| *name == "id" && *at > steps_at)
            .map(|f| f.1)
            .collect();
        Self {
            source,
            fields,
            step_starts,
            env: template::environment(Arc::new(|_| Some(String::new()))),
            problems: Vec::new(),
        }
    }

    fn fail(&mut self, anchor: Anchor, message: impl Into<String>) {
        let offset = match anchor {
            Anchor::Field(name, needle) => {
                let start = self
                    .fields
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0, |f| f.1);
                self.find_in(start, self.source.len(), needle.as_deref())
            }
            Anchor::Step(index, needle) => {
                let start = self.step_starts.get(index).copied().unwrap_or(0);
                let end = self
                    .step_starts
                    .get(index + 1)
                    .copied()
                    .unwrap_or(self.source.len());
                self.find_in(start, end, needle.as_deref())
            }
        };
        let (line, col) = line_col(self.source, offset);
        self.problems.push(Problem {
            line,
            col,
            message: message.into(),
        });
    }

    /// The offset of `needle` within `start..end`, else `start`.
    fn find_in(&self, start: usize, end: usize, needle: Option<&str>) -> usize {
        needle
            .and_then(|n| self.source[start..end].find(n).map(|at| start + at))
            .unwrap_or(start)
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
        match (trigger, self.problems.is_empty()) {
            (Some(trigger), true) => Ok(Workflow {
                steps: steps.into_iter().flatten().collect(),
                def,
                sla,
                trigger,
            }),
            _ => {
                self.problems.sort_by_key(|p| (p.line, p.col));
                Err(self.problems)
            }
        }
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

    fn check_step(&mut self, all: &[StepDef], index: usize) -> Option<Step> {
        let step = &all[index];
        if !is_identifier(&step.id) {
            self.fail(
                Anchor::Step(index, None),
                format!(
                    "step id `{}` must be a lowercase identifier such as `enrich_lead`",
                    step.id
                ),
            );
        }
        let retry = self.check_retry(index, &step.retry);
        let timeout = match step.timeout.as_deref().map(parse_duration) {
            None => Some(Duration::from_secs(30)),
            Some(Ok(d)) if d >= Duration::from_millis(1) && d <= Duration::from_secs(900) => {
                Some(d)
            }
            Some(Ok(_)) => {
                self.fail(
                    Anchor::Step(index, Some("timeout".into())),
                    "timeout must be between 1ms and 15m",
                );
                None
            }
            Some(Err(e)) => {
                self.fail(
                    Anchor::Step(index, Some("timeout".into())),
                    format!("timeout: {e}"),
                );
                None
            }
        };
        let earlier = &all[..index];
        if let Some(when) = &step.when {
            self.check_template(Anchor::Step(index, Some(when.clone())), when, true, earlier);
        }
        let ai_fields = self.check_action(index, &step.action, all);
        Some(Step {
            id: step.id.clone(),
            action: step.action.clone(),
            retry: retry?,
            timeout: timeout?,
            when: step.when.clone(),
            ai_fields,
        })
    }

    fn check_retry(&mut self, index: usize, retry: &RetryDef) -> Option<RetryPolicy> {
        let mut ok = true;
        let mut bad = |this: &mut Self, field: &str, message: String| {
            ok = false;
            this.fail(Anchor::Step(index, Some(field.into())), message);
        };
        if !(1..=20).contains(&retry.max_attempts) {
            bad(
                self,
                "max_attempts",
                format!(
                    "retry.max_attempts is {}; it must be 1 to 20",
                    retry.max_attempts
                ),
            );
        }
        if !(1.0..=10.0).contains(&retry.multiplier) {
            bad(
                self,
                "multiplier",
                format!(
                    "retry.multiplier is {}; it must be 1.0 to 10.0",
                    retry.multiplier
                ),
            );
        }
        let initial = parse_duration(&retry.initial_delay);
        let max = parse_duration(&retry.max_delay);
        match (&initial, &max) {
            (Err(e), _) => bad(self, "initial_delay", format!("retry.initial_delay: {e}")),
            (_, Err(e)) => bad(self, "max_delay", format!("retry.max_delay: {e}")),
            (Ok(i), Ok(m)) => {
                if *i < Duration::from_millis(1) || *i > Duration::from_secs(3600) {
                    bad(
                        self,
                        "initial_delay",
                        "retry.initial_delay must be between 1ms and 1h".into(),
                    );
                }
                if m < i || *m > Duration::from_secs(86_400) {
                    bad(
                        self,
                        "max_delay",
                        "retry.max_delay must be at least initial_delay and at most 24h".into(),
                    );
                }
            }
        }
        ok.then(|| RetryPolicy {
            max_attempts: retry.max_attempts,
            initial_delay: initial.unwrap_or_default(),
            max_delay: max.unwrap_or_default(),
            multiplier: retry.multiplier,
        })
    }

    /// Checks an action's fields; returns the record fields fed by `ai` steps.
    fn check_action(
        &mut self,
        index: usize,
        action: &ActionDef,
        all: &[StepDef],
    ) -> BTreeMap<String, String> {
        let earlier = &all[..index];
        let required = |this: &mut Self, name: &str, value: &str| {
            if value.trim().is_empty() {
                this.fail(
                    Anchor::Step(index, Some(name.into())),
                    format!("{} `{name}` must not be empty", action.kind()),
                );
            }
        };
        let mut ai_fields = BTreeMap::new();
        match action {
            ActionDef::UpdateRecord { record, values }
            | ActionDef::CreateRecord {
                object: record,
                values,
            } => {
                required(
                    self,
                    if matches!(action, ActionDef::UpdateRecord { .. }) {
                        "record"
                    } else {
                        "object"
                    },
                    record,
                );
                self.check_template(
                    Anchor::Step(index, Some(record.clone())),
                    record,
                    false,
                    earlier,
                );
                for (field, value) in values {
                    for text in template::strings_in(value) {
                        let refs = self.check_template(
                            Anchor::Step(index, Some(text.into())),
                            text,
                            false,
                            earlier,
                        );
                        if let Some(policy) =
                            refs.steps.iter().find_map(|id| ai_policy(earlier, id))
                        {
                            ai_fields.insert(field.clone(), policy);
                        }
                    }
                }
            }
            ActionDef::Http {
                method,
                url,
                headers,
                body,
            } => {
                if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str()) {
                    self.fail(
                        Anchor::Step(index, Some("method".into())),
                        format!(
                            "http method `{method}` must be GET, POST, PUT, PATCH, DELETE or HEAD"
                        ),
                    );
                }
                required(self, "url", url);
                let texts = std::iter::once(url.as_str())
                    .chain(headers.values().map(String::as_str))
                    .chain(body.iter().flat_map(template::strings_in));
                for text in texts.collect::<Vec<_>>() {
                    self.check_template(
                        Anchor::Step(index, Some(text.into())),
                        text,
                        false,
                        earlier,
                    );
                }
            }
            ActionDef::Ai {
                provider,
                model,
                policy_id,
                system,
                prompt,
                ..
            } => {
                required(self, "model", model);
                required(self, "policy_id", policy_id);
                if let Some(p) = provider
                    .as_deref()
                    .filter(|p| !["builtin", "openai"].contains(p))
                {
                    self.fail(
                        Anchor::Step(index, Some("provider".into())),
                        format!("ai provider `{p}` must be \"builtin\" or \"openai\""),
                    );
                }
                for text in system.iter().chain(std::iter::once(prompt)) {
                    self.check_template(
                        Anchor::Step(index, Some(text.clone())),
                        text,
                        false,
                        earlier,
                    );
                }
            }
            ActionDef::Notify { url, text, .. } => {
                required(self, "url", url);
                for t in [url, text] {
                    self.check_template(Anchor::Step(index, Some(t.clone())), t, false, earlier);
                }
            }
            ActionDef::Condition { expr } => {
                self.check_template(Anchor::Step(index, Some(expr.clone())), expr, true, earlier);
            }
            ActionDef::Delay { duration } => match parse_duration(duration) {
                Ok(d) if d <= Duration::from_secs(30 * 86_400) => {}
                Ok(_) => self.fail(
                    Anchor::Step(index, Some("duration".into())),
                    "delay must be at most 30 days",
                ),
                Err(e) => self.fail(
                    Anchor::Step(index, Some("duration".into())),
                    format!("delay: {e}"),
                ),
            },
        }
        ai_fields
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
        self.step_ids_from(index).any(|s| s == id)
    }

    fn step_ids_from(&self, index: usize) -> impl Iterator<Item = &str> {
        let source = self.source;
        self.step_starts[index.min(self.step_starts.len())..]
            .iter()
            .filter_map(move |&at| {
                let rest = &source[at..];
                let open = rest.find('"')? + 1;
                let close = rest[open..].find('"')?;
                Some(&rest[open..open + close])
            })
    }
}

fn ai_policy(earlier: &[StepDef], id: &str) -> Option<String> {
    earlier
        .iter()
        .find(|s| s.id == id)
        .and_then(|s| match &s.action {
            ActionDef::Ai { policy_id, .. } => Some(policy_id.clone()),
            _ => None,
        })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Every field name in RON source (`name:` outside comments and strings), with its offset.
fn field_names(source: &str) -> Vec<(&str, usize)> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = source[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + n + 4);
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if source[i..].trim_start_matches([' ', '\t']).starts_with(':') {
                    found.push((&source[start..i], start));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, col)
}
