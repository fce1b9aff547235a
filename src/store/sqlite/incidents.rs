//! Incidents as the tracker keeps them: loading what a batch's fold needs, applying what it
//! changed with the tracker's cursor, and the reads behind `/incidents` and the MTTR figures.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::domain::incident::{Book, BookQuery, CURSOR, Change, Link, Tracked, WorkflowChange};
use crate::store::{IncidentFacts, Interval, Result, StoreError};
use crate::wire::{
    IncidentDetail, IncidentFilter, IncidentQuery, IncidentRun, IncidentState, IncidentTransition,
    IncidentView,
};

/// Most incidents one list answers.
const MAX_LIST: usize = 1000;
/// An alert is about the incidents of its workflow that were active while it was open or in
/// the hour before it opened (its rule's window looks back from there).
const ALERT_LOOKBACK_MS: i64 = 3_600_000;
/// Most runs and records an incident's detail lists (newest first).
const MAX_DETAIL: i64 = 200;

fn state(text: String) -> rusqlite::Result<IncidentState> {
    rows::parsed(text, IncidentState::parse, "incident state")
}

/// `?, ?, …` for `n` parameters.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// What the fold of a batch needs: the active incidents and those `query` names, the links
/// of its runs and dead letters, the open outages and its workflows' latest changes.
pub fn book(conn: &Connection, query: &BookQuery) -> Result<Book> {
    let mut book = Book::default();
    let tracked_sql = "SELECT key, workflow, step, state, recovered, \
         (SELECT COUNT(*) FROM incident_runs r WHERE r.incident_id = incidents.id AND r.dlq_open = 1) \
         FROM incidents";
    let load = |sql: String, keys: &[String]| -> Result<Vec<(String, Tracked)>> {
        let mut stmt = conn.prepare(&sql)?;
        let found = stmt.query_map(params_from_iter(keys), |r| {
            Ok((
                r.get::<_, String>(0)?,
                Tracked {
                    workflow: r.get(1)?,
                    step: r.get(2)?,
                    state: state(r.get(3)?)?,
                    recovered: r.get(4)?,
                    open_dead_letters: r.get(5)?,
                },
            ))
        })?;
        Ok(found.collect::<rusqlite::Result<_>>()?)
    };
    book.incidents.extend(load(
        format!("{tracked_sql} WHERE state != 'resolved'"),
        &[],
    )?);
    if !query.keys.is_empty() {
        let sql = format!("{tracked_sql} WHERE key IN ({})", marks(query.keys.len()));
        book.incidents.extend(load(sql, &query.keys)?);
    }
    let link_sql = "SELECT r.run_id, i.key, r.dlq_id, r.dlq_open FROM incident_runs r JOIN incidents i ON i.id = r.incident_id";
    let mut linked = Vec::new();
    for (column, ids) in [("r.run_id", &query.runs), ("r.dlq_id", &query.dlqs)] {
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "{link_sql} WHERE {column} IN ({}) ORDER BY r.at",
            marks(ids.len())
        );
        let mut stmt = conn.prepare(&sql)?;
        let found = stmt.query_map(params_from_iter(ids.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Link {
                    key: r.get(1)?,
                    dlq_id: r.get(2)?,
                    dlq_open: r.get(3)?,
                },
            ))
        })?;
        for row in found {
            let (run, link) = row?;
            linked.push(link.key.clone());
            book.links.insert(run, link);
        }
    }
    linked.retain(|key| !book.incidents.contains_key(key));
    linked.sort();
    linked.dedup();
    if !linked.is_empty() {
        let sql = format!("{tracked_sql} WHERE key IN ({})", marks(linked.len()));
        book.incidents.extend(load(sql, &linked)?);
    }
    let mut stmt =
        conn.prepare_cached("SELECT workflow, started_at FROM outages WHERE ended_at IS NULL")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (workflow, started) = row?;
        book.outages.insert(workflow, rows::time(started));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT change, version, actor, at, previous FROM workflow_changes WHERE workflow = ? ORDER BY id DESC LIMIT 1",
    )?;
    for workflow in &query.workflows {
        let change = stmt
            .query_row([workflow], |r| {
                Ok(WorkflowChange {
                    change: r.get(0)?,
                    version: r.get(1)?,
                    actor: r.get(2)?,
                    at: rows::time(r.get(3)?),
                    previous: r.get(4)?,
                })
            })
            .optional()?;
        if let Some(change) = change {
            book.latest_change.insert(workflow.clone(), change);
        }
    }
    Ok(book)
}

