//! Replaying dead-letter entries, one at a time or every entry matching a filter.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Engine, EngineError};
use crate::domain::NewRun;
use crate::domain::signature::signature;
use crate::store::Replay;
use crate::wire::{
    BulkReplay, DlqStatus, DlqView, ErrorClass, ExternalStep, ReplayGroup, ReplayOn, ReplayPlan,
    RunQuery, RunView, TriggerKind,
};

/// Most entries one bulk replay takes.
const MAX_BULK: usize = 10_000;

/// Runs a bulk replay starts per second unless it asks otherwise: the API that failed them
/// is often just recovering.
pub const DEFAULT_REPLAY_RATE: f64 = 10.0;

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

    /// Replays every open entry matching the request's filter and ids (or, with `dry_run`,
    /// only says what would happen): how many runs, which workflows and records, which
    /// steps would call an outside system again, with or without the original idempotency
    /// key, and the entries by error class and signature. Entries that failed permanently and
    /// would run the same version again are held back unless `include_permanent`. The runs start spread out, `rate` per second (default [`DEFAULT_REPLAY_RATE`]).
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when neither a filter nor ids narrow it and `all` is not set
    /// (a dry run may look at everything), or when `rate` is not a positive number.
    pub async fn replay_matching(
        &self,
        request: &BulkReplay,
        actor: &str,
    ) -> Result<ReplayPlan, EngineError> {
        let BulkReplay {
            filter: query,
            version: on,
            dry_run,
            ids,
            all,
            rate,
            include_permanent,
        } = request;
        let (on, dry_run) = (*on, *dry_run);
        // Only open entries are replayed whatever `status` says, so it narrows nothing.
        let narrowing = RunQuery {
            status: None,
            ..query.clone()
        };
        if narrowing.matches_everything() && ids.is_empty() && !all && !dry_run {
            return Err(EngineError::Invalid(
                "this would replay every open dead letter: narrow it with a filter or ids, or \
                 send \"all\": true"
                    .into(),
            ));
        }
        let rate = rate.unwrap_or(DEFAULT_REPLAY_RATE);
        if !(rate.is_finite() && rate > 0.0) {
            return Err(EngineError::Invalid(format!(
                "rate must be a positive number of runs per second, not {rate}"
            )));
        }
        let mut entries = self.open_entries(query).await?;
        if !ids.is_empty() {
            entries.retain(|e| ids.contains(&e.id));
        }
        let mut workflows = BTreeSet::new();
        let mut records = BTreeSet::new();
        let mut steps: BTreeMap<(String, i64, String, String, bool), usize> = BTreeMap::new();
        let mut plans = Vec::with_capacity(entries.len());
        let mut groups: BTreeMap<(ErrorClass, String), (usize, bool)> = BTreeMap::new();
        let mut held_back = 0;
        let start = self.inner.config.clock.now();
        for entry in entries {
            let old = self.inner.store.run(entry.run_id).await?.run;
            let mut run = self.replay_run(old.clone(), on, None)?;
            let first_line = entry.error.message.lines().next().unwrap_or("");
            // A permanent failure on the same version would fail again at once.
            let replayed = *include_permanent
                || entry.error.class != ErrorClass::Permanent
                || run.version != old.version;
            let group = groups
                .entry((entry.error.class, signature(first_line)))
                .or_insert((0, replayed));
            group.0 += 1;
            if !replayed {
                held_back += 1;
                continue;
            }
            workflows.insert(old.workflow.clone());
            records.extend(old.record_id);
            let offset = std::time::Duration::try_from_secs_f64(plans.len() as f64 / rate)
                .unwrap_or(crate::domain::clock::MAX_DURATION);
            run.not_before = Some(crate::domain::clock::later_or_max(start, offset));
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
        let mut groups: Vec<ReplayGroup> = groups
            .into_iter()
            .map(|((class, signature), (count, replayed))| ReplayGroup {
                class,
                signature,
                count,
                replayed,
            })
            .collect();
        groups.sort_by_key(|g| (!g.replayed, std::cmp::Reverse(g.count)));
        Ok(ReplayPlan {
            count: plans.len(),
            workflows: workflows.into_iter().collect(),
            records: records.into_iter().collect(),
            external_steps,
            runs: created,
            groups,
            held_back,
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
            not_before: Some(self.inner.config.clock.now()),
        })
    }
}
