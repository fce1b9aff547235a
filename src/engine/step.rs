//! One step: render its input from templates, then perform it.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::catalog::Compiled;
use super::{EngineError, Inner};
use crate::actions::{Actions, AiProvider, AiRequest, HttpRequest, HttpSend, http, notify};
use crate::domain::NotifyChannel;
use crate::domain::template::{is_true, render_mrkdwn, render_value};
use crate::domain::validate::parse_duration;
use crate::domain::{ActionDef, Provenance, RecordWrite, Step, StepFailure};
use crate::store::StoreError;
use crate::wire::{RunView, Source, WouldCall};

/// What the run does after a step succeeded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    Continue,
    /// A condition was false: skip the remaining steps; the run succeeds.
    SkipRest,
    /// A delay: sleep until then.
    Wait(DateTime<Utc>),
}

/// A step that succeeded.
#[derive(Debug)]
pub struct Done {
    pub output: Value,
    pub detail: Value,
    pub control: Control,
}

/// Renders the step's input: the action's fields with every template evaluated.
pub fn render(
    env: &minijinja::Environment<'static>,
    step: &Step,
    ctx: &minijinja::Value,
) -> Result<Value, StepFailure> {
    let template_error = |e: minijinja::Error| {
        StepFailure::permanent(format!("template error in step `{}`: {e}", step.id))
    };
    if let ActionDef::Condition { expr } = &step.action {
        let passed = is_true(env, expr, ctx).map_err(template_error)?;
        return Ok(json!({"expr": expr, "passed": passed}));
    }
    // A Slack message's text escapes the values it interpolates; it is rendered apart from
    // the other fields, never twice.
    if let ActionDef::Notify {
        channel: NotifyChannel::Slack,
        text,
        ..
    } = &step.action
    {
        let text = render_mrkdwn(env, text, ctx).map_err(template_error)?;
        let mut fields = templates(step);
        if let Some(map) = fields.as_object_mut() {
            map.remove("text");
        }
        let mut input = render_value(env, &fields, ctx).map_err(template_error)?;
        if let Some(map) = input.as_object_mut() {
            map.insert("text".into(), Value::String(text));
        }
        return Ok(input);
    }
    render_value(env, &templates(step), ctx).map_err(template_error)
}