/// Applies a batch's changes and moves the tracker's cursor to `seq`, in one transaction.
pub fn apply(tx: &mut Tx<'_>, changes: &[Change], seq: i64) -> Result<()> {
    for change in changes {
        apply_one(tx.conn, change)?;
    }
    tx.conn
        .prepare_cached(
            "INSERT INTO cursors (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = ?2",
        )?
        .execute(params![CURSOR, seq])?;
    Ok(())
}

fn apply_one(conn: &Connection, change: &Change) -> Result<()> {
    match change {
        Change::Opened {
            signature,
            at,
            cause,
        } => {
            conn.prepare_cached(
                "INSERT INTO incidents (key, signature, workflow, team, step, state, first_seen, last_seen, opened_at, cause) \
                 VALUES (?1, ?2, ?3, COALESCE((SELECT team FROM workflows WHERE key = ?3), ''), ?4, 'open', ?5, ?5, ?5, ?6)",
            )?
            .execute(params![
                signature.key,
                rows::to_json(signature),
                signature.workflow,
                signature.step,
                ms(*at),
                cause.as_ref().map(rows::to_json),
            ])?;
            history(conn, &signature.key, IncidentState::Open, *at)?;
        }
        Change::Failed {
            key,
            run_id,
            at,
            example,
        } => {
            let (id, versions): (i64, String) = conn
                .prepare_cached("SELECT id, versions FROM incidents WHERE key = ?")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("incident {key}")))?;
            let run: Option<(i64, Option<i64>)> = conn
                .prepare_cached("SELECT version, record_id FROM runs WHERE id = ?")?
                .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (version, record) = run.unwrap_or((0, None));
            // A record counts once per incident, whatever its runs (kept as a count, so
            // listing incidents never counts their runs).
            let new_record = match record {
                Some(record) => conn
                    .prepare_cached(
                        "SELECT NOT EXISTS (SELECT 1 FROM incident_runs INDEXED BY incident_runs_record \
                         WHERE incident_id = ? AND record_id = ?)",
                    )?
                    .query_row(params![id, record], |r| r.get::<_, bool>(0))?,
                None => false,
            };
            let mut versions: BTreeSet<i64> = serde_json::from_str(&versions).unwrap_or_default();
            if version > 0 {
                versions.insert(version);
            }
            conn.prepare_cached(
                "UPDATE incidents SET count = count + 1, last_seen = MAX(last_seen, ?2), example = ?3, \
                 recovered = 0, versions = ?4, records = records + ?5 WHERE id = ?1",
            )?
            .execute(params![
                id,
                ms(*at),
                example,
                rows::to_json(&versions),
                i64::from(new_record)
            ])?;
            conn.prepare_cached(
                "INSERT INTO incident_runs (incident_id, run_id, version, record_id, at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (incident_id, run_id) DO UPDATE SET at = ?5, dlq_open = 0",
            )?
            .execute(params![id, run_id, version, record, ms(*at)])?;
        }
        Change::Regressed { key, at, cause } => {
            conn.prepare_cached(
                "UPDATE incidents SET state = 'regressed', resolved_at = NULL, cause = ? WHERE key = ?",
            )?
            .execute(params![cause.as_ref().map(rows::to_json), key])?;
            history(conn, key, IncidentState::Regressed, *at)?;
        }
        Change::DeadLettered {
            key,
            run_id,
            dlq_id,
        } => {
            conn.prepare_cached(
                "UPDATE incident_runs SET dlq_id = ?3, dlq_open = 1 \
                 WHERE incident_id = (SELECT id FROM incidents WHERE key = ?1) AND run_id = ?2",
            )?
            .execute(params![key, run_id, dlq_id])?;
        }
        Change::DlqClosed { key, dlq_id } => {
            conn.prepare_cached(
                "UPDATE incident_runs SET dlq_open = 0 \
                 WHERE incident_id = (SELECT id FROM incidents WHERE key = ?1) AND dlq_id = ?2",
            )?
            .execute(params![key, dlq_id])?;
        }
        Change::Recovered { key } => {
            conn.prepare_cached("UPDATE incidents SET recovered = 1 WHERE key = ?")?
                .execute([key])?;
        }
        Change::Resolved { key, at } => {
            conn.prepare_cached(
                "UPDATE incidents SET state = 'resolved', resolved_at = ? WHERE key = ?",
            )?
            .execute(params![ms(*at), key])?;
            history(conn, key, IncidentState::Resolved, *at)?;
        }
        Change::OutageStarted { workflow, at } => {
            conn.prepare_cached(
                "INSERT INTO outages (workflow, team, started_at) \
                 VALUES (?1, COALESCE((SELECT team FROM workflows WHERE key = ?1), ''), ?2)",
            )?
            .execute(params![workflow, ms(*at)])?;
        }
        Change::OutageEnded { workflow, at } => {
            conn.prepare_cached(
                "UPDATE outages SET ended_at = ? WHERE workflow = ? AND ended_at IS NULL",
            )?
            .execute(params![ms(*at), workflow])?;
        }
        Change::WorkflowChanged { workflow, change } => {
            conn.prepare_cached(
                "INSERT INTO workflow_changes (workflow, change, version, actor, at, previous) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                workflow,
                change.change,
                change.version,
                change.actor,
                ms(change.at),
                change.previous
            ])?;
        }
    }
    Ok(())
}

