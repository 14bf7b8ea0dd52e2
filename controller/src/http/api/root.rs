//! `/api/json`, `/me/api/json`, `/crumbIssuer/api/json`, and quieting down
//! (`/quietDown`, `/cancelQuietDown`).

use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::jobs::{FREESTYLE_PROJECT, overview};
use super::{ApiError, ApiQuery, Remote, caller, redirect};
use crate::auth::{Identity, Permission};
use crate::builds::quiet::{QuietDown, parse_timeout};
use crate::state::AppState;

/// `GET /api/json`: the controller itself, with its jobs (`name`, `url`, `color`).
pub async fn api_json(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    let jobs: Vec<serde_json::Value> = overview(&state, &identity)
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
        .collect();
    let views: Vec<serde_json::Value> = super::views::readable_views(&state, &identity)
        .await?
        .iter()
        .map(|v| super::views::view_ref(&state.config.root_url, v))
        .collect();
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
        "primaryView": {"_class": "hudson.model.AllView", "name": "all", "url": root},
        "views": views,
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

/// The query of `/quietDown`, as Jenkins' `doQuietDown` takes it; `message=` is Jenkins'
/// newer name for `reason=`.
#[derive(Debug, serde::Deserialize)]
pub struct QuietQuery {
    reason: Option<String>,
    message: Option<String>,
    block: Option<String>,
    timeout: Option<String>,
}

/// `POST /quietDown` (python-jenkins' `quiet_down`): no new build starts; 302 to the root.
/// With `block=true` it answers once no build runs (or after `timeout` ms, or when the
/// quiet-down is cancelled), as the CLI's `-block`.
pub async fn quiet_down(
    State(state): State<AppState>,
    Query(query): Query<QuietQuery>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallAdminister).await?;
    let block = match query.block.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "block must be true or false, not {:?}",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let timeout = match query.timeout.as_deref() {
        None => None,
        Some(ms) => parse_timeout(ms).ok_or_else(|| {
            ApiError::bad_request(format!(
                "timeout must be a whole number of milliseconds, not {:?}",
                ms.chars().take(40).collect::<String>()
            ))
        })?,
    };
    let reason = query.reason.or(query.message);
    crate::builds::quiet::quiet_down_by(
        &state,
        QuietDown::new(identity.name(), reason.as_deref()),
        &remote.actor(&identity),
    );
    if block {
        state.builds.wait_until_quiet(timeout).await;
    }
    Ok(redirect(state.config.root_url.as_str()))
}

/// `POST /cancelQuietDown`: builds start again; 302 to the root.
pub async fn cancel_quiet_down(
    State(state): State<AppState>,
    remote: Remote,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallAdminister).await?;
    crate::builds::quiet::cancel_quiet_down_by(&state, &remote.actor(&identity));
    Ok(redirect(state.config.root_url.as_str()))
}

/// `GET /crumbIssuer/api/json`: a crumb, as Jenkins' default crumb issuer answers, for the
/// clients that ask for one before they POST (python-jenkins). Requests need none: the
/// same-origin rule is the defence against cross-site requests (`http::guard`), and
/// Jenkins too exempts requests authenticated with an API token. A crumb sent back is
/// taken and not checked.
pub async fn crumb_issuer(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let identity = caller(&state, &headers, Permission::OverallRead).await?;
    Ok(query.answer(json!({
        "_class": "hudson.security.csrf.DefaultCrumbIssuer",
        "crumb": state.secret_key.crumb(identity.name()),
        "crumbRequestField": "Jenkins-Crumb",
    })))
}
