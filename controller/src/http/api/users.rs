//! `/user/NAME/…`: a user as Jenkins' REST shows them, and the API token endpoints of
//! Jenkins' `ApiTokenProperty` (`generateNewToken`, `revoke`) with the same answers.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::{ApiError, Remote, caller};
use crate::auth::{Identity, Permission, accounts};
use crate::state::AppState;
use crate::store::users;

/// `GET /user/NAME/api/json`.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    let n = name.clone();
    let user = state.store.read(move |c| users::get(c, &n)).await?;
    let Some(user) = user else {
        return Err(ApiError::not_found(format!("No such user {name}")));
    };
    Ok(super::json(json!({
        "_class": "hudson.model.User",
        "absoluteUrl": format!("{}user/{}", state.config.root_url, user.name),
        "description": null,
        "fullName": user.full_name,
        "id": user.name,
        "property": [],
    })))
}

/// `GET /user/NAME/`: the user for people, `NAME<TAB>FULL NAME`; 404 for no such user.
pub async fn page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallRead).await?;
    let n = name.clone();
    match state.store.read(move |c| users::get(c, &n)).await? {
        Some(user) => Ok(format!("{}\t{}\n", user.name, user.full_name).into_response()),
        None => Err(ApiError::not_found(format!("No such user {name}"))),
    }
}

/// `GET /me` and `/me/`: 302 to the caller's `/user/NAME/`, as Jenkins points it; anonymous
/// has no page (403).
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    let Identity::User(user) = identity else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "anonymous is not a user: authenticate to have a page".into(),
        ));
    };
    let name: String =
        url::form_urlencoded::byte_serialize(user.name.as_bytes()).collect::<String>();
    Ok(super::redirect(&format!(
        "{}user/{}/",
        state.config.root_url,
        name.replace('+', "%20")
    )))
}

/// Who may manage `name`'s tokens: that user, or an administrator.
async fn token_owner(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
) -> Result<Identity, ApiError> {
    let identity = caller(state, headers, Permission::OverallRead).await?;
    if identity.name() != name {
        identity
            .require(Permission::OverallAdminister)
            .map_err(|e| ApiError(StatusCode::FORBIDDEN, e.to_string()))?;
    }
    Ok(identity)
}

/// `POST /user/NAME/descriptorByName/jenkins.security.ApiTokenProperty/generateNewToken`
/// (`newTokenName`, in the query or the form): `{"status": "ok", "data": {"tokenName",
/// "tokenUuid", "tokenValue"}}`, the value shown this once.
pub async fn generate_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    remote: Remote,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let identity = token_owner(&state, &headers, &name).await?;
    let token_name = super::form_field(&query, &body, "newTokenName")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Token created on REST".to_owned());
    let created =
        accounts::create_token(&state, &name, &token_name, &remote.actor(&identity)).await?;
    let Some((uuid, value)) = created else {
        return Err(ApiError::not_found(format!("No such user {name}")));
    };
    Ok(super::json(json!({
        "status": "ok",
        "data": {"tokenName": token_name, "tokenUuid": uuid, "tokenValue": value},
    })))
}

/// `POST /user/NAME/descriptorByName/jenkins.security.ApiTokenProperty/revoke`
/// (`tokenUuid`): 200; an unknown uuid → 404.
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    remote: Remote,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let identity = token_owner(&state, &headers, &name).await?;
    let Some(uuid) = super::form_field(&query, &body, "tokenUuid") else {
        return Err(ApiError::bad_request("tokenUuid is required"));
    };
    let revoked = accounts::revoke_token(&state, &name, &uuid, &remote.actor(&identity)).await?;
    if !revoked {
        return Err(ApiError::not_found(format!(
            "{name} has no API token {uuid}"
        )));
    }
    Ok(StatusCode::OK.into_response())
}
