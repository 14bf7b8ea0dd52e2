//! Node rows: the node's XML configuration and its "temporarily offline" mark. Rows are
//! read and written as text: parsing is the caller's work, after the store call
//! ([`NodeRow::parse`]), so it never holds the connection.

use rusqlite::{Connection, OptionalExtension, params};
use steward_protocol::node_xml::NodeConfig;
use steward_protocol::xml::stored_without_nul;

use super::name_keys::{self, Named};
use super::{StoreError, now_unix};

/// Set by `offline-node`: no new work until `online-node`. Survives restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMark {
    pub message: String,
    pub by: String,
}

/// A stored node.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub config: NodeConfig,
    pub temporarily_offline: Option<OfflineMark>,
}

/// A node's row as stored, not parsed yet.
#[derive(Debug, Clone)]
pub struct NodeRow {
    xml: String,
    message: Option<String>,
    by: Option<String>,
}

impl NodeRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRow> {
        Ok(NodeRow {
            xml: r.get(0)?,
            message: r.get(1)?,
            by: r.get(2)?,
        })
    }

    pub fn parse(self) -> Result<NodeRecord, StoreError> {
        let config = NodeConfig::from_xml(&stored_without_nul(&self.xml))
            .map_err(|e| StoreError::Corrupt(format!("node XML: {e}")))?;
        let temporarily_offline = self.message.map(|message| OfflineMark {
            message,
            by: self.by.unwrap_or_default(),
        });
        Ok(NodeRecord {
            config,
            temporarily_offline,
        })
    }
}

/// Outcome of writes that can collide with another node's name.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    NotFound,
    NameTaken,
    /// Another node's name differs from this one only by case or compatibility form: that
    /// node's name.
    LooksLike(String),
}

fn exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM nodes WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

/// Inserts node `name` stored as `xml` (its [`NodeConfig::to_xml`]); `NameTaken` when the
/// name exists, `LooksLike` when another differs from it only by case or compatibility form.
///
/// The checks and the insert are one step for the controller, whose writes all go through
/// one [`super::Store::call`] at a time.
pub fn insert(conn: &Connection, name: &str, xml: &str) -> Result<WriteOutcome, StoreError> {
    if exists(conn, name)? {
        return Ok(WriteOutcome::NameTaken);
    }
    if let Some(existing) = name_keys::lookalike(conn, Named::Nodes, name, None)? {
        return Ok(WriteOutcome::LooksLike(existing));
    }
    conn.execute(
        "INSERT INTO nodes (name, config_xml, created_at, updated_at, name_key)
         VALUES (?1, ?2, ?3, ?3, ?4)",
        params![
            name,
            xml,
            now_unix(),
            steward_protocol::names::lookalike_key(name)
        ],
    )?;
    Ok(WriteOutcome::Done)
}

/// The row of node `name`, unparsed.
pub fn get(conn: &Connection, name: &str) -> Result<Option<NodeRow>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT config_xml, offline_message, offline_by FROM nodes WHERE name = ?1",
            [name],
            NodeRow::read,
        )
        .optional()?)
}

/// All nodes' rows, unparsed, by name.
pub fn list(conn: &Connection) -> Result<Vec<NodeRow>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT config_xml, offline_message, offline_by FROM nodes ORDER BY name")?;
    let rows = stmt.query_map([], NodeRow::read)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces `old_name`'s configuration with `xml`, renaming it to `new_name` when that
/// differs (refused, as for [`insert`], when the new name is taken or looks like one taken).
pub fn replace(
    conn: &mut Connection,
    old_name: &str,
    new_name: &str,
    xml: &str,
) -> Result<WriteOutcome, StoreError> {
    let tx = conn.transaction()?;
    if old_name != new_name {
        if exists(&tx, new_name)? {
            return Ok(WriteOutcome::NameTaken);
        }
        if let Some(existing) = name_keys::lookalike(&tx, Named::Nodes, new_name, Some(old_name))? {
            return Ok(WriteOutcome::LooksLike(existing));
        }
    }
    let changed = tx.execute(
        "UPDATE nodes SET name = ?1, config_xml = ?2, updated_at = ?3, name_key = ?4
         WHERE name = ?5",
        params![
            new_name,
            xml,
            now_unix(),
            steward_protocol::names::lookalike_key(new_name),
            old_name
        ],
    )?;
    tx.commit()?;
    Ok(if changed == 1 {
        WriteOutcome::Done
    } else {
        WriteOutcome::NotFound
    })
}

