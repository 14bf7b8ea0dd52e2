//! Jenkins' lifecycle posts: `/restart`, `/safeRestart`, `/exit`, `/safeExit` (`lifecycle`,
//! as the CLI commands of those names) and `/reload` (`reload-configuration`). The answer
//! is written before the controller goes: stopping lets requests under way finish.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use tokio_util::sync::CancellationToken;

use super::{ApiError, caller, redirect};
use crate::auth::Permission;
use crate::lifecycle::{self, Exit};
use crate::state::AppState;

#[derive(Debug, serde::Deserialize)]
pub struct MessageQuery {
    message: Option<String>,
}

/// Ends the controller as asked by the caller of this request, which answers first.
async fn end(
    state: &AppState,
    headers: &HeaderMap,
    exit: Exit,
    safe: bool,
    message: Option<&str>,
) -> Result<(), ApiError> {
    let identity = caller(state, headers, Permission::OverallAdminister).await?;
    // The answer is this request's: the server lets it finish while it stops.
    let answered = CancellationToken::new();
    answered.cancel();
    lifecycle::end_after(state, exit, safe, identity.name(), message, answered);
    Ok(())
}

/// `POST /restart` → 302 to the root.
pub async fn restart(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    end(&state, &headers, Exit::Restart, false, None).await?;
    Ok(redirect(state.config.root_url.as_str()))
}

/// `POST /safeRestart?message=TEXT` → 302 to the root.
pub async fn safe_restart(
    State(state): State<AppState>,
    Query(query): Query<MessageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    end(
        &state,
        &headers,
        Exit::Restart,
        true,
        query.message.as_deref(),
    )
    .await?;
    Ok(redirect(state.config.root_url.as_str()))
}

/// `POST /exit` → 200 `Shutting down`, as Jenkins answers.
pub async fn exit(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    end(&state, &headers, Exit::Shutdown, false, None).await?;
    Ok("Shutting down\n".into_response())
}

/// `POST /safeExit` → 200 with Jenkins' words.
pub async fn safe_exit(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    end(&state, &headers, Exit::Shutdown, true, None).await?;
    Ok("Shutting down as soon as all jobs are complete\n".into_response())
}

/// `POST /reload`: `reload-configuration` → 302 to the root.
pub async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallAdminister).await?;
    state.node_list.invalidate();
    let jobs = crate::jobs::reload::reload_all(&state).await?;
    tracing::info!(by = ?identity.name(), jobs = jobs.len(), "configuration reloaded over the REST API");
    Ok(redirect(state.config.root_url.as_str()))
}
