//! The rollup table: sums per (workflow, grain, bucket start), added to once per batch.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows;
use crate::domain::rollup::{self, Bucket, Span, Tally};
use crate::store::{Result, RollupRow};

const COLUMNS: &str = "queued, succeeded, failed, cancelled, durations, failures";

/// A bucket from its stored columns. A sketch or a signature list that does not decode is
/// dropped with a warning (its counts stay), so one bad row never stops the writer.
fn bucket(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Bucket> {
    let blob: Option<Vec<u8>> = r.get(first + 4)?;
    let durations =
        Bucket::durations_from(blob.as_deref().unwrap_or_default()).unwrap_or_else(|e| {
            tracing::warn!("a rollup's durations do not decode ({e:?}); counted from now on");
            Bucket::default().durations
        });
    Ok(Bucket {
        queued: r.get(first)?,
        succeeded: r.get(first + 1)?,
        failed: r.get(first + 2)?,
        cancelled: r.get(first + 3)?,
        durations,
        failures: rows::json(r.get(first + 5)?).unwrap_or_default(),
    })
}

/// Adds tallies to their minute and hour rows (one read and one write per row touched).
pub fn add(conn: &Connection, tallies: &[Tally]) -> Result<()> {
    for ((grain, start, workflow), (team, sums)) in rollup::sum(tallies) {
        let mut total = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM rollups WHERE workflow = ? AND grain = ? AND start = ?"
            ))?
            .query_row(params![workflow, grain, start], |r| bucket(r, 0))
            .optional()?
            .unwrap_or_default();
        total.merge(&sums);
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO rollups (workflow, grain, start, team, {COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))?
        .execute(params![
            workflow,
            grain,
            start,
            team,
            total.queued,
            total.succeeded,
            total.failed,
            total.cancelled,
            total.durations_bytes(),
            rows::to_json(&total.failures),
        ])?;
    }
    Ok(())
}

/// Every workflow's rows in `spans`.
pub fn read(conn: &Connection, spans: &[Span]) -> Result<Vec<RollupRow>> {
    let mut list = Vec::new();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT r.workflow, r.team, r.start, {COLUMNS} FROM workflows w \
         JOIN rollups r ON r.workflow = w.key AND r.grain = ?1 AND r.start >= ?2 AND r.start < ?3"
    ))?;
    for span in spans {
        let found = statement.query_map(params![span.grain, span.from, span.to], |r| {
            Ok(RollupRow {
                workflow: r.get(0)?,
                team: r.get(1)?,
                start: rows::time(r.get(2)?),
                bucket: bucket(r, 3)?,
            })
        })?;
        for row in found {
            list.push(row?);
        }
    }
    Ok(list)
}

/// Runs queued and runs failed by `workflow` in `spans` (counts only, no sketches).
pub fn counts(conn: &Connection, workflow: &str, spans: &[Span]) -> Result<(i64, i64)> {
    let mut statement = conn.prepare_cached(
        "SELECT COALESCE(SUM(queued), 0), COALESCE(SUM(failed), 0) FROM rollups \
         WHERE workflow = ? AND grain = ? AND start >= ? AND start < ?",
    )?;
    let mut total = (0, 0);
    for span in spans {
        let (queued, failed): (i64, i64) = statement
            .query_row(params![workflow, span.grain, span.from, span.to], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        total = (total.0 + queued, total.1 + failed);
    }
    Ok(total)
}

/// Sums every run already in the log into the rollups (the migration that adds them), a
/// chunk of runs at a time.
pub fn backfill(conn: &Connection) -> Result<()> {
    const CHUNK: i64 = 20_000;
    let mut after = 0;
    loop {
        let mut tallies = Vec::new();
        let mut last = None;
        let mut statement = conn.prepare(
            "SELECT id, workflow, team, mode, status, queued_at, started_at, finished_at, \
             json_extract(error, '$.message') FROM runs WHERE id > ? ORDER BY id LIMIT ?",
        )?;
        let mut found = statement.query(params![after, CHUNK])?;
        while let Some(r) = found.next()? {
            last = Some(r.get::<_, i64>(0)?);
            let (workflow, team): (String, String) = (r.get(1)?, r.get(2)?);
            let mode = rows::parsed(r.get(3)?, crate::wire::RunMode::parse, "run mode")?;
            let status = rows::parsed(r.get(4)?, crate::wire::RunStatus::parse, "run status")?;
            tallies.extend(Tally::queued(&workflow, &team, mode, rows::time(r.get(5)?)));
            if let Some(end) = r.get::<_, Option<i64>>(7)? {
                let started = r.get::<_, Option<i64>>(6)?.map(rows::time);
                let error: Option<String> = r.get(8)?;
                tallies.extend(Tally::ended(
                    (&workflow, &team, mode),
                    status,
                    started,
                    rows::time(end),
                    error.as_deref(),
                ));
            }
        }
        match last {
            Some(id) => after = id,
            None => return Ok(()),
        }
        add(conn, &tallies)?;
    }
}
