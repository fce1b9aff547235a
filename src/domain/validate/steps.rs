//! Checks of each step: id, retry policy, timeout, `when`, and the action's fields.

use std::collections::BTreeMap;
use std::time::Duration;

use super::locate::Anchor;
use super::{Checker, parse_duration};
use crate::domain::retry::RetryPolicy;
use crate::domain::template;
use crate::domain::workflow::{ActionDef, RetryDef, Step, StepDef};

impl Checker<'_> {
    pub(super) fn check_step(&mut self, all: &[StepDef], index: usize) -> Option<Step> {
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

fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
