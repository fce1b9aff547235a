//! Replaying dead-letter entries, one at a time or every entry matching a filter.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Engine, EngineError};
use crate::domain::NewRun;
use crate::domain::policy::Rate;
use crate::domain::signature::signature;
use crate::store::{NewJob, Replay, StoreError};
use crate::wire::{
    BulkReplay, DlqStatus, DlqView, ErrorClass, ExternalStep, JobView, ReplayGroup, ReplayOn,
    ReplayPlan, ReplayRate, RunQuery, RunView, TriggerKind,
};

/// Most entries one bulk replay takes.
const MAX_BULK: usize = 10_000;

/// How fast a bulk replay starts its runs unless it asks otherwise: the API that failed
/// them is often just recovering.
pub const DEFAULT_REPLAY_RATE: &str = "10/s";

/// The rate a bulk replay asked for, or the default.
///
/// # Errors
/// [`EngineError::Invalid`] naming the rate.
fn replay_rate(rate: Option<&ReplayRate>) -> Result<Rate, EngineError> {
    let invalid = |e: crate::domain::policy::RateError| EngineError::Invalid(format!("rate: {e}"));
    match rate {
        None => Rate::parse(DEFAULT_REPLAY_RATE).map_err(invalid),
        Some(ReplayRate::PerSecond(n)) => Rate::per_second(*n).map_err(invalid),
        Some(ReplayRate::Text(text)) => Rate::parse(text).map_err(invalid),
    }
}

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
        self.replay_entry(&entry, on, payload, actor, None).await
    }

    /// Queues the replay of `entry` (for a job: with the job's entries done) and wakes the
    /// claim loop.
    async fn replay_entry(
        &self,
        entry: &DlqView,
        on: ReplayOn,
        payload: Option<Value>,
        actor: &str,
        job: Option<(i64, usize)>,
    ) -> Result<i64, EngineError> {
        let old = self.inner.store.run(entry.run_id).await?.run;
        let replay = Replay {
            dlq_id: entry.id,
            run: self.replay_run(old, on, payload)?,
            actor: actor.to_owned(),
            job,
        };
        let id = self.inner.store.replay(replay).await?;
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// What replaying every open entry matching the request's filter and ids would do: how
    /// many runs, which workflows and records, which steps would call an outside system
    /// again, with or without the original idempotency key, and the entries by error class
    /// and signature. Entries that failed permanently and would run the same version again
    /// are held back unless `include_permanent`. Nothing is replayed (see
    /// [`Engine::start_replay_job`]).
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when the rate is not a positive rate.
    pub async fn replay_matching(&self, request: &BulkReplay) -> Result<ReplayPlan, EngineError> {
        replay_rate(request.rate.as_ref())?;
        Ok(self.matching(request).await?.0)
    }

    /// Starts a bulk replay as a job: its runs start at the request's rate (default
    /// [`DEFAULT_REPLAY_RATE`]), oldest entry first, each run also waiting on its workflow's
    /// and hosts' limits; the job's progress is read with [`Engine::job`], and
    /// [`Engine::cancel_job`] stops it before the next start. A restart continues it.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when neither a filter nor ids narrow it and `all` is not set,
    /// or when the rate is not a positive rate; [`StoreError::Conflict`] when nothing would
    /// be replayed (no entry matches, or every match is held back as permanent).
    pub async fn start_replay_job(
        &self,
        request: &BulkReplay,
        actor: &str,
    ) -> Result<JobView, EngineError> {
        // Only open entries are replayed whatever `status` says, so it narrows nothing.
        let narrowing = RunQuery {
            status: None,
            ..request.filter.clone()
        };
        if narrowing.matches_everything() && request.ids.is_empty() && !request.all {
            return Err(EngineError::Invalid(
                "this would replay every open dead letter: narrow it with a filter or ids, or \
                 send \"all\": true"
                    .into(),
            ));
        }
        let rate = replay_rate(request.rate.as_ref())?;
        let (plan, entries) = self.matching(request).await?;
        if entries.is_empty() {
            let why = match plan.held_back {
                0 => "no open dead letter matches".to_owned(),
                n => format!(
                    "the {n} matching entries failed permanently and would run the same version \
                     again: replay them on the latest version or with include_permanent"
                ),
            };
            return Err(EngineError::Store(StoreError::Conflict(format!(
                "nothing to replay: {why}"
            ))));
        }
        let job = self
            .inner
            .store
            .create_job(NewJob {
                actor: actor.to_owned(),
                rate: rate.to_string(),
                on: request.version,
                entries,
                plan,
            })
            .await?;
        // The runner reads the job back from the store, as it does after a restart.
        self.inner.spawn_jobs().await?;
        Ok(job)
    }

    /// The plan of a bulk replay and the entries it replays, in order.
    async fn matching(&self, request: &BulkReplay) -> Result<(ReplayPlan, Vec<i64>), EngineError> {
        let BulkReplay {
            filter: query,
            version: on,
            ids,
            include_permanent,
            ..
        } = request;
        let on = *on;
        let mut entries = self.open_entries(query).await?;
        if !ids.is_empty() {
            entries.retain(|e| ids.contains(&e.id));
        }
        let mut workflows = BTreeSet::new();
        let mut records = BTreeSet::new();
        let mut steps: BTreeMap<(String, i64, String, String, bool), usize> = BTreeMap::new();
        let mut replayed_ids = Vec::with_capacity(entries.len());
        let mut groups: BTreeMap<(ErrorClass, String), (usize, bool)> = BTreeMap::new();
        let mut held_back = 0;
        // Oldest entry first: the order the job starts them in.
        entries.sort_by_key(|e| e.id);
        for entry in entries {
            let old = self.inner.store.run(entry.run_id).await?.run;
            let run = self.replay_run(old.clone(), on, None)?;
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
            replayed_ids.push(entry.id);
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
        let plan = ReplayPlan {
            count: replayed_ids.len(),
            workflows: workflows.into_iter().collect(),
            records: records.into_iter().collect(),
            external_steps,
            runs: Vec::new(),
            groups,
            held_back,
        };
        Ok((plan, replayed_ids))
    }

    /// Replays one entry for a job, recording the job's entries done (`next`) with it:
    /// `None` when someone closed the entry meanwhile.
    pub(super) async fn replay_for_job(
        &self,
        dlq_id: i64,
        on: ReplayOn,
        job: (i64, usize),
        actor: &str,
    ) -> Result<Option<i64>, EngineError> {
        let entry = self.inner.store.dlq_entry(dlq_id).await?;
        if entry.status != DlqStatus::Open {
            return Ok(None);
        }
        match self.replay_entry(&entry, on, None, actor, Some(job)).await {
            Ok(id) => Ok(Some(id)),
            // Closed between the read and the replay.
            Err(EngineError::Store(crate::store::StoreError::Conflict(_))) => Ok(None),
            Err(e) => Err(e),
        }
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
