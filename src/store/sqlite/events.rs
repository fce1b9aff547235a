//! Reading the run log.

use rusqlite::{Connection, params};
use serde_json::Value;

use super::rows;
use crate::store::Result;
use crate::wire::{Event, EventBody};

pub fn events_since(conn: &Connection, after: i64, limit: usize) -> Result<Vec<Event>> {
    let list = conn
        .prepare_cached("SELECT seq, at, kind, workflow, run_id, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?")?
        .query_map(params![after, limit as i64], |r| {
            let (seq, kind): (i64, String) = (r.get(0)?, r.get(2)?);
            let data = rows::json::<Value>(r.get(5)?).unwrap_or(Value::Null);
            let body = EventBody::from_parts(&kind, data).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    2,
                    rusqlite::types::Type::Text,
                    format!("event {seq} (`{kind}`): {e}").into(),
                )
            })?;
            Ok(Event {
                seq,
                at: rows::time(r.get(1)?),
                workflow: r.get(3)?,
                run_id: r.get(4)?,
                body,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

/// The oldest event kept, or 0 when there is none.
pub fn oldest_seq(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COALESCE(MIN(seq), 0) FROM events", [], |r| r.get(0))?)
}

pub fn newest_seq(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?)
}
