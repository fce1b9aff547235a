//! Workflow definitions: the RON file's shape (`WorkflowDef`) and its checked form (`Workflow`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::alert::{Rule, RuleDef};
use super::policy::{PolicyDef, RunPolicy};
use super::retry::RetryPolicy;
use super::template;

/// A workflow file exactly as written. See `assets/workflows/` for examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Workflow")]
pub struct WorkflowDef {
    pub key: String,
    pub name: String,
    pub team: String,
    #[serde(default)]
    pub description: String,
    pub trigger: TriggerDef,
    /// How long a run may take before it breaches its SLA, e.g. `"5m"`.
    #[serde(default)]
    pub sla: Option<String>,
    pub steps: Vec<StepDef>,
    /// Alert rules; a workflow without any gets the default rules.
    #[serde(default)]
    pub alerts: Vec<RuleDef>,
    /// Limits on this workflow's runs (concurrency, rate, per key); runs over them wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyDef>,
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Trigger")]
pub enum TriggerDef {
    /// A record of `object` was created or updated; optionally only when one of `fields` changed
    /// and only when `filter` (an expression over `trigger`) is true.
    Record {
        object: String,
        #[serde(default = "both_record_events")]
        on: Vec<RecordOn>,
        #[serde(default)]
        fields: Vec<String>,
        #[serde(default)]
        filter: Option<String>,
    },
    /// A cron schedule (5 or 6 fields) in an IANA timezone.
    Schedule {
        cron: String,
        #[serde(default = "utc")]
        timezone: String,
    },
    /// `POST /api/v1/hooks/{key}`; `hmac_secret` names the secret that signs the body.
    Webhook {
        #[serde(default)]
        hmac_secret: Option<String>,
    },
    /// Started by a person through the API, the CLI or the console.
    Manual,
}

/// A record event a `Record` trigger listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOn {
    Created,
    Updated,
}

fn both_record_events() -> Vec<RecordOn> {
    vec![RecordOn::Created, RecordOn::Updated]
}

fn utc() -> String {
    "UTC".to_owned()
}

/// One step as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Step")]
pub struct StepDef {
    pub id: String,
    pub action: ActionDef,
    #[serde(default)]
    pub retry: RetryDef,
    /// Per-attempt time limit, e.g. `"10s"` (default 30s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Expression; the step is skipped when it is false.
    #[serde(default)]
    pub when: Option<String>,
}

/// A retry policy as written; checked into a [`RetryPolicy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename = "Retry")]
pub struct RetryDef {
    pub max_attempts: u32,
    pub initial_delay: String,
    pub max_delay: String,
    pub multiplier: f32,
}

impl Default for RetryDef {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: "1s".into(),
            max_delay: "1m".into(),
            multiplier: 2.0,
        }
    }
}

/// What a step does. Every string inside is a minijinja template; a string that is one
/// `{{ expression }}` and nothing else keeps the expression's JSON type (number, object, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename = "Action")]
pub enum ActionDef {
    UpdateRecord {
        record: String,
        values: Map<String, Value>,
    },
    CreateRecord {
        object: String,
        values: Map<String, Value>,
    },
    Http {
        #[serde(default = "get")]
        method: String,
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: Option<Value>,
    },
    Ai {
        /// `builtin` (deterministic) or `openai` (any OpenAI-compatible endpoint); default: the
        /// server's configured provider.
        #[serde(default)]
        provider: Option<String>,
        model: String,
        policy_id: String,
        #[serde(default)]
        system: Option<String>,
        prompt: String,
        /// Parse the answer as JSON.
        #[serde(default)]
        json: bool,
    },
    Notify {
        channel: NotifyChannel,
        url: String,
        text: String,
    },
    /// When false, the remaining steps are skipped and the run succeeds.
    Condition {
        expr: String,
    },
    Delay {
        duration: String,
    },
}

fn get() -> String {
    "GET".to_owned()
}