/// Records a state change; a resolution keeps the start of its cycle (the open or the
/// regression it ends), which MTTR measures from.
fn history(conn: &Connection, key: &str, to: IncidentState, at: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO incident_history (incident_id, state, at, opened_at) \
         SELECT i.id, ?2, ?3, CASE WHEN ?2 = 'resolved' THEN COALESCE( \
             (SELECT h.at FROM incident_history h WHERE h.incident_id = i.id AND h.state != 'resolved' \
              ORDER BY h.id DESC LIMIT 1), i.opened_at) ELSE ?3 END \
         FROM incidents i WHERE i.key = ?1",
    )?
    .execute(params![key, to.as_str(), ms(at)])?;
    Ok(())
}

const INCIDENT_COLUMNS: &str = "i.id, i.signature, i.team, i.state, i.count, i.first_seen, i.last_seen, \
     i.opened_at, i.resolved_at, i.example, i.versions, i.cause, \
     (SELECT COUNT(*) FROM incident_runs r INDEXED BY incident_runs_open \
      WHERE r.incident_id = i.id AND r.dlq_open = 1), i.records";

fn incident(row: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentView> {
    let signature: String = row.get(1)?;
    let signature = serde_json::from_str(&signature).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(IncidentView {
        id: row.get(0)?,
        signature,
        team: row.get(2)?,
        state: state(row.get(3)?)?,
        count: row.get(4)?,
        first_seen: rows::time(row.get(5)?),
        last_seen: rows::time(row.get(6)?),
        opened_at: rows::time(row.get(7)?),
        resolved_at: row.get::<_, Option<i64>>(8)?.map(rows::time),
        example: row.get(9)?,
        versions: rows::json(row.get(10)?).unwrap_or_default(),
        cause: rows::json(row.get(11)?),
        open_dead_letters: row.get(12)?,
        records: row.get(13)?,
        held: Vec::new(),
    })
}

/// Incidents matching `query`, the active ones first, then by last failure, newest first.
pub fn list(conn: &Connection, query: &IncidentQuery) -> Result<Vec<IncidentView>> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIST) as i64;
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents i \
         WHERE (?1 IS NULL OR i.state = ?1 OR (?1 = 'active' AND i.state != 'resolved')) AND (?2 IS NULL OR i.workflow = ?2) \
         AND (?3 IS NULL OR i.team = ?3) \
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM alerts a WHERE a.id = ?4 \
              AND a.workflow = i.workflow AND i.first_seen <= COALESCE(a.resolved_at, ?6) \
              AND i.last_seen >= a.opened_at - ?7)) \
         ORDER BY i.state = 'resolved', i.last_seen DESC, i.id DESC LIMIT ?5"
    );
    let list = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.state.map(IncidentFilter::as_str),
                query.workflow,
                query.team,
                query.alert,
                limit,
                i64::MAX,
                ALERT_LOOKBACK_MS
            ],
            incident,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

