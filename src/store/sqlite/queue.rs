//! Queueing runs and reading them back; shared by the run and dead-letter modules.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ATTEMPT_COLUMNS, RUN_COLUMNS, RUN_FROM, ms};
use super::writer::Tx;
use crate::domain::NewRun;
use crate::domain::rollup::Tally;
use crate::domain::run::idempotency_prefix;
use crate::store::{Result, StoreError};
use crate::wire::{AttemptView, Page, RunDetail, RunMode, RunQuery, RunView};

/// Queues a run; a known dedupe key answers the existing run instead.
pub fn create(tx: &mut Tx<'_>, run: &NewRun) -> Result<i64> {
    if let Some(key) = &run.dedupe_key {
        let existing = tx
            .conn
            .prepare_cached("SELECT id FROM runs WHERE dedupe_key = ?")?
            .query_row([key], |r| r.get::<_, i64>(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    let prefix: Option<String> = match (run.carry_from_origin, run.origin_run) {
        (true, Some(origin)) => {
            let inherited: Option<String> =
                tx.conn
                    .query_row("SELECT idem_prefix FROM runs WHERE id = ?", [origin], |r| {
                        r.get(0)
                    })?;
            Some(idempotency_prefix(origin, inherited.as_deref()))
        }
        _ => None,
    };
    let now = ms(tx.now);
    tx.conn
        .prepare_cached(
            "INSERT INTO runs (workflow, version, team, status, mode, trigger_kind, trigger, record_id, \
             origin_run, idem_prefix, dedupe_key, queued_at, due_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            run.workflow,
            run.version,
            run.team,
            run.mode.as_str(),
            run.trigger_kind.as_str(),
            run.trigger.to_string(),
            run.record_id,
            run.origin_run,
            prefix,
            run.dedupe_key,
            now,
            run.not_before.map_or(now, ms)
        ])?;
    let id = tx.conn.last_insert_rowid();
    if let (Some(_), Some(origin)) = (&prefix, run.origin_run) {
        tx.conn.execute(
            "INSERT INTO attempts (run_id, step_index, step_id, number, status, idempotency_key, input, output, \
             error, detail, started_at, finished_at, carried_from) \
             SELECT ?, step_index, step_id, number, status, idempotency_key, input, output, error, detail, \
             started_at, finished_at, run_id FROM attempts WHERE run_id = ? AND status = 'succeeded'",
            params![id, origin],
        )?;
    }
    tx.emit(run.queued_event(), Some(&run.workflow), Some(id))?;
    tx.tally(Tally::queued(&run.workflow, &run.team, run.mode, tx.now));
    Ok(id)
}

pub fn run_view(conn: &Connection, run_id: i64) -> Result<RunView> {
    conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM {RUN_FROM} WHERE r.id = ?"
    ))?
    .query_row([run_id], rows::run)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("run {run_id}")))
}

pub fn attempts(conn: &Connection, run_id: i64) -> Result<Vec<AttemptView>> {
    let list = conn
        .prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE run_id = ? ORDER BY id"
        ))?
        .query_map([run_id], rows::attempt)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

pub fn detail(conn: &Connection, run_id: i64) -> Result<RunDetail> {
    Ok(RunDetail {
        run: run_view(conn, run_id)?,
        attempts: attempts(conn, run_id)?,
    })
}

pub fn list(conn: &Connection, query: &RunQuery) -> Result<Page<RunView>> {
    let select = format!("SELECT {RUN_COLUMNS} FROM {RUN_FROM}");
    page(conn, &select, query, &Columns::RUNS, rows::run, |r| r.id)
}

/// Where a filtered list finds each filter's column.
pub struct Columns {
    pub id: &'static str,
    pub status: &'static str,
    pub at: &'static str,
    pub error: &'static str,
    /// The full-text index over `error` (rowid = `id`), when there is one.
    pub search: Option<&'static str>,
}

impl Columns {
    pub const RUNS: Columns = Columns {
        id: "r.id",
        status: "r.status",
        at: "r.queued_at",
        error: "r.error",
        search: Some("runs_search"),
    };
}

/// Most items in one page.
pub const MAX_PAGE: usize = 500;

