//! `/api/json`, `/me/api/json` and `/crumbIssuer/api/json`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::jobs::{FREESTYLE_PROJECT, overview};
use super::{ApiError, ApiQuery, caller};
use crate::auth::{Identity, Permission};
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
        "quietingDown": false,
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

/// `GET /crumbIssuer/api/json`: Steward needs no CSRF crumb (API tokens are not cookies),
/// and 404 is how Jenkins says so.
pub async fn crumb_issuer() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        "No crumb issuer: requests authenticated with API tokens need no crumb\n",
    )
}
