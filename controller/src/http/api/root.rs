//! `/api/json`, `/me/api/json`, `/crumbIssuer/api/json`, and quieting down
//! (`/quietDown`, `/cancelQuietDown`).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::jobs::{FREESTYLE_PROJECT, overview};
use super::{ApiError, ApiQuery, caller, redirect};
use crate::auth::{Identity, Permission};
use crate::builds::quiet::QuietDown;
use crate::state::AppState;

/// `GET /api/json`: the controller itself, with its jobs (`name`, `url`, `color`).
pub async fn api_json(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    let jobs: Vec<serde_json::Value> = if identity.has(Permission::JobRead) {
        overview(&state)
            .await?
            .into_iter()
            .map(|o| {
                json!({
                    "_class": FREESTYLE_PROJECT,
                    "name": o.record.name,
                    "url": crate::builds::job_url(&state.config.root_url, &o.record.name),
                    "color": o.color,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let root = state.config.root_url.as_str();
    Ok(query.answer(json!({
        "_class": "hudson.model.Hudson",
        "assignedLabels": [{"name": "built-in"}],
        "mode": "NORMAL",
        "nodeDescription": "the Steward controller",
        "nodeName": "",
        "numExecutors": 0,
        "description": null,
        "jobs": jobs,
        "quietingDown": state.builds.quieting_down().is_some(),
        "url": root,
        "useCrumbs": false,
        "useSecurity": true,
        "views": [{"_class": "hudson.model.AllView", "name": "all", "url": root}],
    })))
}

/// `GET /me/api/json`: the authenticated user; anonymous gets 403.
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    let Identity::User(user) = identity else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "anonymous is missing the Overall/Read permission".into(),
        ));
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

/// `?reason=` (or Jenkins' newer `?message=`) of `/quietDown`.
#[derive(Debug, serde::Deserialize)]
pub struct QuietQuery {
    reason: Option<String>,
    message: Option<String>,
}

/// `POST /quietDown` (python-jenkins' `quiet_down`): no new build starts; 302 to the root.
/// Unlike the CLI's `-block`, it never waits: poll `/api/json` and the running builds.
pub async fn quiet_down(
    State(state): State<AppState>,
    Query(query): Query<QuietQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallAdminister).await?;
    let reason = query.reason.or(query.message);
    state
        .builds
        .quiet_down(QuietDown::new(identity.name(), reason.as_deref()));
    Ok(redirect(state.config.root_url.as_str()))
}

/// `POST /cancelQuietDown`: builds start again; 302 to the root.
pub async fn cancel_quiet_down(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallAdminister).await?;
    state.builds.cancel_quiet_down(identity.name());
    Ok(redirect(state.config.root_url.as_str()))
}

/// `GET /crumbIssuer/api/json`: Steward needs no CSRF crumb (API tokens are not cookies),
/// and 404 is how Jenkins says so.
pub async fn crumb_issuer() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "No crumb issuer: requests authenticated with API tokens need no crumb\n",
    )
}
