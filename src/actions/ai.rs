//! The `ai` step: a chat completion from an OpenAI-compatible endpoint or the built-in
//! deterministic provider, with the token counts needed for provenance.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::http::{self, HttpRequest, HttpSend};
use crate::domain::StepFailure;

/// A rendered prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct AiRequest {
    pub model: String,
    pub system: Option<String>,
    pub prompt: String,
    /// The answer must be a JSON document.
    pub json: bool,
    pub timeout: Duration,
    pub idempotency_key: String,
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AiCompletion {
    /// Parsed JSON when the request asked for JSON, else the text.
    pub content: Value,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A chat-completion provider.
#[async_trait]
pub trait AiProvider: Send + Sync {
    async fn complete(&self, request: AiRequest) -> Result<AiCompletion, StepFailure>;

    /// The host its calls go to, for host limits and holds; none for a provider inside ACP.
    fn host(&self) -> Option<String> {
        None
    }
}

/// Any endpoint that speaks OpenAI's `POST {base}/chat/completions`.
pub struct OpenAiCompatible {
    base_url: String,
    api_key: Option<String>,
    http: Arc<dyn HttpSend>,
}

impl std::fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl OpenAiCompatible {
    pub fn new(base_url: String, api_key: Option<String>, http: Arc<dyn HttpSend>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            http,
        }
    }
}

#[async_trait]
impl AiProvider for OpenAiCompatible {
    fn host(&self) -> Option<String> {
        super::http::host_of(&self.base_url)
    }

    async fn complete(&self, request: AiRequest) -> Result<AiCompletion, StepFailure> {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": request.prompt}));
        let mut body = json!({"model": request.model, "messages": messages, "temperature": 0});
        if request.json {
            body["response_format"] = json!({"type": "json_object"});
        }
        let mut headers = std::collections::BTreeMap::new();
        if let Some(key) = &self.api_key {
            headers.insert("Authorization".to_owned(), format!("Bearer {key}"));
        }
        let response = http::call(
            self.http.as_ref(),
            HttpRequest {
                method: "POST".into(),
                url: format!("{}/chat/completions", self.base_url),
                headers,
                body: Some(body),
                timeout: request.timeout,
                idempotency_key: request.idempotency_key.clone(),
            },
        )
        .await?;
        let text = response.body["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| {
                StepFailure::permanent("the AI endpoint's answer has no choices[0].message.content")
            })?;
        Ok(AiCompletion {
            content: content(text, request.json)?,
            model: response.body["model"]
                .as_str()
                .unwrap_or(&request.model)
                .to_owned(),
            prompt_tokens: response.body["usage"]["prompt_tokens"]
                .as_u64()
                .unwrap_or(0),
            completion_tokens: response.body["usage"]["completion_tokens"]
                .as_u64()
                .unwrap_or(0),
        })
    }
}

fn content(text: &str, json: bool) -> Result<Value, StepFailure> {
    if !json {
        return Ok(Value::String(text.to_owned()));
    }
    serde_json::from_str(text)
        .map_err(|e| StepFailure::permanent(format!("the AI answer is not JSON: {e}")))
}

/// A deterministic provider for demos and tests: the same prompt always gets the same answer,
/// a lead score from 0 to 99 derived from the prompt's hash.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinAi;

#[async_trait]
impl AiProvider for BuiltinAi {
    async fn complete(&self, request: AiRequest) -> Result<AiCompletion, StepFailure> {
        let score = fnv1a(request.prompt.as_bytes()) % 100;
        let label = match score {
            70.. => "hot",
            40.. => "warm",
            _ => "cold",
        };
        let reason = format!(
            "deterministic score from the prompt's {} words",
            words(&request.prompt)
        );
        let answer = json!({"score": score, "label": label, "reason": reason});
        let text = if request.json {
            answer.to_string()
        } else {
            format!("{label} ({score}): {reason}")
        };
        Ok(AiCompletion {
            content: content(&text, request.json)?,
            model: request.model,
            prompt_tokens: words(&request.prompt) + request.system.as_deref().map_or(0, words),
            completion_tokens: words(&text),
        })
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: &str) -> AiRequest {
        AiRequest {
            model: "m".into(),
            system: None,
            prompt: prompt.into(),
            json: true,
            timeout: Duration::from_secs(1),
            idempotency_key: "k".into(),
        }
    }

    #[tokio::test]
    async fn builtin_answers_are_deterministic_json() {
        let a = BuiltinAi
            .complete(request("score ada@example.com"))
            .await
            .unwrap();
        let b = BuiltinAi
            .complete(request("score ada@example.com"))
            .await
            .unwrap();
        assert_eq!(a, b);
        assert!(a.content["score"].as_u64().unwrap() < 100);
        assert_eq!(a.prompt_tokens, 2);
    }
}
