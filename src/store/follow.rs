//! Reading the run log in order, each event once, without decoding it again: the events
//! come from the bus (already decoded, shared) while it keeps up, and from the store when
//! the bus lagged, an event is missing or the reader starts behind it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use super::{Result, Store};
use crate::wire::Event;

/// Most events held from the bus between two reads; past that the oldest are read again from
/// the store.
const MAX_BUFFERED: usize = 100_000;

/// A reader of the log: [`Follower::wait`] for news, then [`Follower::next`] for the events
/// after a position.
pub struct Follower {
    bus: broadcast::Receiver<Arc<Event>>,
    buffered: VecDeque<Arc<Event>>,
}

impl Follower {
    /// Follows from the bus `bus` (subscribe before anything it must see can commit).
    pub fn new(bus: broadcast::Receiver<Arc<Event>>) -> Self {
        Self {
            bus,
            buffered: VecDeque::new(),
        }
    }

    /// Waits until an event arrives, `idle` passes or `shutdown`; false on shutdown.
    pub async fn wait(&mut self, idle: Duration, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            message = self.bus.recv() => {
                match message {
                    Ok(event) => self.keep(event),
                    Err(RecvError::Lagged(_)) => self.buffered.clear(),
                    // The store is closing: what is left is read from it until shutdown.
                    Err(RecvError::Closed) => tokio::time::sleep(idle).await,
                }
                true
            }
            _ = tokio::time::sleep(idle) => true,
            _ = shutdown.cancelled() => false,
        }
    }

    fn keep(&mut self, event: Arc<Event>) {
        if self.buffered.len() >= MAX_BUFFERED {
            self.buffered.clear();
        }
        self.buffered.push_back(event);
    }

    /// At most `limit` events after `after`, in order with no gap: from the bus when it holds
    /// the very next one, else from the store.
    ///
    /// # Errors
    /// The store's, reading the log.
    pub async fn next(
        &mut self,
        store: &dyn Store,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Arc<Event>>> {
        loop {
            match self.bus.try_recv() {
                Ok(event) => self.keep(event),
                Err(TryRecvError::Lagged(_)) => self.buffered.clear(),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        while self.buffered.front().is_some_and(|e| e.seq <= after) {
            self.buffered.pop_front();
        }
        match self.buffered.front().map(|e| e.seq) {
            Some(first) if first == after + 1 => {
                let n = limit.min(self.buffered.len());
                Ok(self.buffered.drain(..n).collect())
            }
            // A gap before what the bus holds (or nothing held): read it from the store.
            gap => {
                let most = gap.map_or(limit, |first| {
                    limit.min(usize::try_from(first - after - 1).unwrap_or(limit))
                });
                let events = store.events_since(after, most).await?;
                Ok(events.into_iter().map(Arc::new).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewRun;
    use crate::wire::TriggerKind;

    async fn queue(store: &Arc<dyn Store>, n: usize) {
        let runs = (0..n)
            .map(|_| NewRun::live("w", 1, "qa", TriggerKind::Manual, serde_json::Value::Null))
            .collect();
        store.create_runs(runs).await.unwrap();
    }

    /// Every event once, in order, whether it came from the bus, from the store before the
    /// follower subscribed, or from the store after the bus (2 events deep) lagged.
    #[tokio::test]
    async fn every_event_once_in_order_from_the_bus_or_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?bus=2", dir.path().join("acp.db").display());
        let store = crate::store::open(&url).unwrap();
        queue(&store, 3).await;
        let mut log = Follower::new(store.subscribe());
        let mut seen = Vec::new();
        let read = |events: Vec<Arc<Event>>, seen: &mut Vec<i64>| {
            seen.extend(events.iter().map(|e| e.seq));
            events.len()
        };
        // Behind the bus: from the store, in batches of 2.
        while read(
            log.next(store.as_ref(), seen.last().copied().unwrap_or(0), 2)
                .await
                .unwrap(),
            &mut seen,
        ) > 0
        {}
        assert_eq!(seen, vec![1, 2, 3]);
        // One run at a time: the bus has it.
        queue(&store, 1).await;
        let events = log.next(store.as_ref(), 3, 10).await.unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
        seen.push(4);
        // Five at once overflow a bus of 2: the gap is read from the store.
        queue(&store, 5).await;
        while read(
            log.next(store.as_ref(), *seen.last().unwrap(), 10)
                .await
                .unwrap(),
            &mut seen,
        ) > 0
        {}
        assert_eq!(seen, (1..=9).collect::<Vec<i64>>());
        store.close();
    }
}