/// The action's fields as written, every string a template (what `render` renders).
pub fn templates(step: &Step) -> Value {
    match serde_json::to_value(&step.action) {
        Ok(Value::Object(tagged)) => tagged
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Performs a step with its rendered input.
pub async fn perform(
    inner: &Inner,
    run: &RunView,
    compiled: &Compiled,
    step: &Step,
    input: &Value,
    key: &str,
) -> Result<Done, StepFailure> {
    match &step.action {
        ActionDef::UpdateRecord { .. } | ActionDef::CreateRecord { .. } => {
            let write = record_write(run, compiled, step, input.clone(), key)?;
            let outcome = inner.write_record(write).await.map_err(write_failure)?;
            Ok(Done {
                output: json!({"record_id": outcome.record.id, "changed": outcome.changed, "duplicate": outcome.duplicate, "runs": outcome.runs}),
                detail: Value::Null,
                control: Control::Continue,
            })
        }
        ActionDef::Http { .. } | ActionDef::Ai { .. } | ActionDef::Notify { .. } => {
            let out = outbound(&inner.actions.default_ai, run, step, input, key)?;
            call_out(out, step, &inner.actions).await
        }
        ActionDef::Condition { .. } | ActionDef::Delay { .. } => {
            local(step, input, inner.config.clock.now())
        }
    }
}

/// A record write's failure as a step failure: a store that is busy or a record that changed
/// meanwhile is transient, anything else (an unknown record, another object) permanent.
pub fn write_failure(e: EngineError) -> StepFailure {
    match e {
        EngineError::Store(StoreError::Other(_) | StoreError::Stale(_)) => {
            StepFailure::transient(e.to_string())
        }
        _ => StepFailure::permanent(e.to_string()),
    }
}

/// A `condition` or `delay` step, which stays inside ACP; `now` is the engine's clock.
pub fn local(step: &Step, input: &Value, now: DateTime<Utc>) -> Result<Done, StepFailure> {
    match &step.action {
        ActionDef::Delay { duration } => {
            let wait =
                parse_duration(duration).map_err(|e| StepFailure::permanent(e.to_string()))?;
            let until = crate::domain::clock::later_or_max(now, wait);
            let control = if wait.is_zero() {
                Control::Continue
            } else {
                Control::Wait(until)
            };
            Ok(Done {
                output: json!({"until": until}),
                detail: Value::Null,
                control,
            })
        }
        _ => {
            let ConditionInput { passed } = typed(input)?;
            let control = if passed {
                Control::Continue
            } else {
                Control::SkipRest
            };
            Ok(Done {
                output: json!({"passed": passed}),
                detail: Value::Null,
                control,
            })
        }
    }
}

/// What a step that reaches outside ACP sends, rendered: an HTTP request (`http`, `notify`)
/// or a prompt for an AI provider (`ai`).
#[derive(Debug, Clone)]
pub enum Outbound {
    Http(HttpRequest),
    Notify(HttpRequest),
    Ai {
        provider: String,
        request: AiRequest,
    },
}

impl Outbound {
    /// The request as test mode shows it (the caller redacts it). An `ai` step is shown as a
    /// `POST` to `ai:<provider>` with the prompt as its body.
    pub fn would_call(&self) -> WouldCall {
        match self {
            Self::Http(request) | Self::Notify(request) => {
                let mut headers = request.headers.clone();
                headers.insert("Idempotency-Key".into(), request.idempotency_key.clone());
                WouldCall {
                    method: request.method.clone(),
                    url: request.url.clone(),
                    headers,
                    body: request.body.clone().unwrap_or(Value::Null),
                }
            }
            Self::Ai { provider, request } => WouldCall {
                method: "POST".into(),
                url: format!("ai:{provider}"),
                headers: BTreeMap::new(),
                body: json!({"model": request.model, "system": request.system, "prompt": request.prompt, "json": request.json}),
            },
        }
    }
}

/// Where outside calls go: the real implementations for live runs, recorded or mocked
/// answers for test runs.
pub trait Reach: Send + Sync {
    fn http(&self) -> &dyn HttpSend;
    /// The AI provider of that name, if this server has one.
    fn ai(&self, provider: &str) -> Option<&dyn AiProvider>;
}

impl Reach for Actions {
    fn http(&self) -> &dyn HttpSend {
        self.http.as_ref()
    }

    fn ai(&self, provider: &str) -> Option<&dyn AiProvider> {
        self.ai.get(provider).map(AsRef::as_ref)
    }
}

/// Reads an `http`, `notify` or `ai` step's rendered input as what it would send.
///
/// # Errors
/// A permanent failure naming the field that rendered wrong.
pub fn outbound(
    default_ai: &str,
    run: &RunView,
    step: &Step,
    input: &Value,
    key: &str,
) -> Result<Outbound, StepFailure> {
    match &step.action {
        ActionDef::Ai { .. } => {
            let AiInput {
                provider,
                model,
                system,
                prompt,
                json,
            } = typed(input)?;
            let request = AiRequest {
                model: model.0,
                system,
                prompt: prompt.0,
                json,
                timeout: step.timeout,
                idempotency_key: key.to_owned(),
            };
            let provider = provider.unwrap_or_else(|| default_ai.to_owned());
            Ok(Outbound::Ai { provider, request })
        }
        ActionDef::Notify { channel, .. } => {
            let context =
                json!({"workflow": run.workflow, "version": run.version, "run_id": run.id});
            let NotifyInput { url, text } = typed(input)?;
            let request = notify::request(*channel, &url.0, &text.0, &context, step.timeout, key);
            Ok(Outbound::Notify(request))
        }
        _ => {
            let HttpInput {
                method,
                url,
                headers,
                body,
            } = typed(input)?;
            Ok(Outbound::Http(HttpRequest {
                method: method.0.to_uppercase(),
                url: url.0,
                headers: headers.iter().map(|(k, v)| (k.clone(), plain(v))).collect(),
                body: body.filter(|b| !b.is_null()),
                timeout: step.timeout,
                idempotency_key: key.to_owned(),
            }))
        }
    }
}

/// Sends what a step sends through `reach` and reads the answer as live runs do: a non-2xx
/// answer is a classified failure.
///
/// # Errors
/// The step failure: transport trouble, a refused answer, an AI provider this server lacks.
pub async fn call_out(out: Outbound, step: &Step, reach: &dyn Reach) -> Result<Done, StepFailure> {
    let done = |output: Value, detail: Value| Done {
        output,
        detail,
        control: Control::Continue,
    };
    match out {
        Outbound::Http(request) => {
            let response = http::call(reach.http(), request).await?;
            Ok(done(response.body.clone(), response.detail()))
        }
        Outbound::Notify(request) => {
            let response = http::call(reach.http(), request).await?;
            Ok(done(json!({"status": response.status}), response.detail()))
        }
        Outbound::Ai { provider, request } => {
            let Some(ai) = reach.ai(&provider) else {
                return Err(StepFailure::permanent(format!(
                    "AI provider `{provider}` is not configured on this server"
                )));
            };
            let policy_id = match &step.action {
                ActionDef::Ai { policy_id, .. } => Some(policy_id.as_str()),
                _ => None,
            };
            let started = std::time::Instant::now();
            let answer = ai.complete(request.clone()).await?;
            let provenance = json!({
                "provider": provider,
                "model": answer.model,
                "policy_id": policy_id,
                "system": request.system,
                "prompt": request.prompt,
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "latency_ms": started.elapsed().as_millis() as u64,
            });
            Ok(done(answer.content, provenance))
        }
    }
}

pub fn record_write(
    run: &RunView,
    compiled: &Compiled,
    step: &Step,
    input: Value,
    key: &str,
) -> Result<RecordWrite, StepFailure> {
    let (object, id, values) = match &step.action {
        ActionDef::UpdateRecord { .. } => {
            let UpdateInput { record, values } = typed(&input)?;
            (String::new(), Some(record.0), values)
        }
        _ => {
            let CreateInput { object, values } = typed(&input)?;
            (object.0, None, values)
        }
    };
    Ok(RecordWrite {
        object,
        id,
        values,
        provenance: Provenance {
            source: Source::Workflow,
            actor: format!("workflow:{}", compiled.workflow.key()),
            workflow: Some(compiled.workflow.key().to_owned()),
            workflow_version: Some(compiled.version),
            run_id: Some(run.id),
            step_id: Some(step.id.clone()),
            ai_fields: step.ai_fields.clone(),
        },
        idempotency_key: Some(key.to_owned()),
    })
}

/// A rendered step input read as its action's shape.
///
/// # Errors
/// A permanent failure naming the field that rendered to something else (`url` rendered
/// empty, `record` is not a number...).
fn typed<T: DeserializeOwned>(input: &Value) -> Result<T, StepFailure> {
    serde_path_to_error::deserialize(input)
        .map_err(|e| StepFailure::permanent(format!("step input `{}`: {}", e.path(), e.inner())))
}

/// Text that rendered to something: a template that must give a non-empty string.
#[derive(Debug)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) if !s.trim().is_empty() => Ok(Text(s)),
            other => Err(de::Error::custom(format!(
                "rendered empty or not as text ({other})"
            ))),
        }
    }
}

