//! Opening a store from a URL, so nothing outside `src/store` names a backend:
//! `sqlite:///var/lib/acp/acp.db?durability=full` (an absolute path after `sqlite://`),
//! `sqlite://acp.db` (relative), or a plain file path. Query parameters: `durability`
//! (`normal`, the default: a power cut may lose the last commits, never corrupt; `full`: every
//! commit is on disk before it is acknowledged), `bus` (events buffered per slow subscriber,
//! default 65,536), `cache_mb` (the writer's page cache, default 32; what the store holds in
//! memory besides the bus does not grow with the database) and `wait` (`async`, the default, or `blocking`: a caller waits for its
//! write on a tokio blocking-pool thread, which tells a paused tokio clock that work is in
//! progress, so tests under `tokio::time::pause` do not skip time while a commit is under
//! way; it costs a thread hand-off per write).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sqlite::{BUS_CAPACITY, Durability, SqliteStore, WRITER_CACHE_MIB};
use super::{Result, Store, StoreError};

/// Where a store lives, read from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The SQLite database file.
    pub path: PathBuf,
    durability: Durability,
    bus: Option<usize>,
    cache_mb: Option<u32>,
    blocking_wait: bool,
}

impl Location {
    /// Reads a store URL (see the module's documentation).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for another scheme, an empty path, an unknown parameter or a
    /// bad value, naming it.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = match url.split_once("://") {
            Some(("sqlite", rest)) => rest,
            Some((scheme, _)) => {
                return Err(StoreError::Invalid(format!(
                    "`{scheme}://` is not a store this build can open (sqlite://PATH)"
                )));
            }
            None => url,
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(StoreError::Invalid(format!(
                "`{url}` names no database file"
            )));
        }
        let mut location = Location {
            path: PathBuf::from(path),
            durability: Durability::Normal,
            bus: None,
            cache_mb: None,
            blocking_wait: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("durability", "normal")) => location.durability = Durability::Normal,
                Some(("durability", "full")) => location.durability = Durability::Full,
                Some(("wait", "async")) => location.blocking_wait = false,
                Some(("wait", "blocking")) => location.blocking_wait = true,
                Some(("bus", n)) => {
                    location.bus = Some(n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        StoreError::Invalid(format!("bus={n}: write a positive number"))
                    })?);
                }
                Some(("cache_mb", n)) => {
                    let mb = n.parse().ok().filter(|n| (1..=65_536).contains(n));
                    location.cache_mb = Some(mb.ok_or_else(|| {
                        StoreError::Invalid(format!("cache_mb={n}: write 1 to 65536 (MiB)"))
                    })?);
                }
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "`{pair}` in the store URL: known are durability=normal|full, bus=N, cache_mb=N and wait=async|blocking"
                    )));
                }
            }
        }
        Ok(location)
    }

    /// True when every commit is on disk before it is acknowledged.
    pub fn full_durability(&self) -> bool {
        self.durability == Durability::Full
    }
}

/// Opens (creating and migrating if needed) the store `url` names.
///
/// # Errors
/// [`StoreError::Invalid`] for a URL [`Location::parse`] refuses; the backend's error when the
/// database cannot be opened or migrated.
pub fn open(url: &str) -> Result<Arc<dyn Store>> {
    let location = Location::parse(url)?;
    let store = SqliteStore::open_with(
        &location.path,
        location.durability,
        location.bus.unwrap_or(BUS_CAPACITY),
        location.cache_mb.unwrap_or(WRITER_CACHE_MIB),
    )?;
    Ok(Arc::new(store.waiting_blocking(location.blocking_wait)))
}

/// For `acp bench`: single-row commits per second for `lasting`, in a scratch table of a fresh
/// database where `url` points, with the same durability: the ceiling a store that commits
/// once per state change is measured against.
///
/// # Errors
/// The backend's, when the file cannot be written.
pub fn commit_baseline(url: &str, lasting: Duration) -> Result<f64> {
    let location = Location::parse(url)?;
    let conn = rusqlite::Connection::open(&location.path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = if location.full_durability() {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")?;
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed() < lasting {
        conn.execute("INSERT INTO t (v) VALUES ('x')", [])?;
        commits += 1;
    }
    Ok(commits as f64 / started.elapsed().as_secs_f64())
}

/// For `acp bench`: how many runs failed and how many attempts were made, read straight
/// from the database `url` names (its store may be closed).
///
/// # Errors
/// The backend's, when the file cannot be read.
pub fn tally(url: &str) -> Result<(i64, i64)> {
    let location = Location::parse(url)?;
    let conn = rusqlite::Connection::open(&location.path)?;
    let failed = conn.query_row(
        "SELECT COUNT(*) FROM runs WHERE status = 'failed'",
        [],
        |r| r.get(0),
    )?;
    let attempts = conn.query_row("SELECT COUNT(*) FROM attempts", [], |r| r.get(0))?;
    Ok((failed, attempts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_a_file_and_its_settings() {
        let full = Location::parse("sqlite:///var/lib/acp/acp.db?durability=full").unwrap();
        assert_eq!(full.path, PathBuf::from("/var/lib/acp/acp.db"));
        assert!(full.full_durability());
        let plain = Location::parse("acp.db").unwrap();
        assert_eq!(plain.path, PathBuf::from("acp.db"));
        assert!(!plain.full_durability());
        assert_eq!(
            Location::parse("sqlite://a.db?bus=16").unwrap().bus,
            Some(16)
        );
        assert_eq!(
            Location::parse("sqlite://a.db?cache_mb=64")
                .unwrap()
                .cache_mb,
            Some(64)
        );
        assert!(
            Location::parse("sqlite://a.db?wait=blocking")
                .unwrap()
                .blocking_wait
        );
        assert!(!plain.blocking_wait);
        for (bad, names) in [
            ("postgres://db/acp", "postgres://"),
            ("sqlite://", "no database file"),
            ("sqlite://a.db?durability=sometimes", "durability=sometimes"),
            ("sqlite://a.db?bus=0", "bus=0"),
            ("sqlite://a.db?wait=soon", "wait=soon"),
            ("sqlite://a.db?cache_mb=0", "cache_mb=0"),
            ("sqlite://a.db?cache_mb=lots", "cache_mb=lots"),
        ] {
            let error = Location::parse(bad).unwrap_err().to_string();
            assert!(error.contains(names), "{bad}: {error}");
        }
    }
}
