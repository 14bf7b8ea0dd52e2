//! Users, their passwords and API tokens, and the permissions granted to users and to the
//! pseudo-users `authenticated` and `anonymous`. Tokens are stored only as SHA-256 hashes:
//! they are 128-bit random values, so a plain hash is enough to make a leaked database
//! useless for logging in. Passwords, chosen by people, are hashed with argon2id.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{StoreError, now_unix};
use crate::auth::permissions::{Permission, PermissionSet};

/// The administrator created on first start.
pub const ADMIN_USER: &str = "admin";
/// The pseudo-user every signed-in user is, for grants.
pub const AUTHENTICATED: &str = "authenticated";
/// The pseudo-user of requests without credentials, for grants.
pub const ANONYMOUS: &str = "anonymous";

/// A user as authentication sees it: who, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub full_name: String,
    /// What the user's grants and `authenticated`'s give, with their implications.
    pub permissions: PermissionSet,
}

/// A user as `list-users` shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    pub name: String,
    #[serde(rename = "fullName")]
    pub full_name: String,
    pub email: Option<String>,
    #[serde(rename = "hasPassword")]
    pub has_password: bool,
    pub tokens: u64,
}

/// An API token as `list-api-tokens` shows it (never its value).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub uuid: String,
    pub name: String,
    #[serde(rename = "creationDate")]
    pub created_at: i64,
    #[serde(rename = "lastUseDate")]
    pub last_used_at: Option<i64>,
}

/// SHA-256 of a token as presented.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new API token in Jenkins' shape: `11` and 32 lowercase hex characters.
pub fn new_token() -> String {
    format!("11{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// A random version-4 UUID: a token's id, as Jenkins names tokens.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The argon2id hash of a password, in PHC form.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    use argon2::password_hash::PasswordHasher;
    let salt: [u8; 16] = rand::random();
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Corrupt(format!("cannot hash a password: {e}")))
}

/// Whether `password` is the one `hash` (PHC form) was made from. Slow by design.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordVerifier, phc::PasswordHash};
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates `admin` with a fresh token, which is also its first password, when no user
/// exists; returns that token once. `persist` saves the token where the operator finds it
/// *before* the user is committed, so a crash in between cannot leave an admin nobody
/// knows the token of.
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
    let password = hash_password(&token)?;
    persist(&token).map_err(StoreError::Persist)?;
    let now = now_unix();
    tx.execute(
        "INSERT INTO users (name, full_name, is_admin, created_at, password_hash) VALUES (?1, ?1, 1, ?2, ?3)",
        params![ADMIN_USER, now, password],
    )?;
    tx.execute(
        "INSERT INTO api_tokens (user, name, sha256, created_at, uuid) VALUES (?1, 'initial', ?2, ?3, ?4)",
        params![ADMIN_USER, token_hash(&token).as_slice(), now, new_uuid()],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO grants (principal, permission) VALUES (?1, ?2)",
        params![ADMIN_USER, Permission::OverallAdminister.id()],
    )?;
    tx.commit()?;
    Ok(Some(token))
}

/// What `principals`' grants give together.
pub fn permissions_of(conn: &Connection, principals: &[&str]) -> Result<PermissionSet, StoreError> {
    let mut set = PermissionSet::EMPTY;
    let mut stmt = conn.prepare_cached("SELECT permission FROM grants WHERE principal = ?1")?;
    for principal in principals {
        for id in stmt.query_map([principal], |r| r.get::<_, String>(0))? {
            if let Some(permission) = Permission::parse(&id?) {
                set.insert(permission);
            }
        }
    }
    Ok(set)
}

fn user_record(conn: &Connection, name: &str, full_name: String) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        permissions: permissions_of(conn, &[name, AUTHENTICATED])?,
        name: name.to_owned(),
        full_name,
    })
}

