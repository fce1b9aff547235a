//! What people and the API ask of the engine: workflows, records, starts, retries, replays.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Engine, EngineError, Inner};
use crate::domain::{NewRun, RecordWrite, RecordWriteOutcome, Trigger, parse_workflow};
use crate::wire::{RunMode, RunStatus, RunView, TriggerKind};

/// A published workflow as the alert evaluator sees it.
#[derive(Debug, Clone)]
pub struct Watched {
    pub key: String,
    pub team: String,
    pub sla: Option<Duration>,
    /// The workflow's own rules (team, global or default rules come on top; see `alerts`).
    pub rules: Vec<crate::domain::alert::Rule>,
    /// The same rules as written.
    pub rule_defs: Vec<crate::domain::alert::RuleDef>,
    /// A hold on the workflow or its team lasts now (its silence rule waits).
    pub paused: bool,
}

/// What loading a folder of workflow files did.
#[derive(Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Workflows whose file differed from the published version, with the new version.
    pub published: Vec<(String, i64)>,
    pub unchanged: Vec<String>,
}

impl Engine {
    /// Checks a workflow file and saves it as its workflow's draft; answers the key.
    pub async fn save_draft(&self, source: &str, actor: &str) -> Result<String, EngineError> {
        let workflow = parse_workflow(source).map_err(EngineError::Problems)?;
        let def = &workflow.def;
        self.inner
            .store
            .save_draft(&def.key, &def.name, &def.team, source, actor)
            .await?;
        Ok(def.key.clone())
    }

    /// Publishes the draft as the next version.
    pub async fn publish(&self, key: &str, actor: &str) -> Result<i64, EngineError> {
        let version = self.inner.store.publish(key, actor).await?;
        self.inner.catalog.refresh().await?;
        Ok(version)
    }

    /// Makes an earlier version the published one again.
    pub async fn rollback(&self, key: &str, version: i64, actor: &str) -> Result<(), EngineError> {
        self.inner.store.rollback(key, version, actor).await?;
        self.inner.catalog.refresh().await
    }

    /// Checks every `*.ron` file in `dir` (all problems of all files, as `file:line:col: message`)
    /// and publishes each one whose text differs from its published version.
    pub async fn load_dir(&self, dir: &Path, actor: &str) -> Result<LoadReport, EngineError> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| EngineError::Invalid(format!("{}: {e}", dir.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "ron"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for path in files {
            let source = std::fs::read_to_string(&path)
                .map_err(|e| EngineError::Invalid(format!("{}: {e}", path.display())))?;
            match parse_workflow(&source) {
                Ok(wf) => sources.push((wf.def.key.clone(), source)),
                Err(found) => {
                    problems.extend(found.iter().map(|p| format!("{}:{p}", path.display())))
                }
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid(problems.join("\n")));
        }
        let current = self.inner.store.workflows().await?;
        let mut report = LoadReport::default();
        for (key, source) in sources {
            let published = current
                .iter()
                .find(|w| w.key == key)
                .and_then(|w| w.published_version);
            let same = match published {
                Some(v) => self.inner.store.version(&key, v).await?.source == source,
                None => false,
            };
            if same {
                report.unchanged.push(key);
                continue;
            }
            self.save_draft(&source, actor).await?;
            let version = self.inner.store.publish(&key, actor).await?;
            report.published.push((key, version));
        }
        self.inner.catalog.refresh().await?;
        Ok(report)
    }

    /// Creates or updates a record (from the API, CLI or console); matching record triggers
    /// start runs.
    ///
    /// # Errors
    /// [`EngineError::IdempotencyKeyReused`] when the write's idempotency key was applied
    /// before to another request (Stripe's semantics; the same request answers the first
    /// result). A workflow step's retries go through the engine's own path, where a
    /// re-rendered value may differ and the first write stands.
    pub async fn write_record(
        &self,
        write: RecordWrite,
    ) -> Result<RecordWriteOutcome, EngineError> {
        let fingerprint = write.fingerprint();
        let key = write.idempotency_key.clone().unwrap_or_default();
        let outcome = self.inner.write_record(write).await?;
        match &outcome.first_fingerprint {
            Some(first) if outcome.duplicate && *first != fingerprint => {
                Err(EngineError::IdempotencyKeyReused(format!(
                    "`{key}` was used before for another write (record {}); use a new key for \
                     a new write",
                    outcome.record.id
                )))
            }
            _ => Ok(outcome),
        }
    }

    /// Every published workflow with its alert rules.
    pub fn watched(&self) -> Vec<Watched> {
        self.inner
            .catalog
            .published()
            .iter()
            .map(|c| Watched {
                key: c.workflow.key().to_owned(),
                team: c.workflow.team().to_owned(),
                sla: c.workflow.sla,
                rules: c.workflow.rules.clone(),
                rule_defs: c.workflow.def.alerts.clone(),
                paused: self
                    .inner
                    .gate
                    .run_hold(c.workflow.key(), c.workflow.team())
                    .is_some(),
            })
            .collect()
    }

    /// The kind (`http`, `ai`, ...) of a step of a workflow's published version; `unknown`
    /// when neither is published now.
    pub fn step_kind(&self, workflow: &str, step: &str) -> &'static str {
        self.inner
            .catalog
            .published()
            .iter()
            .find(|c| c.workflow.key() == workflow)
            .and_then(|c| c.workflow.steps.iter().find(|s| s.id == step))
            .map_or("unknown", |s| s.action.kind())
    }

