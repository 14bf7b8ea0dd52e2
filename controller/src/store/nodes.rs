//! Node rows: the node's XML configuration and its "temporarily offline" mark.

use rusqlite::{Connection, OptionalExtension, params};
use steward_protocol::node_xml::NodeConfig;
use steward_protocol::xml::stored_without_nul;

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

/// Outcome of writes that can collide with another node's name.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    NotFound,
    NameTaken,
}

fn row_to_record(
    xml: String,
    message: Option<String>,
    by: Option<String>,
) -> Result<NodeRecord, StoreError> {
    let config = NodeConfig::from_xml(&stored_without_nul(&xml))
        .map_err(|e| StoreError::Corrupt(format!("node XML: {e}")))?;
    let temporarily_offline = message.map(|message| OfflineMark {
        message,
        by: by.unwrap_or_default(),
    });
    Ok(NodeRecord {
        config,
        temporarily_offline,
    })
}

/// Inserts a new node; `NameTaken` when the name exists.
pub fn insert(conn: &Connection, config: &NodeConfig) -> Result<WriteOutcome, StoreError> {
    let now = now_unix();
    let inserted = conn.execute(
        "INSERT INTO nodes (name, config_xml, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT(name) DO NOTHING",
        params![config.name, config.to_xml(), now],
    )?;
    Ok(if inserted == 1 {
        WriteOutcome::Done
    } else {
        WriteOutcome::NameTaken
    })
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<NodeRecord>, StoreError> {
    conn.query_row(
        "SELECT config_xml, offline_message, offline_by FROM nodes WHERE name = ?1",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()?
    .map(|(x, m, b)| row_to_record(x, m, b))
    .transpose()
}

/// All nodes, by name.
pub fn list(conn: &Connection) -> Result<Vec<NodeRecord>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT config_xml, offline_message, offline_by FROM nodes ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.map(|row| {
        let (x, m, b) = row?;
        row_to_record(x, m, b)
    })
    .collect()
}

/// Replaces `old_name`'s configuration, renaming when `config.name` differs.
pub fn replace(
    conn: &mut Connection,
    old_name: &str,
    config: &NodeConfig,
) -> Result<WriteOutcome, StoreError> {
    let tx = conn.transaction()?;
    if old_name != config.name {
        let taken: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM nodes WHERE name = ?1)",
            [&config.name],
            |r| r.get(0),
        )?;
        if taken {
            return Ok(WriteOutcome::NameTaken);
        }
    }
    let changed = tx.execute(
        "UPDATE nodes SET name = ?1, config_xml = ?2, updated_at = ?3 WHERE name = ?4",
        params![config.name, config.to_xml(), now_unix(), old_name],
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
                assert_eq!(insert(c, &node)?, WriteOutcome::Done);
                assert_eq!(insert(c, &node)?, WriteOutcome::NameTaken);
                assert_eq!(get(c, "a")?.unwrap().config, node);
                let mark = OfflineMark {
                    message: "maint".into(),
                    by: "admin".into(),
                };
                assert!(set_offline(c, "a", Some(&mark))?);
                assert_eq!(get(c, "a")?.unwrap().temporarily_offline, Some(mark));
                insert(c, &NodeConfig::inbound("b"))?;
                node.name = "b".into();
                assert_eq!(replace(c, "a", &node)?, WriteOutcome::NameTaken);
                node.name = "c".into();
                assert_eq!(replace(c, "a", &node)?, WriteOutcome::Done);
                assert!(get(c, "a")?.is_none());
                assert_eq!(
                    list(c)?
                        .iter()
                        .map(|n| n.config.name.clone())
                        .collect::<Vec<_>>(),
                    ["b", "c"]
                );
                assert!(delete(c, "b")?);
                assert!(!delete(c, "b")?);
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
                assert_eq!(get(c, "a")?.unwrap().config.description, "x\u{fffd}y");
                Ok(())
            })
            .await
            .unwrap();
    }
}
