//! Users and their API tokens. Tokens are stored only as SHA-256 hashes: they are 128-bit
//! random values, so a plain hash is enough to make a leaked database useless for logging in.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{StoreError, now_unix};

/// The administrator created on first start.
pub const ADMIN_USER: &str = "admin";

/// A user as authentication sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub full_name: String,
    pub is_admin: bool,
}

/// SHA-256 of a token as presented.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new API token in Jenkins' shape: `11` and 32 lowercase hex characters.
pub fn new_token() -> String {
    format!("11{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// Creates `admin` with a fresh token when no user exists; returns that token once.
/// `persist` saves the token where the operator finds it *before* the user is committed, so
/// a crash in between cannot leave an admin nobody knows the token of.
pub fn ensure_admin(
    conn: &mut Connection,
    persist: impl FnOnce(&str) -> Result<(), String>,
) -> Result<Option<String>, StoreError> {
    let tx = conn.transaction()?;
    let users: i64 = tx.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
    if users > 0 {
        return Ok(None);
    }
    let token = new_token();
    persist(&token).map_err(StoreError::Persist)?;
    let now = now_unix();
    tx.execute(
        "INSERT INTO users (name, full_name, is_admin, created_at) VALUES (?1, ?1, 1, ?2)",
        params![ADMIN_USER, now],
    )?;
    tx.execute(
        "INSERT INTO api_tokens (user, name, sha256, created_at) VALUES (?1, 'initial', ?2, ?3)",
        params![ADMIN_USER, token_hash(&token).as_slice(), now],
    )?;
    tx.commit()?;
    Ok(Some(token))
}

/// The user owning a token with this hash; with `user` given, only that user's tokens match.
pub fn find_by_token(
    conn: &Connection,
    user: Option<&str>,
    hash: &[u8; 32],
) -> Result<Option<UserRecord>, StoreError> {
    // The lookup is by an index on the hash: timing reveals nothing about a secret the
    // caller does not already hold, since the hash of a guess is all that is compared.
    let row = conn
        .query_row(
            "SELECT u.name, u.full_name, u.is_admin FROM api_tokens t JOIN users u ON u.name = t.user
             WHERE t.sha256 = ?1",
            [hash.as_slice()],
            |r| Ok(UserRecord { name: r.get(0)?, full_name: r.get(1)?, is_admin: r.get::<_, i64>(2)? != 0 }),
        )
        .optional()?;
    Ok(row.filter(|u| user.is_none_or(|wanted| wanted == u.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn admin_is_created_once_and_token_authenticates() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let token = store
            .call(|c| ensure_admin(c, |_| Ok(())))
            .await
            .unwrap()
            .expect("first start creates admin");
        assert_eq!(token.len(), 34);
        assert_eq!(
            store.call(|c| ensure_admin(c, |_| Ok(()))).await.unwrap(),
            None
        );
        let failing = tempfile::tempdir().unwrap();
        let other = Store::open(&failing.path().join("t.db")).unwrap();
        assert!(
            other
                .call(|c| ensure_admin(c, |_| Err("disk full".into())))
                .await
                .is_err()
        );
        assert!(
            other
                .call(|c| ensure_admin(c, |_| Ok(())))
                .await
                .unwrap()
                .is_some(),
            "a failed save leaves no admin behind"
        );
        let t = token.clone();
        let user = store
            .call(move |c| find_by_token(c, Some("admin"), &token_hash(&t)))
            .await
            .unwrap();
        assert_eq!(user.map(|u| u.is_admin), Some(true));
        let t = token.clone();
        assert_eq!(
            store
                .call(move |c| find_by_token(c, Some("bob"), &token_hash(&t)))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .call(|c| find_by_token(c, None, &token_hash("wrong")))
                .await
                .unwrap(),
            None
        );
        let stored: Vec<u8> = store
            .call(|c| Ok(c.query_row("SELECT sha256 FROM api_tokens", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_ne!(stored, token.as_bytes(), "tokens are stored hashed");
    }
}