    /// Starts runs of a workflow's published version, one per payload.
    pub async fn start_runs(
        &self,
        key: &str,
        kind: TriggerKind,
        payloads: Vec<Value>,
    ) -> Result<Vec<i64>, EngineError> {
        let compiled = self.inner.catalog.published_of(key)?;
        let runs = payloads
            .into_iter()
            .map(|trigger| NewRun {
                not_before: Some(self.inner.config.clock.now()),
                ..NewRun::live(
                    key,
                    compiled.version,
                    compiled.workflow.team(),
                    kind,
                    trigger,
                )
            })
            .collect();
        let ids = self.inner.store.create_runs(runs).await?;
        self.inner.wake.notify_one();
        Ok(ids)
    }

    /// Starts a run from an inbound webhook. A repeated `delivery` id (the sender's
    /// idempotency key) with the same payload answers the run the first delivery started
    /// (Stripe's semantics).
    ///
    /// # Errors
    /// [`EngineError::IdempotencyKeyReused`] when the id came before with another payload;
    /// [`EngineError::NotFound`] when the workflow has no published webhook trigger.
    pub async fn start_webhook(
        &self,
        key: &str,
        payload: Value,
        delivery: Option<&str>,
    ) -> Result<i64, EngineError> {
        let compiled = self.inner.catalog.published_of(key)?;
        if !matches!(compiled.workflow.trigger, Trigger::Webhook { .. }) {
            return Err(EngineError::NotFound(format!(
                "webhook trigger of workflow `{key}`"
            )));
        }
        let run = NewRun {
            dedupe_key: delivery.map(|d| format!("webhook:{key}:{d}")),
            not_before: Some(self.inner.config.clock.now()),
            ..NewRun::live(
                key,
                compiled.version,
                compiled.workflow.team(),
                TriggerKind::Webhook,
                payload,
            )
        };
        let sent = run.trigger.clone();
        let ids = self.inner.store.create_runs(vec![run]).await?;
        self.inner.wake.notify_one();
        let id = ids
            .first()
            .copied()
            .ok_or_else(|| EngineError::Invalid("no run was created".into()))?;
        if let Some(delivery) = delivery {
            let first = self.inner.store.run(id).await?.run;
            if first.trigger != sent {
                return Err(EngineError::IdempotencyKeyReused(format!(
                    "`{delivery}` was used before with another body (run {id}); use a new key \
                     for a new delivery"
                )));
            }
        }
        Ok(id)
    }

