//! The Jenkins REST API subset that python-jenkins and scripts rely on (compat §10):
//! [`root`] (`/api/json`, `/me/api/json`, `/crumbIssuer/api/json`) and [`computers`]
//! (`/computer/…`). Every route authenticates like the CLI: anonymous has no permission, a
//! wrong token is 401, never anonymous.

pub mod computers;
pub mod root;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::auth::{AuthError, Identity, Permission, authenticate};
use crate::state::AppState;

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

/// A JSON answer.
pub fn json(value: serde_json::Value) -> Response {
    Json(value).into_response()
}

/// The 302 Jenkins answers form posts with.
pub fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response
}
