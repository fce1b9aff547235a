//! Answers for the steps a test run would send: mocks, recorded live answers.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use super::super::step::Reach;
use super::super::{EngineError, Inner};
use crate::actions::{AiCompletion, AiProvider, AiRequest, HttpRequest, HttpResponse, HttpSend};
use crate::domain::{ActionDef, Step, StepFailure};
use crate::wire::{MockResponse, ResponseSource};

/// Where answers for steps that would call out come from.
pub(super) struct Answers {
    pub(super) mocks: BTreeMap<String, MockResponse>,
    pub(super) recorded: bool,
}

impl Answers {
    /// The answer for `step`: its mock, else (when asked) its last successful live answer,
    /// else none.
    pub(super) async fn find(
        &self,
        inner: &Inner,
        workflow: &str,
        step: &Step,
    ) -> Result<Option<Answer>, EngineError> {
        if let Some(mock) = self.mocks.get(&step.id) {
            return Ok(Some(Answer {
                source: ResponseSource::Mock,
                status: mock.status,
                headers: mock.headers.clone(),
                body: mock.body.clone(),
                run_id: None,
            }));
        }
        if !self.recorded {
            return Ok(None);
        }
        let Some(recorded) = inner.store.recorded(workflow, &step.id).await? else {
            return Ok(None);
        };
        let detail = &recorded.detail;
        let status = detail
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(200);
        let headers = detail
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        // A notify step keeps only the status of its answer.
        let body = match step.action {
            ActionDef::Notify { .. } => Value::Null,
            _ => recorded.output,
        };
        Ok(Some(Answer {
            source: ResponseSource::Recorded,
            status,
            headers,
            body,
            run_id: Some(recorded.run_id),
        }))
    }
}

/// A made-up or recorded answer; it stands in for the HTTP client and the AI provider, so the
/// answer is read exactly as a live one would be.
pub(super) struct Answer {
    pub(super) source: ResponseSource,
    pub(super) status: u16,
    headers: BTreeMap<String, String>,
    pub(super) body: Value,
    pub(super) run_id: Option<i64>,
}

#[async_trait]
impl HttpSend for Answer {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure> {
        crate::actions::http::check(&request)?;
        Ok(HttpResponse {
            status: self.status,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body: self.body.clone(),
            latency_ms: 0,
        })
    }
}

#[async_trait]
impl AiProvider for Answer {
    async fn complete(&self, request: AiRequest) -> Result<AiCompletion, StepFailure> {
        if !(200..300).contains(&self.status) {
            return Err(StepFailure::from_status(
                self.status,
                format!("HTTP {}: {}", self.status, self.body),
                None,
            ));
        }
        Ok(AiCompletion {
            content: self.body.clone(),
            model: request.model,
            prompt_tokens: 0,
            completion_tokens: 0,
        })
    }
}

/// An answer reached through the AI providers this server has (an unknown provider fails as
/// it would live).
pub(super) struct Answering<'a> {
    pub(super) answer: &'a Answer,
    pub(super) providers: &'a crate::actions::Actions,
}

impl Reach for Answering<'_> {
    fn http(&self) -> &dyn HttpSend {
        self.answer
    }

    fn ai(&self, provider: &str) -> Option<&dyn AiProvider> {
        self.providers
            .ai
            .contains_key(provider)
            .then_some(self.answer as &dyn AiProvider)
    }
}
