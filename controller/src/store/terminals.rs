//! Terminals' rows: name, node, driver and options, the parameters (secrets in a column of
//! their own, which nothing prints), and the recordings of their runs.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// A terminal as stored. Its `Debug` shows the secrets' names, not their values.
#[derive(Clone, PartialEq, Eq)]
pub struct TerminalRow {
    pub name: String,
    pub node: String,
    /// `cmd`.
    pub driver: String,
    pub ondemand: bool,
    /// `on`: it should run; `off`: stopped by a user.
    pub enabled: bool,
    /// Parameters that may be shown.
    pub params: BTreeMap<String, String>,
    /// Parameters that are never shown back (passwords, keys).
    pub secrets: BTreeMap<String, String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl std::fmt::Debug for TerminalRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalRow")
            .field("name", &self.name)
            .field("node", &self.node)
            .field("driver", &self.driver)
            .field("ondemand", &self.ondemand)
            .field("enabled", &self.enabled)
            .field("params", &self.params)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One recording: a run of a terminal, or the part of it one controller process saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    pub id: String,
    pub terminal: String,
    pub run: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub output_bytes: u64,
    pub width: u16,
    pub height: u16,
}

fn json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

fn map(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("terminal parameters: {e}")))
}

const COLUMNS: &str =
    "name, node, driver, ondemand, enabled, params, secrets, created_ms, updated_ms";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TerminalRow, String, String)> {
    Ok((
        TerminalRow {
            name: r.get(0)?,
            node: r.get(1)?,
            driver: r.get(2)?,
            ondemand: r.get(3)?,
            enabled: r.get(4)?,
            params: BTreeMap::new(),
            secrets: BTreeMap::new(),
            created_ms: r.get(7)?,
            updated_ms: r.get(8)?,
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn finish(
    (mut row, params, secrets): (TerminalRow, String, String),
) -> Result<TerminalRow, StoreError> {
    row.params = map(&params)?;
    row.secrets = map(&secrets)?;
    Ok(row)
}

/// Inserts a new terminal; `false` when the name is taken.
pub fn insert(conn: &Connection, row: &TerminalRow) -> Result<bool, StoreError> {
    let inserted = conn.execute(
        &format!("INSERT OR IGNORE INTO terminals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            row.name,
            row.node,
            row.driver,
            row.ondemand,
            row.enabled,
            json(&row.params),
            json(&row.secrets),
            row.created_ms,
            row.updated_ms
        ],
    )?;
    Ok(inserted == 1)
}

/// Replaces a terminal's settings; `false` when there is no such terminal.
pub fn update(conn: &Connection, row: &TerminalRow) -> Result<bool, StoreError> {
    let updated = conn.execute(
        "UPDATE terminals SET node = ?2, driver = ?3, ondemand = ?4, enabled = ?5, params = ?6,
         secrets = ?7, updated_ms = ?8 WHERE name = ?1",
        params![
            row.name,
            row.node,
            row.driver,
            row.ondemand,
            row.enabled,
            json(&row.params),
            json(&row.secrets),
            row.updated_ms
        ],
    )?;
    Ok(updated == 1)
}

/// Deletes a terminal and its recordings' rows; `false` when there is no such terminal.
pub fn delete(conn: &mut Connection, name: &str) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let deleted = tx.execute("DELETE FROM terminals WHERE name = ?1", [name])?;
    tx.execute(
        "DELETE FROM terminal_recordings WHERE terminal = ?1",
        [name],
    )?;
    tx.commit()?;
    Ok(deleted == 1)
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<TerminalRow>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM terminals WHERE name = ?1"),
        [name],
        read_row,
    )
    .optional()?
    .map(finish)
    .transpose()
}

/// Every terminal, by name.
pub fn list(conn: &Connection) -> Result<Vec<TerminalRow>, StoreError> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM terminals ORDER BY name"))?;
    let rows = statement.query_map([], read_row)?;
    rows.map(|r| finish(r?)).collect()
}

pub fn insert_recording(conn: &Connection, row: &RecordingRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO terminal_recordings
         (id, terminal, run, started_ms, ended_ms, output_bytes, width, height)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            row.id,
            row.terminal,
            row.run,
            row.started_ms,
            row.ended_ms,
            row.output_bytes as i64,
            row.width,
            row.height
        ],
    )?;
    Ok(())
}

/// Records how a recording ended.
pub fn end_recording(
    conn: &Connection,
    id: &str,
    ended_ms: i64,
    output_bytes: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE terminal_recordings SET ended_ms = ?2, output_bytes = ?3 WHERE id = ?1",
        params![id, ended_ms, output_bytes as i64],
    )?;
    Ok(())
}

/// A terminal's recordings (every terminal's with `None`), oldest first.
pub fn recordings(
    conn: &Connection,
    terminal: Option<&str>,
) -> Result<Vec<RecordingRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT id, terminal, run, started_ms, ended_ms, output_bytes, width, height
         FROM terminal_recordings WHERE ?1 IS NULL OR terminal = ?1
         ORDER BY terminal, started_ms, id",
    )?;
    let rows = statement.query_map([terminal], |r| {
        Ok(RecordingRow {
            id: r.get(0)?,
            terminal: r.get(1)?,
            run: r.get(2)?,
            started_ms: r.get(3)?,
            ended_ms: r.get(4)?,
            output_bytes: r.get::<_, i64>(5)? as u64,
            width: r.get(6)?,
            height: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn delete_recordings(conn: &mut Connection, ids: &[String]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for id in ids {
        tx.execute("DELETE FROM terminal_recordings WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> TerminalRow {
        TerminalRow {
            name: name.into(),
            node: "n1".into(),
            driver: "cmd".into(),
            ondemand: false,
            enabled: true,
            params: BTreeMap::from([("cmd".into(), "bash".into())]),
            secrets: BTreeMap::from([("password".into(), "s3cret".into())]),
            created_ms: 1,
            updated_ms: 1,
        }
    }

    #[tokio::test]
    async fn terminals_are_inserted_once_updated_listed_and_deleted_with_their_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                assert!(insert(c, &row("a"))?);
                assert!(!insert(c, &row("a"))?, "a name is taken once");
                let mut changed = row("a");
                changed.enabled = false;
                assert!(update(c, &changed)?);
                assert!(!update(c, &row("b"))?);
                assert_eq!(get(c, "a")?, Some(changed));
                insert_recording(
                    c,
                    &RecordingRow {
                        id: "r1".into(),
                        terminal: "a".into(),
                        run: "x".into(),
                        started_ms: 5,
                        ended_ms: None,
                        output_bytes: 0,
                        width: 80,
                        height: 24,
                    },
                )?;
                end_recording(c, "r1", 9, 42)?;
                let recorded = recordings(c, Some("a"))?;
                assert_eq!(
                    (recorded[0].ended_ms, recorded[0].output_bytes),
                    (Some(9), 42)
                );
                assert!(delete(c, "a")?);
                assert!(recordings(c, None)?.is_empty());
                assert!(list(c)?.is_empty());
                Ok(())
            })
            .await
            .unwrap();
    }
}