/// A record id: a number, or text holding one (templates render ids either way).
#[derive(Debug)]
struct RecordId(i64);

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let id = match &value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        id.map(RecordId)
            .ok_or_else(|| de::Error::custom(format!("record id `{value}` is not a number")))
    }
}

/// What an `http` step sends, rendered.
#[derive(Debug, Deserialize)]
struct HttpInput {
    method: Text,
    url: Text,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

/// What an `ai` step asks, rendered.
#[derive(Debug, Deserialize)]
struct AiInput {
    #[serde(default)]
    provider: Option<String>,
    model: Text,
    #[serde(default)]
    system: Option<String>,
    prompt: Text,
    #[serde(default)]
    json: bool,
}

/// What a `notify` step posts, rendered.
#[derive(Debug, Deserialize)]
struct NotifyInput {
    url: Text,
    text: Text,
}

/// An `update_record` step, rendered.
#[derive(Debug, Deserialize)]
struct UpdateInput {
    record: RecordId,
    #[serde(default)]
    values: Map<String, Value>,
}

/// A `create_record` step, rendered.
#[derive(Debug, Deserialize)]
struct CreateInput {
    object: Text,
    #[serde(default)]
    values: Map<String, Value>,
}

/// A `condition` step, evaluated.
#[derive(Debug, Deserialize)]
struct ConditionInput {
    passed: bool,
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slack_message_escapes_what_it_interpolates_and_keeps_what_its_author_wrote() {
        let env = crate::domain::template::environment(std::sync::Arc::new(|_| None));
        let step = Step {
            id: "tell".into(),
            action: ActionDef::Notify {
                channel: NotifyChannel::Slack,
                url: "https://hooks.slack.test/{{ trigger.room }}".into(),
                text: "<!here> Hot lead {{ trigger.email }} (<https://crm.test/{{ trigger.id }}|open>) {{ trigger.note | safe }}".into(),
            },
            retry: Default::default(),
            timeout: std::time::Duration::from_secs(5),
            when: None,
            ai_fields: Default::default(),
        };
        let ctx = minijinja::context! { trigger => json!({
            "room": "a&b", "id": 7, "email": "<!channel> <https://evil.test|open> & co",
            "note": "*bold*"
        }) };
        let input = render(&env, &step, &ctx).unwrap();
        assert_eq!(
            input["text"],
            "<!here> Hot lead &lt;!channel&gt; &lt;https://evil.test|open&gt; &amp; co (<https://crm.test/7|open>) *bold*"
        );
        assert_eq!(
            input["url"], "https://hooks.slack.test/a&b",
            "only the text is mrkdwn"
        );
        let webhook = Step {
            action: ActionDef::Notify {
                channel: NotifyChannel::Webhook,
                url: "https://x.test".into(),
                text: "{{ trigger.email }}".into(),
            },
            ..step
        };
        assert_eq!(
            render(&env, &webhook, &ctx).unwrap()["text"],
            "<!channel> <https://evil.test|open> & co",
            "a generic webhook gets the text as it is"
        );
    }