/// One incident with its newest runs and records, its state history and its workflow's
/// alerts that were open while it failed.
///
/// # Errors
/// [`StoreError::NotFound`] for an unknown id.
pub fn detail(conn: &Connection, id: i64) -> Result<IncidentDetail> {
    let incident = conn
        .prepare_cached(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = ?"
        ))?
        .query_row([id], incident)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("incident {id}")))?;
    let runs = conn
        .prepare_cached(
            "SELECT run_id, version, record_id, at, dlq_id, dlq_open FROM incident_runs \
             WHERE incident_id = ? ORDER BY run_id DESC LIMIT ?",
        )?
        .query_map(params![id, MAX_DETAIL], |r| {
            Ok(IncidentRun {
                run_id: r.get(0)?,
                version: r.get(1)?,
                record_id: r.get(2)?,
                at: rows::time(r.get(3)?),
                dlq_id: r.get(4)?,
                dlq_open: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let record_ids = conn
        .prepare_cached(
            "SELECT record_id FROM (SELECT record_id, run_id FROM incident_runs \
             WHERE incident_id = ?1 ORDER BY run_id DESC LIMIT 5000) \
             WHERE record_id IS NOT NULL GROUP BY record_id ORDER BY MAX(run_id) DESC LIMIT ?2",
        )?
        .query_map(params![id, MAX_DETAIL], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let history = conn
        .prepare_cached("SELECT state, at FROM incident_history WHERE incident_id = ? ORDER BY id")?
        .query_map([id], |r| {
            Ok(IncidentTransition {
                state: state(r.get(0)?)?,
                at: rows::time(r.get(1)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let alerts = conn
        .prepare_cached(
            "SELECT id FROM alerts WHERE workflow = ?1 AND opened_at - ?4 <= ?3 \
             AND COALESCE(resolved_at, ?5) >= ?2 ORDER BY id DESC LIMIT 50",
        )?
        .query_map(
            params![
                incident.signature.workflow,
                ms(incident.first_seen),
                incident.resolved_at.map_or(i64::MAX, ms),
                ALERT_LOOKBACK_MS,
                i64::MAX
            ],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(IncidentDetail {
        incident,
        runs,
        record_ids,
        history,
        alerts,
    })
}

/// The incident's open dead-letter entries, oldest first.
pub fn dead_letters(conn: &Connection, id: i64) -> Result<Vec<i64>> {
    let known: Option<i64> = conn
        .prepare_cached("SELECT id FROM incidents WHERE id = ?")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if known.is_none() {
        return Err(StoreError::NotFound(format!("incident {id}")));
    }
    let ids = conn
        .prepare_cached(
            "SELECT dlq_id FROM incident_runs INDEXED BY incident_runs_open \
             WHERE incident_id = ? AND dlq_open = 1 ORDER BY dlq_id",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Incidents not resolved, per workflow.
pub fn open(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let open = conn
        .prepare_cached(
            "SELECT workflow, COUNT(*) FROM incidents INDEXED BY incidents_active \
             WHERE state != 'resolved' GROUP BY workflow",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(open)
}

/// The stored facts MTTR and MTTA are computed from, since `since`.
pub fn facts(conn: &Connection, since: DateTime<Utc>) -> Result<IncidentFacts> {
    let since = ms(since);
    let spans = |sql: &str| -> Result<Vec<Interval>> {
        let list = conn
            .prepare_cached(sql)?
            .query_map([since], |r| {
                Ok(Interval {
                    workflow: r.get(0)?,
                    team: r.get(1)?,
                    seconds: r.get::<_, i64>(2)? as f64 / 1000.0,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(list)
    };
    let resolutions = spans(
        "SELECT i.workflow, i.team, h.at - h.opened_at FROM incident_history h \
         JOIN incidents i ON i.id = h.incident_id WHERE h.state = 'resolved' AND h.at >= ?",
    )?;
    let outages =
        spans("SELECT workflow, team, ended_at - started_at FROM outages WHERE ended_at >= ?")?;
    let acknowledgements = spans(
        "SELECT a.workflow, COALESCE(w.team, ''), a.acked_at - a.fired_at FROM alerts a \
         LEFT JOIN workflows w ON w.key = a.workflow \
         WHERE a.acked_at >= ? AND a.fired_at IS NOT NULL AND a.acked_at >= a.fired_at",
    )?;
    Ok(IncidentFacts {
        resolutions,
        outages,
        acknowledgements,
        open: open(conn)?,
    })
}
