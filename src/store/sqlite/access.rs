//! API tokens (stored as hashes) and the audit log of control actions.

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, ms};
use super::writer::Tx;
use crate::domain::link::{KEY_BYTES, LinkKey};
use crate::store::{NewAudit, Result, StoreError};
use crate::wire::{AuditEntry, Page, Role, TokenView};

const TOKEN_COLUMNS: &str = "id, name, role, created_at, revoked_at";

fn token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenView> {
    Ok(TokenView {
        id: r.get(0)?,
        name: r.get(1)?,
        role: rows::parsed(r.get(2)?, Role::parse, "role")?,
        created_at: rows::time(r.get(3)?),
        revoked_at: r.get::<_, Option<i64>>(4)?.map(rows::time),
    })
}

pub fn create_token(tx: &mut Tx<'_>, name: &str, role: Role, hash: &str) -> Result<TokenView> {
    tx.conn.execute(
        "INSERT INTO tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?)",
        params![name, role.as_str(), hash, ms(tx.now)],
    )?;
    let id = tx.conn.last_insert_rowid();
    Ok(tx.conn.query_row(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?"),
        [id],
        token,
    )?)
}

pub fn revoke_token(tx: &mut Tx<'_>, id: i64) -> Result<()> {
    let changed = tx.conn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        params![ms(tx.now), id],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("active token {id}")));
    }
    Ok(())
}

/// The token with this hash and the hash as stored (for a constant-time comparison).
pub fn token_by_hash(conn: &Connection, hash: &str) -> Result<Option<(TokenView, String)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS}, hash FROM tokens WHERE hash = ?"
        ))?
        .query_row([hash], |r| Ok((token(r)?, r.get(5)?)))
        .optional()?)
}

pub fn tokens(conn: &Connection) -> Result<Vec<TokenView>> {
    let list = conn
        .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY id"))?
        .query_map([], token)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(list)
}

pub fn audit(tx: &mut Tx<'_>, entry: &NewAudit) -> Result<()> {
    tx.conn
        .prepare_cached(
            "INSERT INTO audit_log (at, actor, role, action, target, reason, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            ms(tx.now),
            entry.actor,
            entry.role.as_str(),
            entry.action,
            entry.target,
            entry.reason,
            entry.outcome
        ])?;
    Ok(())
}

pub fn audit_log(conn: &Connection, before: Option<i64>, limit: usize) -> Result<Page<AuditEntry>> {
    let items: Vec<AuditEntry> = conn
        .prepare_cached(
            "SELECT id, at, actor, role, action, target, reason, outcome FROM audit_log \
             WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )?
        .query_map(params![before, limit as i64], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: rows::time(r.get(1)?),
                actor: r.get(2)?,
                role: rows::parsed(r.get(3)?, Role::parse, "role")?,
                action: r.get(4)?,
                target: r.get(5)?,
                reason: r.get(6)?,
                outcome: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Page { items, next_cursor })
}

const KEY_COLUMNS: &str = "id, secret, created_at, retired_at";

fn link_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LinkKey> {
    let secret: Vec<u8> = r.get(1)?;
    let secret: [u8; KEY_BYTES] = secret.try_into().map_err(|bytes: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            format!("a link key of {} bytes, not {KEY_BYTES}", bytes.len()).into(),
        )
    })?;
    Ok(LinkKey {
        id: r.get(0)?,
        secret,
        created_at: rows::time(r.get(2)?),
        retired_at: r.get::<_, Option<i64>>(3)?.map(rows::time),
    })
}

/// One link key, retired or not.
pub fn link_key(conn: &Connection, id: i64) -> Result<Option<LinkKey>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM link_keys WHERE id = ?"))?
        .query_row([id], link_key_row)
        .optional()?)
}

/// The newest key not retired.
pub fn current_link_key(conn: &Connection) -> Result<Option<LinkKey>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM link_keys WHERE retired_at IS NULL ORDER BY id DESC LIMIT 1"
        ))?
        .query_row([], link_key_row)
        .optional()?)
}

/// Adds a key with `secret`, retiring every other one first when `rotate`; answers the
/// current key (without `rotate`, an existing one is kept and `secret` is not stored).
pub fn add_link_key(tx: &mut Tx<'_>, secret: &[u8; KEY_BYTES], rotate: bool) -> Result<LinkKey> {
    if rotate {
        tx.conn.execute(
            "UPDATE link_keys SET retired_at = ? WHERE retired_at IS NULL",
            [ms(tx.now)],
        )?;
    } else if let Some(key) = current_link_key(tx.conn)? {
        return Ok(key);
    }
    tx.conn.execute(
        "INSERT INTO link_keys (secret, created_at) VALUES (?, ?)",
        params![secret.as_slice(), ms(tx.now)],
    )?;
    let id = tx.conn.last_insert_rowid();
    link_key(tx.conn, id)?.ok_or_else(|| StoreError::Other("the new link key vanished".into()))
}