/// Deletes a node; `false` when it did not exist.
pub fn delete(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM nodes WHERE name = ?1", [name])? == 1)
}

/// Sets or clears the temporarily-offline mark; `false` when the node does not exist.
pub fn set_offline(
    conn: &Connection,
    name: &str,
    mark: Option<&OfflineMark>,
) -> Result<bool, StoreError> {
    let (message, by) = match mark {
        Some(m) => (Some(m.message.as_str()), Some(m.by.as_str())),
        None => (None, None),
    };
    Ok(conn.execute(
        "UPDATE nodes SET offline_message = ?1, offline_by = ?2, updated_at = ?3 WHERE name = ?4",
        params![message, by, now_unix(), name],
    )? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn node_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                let mut node = NodeConfig::inbound("a");
                node.labels = "linux".into();
                let xml = node.to_xml();
                assert_eq!(insert(c, "a", &xml)?, WriteOutcome::Done);
                assert_eq!(insert(c, "a", &xml)?, WriteOutcome::NameTaken);
                assert_eq!(get(c, "a")?.unwrap().parse()?.config, node);
                let mark = OfflineMark {
                    message: "maint".into(),
                    by: "admin".into(),
                };
                assert!(set_offline(c, "a", Some(&mark))?);
                assert_eq!(
                    get(c, "a")?.unwrap().parse()?.temporarily_offline,
                    Some(mark)
                );
                insert(c, "b", &NodeConfig::inbound("b").to_xml())?;
                node.name = "b".into();
                assert_eq!(
                    replace(c, "a", "b", &node.to_xml())?,
                    WriteOutcome::NameTaken
                );
                node.name = "c".into();
                assert_eq!(replace(c, "a", "c", &node.to_xml())?, WriteOutcome::Done);
                assert!(get(c, "a")?.is_none());
                let names: Vec<String> = list(c)?
                    .into_iter()
                    .map(|row| row.parse().map(|r| r.config.name))
                    .collect::<Result<_, _>>()?;
                assert_eq!(names, ["b", "c"]);
                assert!(delete(c, "b")?);
                assert!(!delete(c, "b")?);
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_name_that_only_looks_like_another_is_refused_on_create_and_rename() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                let xml = |name: &str| NodeConfig::inbound(name).to_xml();
                assert_eq!(insert(c, "Linux", &xml("Linux"))?, WriteOutcome::Done);
                assert_eq!(insert(c, "other", &xml("other"))?, WriteOutcome::Done);
                let taken = WriteOutcome::LooksLike("Linux".into());
                assert_eq!(insert(c, "LINUX", &xml("LINUX"))?, taken);
                assert_eq!(replace(c, "other", "linux", &xml("linux"))?, taken);
                // A node may take another case of its own name.
                assert_eq!(
                    replace(c, "Linux", "linux", &xml("linux"))?,
                    WriteOutcome::Done
                );
                assert_eq!(
                    insert(c, "LINUX", &xml("LINUX"))?,
                    WriteOutcome::LooksLike("linux".into())
                );
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_nul_stored_by_an_earlier_version_reads_as_a_replacement_character() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                c.execute(
                    "INSERT INTO nodes (name, config_xml, created_at, updated_at) VALUES ('a', ?1, 0, 0)",
                    params!["<slave><name>a</name><description>x\0y</description></slave>"],
                )?;
                let node = get(c, "a")?.unwrap().parse()?;
                assert_eq!(node.config.description, "x\u{fffd}y");
                Ok(())
            })
            .await
            .unwrap();
    }
}