    /// The value of the secret that signs a workflow's inbound webhooks, if it names one.
    /// Errors when the workflow has no webhook trigger or the secret is not set.
    pub fn webhook_secret(&self, key: &str) -> Result<Option<String>, EngineError> {
        let compiled = self.inner.catalog.published_of(key)?;
        match &compiled.workflow.trigger {
            Trigger::Webhook { hmac_secret: None } => Ok(None),
            Trigger::Webhook {
                hmac_secret: Some(name),
            } => (self.inner.config.secrets)(name).map(Some).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "the webhook secret `{name}` is not set on this server"
                ))
            }),
            _ => Err(EngineError::NotFound(format!(
                "webhook trigger of workflow `{key}`"
            ))),
        }
    }

    /// Resumes a failed run at its failed step, with the same idempotency keys.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] for a test run (it is never driven by a worker).
    pub async fn retry(&self, run_id: i64, actor: &str) -> Result<(), EngineError> {
        self.live(run_id).await?;
        self.inner.store.retry_run(run_id, actor).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Starts a new run of the same version on the same trigger, with new keys.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] for a test run (test it again instead).
    pub async fn rerun(&self, run_id: i64) -> Result<i64, EngineError> {
        let old = self.live(run_id).await?;
        let run = NewRun {
            workflow: old.workflow,
            version: old.version,
            team: old.team,
            mode: old.mode,
            trigger_kind: TriggerKind::Rerun,
            trigger: old.trigger,
            record_id: old.record_id,
            origin_run: Some(run_id),
            carry_from_origin: false,
            dedupe_key: None,
            not_before: Some(self.inner.config.clock.now()),
        };
        let ids = self.inner.store.create_runs(vec![run]).await?;
        self.inner.wake.notify_one();
        Ok(ids[0])
    }

    /// The run, unless it is a test run: test runs are simulations, run once by the request
    /// that made them; retrying or re-running one would apply what it only simulated, and a
    /// cancel would announce a run nothing else may know about.
    async fn live(&self, run_id: i64) -> Result<RunView, EngineError> {
        let run = self.inner.store.run(run_id).await?.run;
        if run.mode == RunMode::Test {
            return Err(EngineError::Invalid(format!(
                "run {run_id} is a test run: it cannot be retried, re-run or cancelled (test the workflow again)"
            )));
        }
        Ok(run)
    }

    /// Closes a dead-letter entry without replaying it.
    pub async fn discard(&self, dlq_id: i64, reason: &str, actor: &str) -> Result<(), EngineError> {
        if reason.trim().is_empty() {
            return Err(EngineError::Invalid("discarding needs a reason".into()));
        }
        Ok(self.inner.store.discard_dlq(dlq_id, reason, actor).await?)
    }

    /// Cancels a run: at once if it is not running, else at its worker's next check.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] for a test run (it ends with the request that runs it).
    pub async fn cancel(&self, run_id: i64, actor: &str) -> Result<RunStatus, EngineError> {
        self.live(run_id).await?;
        let status = self.inner.store.cancel_run(run_id, actor).await?;
        if status == RunStatus::Running {
            self.inner.cancel_local(run_id);
        }
        Ok(status)
    }
}

impl Inner {
    pub(super) fn register_cancel(&self, run_id: i64) -> CancellationToken {
        let token = CancellationToken::new();
        if let Ok(mut map) = self.cancels.lock() {
            map.insert(run_id, token.clone());
        }
        token
    }

    pub(super) fn unregister_cancel(&self, run_id: i64) {
        if let Ok(mut map) = self.cancels.lock() {
            map.remove(&run_id);
        }
    }

    pub(super) fn cancel_local(&self, run_id: i64) {
        if let Some(token) = self
            .cancels
            .lock()
            .ok()
            .and_then(|m| m.get(&run_id).cloned())
        {
            token.cancel();
        }
    }

    /// Wakes the claim loop when `at` comes (a retry or a delay falling due).
    pub(super) fn wake_at(self: &std::sync::Arc<Self>, at: DateTime<Utc>) {
        let wait = (at - self.config.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let inner = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(wait) => inner.wake.notify_one(),
                _ = inner.shutdown.cancelled() => {}
            }
        });
    }
}
