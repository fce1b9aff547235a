//! Opening connections: pragmas, the pool of readers, and the checkpoint thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};

use crate::store::Result;

/// How hard each commit pushes data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a power cut may lose the last commits, never corrupt.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is on disk before it is acknowledged.
    Full,
}

pub struct Readers {
    pub path: PathBuf,
    pub idle: Mutex<Vec<Connection>>,
    /// Set by `close`: reads answer "closed" and no connection is opened again.
    pub closed: std::sync::atomic::AtomicBool,
}

pub fn open(path: &Path, flags: OpenFlags, durability: Durability) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// The bound the WAL is held under. Checkpoints that run while the writer keeps appending
/// (PASSIVE, from their own thread) copy frames but never let the WAL start over, so under
/// sustained load it grew without end (583 MB for 60,000 runs; a checkpoint that waits for
/// the writer from another thread rarely gets in). The writer itself therefore empties the
/// WAL between two batches once it passes half of this bound (`writer::run`).
pub const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// Copies the WAL into the database file off the writer's thread every 200 ms (PASSIVE, so
/// commits never wait and the writer's truncations find little left to copy); truncates the
/// WAL when the store closes.
pub fn checkpoint_loop(conn: &Connection, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) =
        stop.recv_timeout(std::time::Duration::from_millis(200))
    {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!("checkpoint failed: {e}");
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
}
