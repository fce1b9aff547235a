//! One step: render its input from templates, then perform it.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::catalog::Compiled;
use super::{EngineError, Inner};
use crate::actions::{AiRequest, HttpRequest, http, notify};
use crate::domain::template::{is_true, render_value};
use crate::domain::validate::parse_duration;
use crate::domain::{ActionDef, Provenance, RecordWrite, Step, StepFailure};
use crate::store::StoreError;
use crate::wire::{RunView, Source};

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
    let done = |output: Value, detail: Value| Done {
        output,
        detail,
        control: Control::Continue,
    };
    match &step.action {
        ActionDef::UpdateRecord { .. } | ActionDef::CreateRecord { .. } => {
            let write = record_write(run, compiled, step, input, key)?;
            let outcome = inner.write_record(write).await.map_err(|e| match e {
                EngineError::Store(StoreError::Other(_)) => StepFailure::transient(e.to_string()),
                _ => StepFailure::permanent(e.to_string()),
            })?;
            Ok(done(
                json!({"record_id": outcome.record.id, "changed": outcome.changed, "duplicate": outcome.duplicate, "runs": outcome.runs}),
                Value::Null,
            ))
        }
        ActionDef::Http { .. } => {
            let request = HttpRequest {
                method: text(input, "method")?.to_uppercase(),
                url: text(input, "url")?.to_owned(),
                headers: input["headers"]
                    .as_object()
                    .map(|h| h.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
                    .unwrap_or_default(),
                body: Some(input["body"].clone()).filter(|b| !b.is_null()),
                timeout: step.timeout,
                idempotency_key: key.to_owned(),
            };
            let response = http::call(inner.actions.http.as_ref(), request).await?;
            Ok(done(response.body.clone(), response.detail()))
        }
        ActionDef::Ai { policy_id, .. } => {
            let provider_name = input["provider"]
                .as_str()
                .unwrap_or(&inner.actions.default_ai)
                .to_owned();
            let provider = inner.actions.ai.get(&provider_name).ok_or_else(|| {
                StepFailure::permanent(format!(
                    "AI provider `{provider_name}` is not configured on this server"
                ))
            })?;
            let request = AiRequest {
                model: text(input, "model")?.to_owned(),
                system: input["system"].as_str().map(str::to_owned),
                prompt: text(input, "prompt")?.to_owned(),
                json: input["json"].as_bool().unwrap_or(false),
                timeout: step.timeout,
                idempotency_key: key.to_owned(),
            };
            let started = std::time::Instant::now();
            let answer = provider.complete(request.clone()).await?;
            let provenance = json!({
                "provider": provider_name,
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
        ActionDef::Notify { channel, .. } => {
            let context =
                json!({"workflow": run.workflow, "version": run.version, "run_id": run.id});
            let request = notify::request(
                *channel,
                text(input, "url")?,
                text(input, "text")?,
                &context,
                step.timeout,
                key,
            );
            let response = http::call(inner.actions.http.as_ref(), request).await?;
            Ok(done(json!({"status": response.status}), response.detail()))
        }
        ActionDef::Condition { .. } => {
            let passed = input["passed"].as_bool().unwrap_or(false);
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
        ActionDef::Delay { duration } => {
            let wait =
                parse_duration(duration).map_err(|e| StepFailure::permanent(e.to_string()))?;
            let until = crate::domain::clock::later_or_max(Utc::now(), wait);
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
    }
}

fn record_write(
    run: &RunView,
    compiled: &Compiled,
    step: &Step,
    input: &Value,
    key: &str,
) -> Result<RecordWrite, StepFailure> {
    let values: Map<String, Value> = input["values"].as_object().cloned().unwrap_or_default();
    let (object, id) = match &step.action {
        ActionDef::UpdateRecord { .. } => {
            let id = match &input["record"] {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            let id = id.ok_or_else(|| {
                StepFailure::permanent(format!("record id `{}` is not a number", input["record"]))
            })?;
            (String::new(), Some(id))
        }
        _ => (text(input, "object")?.to_owned(), None),
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

fn text<'v>(input: &'v Value, field: &str) -> Result<&'v str, StepFailure> {
    input[field]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| StepFailure::permanent(format!("`{field}` rendered empty or not as text")))
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