    #[test]
    fn rendered_inputs_are_read_as_their_action_shape_or_name_the_field() {
        let http: HttpInput = typed(&json!({
            "method": "post", "url": "https://x.test/a",
            "headers": {"X-N": 5}, "body": {"n": 1}
        }))
        .unwrap();
        assert_eq!(
            (http.method.0.as_str(), http.headers["X-N"].clone()),
            ("post", json!(5))
        );
        let empty = typed::<HttpInput>(&json!({"method": "GET", "url": " "})).unwrap_err();
        assert!(
            empty
                .error
                .message
                .starts_with("step input `url`: rendered empty"),
            "{}",
            empty.error.message
        );
        let update: UpdateInput = typed(&json!({"record": " 12", "values": {}})).unwrap();
        assert_eq!(update.record.0, 12);
        let bad = typed::<UpdateInput>(&json!({"record": "twelve"})).unwrap_err();
        assert!(
            bad.error
                .message
                .contains("record id `\"twelve\"` is not a number")
        );
        let missing = typed::<NotifyInput>(&json!({"url": "https://x.test"})).unwrap_err();
        assert!(
            missing.error.message.contains("missing field `text`"),
            "{}",
            missing.error.message
        );
        let number = typed::<AiInput>(&json!({"model": 4, "prompt": "hi"})).unwrap_err();
        assert!(number.error.message.starts_with("step input `model`"));
    }
}
