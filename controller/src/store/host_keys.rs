//! Each node's SSH host key, as its agent reports it when it connects. A key that differs
//! from the one on record is kept, with the previous one and when it changed, so the change
//! shows in `node-info` until the node's key is trusted again.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// A node's host key record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostKey {
    /// `ssh-ed25519 BASE64`; `None` until the agent first reports one.
    pub key: Option<String>,
    /// The key before the last change, and when it changed (ms since the epoch).
    pub previous: Option<String>,
    pub changed_ms: Option<i64>,
}

/// What recording a reported key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// No key was on record; this one is now.
    First,
    Same,
    /// The key differs from the one on record: the previous one.
    Changed {
        previous: String,
    },
    /// The node is not in the store (deleted meanwhile).
    NoNode,
}

pub fn get(conn: &Connection, node: &str) -> Result<Option<HostKey>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT ssh_host_key, ssh_host_key_previous, ssh_host_key_changed_ms FROM nodes
             WHERE name = ?1",
            [node],
            |r| {
                Ok(HostKey {
                    key: r.get(0)?,
                    previous: r.get(1)?,
                    changed_ms: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Records `key` as the node's host key at `now_ms`.
pub fn record(
    conn: &mut Connection,
    node: &str,
    key: &str,
    now_ms: i64,
) -> Result<Recorded, StoreError> {
    let tx = conn.transaction()?;
    let Some(current) = get(&tx, node)? else {
        return Ok(Recorded::NoNode);
    };
    let outcome = match current.key {
        None => {
            tx.execute(
                "UPDATE nodes SET ssh_host_key = ?1 WHERE name = ?2",
                params![key, node],
            )?;
            Recorded::First
        }
        Some(known) if known == key => Recorded::Same,
        Some(previous) => {
            tx.execute(
                "UPDATE nodes SET ssh_host_key = ?1, ssh_host_key_previous = ?2,
                 ssh_host_key_changed_ms = ?3 WHERE name = ?4",
                params![key, previous, now_ms, node],
            )?;
            Recorded::Changed { previous }
        }
    };
    tx.commit()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn first_same_and_changed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                c.execute(
                    "INSERT INTO nodes (name, config_xml, created_at, updated_at) VALUES ('a', '<slave/>', 0, 0)",
                    [],
                )?;
                assert_eq!(get(c, "a")?, Some(HostKey::default()));
                assert_eq!(record(c, "a", "ssh-ed25519 K1", 5)?, Recorded::First);
                assert_eq!(record(c, "a", "ssh-ed25519 K1", 6)?, Recorded::Same);
                assert_eq!(
                    record(c, "a", "ssh-ed25519 K2", 7)?,
                    Recorded::Changed {
                        previous: "ssh-ed25519 K1".into()
                    }
                );
                assert_eq!(
                    get(c, "a")?,
                    Some(HostKey {
                        key: Some("ssh-ed25519 K2".into()),
                        previous: Some("ssh-ed25519 K1".into()),
                        changed_ms: Some(7),
                    })
                );
                assert_eq!(record(c, "b", "ssh-ed25519 K1", 8)?, Recorded::NoNode);
                Ok(())
            })
            .await
            .unwrap();
    }
}