/// One page, newest first, of `select` (which names the runs table `r`) filtered by `query`.
pub fn page<T>(
    conn: &Connection,
    select: &str,
    query: &RunQuery,
    cols: &Columns,
    row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    id_of: fn(&T) -> i64,
) -> Result<Page<T>> {
    let Columns {
        id,
        status,
        at,
        error,
        search,
    } = cols;
    // Three characters or more go through the trigram index as one literal phrase; shorter
    // text is matched with LIKE (literal too: see `like_literal`).
    let indexed = search.filter(|_| query.q.as_deref().is_some_and(|q| q.chars().count() >= 3));
    let text = match indexed {
        Some(index) => format!("{id} IN (SELECT rowid FROM {index} WHERE {index} MATCH ?8)"),
        None => format!("{error} LIKE '%' || ?8 || '%' ESCAPE '\\'"),
    };
    // Only the filters given are written into the query (each keeps its parameter number):
    // an `(?2 IS NULL OR status = ?2)` form would keep the planner off the status index and
    // scan every run for a rare status.
    let filters = [
        (query.workflow.is_some(), "r.workflow = ?1".to_owned()),
        (query.status.is_some(), format!("{status} = ?2")),
        (query.team.is_some(), "r.team = ?3".to_owned()),
        // A known mode is written as a literal, so `mode = 'test'` can walk the partial
        // index of test runs instead of every run.
        (
            query.mode.is_some(),
            match query.mode.as_deref().and_then(RunMode::parse) {
                Some(mode) => format!("r.mode = '{}'", mode.as_str()),
                None => "r.mode = ?4".to_owned(),
            },
        ),
        (query.record_id.is_some(), "r.record_id = ?5".to_owned()),
        (query.since.is_some(), format!("{at} >= ?6")),
        (query.until.is_some(), format!("{at} < ?7")),
        (query.q.is_some(), text),
        (query.cursor.is_some(), format!("{id} < ?9")),
    ];
    let conditions: Vec<String> = filters
        .into_iter()
        .filter_map(|(given, condition)| given.then_some(condition))
        .collect();
    let conditions = match conditions.is_empty() {
        true => "1".to_owned(),
        false => conditions.join(" AND "),
    };
    let sql = format!("{select} WHERE {conditions} ORDER BY {id} DESC LIMIT ?10");
    let q = match indexed {
        Some(_) => query.q.as_deref().map(phrase),
        None => query.q.as_deref().map(like_literal),
    };
    let cursor = match &query.cursor {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| StoreError::Invalid(format!("cursor `{c}` is not valid")))?,
        ),
        None => None,
    };
    if query
        .q
        .as_deref()
        .is_some_and(|q| q.chars().any(char::is_control))
    {
        return Err(StoreError::Invalid(
            "q may not contain control characters".into(),
        ));
    }
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let items: Vec<T> = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                query.workflow,
                query.status,
                query.team,
                query.mode,
                query.record_id,
                query.since.map(ms),
                query.until.map(ms),
                q,
                cursor,
                limit as i64
            ],
            row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    let next_cursor = items
        .last()
        .filter(|_| items.len() == limit)
        .map(|last| id_of(last).to_string());
    Ok(Page { items, next_cursor })
}

/// Runs still queued and never started that were queued before `before`, per workflow
/// (walks the status index's queued runs only).
pub fn queued_before(
    conn: &Connection,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(String, i64)>> {
    let list = conn
        .prepare_cached(
            "SELECT workflow, COUNT(*) FROM runs INDEXED BY runs_status \
             WHERE status = 'queued' AND started_at IS NULL AND queued_at < ? GROUP BY workflow",
        )?
        .query_map([ms(before)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

/// `text` as an FTS5 phrase that matches itself only (double quotes doubled).
fn phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `text` as a LIKE pattern that matches itself only (`%`, `_` and `\` escaped with `\`):
/// free-text search is literal.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(query: &RunQuery) -> String {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let select = format!("EXPLAIN QUERY PLAN SELECT {RUN_COLUMNS} FROM {RUN_FROM}");
        let plan: Vec<String> = page(
            &conn,
            &select,
            query,
            &Columns::RUNS,
            |r| r.get::<_, String>(3),
            |_| 0,
        )
        .unwrap()
        .items;
        plan.join("; ")
    }

    /// A page filtered by a rare status walks the status index, not every run.
    #[test]
    fn a_status_filter_uses_the_status_index() {
        let plan = plan(&RunQuery {
            status: Some("failed".into()),
            mode: Some("live".into()),
            ..RunQuery::default()
        });
        assert!(
            plan.contains("USING INDEX runs_status") && !plan.contains("TEMP B-TREE"),
            "{plan}"
        );
    }

    /// Test runs are listed from their own index, not found among every live run.
    #[test]
    fn the_test_runs_are_listed_from_their_index() {
        let plan = plan(&RunQuery {
            mode: Some("test".into()),
            ..RunQuery::default()
        });
        assert!(plan.contains("USING INDEX runs_test"), "{plan}");
    }
}
