//! Stored credentials: one row per id, the credential sealed (`credentials::vault`), with
//! its kind and creation time in the clear for listing.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// A stored credential, still sealed.
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    pub sealed: Vec<u8>,
}

pub fn all(conn: &Connection) -> Result<Vec<CredentialRow>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, sealed FROM credentials ORDER BY created_ms, id")?;
    let rows = stmt.query_map([], |r| {
        Ok(CredentialRow {
            id: r.get(0)?,
            sealed: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<CredentialRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, sealed FROM credentials WHERE id = ?1",
            [id],
            |r| {
                Ok(CredentialRow {
                    id: r.get(0)?,
                    sealed: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Adds a credential; false when the id is taken.
pub fn insert(
    conn: &Connection,
    id: &str,
    class: &str,
    sealed: &[u8],
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "INSERT INTO credentials (id, class, sealed, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (id) DO NOTHING",
        params![id, class, sealed, now_ms],
    )? == 1)
}

/// Replaces credential `id` with `new_id`'s sealed value; false when `id` is unknown.
pub fn replace(
    conn: &Connection,
    id: &str,
    new_id: &str,
    class: &str,
    sealed: &[u8],
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE credentials SET id = ?2, class = ?3, sealed = ?4, updated_ms = ?5 WHERE id = ?1",
        params![id, new_id, class, sealed, now_ms],
    )? == 1)
}

pub fn delete(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM credentials WHERE id = ?1", [id])? == 1)
}
