//! The incident tracker: folds the run log into incidents (see [`crate::domain::incident`])
//! behind its own cursor, one batch per write, so a crash or a restart loses and repeats
//! nothing, and incidents, MTTR and the run-level outages survive run retention.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::domain::clock::Heartbeat;
use crate::domain::incident::{BookQuery, CURSOR};
use crate::store::{Store, StoreError};

/// The tracker's loop name (`GET /health`).
pub const LOOP: &str = "incident tracker";
/// Events folded per write.
const BATCH: usize = 1000;

/// Folds committed events into incidents until shutdown, beating `heartbeat` each round it
/// catches up.
pub async fn track(store: Arc<dyn Store>, heartbeat: Arc<Heartbeat>, shutdown: CancellationToken) {
    let mut bus = store.subscribe();
    loop {
        match track_batch(store.as_ref()).await {
            Ok(true) => continue,
            Ok(false) => heartbeat.beat(Utc::now()),
            Err(e) => tracing::warn!("incident tracker: {e}"),
        }
        tokio::select! {
            _ = bus.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Folds one batch of events past the cursor; true when there may be more.
///
/// # Errors
/// A store error (the batch is folded again on the next round).
pub async fn track_batch(store: &dyn Store) -> Result<bool, StoreError> {
    let cursor = store.cursor(CURSOR).await?;
    let events = store.events_since(cursor, BATCH).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(false);
    };
    let mut book = store.incident_book(BookQuery::of(&events)).await?;
    let mut changes = Vec::new();
    for event in &events {
        book.fold(event, &mut changes);
    }
    store.apply_incidents(changes, last).await?;
    Ok(events.len() == BATCH)
}
