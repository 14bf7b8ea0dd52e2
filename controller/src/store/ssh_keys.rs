//! Users' SSH public keys: the keys the controller lets log in to the SSH server of an agent
//! on the user's behalf. A key (by its fingerprint) belongs to one user at most.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// Most keys one user may register: enough for every machine a person uses, few enough that
/// the list passed with each SSH connection stays small.
pub const MAX_KEYS_PER_USER: usize = 64;

/// A registered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyRow {
    pub fingerprint: String,
    pub user: String,
    /// `TYPE BASE64`.
    pub public_key: String,
    pub comment: String,
    pub added_ms: i64,
}

/// What adding a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Added,
    /// The user already has this key: nothing changed.
    AlreadyYours,
    /// Another user has registered this key.
    TakenByOther,
    /// The user has [`MAX_KEYS_PER_USER`] keys already.
    TooMany,
}

/// Adds `keys` in one transaction: all of them, or none when one is refused. The outcome
/// of each key up to the first refusal, which is last.
pub fn add(conn: &mut Connection, keys: &[SshKeyRow]) -> Result<Vec<Added>, StoreError> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(keys.len());
    for key in keys {
        let outcome = add_one(&tx, key)?;
        let refused = matches!(outcome, Added::TakenByOther | Added::TooMany);
        outcomes.push(outcome);
        if refused {
            // Dropping the transaction rolls the others back.
            return Ok(outcomes);
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

fn add_one(tx: &Connection, key: &SshKeyRow) -> Result<Added, StoreError> {
    let owner: Option<String> = tx
        .query_row(
            "SELECT user FROM ssh_keys WHERE fingerprint = ?1",
            [&key.fingerprint],
            |r| r.get(0),
        )
        .optional()?;
    match owner {
        Some(owner) if owner == key.user => return Ok(Added::AlreadyYours),
        Some(_) => return Ok(Added::TakenByOther),
        None => {}
    }
    let count: i64 = tx.query_row(
        "SELECT COUNT(*) FROM ssh_keys WHERE user = ?1",
        [&key.user],
        |r| r.get(0),
    )?;
    if count as usize >= MAX_KEYS_PER_USER {
        return Ok(Added::TooMany);
    }
    tx.execute(
        "INSERT INTO ssh_keys (fingerprint, user, public_key, comment, added_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            key.fingerprint,
            key.user,
            key.public_key,
            key.comment,
            key.added_ms
        ],
    )?;
    Ok(Added::Added)
}

/// A user's keys, oldest first.
pub fn list(conn: &Connection, user: &str) -> Result<Vec<SshKeyRow>, StoreError> {
    let mut statement = conn.prepare(
        "SELECT fingerprint, user, public_key, comment, added_ms FROM ssh_keys
         WHERE user = ?1 ORDER BY added_ms, fingerprint",
    )?;
    let rows = statement
        .query_map([user], |r| {
            Ok(SshKeyRow {
                fingerprint: r.get(0)?,
                user: r.get(1)?,
                public_key: r.get(2)?,
                comment: r.get(3)?,
                added_ms: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Removes one of `user`'s keys; whether it was there.
pub fn remove(conn: &Connection, user: &str, fingerprint: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM ssh_keys WHERE user = ?1 AND fingerprint = ?2",
        params![user, fingerprint],
    )? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn key(user: &str, fingerprint: &str) -> SshKeyRow {
        SshKeyRow {
            fingerprint: fingerprint.into(),
            user: user.into(),
            public_key: format!("ssh-ed25519 {fingerprint}"),
            comment: "c".into(),
            added_ms: 1,
        }
    }

    #[tokio::test]
    async fn keys_are_added_listed_and_removed_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .call(|c| {
                c.execute_batch(
                    "INSERT INTO users (name, full_name, is_admin, created_at) VALUES ('alice', 'Alice', 0, 0);
                     INSERT INTO users (name, full_name, is_admin, created_at) VALUES ('bob', 'Bob', 0, 0);",
                )?;
                assert_eq!(add(c, &[key("alice", "F1")])?, vec![Added::Added]);
                assert_eq!(add(c, &[key("alice", "F1")])?, vec![Added::AlreadyYours]);
                // One refused key, and the key before it is not stored either.
                assert_eq!(
                    add(c, &[key("bob", "F0"), key("bob", "F1")])?,
                    vec![Added::Added, Added::TakenByOther]
                );
                assert!(list(c, "bob")?.is_empty());
                assert_eq!(list(c, "alice")?, vec![key("alice", "F1")]);
                assert!(list(c, "bob")?.is_empty());
                assert!(!remove(c, "bob", "F1")?, "bob removed alice's key");
                for i in 1..MAX_KEYS_PER_USER {
                    assert_eq!(
                        add(c, &[key("alice", &format!("G{i}"))])?,
                        vec![Added::Added]
                    );
                }
                assert_eq!(add(c, &[key("alice", "H")])?, vec![Added::TooMany]);
                assert!(remove(c, "alice", "F1")?);
                assert_eq!(list(c, "alice")?.len(), MAX_KEYS_PER_USER - 1);
                // A deleted user's keys go with them.
                c.execute("DELETE FROM users WHERE name = 'alice'", [])?;
                assert!(list(c, "alice")?.is_empty());
                Ok(())
            })
            .await
            .unwrap();
    }
}
