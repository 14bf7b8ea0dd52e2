//! `GET /` (with `X-Jenkins`, how clients recognise a controller) and `GET /login`, which
//! agents poll until the controller is ready.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::state::AppState;

pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = credentials_check(&state, &headers).await {
        return refused;
    }
    format!(
        "Steward {}: a Jenkins-compatible CI controller\n",
        steward_protocol::STEWARD_VERSION
    )
    .into_response()
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = credentials_check(&state, &headers).await {
        return refused;
    }
    "Steward: authenticate with an API token or a password (Basic user:secret, or Bearer token)\n"
        .into_response()
}

pub async fn not_found(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refused) = credentials_check(&state, &headers).await {
        return refused;
    }
    (StatusCode::NOT_FOUND, "Not found\n").into_response()
}

/// Credentials that do not check out are refused (401) on these routes too, which need
/// none: a client learns its password is wrong at its first request, as from Jenkins.
async fn credentials_check(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    if !headers.contains_key(http::header::AUTHORIZATION) {
        return Ok(());
    }
    match crate::auth::authenticate(&state.store, headers).await {
        Ok(_) => Ok(()),
        Err(e) => Err(crate::http::api::auth_error(e).into_response()),
    }
}
