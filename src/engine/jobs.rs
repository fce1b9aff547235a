//! Bulk replay jobs: one runner per running job starts its entries' replays, oldest first,
//! at the job's rate (GCRA, the same limiter as policies), records its progress after each
//! start and stops at a cancel or a shutdown; a restart continues every running job from
//! where it stopped.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::policy::Pacer;
use super::{Engine, EngineError, Inner};
use crate::domain::policy::Rate;
use crate::store::JobRow;
use crate::wire::{JobState, JobView};

impl Engine {
    /// A job and its progress.
    ///
    /// # Errors
    /// `NotFound` for an unknown job.
    pub async fn job(&self, id: i64) -> Result<JobView, EngineError> {
        Ok(self.inner.store.job(id).await?)
    }

    /// Cancels a running job: entries it has not started stay open in the DLQ.
    ///
    /// # Errors
    /// `NotFound` for an unknown job, a conflict for one that already ended.
    pub async fn cancel_job(&self, id: i64) -> Result<JobView, EngineError> {
        let job = self.inner.store.end_job(id, JobState::Cancelled).await?;
        if let Some(token) = self
            .inner
            .jobs
            .lock()
            .ok()
            .and_then(|m| m.get(&id).cloned())
        {
            token.cancel();
        }
        Ok(job)
    }
}

impl Inner {
    /// Starts a runner for every running job that has none.
    pub(super) async fn spawn_jobs(self: &Arc<Self>) -> Result<(), EngineError> {
        for job in self.store.running_jobs().await? {
            let token = {
                let Ok(mut runners) = self.jobs.lock() else {
                    continue;
                };
                if runners.contains_key(&job.id) {
                    continue;
                }
                let token = CancellationToken::new();
                runners.insert(job.id, token.clone());
                token
            };
            let inner = self.clone();
            self.tasks.spawn(async move {
                let id = job.id;
                if let Err(e) = run_job(&inner, job, &token).await {
                    tracing::warn!(job = id, "bulk replay stopped: {e}; a restart continues it");
                }
                if let Ok(mut runners) = inner.jobs.lock() {
                    runners.remove(&id);
                }
            });
        }
        Ok(())
    }
}

async fn run_job(
    inner: &Arc<Inner>,
    job: JobRow,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let rate = Rate::parse(&job.rate).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let pacer = Pacer::new(rate, inner.config.clock.clone());
    let engine = Engine {
        inner: inner.clone(),
    };
    for (index, dlq_id) in job.entries.iter().enumerate().skip(job.next) {
        tokio::select! {
            () = pacer.ready() => {}
            () = cancel.cancelled() => return Ok(()),
            () = inner.shutdown.cancelled() => return Ok(()),
        }
        let replayed = engine
            .replay_for_job(*dlq_id, job.on, (job.id, index + 1), &job.actor)
            .await?;
        if replayed.is_none() {
            inner.store.advance_job(job.id, index + 1, 1).await?;
        }
    }
    match inner.store.end_job(job.id, JobState::Finished).await {
        // Cancelled after its last start.
        Ok(_) | Err(crate::store::StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
