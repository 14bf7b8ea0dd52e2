//! The Jenkins REST API subset that python-jenkins and scripts rely on (compat §10):
//! [`root`] (`/api/json`, `/me/api/json`, `/crumbIssuer/api/json`), [`computers`]
//! (`/computer/…`), [`jobs`] (`/createItem`, `/job/NAME/…`), [`builds`]
//! (`/job/NAME/N/…`) and [`queue`] (`/queue/…`). Every route authenticates like the CLI:
//! anonymous has no permission, a wrong token is 401, never anonymous. `/api/json` answers
//! take Jenkins' `?tree=` filter ([`tree`]).

pub mod actions;
pub mod builds;
pub mod computers;
pub mod jobs;
pub mod queue;
pub mod root;
pub mod tree;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::auth::{AuthError, Identity, Permission, authenticate};
use crate::builds::{BuildError, FindError};
use crate::jobs::JobError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::jobs::JobRecord;
use tree::Tree;

/// An API failure as the HTTP status and a one-line reason.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, format!("{}\n", self.1)).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Steward\""),
            );
        }
        response
    }
}

impl ApiError {
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, what.into())
    }

    pub fn bad_request(what: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, what.into())
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound(_) => ApiError::not_found(e.to_string()),
            JobError::Exists(_) | JobError::BadName(_) | JobError::TooLarge(_) => {
                ApiError::bad_request(e.to_string())
            }
            JobError::Store(s) => s.into(),
        }
    }
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Job(job) => job.into(),
            // Jenkins: 409 "NAME is not buildable".
            BuildError::Disabled(_) | BuildError::UnsupportedSteps { .. } => {
                ApiError(StatusCode::CONFLICT, e.to_string())
            }
            BuildError::NotParameterized { .. } | BuildError::BadParameter(_) => {
                ApiError::bad_request(e.to_string())
            }
            BuildError::QueueFull => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            BuildError::Store(s) => s.into(),
        }
    }
}

impl From<FindError> for ApiError {
    fn from(e: FindError) -> Self {
        match e {
            FindError::Store(s) => s.into(),
            _ => ApiError::not_found(e.to_string()),
        }
    }
}

impl From<crate::nodes::NodeError> for ApiError {
    fn from(e: crate::nodes::NodeError) -> Self {
        use crate::nodes::NodeError;
        match e {
            NodeError::NotFound(_) => ApiError::not_found(e.to_string()),
            NodeError::Exists(_) | NodeError::BadName(_) | NodeError::TooLarge(_) => {
                ApiError::bad_request(e.to_string())
            }
            NodeError::Store(s) => ApiError::internal(s),
            NodeError::Interrupted(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

/// Authenticates the request and checks `permission`.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    permission: Permission,
) -> Result<Identity, ApiError> {
    let identity = match authenticate(&state.store, headers).await {
        Ok(identity) => identity,
        Err(AuthError::Store(e)) => return Err(ApiError::internal(e)),
        Err(e) => return Err(ApiError(StatusCode::UNAUTHORIZED, e.to_string())),
    };
    identity
        .require(permission)
        .map_err(|denied| ApiError(StatusCode::FORBIDDEN, denied.0))?;
    Ok(identity)
}

/// Authenticates the request, finds job `name` (404 when there is none, as Jenkins answers
/// a job the caller may not see) and checks `permission` on it.
pub async fn job_caller(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    permission: Permission,
) -> Result<(Identity, JobRecord), ApiError> {
    let identity = caller(state, headers, Permission::OverallRead).await?;
    let record = crate::jobs::get(state, name).await?;
    identity
        .require(permission)
        .map_err(|denied| ApiError(StatusCode::FORBIDDEN, denied.0))?;
    Ok((identity, record))
}

/// A JSON answer.
pub fn json(value: serde_json::Value) -> Response {
    Json(value).into_response()
}

/// What an `/api/json` request asks for besides its path: Jenkins' `tree` filter. `depth`
/// is accepted and ignored: Steward's answers are Jenkins' depth-0 answers, which is what
/// python-jenkins reads.
#[derive(Debug, Default)]
pub struct ApiQuery {
    pub tree: Option<Tree>,
}

impl ApiQuery {
    /// Whether `key`, which is only sent on request (like Jenkins' `allBuilds`), is asked for.
    pub fn wants(&self, key: &str) -> bool {
        self.tree.as_ref().is_some_and(|t| t.wants(key))
    }

    /// The JSON answer, filtered by `tree`.
    pub fn answer(&self, value: serde_json::Value) -> Response {
        match &self.tree {
            Some(tree) => json(tree.apply(value)),
            None => json(value),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let tree = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "tree")
            .last()
            .map(|(_, v)| v.into_owned());
        match tree.as_deref() {
            None | Some("") => Ok(ApiQuery::default()),
            Some(text) => Tree::parse(text)
                .map(|tree| ApiQuery { tree: Some(tree) })
                .map_err(|e| ApiError::bad_request(e.to_string())),
        }
    }
}

/// The 302 Jenkins answers form posts with.
pub fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response
}
