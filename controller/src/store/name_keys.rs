//! The `name_key` column of `jobs` and `nodes`: each name's look-alike key
//! ([`steward_protocol::names::lookalike_key`]), so a new name that differs from a stored one
//! only by case or compatibility form (`J1` and `j1`, `ﬁ` and `fi`) is found with an index
//! lookup, in the same store call as the write it refuses.
//!
//! The column is not unique: names stored before it existed that share a key are left as
//! they are, each still found under its own spelling; only new names are refused.

use rusqlite::{Connection, OptionalExtension, params};
use steward_protocol::names::lookalike_key;

use super::StoreError;

/// A table whose rows are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Jobs,
    Nodes,
}

impl Named {
    fn table(self) -> &'static str {
        match self {
            Named::Jobs => "jobs",
            Named::Nodes => "nodes",
        }
    }
}

/// Sets every row's key that is missing (rows from before the column) or differs from what
/// this build computes (a newer Unicode version). Returns how many rows changed.
pub fn refresh(conn: &mut Connection, named: Named) -> Result<usize, StoreError> {
    let table = named.table();
    let tx = conn.transaction()?;
    let rows: Vec<(String, Option<String>)> = {
        let mut stmt = tx.prepare(&format!("SELECT name, name_key FROM {table}"))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut changed = 0;
    for (name, stored) in rows {
        let key = lookalike_key(&name);
        if stored.as_deref() != Some(key.as_str()) {
            tx.execute(
                &format!("UPDATE {table} SET name_key = ?1 WHERE name = ?2"),
                params![key, name],
            )?;
            changed += 1;
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// Another row whose name looks like `name`: same key, other spelling (`name` itself, and
/// `except`, the row being renamed, do not count).
pub fn lookalike(
    conn: &Connection,
    named: Named,
    name: &str,
    except: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let table = named.table();
    Ok(conn
        .query_row(
            &format!(
                "SELECT name FROM {table} WHERE name_key = ?1 AND name <> ?2 AND name <> ?3
                 ORDER BY name LIMIT 1"
            ),
            params![lookalike_key(name), name, except.unwrap_or(name)],
            |r| r.get(0),
        )
        .optional()?)
}
