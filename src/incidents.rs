//! The incident tracker: folds the run log into incidents (see [`crate::domain::incident`])
//! behind its own cursor, one batch per write, so a crash or a restart loses and repeats
//! nothing, and incidents, MTTR and the run-level outages survive run retention.
//!
//! It costs little: it reads the events the bus already decoded (the store only after a gap),
//! wakes at most every [`PACE`] (a burst of commits is one round), and a batch that changed
//! no incident moves the stored cursor only every [`SAVE_EVERY`], or when the log goes quiet
//! (folding those events again after a crash changes nothing either).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::domain::clock::Heartbeat;
use crate::domain::incident::{BookQuery, CURSOR};
use crate::store::{Follower, Store, StoreError};

/// The tracker's loop name (`GET /health`).
pub const LOOP: &str = "incident tracker";
/// Events folded per round.
const BATCH: usize = 1000;
/// The shortest time between two rounds woken by new events.
pub const PACE: Duration = Duration::from_millis(250);
/// How often a cursor that only passed events without incidents is stored while events keep
/// coming (a quiet round stores it at once).
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Where the tracker is: the last event folded, the stored cursor, and when it was stored.
#[derive(Debug, Default)]
pub struct Position {
    seq: Option<i64>,
    stored: Option<i64>,
    saved: Option<Instant>,
}

/// Folds committed events into incidents until shutdown, beating `heartbeat` each round it
/// catches up.
pub async fn track(store: Arc<dyn Store>, heartbeat: Arc<Heartbeat>, shutdown: CancellationToken) {
    let mut log = Follower::new(store.subscribe());
    let mut position = Position::default();
    loop {
        match track_batch(store.as_ref(), &mut log, &mut position).await {
            Ok(true) => continue,
            Ok(false) => heartbeat.beat(Utc::now()),
            Err(e) => {
                // Read the stored cursor again: the failed write did not move it.
                position = Position::default();
                tracing::warn!("incident tracker: {e}");
            }
        }
        if !log.wait(Duration::from_secs(1), &shutdown).await {
            return;
        }
        tokio::time::sleep(PACE).await;
    }
}

/// Folds one batch of events past `position`; true when there may be more.
///
/// # Errors
/// A store error (the batch is folded again on the next round).
pub async fn track_batch(
    store: &dyn Store,
    log: &mut Follower,
    position: &mut Position,
) -> Result<bool, StoreError> {
    let cursor = match position.seq {
        Some(seq) => seq,
        None => {
            let stored = store.cursor(CURSOR).await?;
            position.stored = Some(stored);
            stored
        }
    };
    let events = log.next(store, cursor, BATCH).await?;
    let Some(last) = events.last().map(|e| e.seq) else {
        // Quiet: store how far the tracker got, so retention may prune what it passed.
        if position.stored != Some(cursor) {
            store.apply_incidents(Vec::new(), cursor).await?;
            position.stored = Some(cursor);
            position.saved = Some(Instant::now());
        }
        return Ok(false);
    };
    let mut book = store
        .incident_book(BookQuery::of(events.iter().map(|e| e.as_ref())))
        .await?;
    let mut changes = Vec::new();
    for event in &events {
        book.fold(event, &mut changes);
    }
    let due = position.saved.is_none_or(|at| at.elapsed() >= SAVE_EVERY);
    if !changes.is_empty() || due {
        store.apply_incidents(changes, last).await?;
        position.stored = Some(last);
        position.saved = Some(Instant::now());
    }
    position.seq = Some(last);
    Ok(events.len() == BATCH)
}
