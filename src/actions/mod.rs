//! What steps do to the outside world, one module per kind, each behind a small trait so tests,
//! benchmarks and test mode can substitute it.
//!
//! Record steps do not appear here: they go through the engine's record path, which persists
//! the write and its triggers atomically.

pub mod ai;
pub mod http;
pub mod notify;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use ai::{AiCompletion, AiProvider, AiRequest, BuiltinAi, OpenAiCompatible};
pub use http::{HttpRequest, HttpResponse, HttpSend, ReqwestSender};

/// The implementations a running engine uses.
#[derive(Clone)]
pub struct Actions {
    pub http: Arc<dyn HttpSend>,
    /// AI providers by name (`builtin`, `openai`).
    pub ai: BTreeMap<String, Arc<dyn AiProvider>>,
    /// The provider used by `ai` steps that name none.
    pub default_ai: String,
}

impl Actions {
    /// Real HTTP via reqwest and the built-in AI provider; adds an OpenAI-compatible provider
    /// (and makes it the default) when `openai_url` is given.
    ///
    /// # Errors
    /// reqwest's, when its TLS backend cannot be initialised.
    pub fn new(
        openai_url: Option<String>,
        openai_key: Option<String>,
    ) -> Result<Self, reqwest::Error> {
        let http: Arc<dyn HttpSend> = Arc::new(ReqwestSender::new()?);
        let mut ai: BTreeMap<String, Arc<dyn AiProvider>> = BTreeMap::new();
        ai.insert("builtin".into(), Arc::new(BuiltinAi));
        let mut default_ai = "builtin".to_owned();
        if let Some(url) = openai_url {
            ai.insert(
                "openai".into(),
                Arc::new(OpenAiCompatible::new(url, openai_key, http.clone())),
            );
            default_ai = "openai".into();
        }
        Ok(Self {
            http,
            ai,
            default_ai,
        })
    }

    /// The same, with another HTTP implementation (tests, benchmarks).
    pub fn with_http(http: Arc<dyn HttpSend>) -> Self {
        let mut ai: BTreeMap<String, Arc<dyn AiProvider>> = BTreeMap::new();
        ai.insert("builtin".into(), Arc::new(BuiltinAi));
        Self {
            http,
            ai,
            default_ai: "builtin".into(),
        }
    }
}
