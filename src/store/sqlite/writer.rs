//! The single writer thread and its group commit.
//!
//! Every write is a job sent to one thread. The thread takes all jobs waiting (up to a batch
//! limit), runs them in one transaction, commits once, then publishes the batch's events and
//! answers each caller. One fsync thus covers many state changes.
//!
//! Jobs are re-runnable closures. A batch first runs without savepoints (they cost about a
//! third of the throughput); if any job fails, the transaction is rolled back and the batch
//! runs again with a savepoint around each job, so a failing job is undone alone. Either way
//! event numbers stay gap-free: a job rolled back gives its sequence numbers back.

use std::sync::Arc;
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use tokio::sync::{broadcast, oneshot};

use super::connection::WAL_LIMIT;
use super::rollups;
use super::rows::ms;
use crate::domain::rollup::Tally;
use crate::store::{Result, StoreError};
use crate::wire::{Event, EventBody};

/// Most jobs in one transaction.
const MAX_BATCH: usize = 4096;

/// What a job sees: the open transaction's connection, the clock, and the event log.
pub struct Tx<'c> {
    pub conn: &'c Connection,
    pub now: DateTime<Utc>,
    events: Vec<Event>,
    next_seq: i64,
    /// What this batch's runs add to the rollups, written once before the commit.
    tallies: Vec<Tally>,
}

impl Tx<'_> {
    /// Adds a run's tally to the rollups when this batch commits (none: nothing to add).
    pub fn tally(&mut self, tally: Option<Tally>) {
        self.tallies.extend(tally);
    }

    /// Appends an event to the run log in this transaction.
    pub fn emit(
        &mut self,
        body: EventBody,
        workflow: Option<&str>,
        run_id: Option<i64>,
    ) -> Result<()> {
        let seq = self.next_seq;
        self.conn
            .prepare_cached("INSERT INTO events (seq, at, kind, workflow, run_id, data) VALUES (?, ?, ?, ?, ?, ?)")?
            .execute(params![seq, ms(self.now), body.kind().as_str(), workflow, run_id, body.data().to_string()])?;
        self.next_seq += 1;
        self.events.push(Event {
            seq,
            at: self.now,
            workflow: workflow.map(str::to_owned),
            run_id,
            body,
        });
        Ok(())
    }
}

/// A unit of work for the writer thread.
pub trait Job: Send {
    /// Runs inside the batch's transaction; false rolls this job back. May run twice when the
    /// batch is retried, so it must only act through the transaction.
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Answers the caller once the batch has committed (or failed to).
    fn finish(self: Box<Self>, committed: Result<()>);
}

/// A closure job answering through a oneshot channel.
pub struct Typed<T, F> {
    work: F,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Typed<T, F> {
    pub fn new(work: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Self {
            work,
            outcome: None,
            reply,
        }
    }
}

impl<T: Send, F: Fn(&mut Tx<'_>) -> Result<T> + Send> Job for Typed<T, F> {
    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let outcome = (self.work)(tx);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let answer = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Err(e), Some(Ok(_))) => Err(e),
            (_, Some(Err(e))) => Err(e),
            // The transaction could not begin (the database is locked by another process).
            (Err(e), None) => Err(e),
            (Ok(()), None) => Err(StoreError::Other("the write was never run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// Runs until every sender is gone, then returns (after the last batch committed), keeping
/// how long each batch took to commit in `last_commit_ns`. Between
/// batches, at most every 100 ms, it looks at the WAL (`wal`) and empties it once it passes
/// half of [`WAL_LIMIT`]: only the writer has moments when no write is under way.
pub fn run(
    conn: Connection,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    bus: broadcast::Sender<Arc<Event>>,
    wal: &std::path::Path,
    last_commit_ns: &std::sync::atomic::AtomicU64,
) {
    let mut looked = std::time::Instant::now();
    let mut next_seq: i64 = conn
        .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM events", [], |r| {
            r.get(0)
        })
        .unwrap_or(1);
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let (committed, events, seq) = commit_batch(&conn, &mut batch, next_seq);
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        last_commit_ns.store(took.max(1), std::sync::atomic::Ordering::Relaxed);
        if committed.is_ok() {
            next_seq = seq;
            for event in events {
                let _ = bus.send(Arc::new(event));
            }
        }
        for job in batch {
            let answer = match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Other(e.to_string())),
            };
            job.finish(answer);
        }
        if looked.elapsed() >= std::time::Duration::from_millis(100) {
            looked = std::time::Instant::now();
            let size = std::fs::metadata(wal).map_or(0, |m| m.len());
            if size > WAL_LIMIT / 2 {
                // Waits at most 50 ms for readers (reads are single queries), so writes never
                // stall behind a slow one; answers (busy, frames, copied), busy when a reader
                // held on, and the next look tries again.
                let _ = conn.busy_timeout(std::time::Duration::from_millis(50));
                match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                }) {
                    Ok(0) => {}
                    Ok(_) => tracing::debug!("the WAL ({size} bytes) is in use; emptied later"),
                    Err(e) => tracing::warn!("emptying the WAL ({size} bytes) failed: {e}"),
                }
                let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
            }
        }
    }
}

fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    next_seq: i64,
) -> (Result<()>, Vec<Event>, i64) {
    let outcome = match run_batch(conn, batch, next_seq, false) {
        Batch::JobFailed => run_batch(conn, batch, next_seq, true),
        other => other,
    };
    match outcome {
        Batch::Committed(events, seq) => (Ok(()), events, seq),
        Batch::JobFailed => (
            Err(StoreError::Other(
                "a job failed inside its savepoint".into(),
            )),
            Vec::new(),
            next_seq,
        ),
        Batch::Failed(e) => (Err(e), Vec::new(), next_seq),
    }
}

enum Batch {
    Committed(Vec<Event>, i64),
    /// A job failed and the transaction was rolled back (only without savepoints).
    JobFailed,
    Failed(StoreError),
}

/// Runs every job in one transaction; with `isolate`, each in a savepoint of its own.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>], next_seq: i64, isolate: bool) -> Batch {
    if let Err(e) = statement(conn, "BEGIN IMMEDIATE") {
        return Batch::Failed(e.into());
    }
    let mut tx = Tx {
        conn,
        now: Utc::now(),
        events: Vec::new(),
        next_seq,
        tallies: Vec::new(),
    };
    for job in batch.iter_mut() {
        let (seq, len, tallied) = (tx.next_seq, tx.events.len(), tx.tallies.len());
        if isolate && statement(conn, "SAVEPOINT job").is_err() {
            let _ = conn.execute_batch("ROLLBACK");
            return Batch::Failed(StoreError::Other("savepoint failed".into()));
        }
        let ok = job.run(&mut tx);
        let undo = match (ok, isolate) {
            (true, false) => Ok(()),
            (true, true) => statement(conn, "RELEASE job"),
            (false, true) => conn.execute_batch("ROLLBACK TO job; RELEASE job"),
            (false, false) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Batch::JobFailed;
            }
        };
        if let Err(e) = undo {
            let _ = conn.execute_batch("ROLLBACK");
            return Batch::Failed(e.into());
        }
        if !ok {
            tx.next_seq = seq;
            tx.events.truncate(len);
            tx.tallies.truncate(tallied);
        }
    }
    if let Err(e) = rollups::add(conn, &tx.tallies) {
        let _ = conn.execute_batch("ROLLBACK");
        return Batch::Failed(e);
    }
    match statement(conn, "COMMIT") {
        Ok(()) => Batch::Committed(tx.events, tx.next_seq),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Batch::Failed(e.into())
        }
    }
}

/// Runs a cached, parameterless statement.
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound("row".into()),
            other => StoreError::Other(other.to_string()),
        }
    }
}