/// The user owning a token with this hash (and the token's id); with `user` given, only
/// that user's tokens match.
pub fn find_by_token(
    conn: &Connection,
    user: Option<&str>,
    hash: &[u8; 32],
) -> Result<Option<(UserRecord, i64)>, StoreError> {
    // The lookup is by an index on the hash: timing reveals nothing about a secret the
    // caller does not already hold, since the hash of a guess is all that is compared.
    let row: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT u.name, u.full_name, t.id FROM api_tokens t JOIN users u ON u.name = t.user
             WHERE t.sha256 = ?1",
            [hash.as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((name, full_name, token)) = row.filter(|(n, _, _)| user.is_none_or(|u| u == n)) else {
        return Ok(None);
    };
    Ok(Some((user_record(conn, &name, full_name)?, token)))
}

/// A user's password hash, when the user exists and has a password.
pub fn password_hash(conn: &Connection, user: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT password_hash FROM users WHERE name = ?1",
            [user],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// User `name` as authentication sees them.
pub fn get(conn: &Connection, name: &str) -> Result<Option<UserRecord>, StoreError> {
    let full_name: Option<String> = conn
        .query_row("SELECT full_name FROM users WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    full_name.map(|f| user_record(conn, name, f)).transpose()
}

/// Records that token `id` was used at `now` (once a minute at most is enough).
pub fn touch_token(conn: &Connection, id: i64, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
        params![id, now],
    )?;
    Ok(())
}

/// Creates a user; false when the name is taken.
pub fn create(
    conn: &Connection,
    name: &str,
    full_name: &str,
    email: Option<&str>,
) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "INSERT INTO users (name, full_name, is_admin, created_at, email) VALUES (?1, ?2, 0, ?3, ?4)
         ON CONFLICT (name) DO NOTHING",
        params![name, full_name, now_unix(), email],
    )? == 1)
}

/// Deletes a user, their tokens and their grants; false when there is no such user.
pub fn delete(conn: &mut Connection, name: &str) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM api_tokens WHERE user = ?1", [name])?;
    tx.execute("DELETE FROM grants WHERE principal = ?1", [name])?;
    let deleted = tx.execute("DELETE FROM users WHERE name = ?1", [name])? == 1;
    tx.commit()?;
    Ok(deleted)
}

pub fn list(conn: &Connection) -> Result<Vec<UserInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT u.name, u.full_name, u.email, u.password_hash IS NOT NULL,
                (SELECT COUNT(*) FROM api_tokens t WHERE t.user = u.name)
         FROM users u ORDER BY u.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UserInfo {
            name: r.get(0)?,
            full_name: r.get(1)?,
            email: r.get(2)?,
            has_password: r.get(3)?,
            tokens: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets a user's password hash; false when there is no such user.
pub fn set_password(conn: &Connection, name: &str, hash: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE name = ?1",
        params![name, hash],
    )? == 1)
}

/// A new token `token_name` for `user`: its uuid and value (shown once); `None` when there
/// is no such user.
pub fn create_token(
    conn: &Connection,
    user: &str,
    token_name: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let exists: bool = conn
        .query_row("SELECT 1 FROM users WHERE name = ?1", [user], |_| Ok(true))
        .optional()?
        .unwrap_or(false);
    if !exists {
        return Ok(None);
    }
    let (token, uuid) = (new_token(), new_uuid());
    conn.execute(
        "INSERT INTO api_tokens (user, name, sha256, created_at, uuid) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user,
            token_name,
            token_hash(&token).as_slice(),
            now_unix(),
            uuid
        ],
    )?;
    Ok(Some((uuid, token)))
}

pub fn list_tokens(conn: &Connection, user: &str) -> Result<Vec<TokenInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT uuid, name, created_at, last_used_at FROM api_tokens WHERE user = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([user], |r| {
        Ok(TokenInfo {
            uuid: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            name: r.get(1)?,
            created_at: r.get(2)?,
            last_used_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes `user`'s token `uuid`; false when they have none such.
pub fn revoke_token(conn: &Connection, user: &str, uuid: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM api_tokens WHERE user = ?1 AND uuid = ?2",
        params![user, uuid],
    )? == 1)
}

/// Grants `permissions` to `principal`.
pub fn grant(
    conn: &mut Connection,
    principal: &str,
    permissions: &[Permission],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for permission in permissions {
        tx.execute(
            "INSERT OR IGNORE INTO grants (principal, permission) VALUES (?1, ?2)",
            params![principal, permission.id()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Revokes `permissions` from `principal` (what they imply stays only if granted itself).
pub fn revoke(
    conn: &mut Connection,
    principal: &str,
    permissions: &[Permission],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for permission in permissions {
        tx.execute(
            "DELETE FROM grants WHERE principal = ?1 AND permission = ?2",
            params![principal, permission.id()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Every grant, by principal then permission, as granted (not what it implies).
pub fn grants(conn: &Connection) -> Result<Vec<(String, Permission)>, StoreError> {
    let mut stmt = conn.prepare("SELECT principal, permission FROM grants ORDER BY principal")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut all = Vec::new();
    for row in rows {
        let (principal, id) = row?;
        if let Some(permission) = Permission::parse(&id) {
            all.push((principal, permission));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    Ok(all)
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
        assert_eq!(
            user.map(|(u, _)| u.permissions.contains(Permission::OverallAdminister)),
            Some(true)
        );
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
