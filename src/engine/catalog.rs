//! Compiled workflow versions, cached, and the set of currently published ones.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use minijinja::Environment;

use super::EngineError;
use crate::domain::template::{self, SecretLookup};
use crate::domain::{Workflow, parse_workflow};
use crate::store::Store;

/// One workflow version, parsed and checked, with the secret names its templates read.
#[derive(Debug)]
pub struct Compiled {
    pub workflow: Workflow,
    pub version: i64,
    pub secrets: BTreeSet<String>,
}

/// Caches compiled versions (they are immutable) and tracks what is published.
pub struct Catalog {
    store: Arc<dyn Store>,
    pub env: Arc<Environment<'static>>,
    compiled: Mutex<HashMap<(String, i64), Arc<Compiled>>>,
    published: RwLock<Arc<Vec<Arc<Compiled>>>>,
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>, secrets: SecretLookup) -> Self {
        Self {
            store,
            env: Arc::new(template::environment(secrets)),
            compiled: Mutex::new(HashMap::new()),
            published: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// A version, compiled once.
    pub async fn get(&self, key: &str, version: i64) -> Result<Arc<Compiled>, EngineError> {
        let id = (key.to_owned(), version);
        if let Some(found) = self.compiled.lock().ok().and_then(|c| c.get(&id).cloned()) {
            return Ok(found);
        }
        let stored = self.store.version(key, version).await?;
        let workflow = parse_workflow(&stored.source).map_err(|problems| {
            EngineError::Invalid(format!(
                "version {version} of `{key}` no longer parses: {}",
                problems[0]
            ))
        })?;
        let compiled = Arc::new(Compiled {
            secrets: secret_names(&self.env, &workflow),
            workflow,
            version,
        });
        if let Ok(mut cache) = self.compiled.lock() {
            cache.insert(id, compiled.clone());
        }
        Ok(compiled)
    }

    /// Compiles a workflow that is no stored version (a draft, a file sent along), uncached.
    pub fn compile(&self, workflow: Workflow, version: i64) -> Arc<Compiled> {
        Arc::new(Compiled {
            secrets: secret_names(&self.env, &workflow),
            workflow,
            version,
        })
    }

    /// Reloads the published set from the store.
    pub async fn refresh(&self) -> Result<(), EngineError> {
        let mut published = Vec::new();
        for wf in self.store.workflows().await? {
            if let Some(version) = wf.published_version {
                published.push(self.get(&wf.key, version).await?);
            }
        }
        if let Ok(mut slot) = self.published.write() {
            *slot = Arc::new(published);
        }
        Ok(())
    }

    /// The published versions right now.
    pub fn published(&self) -> Arc<Vec<Arc<Compiled>>> {
        self.published.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// The published version of one workflow.
    pub fn published_of(&self, key: &str) -> Result<Arc<Compiled>, EngineError> {
        self.published()
            .iter()
            .find(|c| c.workflow.key() == key)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("published workflow `{key}`")))
    }
}

fn secret_names(env: &Environment<'static>, workflow: &Workflow) -> BTreeSet<String> {
    workflow
        .steps
        .iter()
        .flat_map(|s| s.action.templates())
        .filter_map(|t| template::references(env, t, false).ok())
        .flat_map(|r| r.secrets)
        .collect()
}
