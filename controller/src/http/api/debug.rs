//! Debug access over REST: the caller's SSH keys (`/me/ssh-keys/…`) and a build's
//! breakpoint (`/job/NAME/N/breakpoint/…`), the same operations as `add-ssh-key`,
//! `list-ssh-keys`, `remove-ssh-key`, `extend-breakpoint` and `resume-breakpoint`.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use steward_protocol::duration::parse_duration;
use steward_protocol::shown::Shown;

use super::{ApiError, Remote, caller, job_caller, json};
use crate::audit::Actor;
use crate::auth::{Identity, Permission};
use crate::breakpoints;
use crate::ssh::keys::{self, KeysError};
use crate::state::AppState;

impl From<KeysError> for ApiError {
    fn from(e: KeysError) -> Self {
        match e {
            KeysError::Store(s) => ApiError::internal(s),
            KeysError::NotFound(_) => ApiError::not_found(e.to_string()),
            KeysError::TakenByOther(_) | KeysError::TooMany => {
                ApiError(StatusCode::CONFLICT, e.to_string())
            }
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// The user a key operation is for: a signed-in user, never anonymous.
async fn user(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    match caller(state, headers, Permission::OverallRead).await? {
        Identity::User(user) => Ok(user.name.clone()),
        _ => Err(ApiError(
            StatusCode::FORBIDDEN,
            "SSH keys belong to users: sign in with user:token".into(),
        )),
    }
}

/// `GET /me/ssh-keys/api/json`.
pub async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = user(&state, &headers).await?;
    let rows = keys::list(&state, &user).await?;
    let keys: Vec<_> = rows
        .iter()
        .map(|row| {
            json!({
                "fingerprint": row.fingerprint,
                "type": keys::type_name(&row.public_key),
                "publicKey": row.public_key,
                "comment": row.comment,
                "addedMs": row.added_ms,
            })
        })
        .collect();
    Ok(json(json!({ "user": user, "keys": keys })))
}

/// `POST /me/ssh-keys/add` with the keys as the body (text, one per line).
pub async fn add_keys(
    State(state): State<AppState>,
    remote: Remote,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let user = user(&state, &headers).await?;
    let added = keys::add(&state, &Actor::new(&user, remote.0), &body).await?;
    let keys: Vec<_> = added
        .iter()
        .map(|k| json!({ "fingerprint": k.row.fingerprint, "new": k.new }))
        .collect();
    Ok(json(json!({ "keys": keys })))
}

#[derive(Debug, serde::Deserialize)]
pub struct RemoveQuery {
    fingerprint: String,
}

/// `POST /me/ssh-keys/remove?fingerprint=SHA256:…`.
pub async fn remove_key(
    State(state): State<AppState>,
    remote: Remote,
    headers: HeaderMap,
    Query(query): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    let user = user(&state, &headers).await?;
    keys::remove(&state, &Actor::new(&user, remote.0), &query.fingerprint).await?;
    Ok(json(json!({ "removed": query.fingerprint })))
}

/// The breakpoint of build `which` of `name`, once the caller may debug the job.
async fn held(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    which: &str,
) -> Result<(Identity, std::sync::Arc<breakpoints::Held>), ApiError> {
    let (identity, job) = job_caller(state, headers, name, Permission::JobDebug).await?;
    let number = which
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found(format!("No such build #{}", Shown(which))))?;
    let held = breakpoints::find(state, &job.name, number).map_err(ApiError::not_found)?;
    Ok((identity, held))
}

/// `GET /job/NAME/N/breakpoint/api/json`: the breakpoint's status.
pub async fn status(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, held) = held(&state, &headers, &name, &which).await?;
    let status = serde_json::to_value(held.status(&state)).map_err(ApiError::internal)?;
    Ok(json(status))
}

#[derive(Debug, serde::Deserialize)]
pub struct ExtendQuery {
    #[serde(rename = "for")]
    by: Option<String>,
}

/// `POST /job/NAME/N/breakpoint/extend?for=30m`.
pub async fn extend(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    remote: Remote,
    headers: HeaderMap,
    Query(query): Query<ExtendQuery>,
) -> Result<Response, ApiError> {
    let by = match query.by.as_deref() {
        None => breakpoints::DEFAULT_EXTENSION,
        Some(text) => parse_duration(text)
            .ok()
            .filter(|d| *d > Duration::ZERO)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "‘{}’ is not a duration such as 30m or 2h",
                    Shown(text)
                ))
            })?,
    };
    let (identity, held) = held(&state, &headers, &name, &which).await?;
    let message = breakpoints::extend(&state, &held, by, identity.name(), &remote.actor(&identity));
    let mut status = serde_json::to_value(held.status(&state)).map_err(ApiError::internal)?;
    status["message"] = message.into();
    Ok(json(status))
}

/// `POST /job/NAME/N/breakpoint/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, held) = held(&state, &headers, &name, &which).await?;
    breakpoints::resume(&held, identity.name(), "REST");
    Ok(json(json!({ "resumed": true })))
}