/// Where a `Notify` step posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyChannel {
    /// A Slack incoming webhook: `{"text": ...}`.
    Slack,
    /// Any URL: `{"text", "workflow", "run_id"}`.
    Webhook,
}

impl ActionDef {
    /// The step kind's name as shown to people (`http`, `update_record`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UpdateRecord { .. } => "update_record",
            Self::CreateRecord { .. } => "create_record",
            Self::Http { .. } => "http",
            Self::Ai { .. } => "ai",
            Self::Notify { .. } => "notify",
            Self::Condition { .. } => "condition",
            Self::Delay { .. } => "delay",
        }
    }

    /// Every template string of the action (the engine scans them for secret names).
    pub fn templates(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        fn values(m: &Map<String, Value>) -> impl Iterator<Item = &str> {
            m.values().flat_map(template::strings_in)
        }
        match self {
            ActionDef::UpdateRecord { record, values: v }
            | ActionDef::CreateRecord {
                object: record,
                values: v,
            } => {
                out.push(record);
                out.extend(values(v));
            }
            ActionDef::Http {
                url, headers, body, ..
            } => {
                out.push(url);
                out.extend(headers.values().map(String::as_str));
                out.extend(body.iter().flat_map(template::strings_in));
            }
            ActionDef::Ai { system, prompt, .. } => {
                out.extend(system.as_deref());
                out.push(prompt);
            }
            ActionDef::Notify { url, text, .. } => out.extend([url.as_str(), text.as_str()]),
            ActionDef::Condition { expr } => out.push(expr),
            ActionDef::Delay { duration } => out.push(duration),
        }
        out
    }

    /// True for steps that reach a system outside ACP.
    pub fn is_external(&self) -> bool {
        matches!(
            self,
            Self::Http { .. } | Self::Ai { .. } | Self::Notify { .. }
        )
    }
}

/// A checked workflow: durations, cron and retry policies parsed, references verified.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub def: WorkflowDef,
    pub sla: Option<Duration>,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    /// The workflow's alert rules (the default rules when the file names none).
    pub rules: Vec<Rule>,
    /// Its limits, when the file sets a policy.
    pub policy: Option<RunPolicy>,
}

/// A checked trigger.
#[derive(Debug, Clone)]
pub enum Trigger {
    Record {
        object: String,
        on: Vec<RecordOn>,
        fields: Vec<String>,
        filter: Option<String>,
    },
    Schedule {
        cron: croner::Cron,
        timezone: chrono_tz::Tz,
    },
    Webhook {
        hmac_secret: Option<String>,
    },
    Manual,
}

/// A checked step.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub action: ActionDef,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub when: Option<String>,
    /// For record-writing steps: fields whose value comes from an `ai` step, with that step's
    /// policy id, so field history can name the AI policy behind the change.
    pub ai_fields: BTreeMap<String, String>,
}

impl Workflow {
    /// The workflow's key.
    pub fn key(&self) -> &str {
        &self.def.key
    }

    /// The team that owns it.
    pub fn team(&self) -> &str {
        &self.def.team
    }
}

/// The event of a saved draft.
pub fn draft_saved_event(actor: &str) -> crate::wire::EventBody {
    crate::wire::EventBody::WorkflowDraftSaved(crate::wire::ByActor {
        actor: actor.to_owned(),
    })
}

/// The event of a draft published as `version`.
pub fn published_event(version: i64, actor: &str) -> crate::wire::EventBody {
    crate::wire::EventBody::WorkflowPublished(crate::wire::WorkflowPublished {
        version,
        actor: actor.to_owned(),
    })
}

/// The event of version `to` published again in place of `from`.
pub fn rolled_back_event(from: Option<i64>, to: i64, actor: &str) -> crate::wire::EventBody {
    crate::wire::EventBody::WorkflowRolledBack(crate::wire::WorkflowRolledBack {
        from,
        to,
        actor: actor.to_owned(),
    })
}
