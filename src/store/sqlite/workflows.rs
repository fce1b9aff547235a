//! Workflow drafts and immutable published versions.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::domain::rollup::spans;
use crate::domain::workflow::{draft_saved_event, published_event, rolled_back_event};
use crate::store::{Result, StoreError};
use crate::wire::{VersionView, WorkflowView};

/// Saves a draft; `args` is key, name, team, source, actor.
pub fn save_draft(tx: &mut Tx<'_>, args: &[String; 5]) -> Result<()> {
    let [key, name, team, source, actor] = args;
    tx.conn.execute(
        "INSERT INTO workflows (key, name, team, draft_source, draft_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (key) DO UPDATE SET name = ?2, team = ?3, draft_source = ?4, draft_by = ?5, updated_at = ?6",
        params![key, name, team, source, actor, ms(tx.now)],
    )?;
    tx.emit(draft_saved_event(actor), Some(key), None)
}

/// Turns the draft into the next version and publishes it.
pub fn publish(tx: &mut Tx<'_>, key: &str, actor: &str) -> Result<i64> {
    let draft: Option<String> = tx
        .conn
        .query_row(
            "SELECT draft_source FROM workflows WHERE key = ?",
            [key],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("workflow `{key}`")))?;
    let source = draft
        .ok_or_else(|| StoreError::Conflict(format!("workflow `{key}` has no draft to publish")))?;
    let version: i64 = tx.conn.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM workflow_versions WHERE workflow = ?",
        [key],
        |r| r.get(0),
    )?;
    let now = ms(tx.now);
    tx.conn.execute(
        "INSERT INTO workflow_versions (workflow, version, source, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        params![key, version, source, now, actor],
    )?;
    tx.conn.execute(
        "UPDATE workflows SET published_version = ?, draft_source = NULL, draft_by = NULL, updated_at = ? WHERE key = ?",
        params![version, now, key],
    )?;
    tx.emit(published_event(version, actor), Some(key), None)?;
    Ok(version)
}

/// Publishes an earlier version again; nothing is deleted.
pub fn rollback(tx: &mut Tx<'_>, key: &str, version: i64, actor: &str) -> Result<()> {
    let current = current_version(tx.conn, key)?;
    version_view(tx.conn, key, version)?;
    if current == Some(version) {
        return Err(StoreError::Conflict(format!(
            "version {version} of `{key}` is already published"
        )));
    }
    tx.conn.execute(
        "UPDATE workflows SET published_version = ?, updated_at = ? WHERE key = ?",
        params![version, ms(tx.now), key],
    )?;
    let event = rolled_back_event(current, version, actor);
    tx.emit(event, Some(key), None)
}

fn current_version(conn: &Connection, key: &str) -> Result<Option<i64>> {
    conn.query_row(
        "SELECT published_version FROM workflows WHERE key = ?",
        [key],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("workflow `{key}`")))
}

/// Every workflow, with the runs queued and failed in the last 24 hours from the rollups.
pub fn list(conn: &Connection) -> Result<Vec<WorkflowView>> {
    let now = chrono::Utc::now();
    let day = spans(now - chrono::Duration::hours(24), now);
    let mut list: Vec<WorkflowView> = conn
        .prepare_cached(
            "SELECT key, name, team, published_version, \
             (SELECT COALESCE(MAX(version), 0) FROM workflow_versions v WHERE v.workflow = w.key), \
             draft_source IS NOT NULL, updated_at FROM workflows w ORDER BY key",
        )?
        .query_map([], |r| {
            Ok(WorkflowView {
                key: r.get(0)?,
                name: r.get(1)?,
                team: r.get(2)?,
                published_version: r.get(3)?,
                latest_version: r.get(4)?,
                has_draft: r.get(5)?,
                updated_at: rows::time(r.get(6)?),
                runs_24h: 0,
                failed_24h: 0,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for view in &mut list {
        (view.runs_24h, view.failed_24h) = super::rollups::counts(conn, &view.key, &day)?;
    }
    Ok(list)
}

const VERSION_SELECT: &str = "SELECT v.workflow, v.version, w.published_version = v.version, v.source, v.created_at, \
     v.created_by FROM workflow_versions v JOIN workflows w ON w.key = v.workflow";

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionView> {
    Ok(VersionView {
        workflow: r.get(0)?,
        version: r.get(1)?,
        published: r.get::<_, Option<bool>>(2)?.unwrap_or(false),
        source: r.get(3)?,
        created_at: rows::time(r.get(4)?),
        created_by: r.get(5)?,
    })
}

pub fn versions(conn: &Connection, key: &str) -> Result<Vec<VersionView>> {
    let list = conn
        .prepare_cached(&format!(
            "{VERSION_SELECT} WHERE v.workflow = ? ORDER BY v.version"
        ))?
        .query_map([key], version_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

pub fn version_view(conn: &Connection, key: &str, version: i64) -> Result<VersionView> {
    conn.prepare_cached(&format!(
        "{VERSION_SELECT} WHERE v.workflow = ? AND v.version = ?"
    ))?
    .query_row(params![key, version], version_row)
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("version {version} of workflow `{key}`")))
}

pub fn draft(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT draft_source FROM workflows WHERE key = ?",
            [key],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}
