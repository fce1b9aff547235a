//! Replaying dead-letter entries, one at a time or every entry matching a filter.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Engine, EngineError};
use crate::domain::NewRun;
use crate::store::Replay;
use crate::wire::{
    DlqStatus, DlqView, ExternalStep, ReplayOn, ReplayPlan, RunQuery, RunView, TriggerKind,
};

/// Most entries one bulk replay takes.
const MAX_BULK: usize = 10_000;

impl Engine {
    /// Replays a dead-letter entry. On the same version with the same payload, steps that
    /// succeeded are carried over and the original idempotency keys are reused; otherwise the
    /// run starts from the first step with new keys.
    pub async fn replay(
        &self,
        dlq_id: i64,
        on: ReplayOn,
        payload: Option<Value>,
        actor: &str,
    ) -> Result<i64, EngineError> {
        let entry = self.inner.store.dlq_entry(dlq_id).await?;
        let old = self.inner.store.run(entry.run_id).await?.run;
        let run = self.replay_run(old, on, payload)?;
        let replay = Replay {
            dlq_id,
            run,
            actor: actor.to_owned(),
        };
        let id = self.inner.store.replay(replay).await?;
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Replays every open entry matching `query` (or, with `dry_run`, only says what would
    /// happen): how many runs, which workflows and records, and which steps would call an
    /// outside system again, with or without the original idempotency key.
    pub async fn replay_matching(
        &self,
        query: &RunQuery,
        ids: &[i64],
        on: ReplayOn,
        dry_run: bool,
        actor: &str,
    ) -> Result<ReplayPlan, EngineError> {
        let mut entries = self.open_entries(query).await?;
        if !ids.is_empty() {
            entries.retain(|e| ids.contains(&e.id));
        }
        let mut workflows = BTreeSet::new();
        let mut records = BTreeSet::new();
        let mut steps: BTreeMap<(String, i64, String, String, bool), usize> = BTreeMap::new();
        let mut plans = Vec::with_capacity(entries.len());
        for entry in entries {
            let old = self.inner.store.run(entry.run_id).await?.run;
            workflows.insert(old.workflow.clone());
            records.extend(old.record_id);
            let run = self.replay_run(old.clone(), on, None)?;
            let compiled = self.inner.catalog.get(&run.workflow, run.version).await?;
            let steps_run = &compiled.workflow.steps;
            let from = match run.carry_from_origin {
                true => steps_run
                    .iter()
                    .position(|s| Some(&s.id) == old.failed_step.as_ref())
                    .unwrap_or(0),
                false => 0,
            };
            for step in steps_run[from..].iter().filter(|s| s.action.is_external()) {
                let id = (
                    run.workflow.clone(),
                    run.version,
                    step.id.clone(),
                    step.action.kind().to_owned(),
                    run.carry_from_origin,
                );
                *steps.entry(id).or_default() += 1;
            }
            plans.push((entry.id, run));
        }
        let mut created = Vec::new();
        if !dry_run {
            for (dlq_id, run) in plans.iter().cloned() {
                created.push(
                    self.inner
                        .store
                        .replay(Replay {
                            dlq_id,
                            run,
                            actor: actor.to_owned(),
                        })
                        .await?,
                );
            }
            self.inner.wake.notify_one();
        }
        let external_steps = steps
            .into_iter()
            .map(
                |((workflow, version, step_id, kind, idempotency_key), runs)| ExternalStep {
                    workflow,
                    version,
                    step_id,
                    kind,
                    idempotency_key,
                    runs,
                },
            )
            .collect();
        Ok(ReplayPlan {
            count: plans.len(),
            workflows: workflows.into_iter().collect(),
            records: records.into_iter().collect(),
            external_steps,
            runs: created,
        })
    }

    async fn open_entries(&self, query: &RunQuery) -> Result<Vec<DlqView>, EngineError> {
        let mut query = RunQuery {
            status: Some(DlqStatus::Open.as_str().to_owned()),
            cursor: None,
            ..query.clone()
        };
        let mut entries = Vec::new();
        loop {
            let page = self.inner.store.dlq(&query).await?;
            entries.extend(page.items);
            match page.next_cursor {
                Some(cursor) if entries.len() < MAX_BULK => query.cursor = Some(cursor),
                _ => break,
            }
        }
        entries.truncate(MAX_BULK);
        Ok(entries)
    }

    fn replay_run(
        &self,
        old: RunView,
        on: ReplayOn,
        payload: Option<Value>,
    ) -> Result<NewRun, EngineError> {
        let version = match on {
            ReplayOn::Same => old.version,
            ReplayOn::Latest => self.inner.catalog.published_of(&old.workflow)?.version,
        };
        let carry = version == old.version && payload.as_ref().is_none_or(|p| *p == old.trigger);
        Ok(NewRun {
            workflow: old.workflow,
            version,
            team: old.team,
            mode: old.mode,
            trigger_kind: TriggerKind::Replay,
            trigger: payload.unwrap_or(old.trigger),
            record_id: old.record_id,
            origin_run: Some(old.id),
            carry_from_origin: carry,
            dedupe_key: None,
        })
    }
}
