//! Changes to users, their passwords and API tokens, and the permissions granted: what the
//! CLI commands (`cli::commands::users`) and the REST endpoints (`http::api::users`) call.
//! Each change is written to the store, then logged and recorded in the audit log, by
//! name and uuid only: a password or a token's value never goes further than the store's
//! hash of it.

use serde_json::{Value, json};

use super::Permission;
use crate::audit::{Action, Actor};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::users;

/// Creates a user; false when the name is taken.
pub async fn create_user(
    state: &AppState,
    name: &str,
    full_name: &str,
    email: Option<&str>,
    by: &Actor,
) -> Result<bool, StoreError> {
    let (n, f, e) = (
        name.to_owned(),
        full_name.to_owned(),
        email.map(str::to_owned),
    );
    let created = state
        .store
        .call(move |c| users::create(c, &n, &f, e.as_deref()))
        .await?;
    if created {
        tracing::info!(user = ?name, by = ?by.user, "user created");
        state
            .audit
            .record(by, Action::UserCreate, name, Value::Null);
    }
    Ok(created)
}

/// Deletes a user with their tokens and grants; false when there is no such user.
pub async fn delete_user(state: &AppState, name: &str, by: &Actor) -> Result<bool, StoreError> {
    let n = name.to_owned();
    let deleted = state.store.call(move |c| users::delete(c, &n)).await?;
    if deleted {
        tracing::info!(user = ?name, by = ?by.user, "user deleted");
        state
            .audit
            .record(by, Action::UserDelete, name, Value::Null);
    }
    Ok(deleted)
}

/// Sets a user's password, hashed here (argon2id, on the blocking pool); false when there
/// is no such user.
pub async fn set_password(
    state: &AppState,
    name: &str,
    password: String,
    by: &Actor,
) -> Result<bool, StoreError> {
    let hash = tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
    let n = name.to_owned();
    let set = state
        .store
        .call(move |c| users::set_password(c, &n, &hash))
        .await?;
    if set {
        tracing::info!(user = ?name, by = ?by.user, "password set");
        state
            .audit
            .record(by, Action::UserSetPassword, name, Value::Null);
    }
    Ok(set)
}

/// A new API token `token_name` for `user`: its uuid and value (shown once, never
/// recorded); `None` when there is no such user.
pub async fn create_token(
    state: &AppState,
    user: &str,
    token_name: &str,
    by: &Actor,
) -> Result<Option<(String, String)>, StoreError> {
    let (u, n) = (user.to_owned(), token_name.to_owned());
    let created = state
        .store
        .call(move |c| users::create_token(c, &u, &n))
        .await?;
    if let Some((uuid, _)) = &created {
        tracing::info!(user = ?user, token = ?uuid, by = ?by.user, "API token created");
        state.audit.record(
            by,
            Action::TokenCreate,
            user,
            json!({ "uuid": uuid, "name": token_name }),
        );
    }
    Ok(created)
}

/// Revokes `user`'s token `uuid`; false when they have none such.
pub async fn revoke_token(
    state: &AppState,
    user: &str,
    uuid: &str,
    by: &Actor,
) -> Result<bool, StoreError> {
    let (u, id) = (user.to_owned(), uuid.to_owned());
    let revoked = state
        .store
        .call(move |c| users::revoke_token(c, &u, &id))
        .await?;
    if revoked {
        tracing::info!(user = ?user, token = ?uuid, by = ?by.user, "API token revoked");
        state
            .audit
            .record(by, Action::TokenRevoke, user, json!({ "uuid": uuid }));
    }
    Ok(revoked)
}

/// Grants `permissions` to `principal`.
pub async fn grant(
    state: &AppState,
    principal: &str,
    permissions: &[Permission],
    by: &Actor,
) -> Result<(), StoreError> {
    let (p, list) = (principal.to_owned(), permissions.to_vec());
    state
        .store
        .call(move |c| users::grant(c, &p, &list))
        .await?;
    tracing::info!(principal = ?principal, permissions = ?permissions, by = ?by.user, "permissions granted");
    state.audit.record(
        by,
        Action::PermissionGrant,
        principal,
        json!({ "permissions": names(permissions) }),
    );
    Ok(())
}

/// Revokes `permissions` from `principal`.
pub async fn revoke(
    state: &AppState,
    principal: &str,
    permissions: &[Permission],
    by: &Actor,
) -> Result<(), StoreError> {
    let (p, list) = (principal.to_owned(), permissions.to_vec());
    state
        .store
        .call(move |c| users::revoke(c, &p, &list))
        .await?;
    tracing::info!(principal = ?principal, permissions = ?permissions, by = ?by.user, "permissions revoked");
    state.audit.record(
        by,
        Action::PermissionRevoke,
        principal,
        json!({ "permissions": names(permissions) }),
    );
    Ok(())
}

fn names(permissions: &[Permission]) -> Vec<&'static str> {
    permissions.iter().map(|p| p.display_name()).collect()
}
