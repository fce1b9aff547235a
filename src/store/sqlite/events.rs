//! Reading the run log.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::rows;
use crate::store::Result;
use crate::wire::{Event, EventKind};

pub fn events_since(conn: &Connection, after: i64, limit: usize) -> Result<Vec<Event>> {
    let list = conn
        .prepare_cached("SELECT seq, at, kind, workflow, run_id, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?")?
        .query_map(params![after, limit as i64], |r| {
            Ok(Event {
                seq: r.get(0)?,
                at: rows::time(r.get(1)?),
                kind: rows::parsed(r.get(2)?, EventKind::parse, "event kind")?,
                workflow: r.get(3)?,
                run_id: r.get(4)?,
                data: rows::json::<Value>(r.get(5)?).unwrap_or(Value::Null),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

/// The oldest event kept, or 0 when there is none.
pub fn oldest_seq(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COALESCE(MIN(seq), 0) FROM events", [], |r| r.get(0))?)
}
