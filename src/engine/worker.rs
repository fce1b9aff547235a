//! The executor: one claim loop hands due runs to a bounded pool of run tasks; a heartbeat
//! keeps their leases and notices cancel requests.

use std::sync::Arc;

use crate::domain::clock::later_or_max;
use tokio::sync::OwnedSemaphorePermit;

use super::{Inner, driver};
use crate::store::ClaimedRun;

/// Claims due runs whenever a worker is free and something may be due.
pub async fn claim_loop(inner: Arc<Inner>) {
    while !inner.shutdown.is_cancelled() {
        let free = inner.slots.available_permits();
        let mut more = false;
        if free > 0 {
            let now = inner.config.clock.now();
            let lease_until = later_or_max(now, inner.config.lease);
            match inner
                .store
                .claim_runs(&inner.owner, free, now, lease_until)
                .await
            {
                Ok(runs) => {
                    inner.claims.heartbeat.beat(inner.config.clock.now());
                    more = runs.len() == free;
                    for run in runs {
                        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
                            break;
                        };
                        inner.tasks.spawn(execute(inner.clone(), run, permit));
                    }
                }
                Err(e) => tracing::warn!("claiming runs failed: {e}"),
            }
        }
        if free == 0 {
            // Every worker is busy: the loop is alive, only saturated.
            inner.claims.heartbeat.beat(inner.config.clock.now());
        }
        if more {
            continue;
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(inner.config.poll) => {}
            _ = inner.shutdown.cancelled() => {}
        }
    }
}

/// Extends this engine's leases and cancels runs someone asked to stop.
pub async fn heartbeat_loop(inner: Arc<Inner>) {
    let every = inner.config.lease / 3;
    // The leases taken so far were taken just now.
    inner.leases.heartbeat.beat(inner.config.clock.now());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = inner.shutdown.cancelled() => return,
        }
        match inner
            .store
            .heartbeat(
                &inner.owner,
                later_or_max(inner.config.clock.now(), inner.config.lease),
            )
            .await
        {
            Ok(ids) => {
                inner.leases.heartbeat.beat(inner.config.clock.now());
                for id in ids {
                    inner.cancel_local(id);
                }
            }
            Err(e) => tracing::warn!("lease heartbeat failed: {e}"),
        }
    }
}

async fn execute(inner: Arc<Inner>, claimed: ClaimedRun, permit: OwnedSemaphorePermit) {
    let run_id = claimed.run.id;
    let token = inner.register_cancel(run_id);
    if let Err(e) = driver::drive(&inner, claimed, &token).await {
        tracing::warn!(run_id, "run paused: {e}; it resumes when its lease expires");
    }
    inner.unregister_cancel(run_id);
    drop(permit);
    inner.wake.notify_one();
}
