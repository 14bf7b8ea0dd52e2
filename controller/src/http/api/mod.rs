//! The Jenkins REST API subset that python-jenkins and scripts rely on (compat §10):
//! [`root`] (`/api/json`, `/me/api/json`, `/crumbIssuer/api/json`), [`computers`]
//! (`/computer/…`), [`jobs`] (`/createItem`, `/job/NAME/…`), [`builds`]
//! (`/job/NAME/N/…`) and [`queue`] (`/queue/…`). Every route authenticates like the CLI:
//! anonymous has no permission, a wrong token is 401, never anonymous. `/api/json` answers
//! take Jenkins' `?tree=` filter ([`tree`]).

pub mod actions;
pub mod artifacts;
pub mod audit;
pub mod builds;
pub mod computers;
pub mod debug;
pub mod jobs;
pub mod lifecycle;
pub mod plugins;
pub mod queue;
pub mod root;
pub mod tree;
pub mod users;
pub mod views;

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use steward_protocol::shown::shown_lines;

use crate::auth::{AuthError, Identity, Permission, authenticate};
use crate::builds::{BuildError, FindError};
use crate::jobs::JobError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::jobs::JobRecord;
use tree::Tree;

/// An API failure as the HTTP status and a one-line reason.
pub struct ApiError(pub StatusCode, pub String);

/// The challenge of a 401. Not `Basic`: a browser that sees a Basic challenge prompts for
/// credentials once, then sends them along with every other site's forms and WebSockets
/// aimed at the controller. Clients send their credentials with the request (curl `-u`,
/// python-jenkins, our cli), Basic or Bearer, and take any challenge.
pub const CHALLENGE: &str = "Bearer realm=\"Steward\"";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A message may quote what the client sent: its control characters go out escaped.
        let mut response = (self.0, format!("{}\n", shown_lines(&self.1))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
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

    pub fn conflict(what: impl Into<String>) -> Self {
        ApiError(StatusCode::CONFLICT, what.into())
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
            JobError::NotFound { .. } => ApiError::not_found(e.to_string()),
            JobError::Exists(_)
            | JobError::LooksLike { .. }
            | JobError::BadName(_)
            | JobError::TooLarge(_)
            | JobError::Ignored(_)
            | JobError::BadTrigger(_) => ApiError::bad_request(e.to_string()),
            JobError::Denied(denied) => ApiError(StatusCode::FORBIDDEN, denied.0),
            JobError::Building => ApiError(StatusCode::CONFLICT, e.to_string()),
            JobError::NumberTooLow { .. } => ApiError::bad_request(e.to_string()),
            JobError::Store(s) => s.into(),
        }
    }
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Job(job) => job.into(),
            // Jenkins: 409 "NAME is not buildable".
            BuildError::Disabled(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
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
            NodeError::Exists(_)
            | NodeError::LooksLike { .. }
            | NodeError::BadName(_)
            | NodeError::TooLarge(_)
            | NodeError::BadSetting(_) => ApiError::bad_request(e.to_string()),
            NodeError::Store(s) => ApiError::internal(s),
            NodeError::Interrupted(_) => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

/// Authenticates the request and checks Overall/Read (which everything needs first, as in
/// Jenkins), then `permission`.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    permission: Permission,
) -> Result<Identity, ApiError> {
    let identity = authenticate(&state.store, headers)
        .await
        .map_err(auth_error)?;
    for needed in [Permission::OverallRead, permission] {
        identity
            .require(needed)
            .map_err(|denied| ApiError(StatusCode::FORBIDDEN, denied.0))?;
    }
    Ok(identity)
}

/// A failed authentication as an answer: 401 for credentials that do not check out.
pub fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Store(e) => ApiError::internal(e),
        e => ApiError(StatusCode::UNAUTHORIZED, e.to_string()),
    }
}

/// Authenticates the request, finds job `name` (404 when there is none, as Jenkins answers
/// a job the caller may not see) and checks `permission` on it. The record's `name` is the
/// stored one: handlers use it from then on, since `name` may be another spelling of it
/// (NFD).
pub async fn job_caller(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    permission: Permission,
) -> Result<(Identity, Arc<JobRecord>), ApiError> {
    let identity = caller(state, headers, Permission::OverallRead).await?;
    let record = crate::jobs::get_as(state, &identity, name, permission).await?;
    Ok((identity, record))
}

/// A JSON answer.
pub fn json(value: serde_json::Value) -> Response {
    Json(value).into_response()
}

/// Bytes of a streamed JSON answer sent at a time.
const STREAM_CHUNK: usize = 64 * 1024;

/// A JSON object `head` with one more key, `list`, whose array is written an element at a
/// time as the answer streams (filtered by `query`'s `tree` like any answer), so a long
/// list is never held whole in memory, only the elements not yet written.
pub fn streamed_list(
    query: &ApiQuery,
    head: serde_json::Map<String, serde_json::Value>,
    list: &'static str,
    elements: impl Iterator<Item = serde_json::Value> + Send + 'static,
) -> Response {
    use futures_util::stream;
    use serde_json::Value;

    let (head, part) = match &query.tree {
        None => (Value::Object(head), Some(tree::Part::default())),
        Some(tree) => (tree.apply(Value::Object(head)), tree.part(list)),
    };
    let Some(part) = part else {
        return json(head);
    };
    // `part` borrows the query; what the stream needs of it is owned.
    let (children, range) = (part.children.cloned(), part.range);
    let part = move |index: usize, value: Value| {
        let part = tree::Part {
            children: children.as_ref(),
            range,
        };
        part.keeps(index).then(|| part.apply(value))
    };
    // `{"a":1}` becomes `{"a":1,"LIST":[`, then the elements, then `]}`.
    let mut opening = serde_json::to_vec(&head).unwrap_or_else(|_| b"{}".to_vec());
    opening.pop();
    if opening.len() > 1 {
        opening.push(b',');
    }
    opening.extend_from_slice(format!("\"{list}\":[").as_bytes());
    let mut elements = elements.enumerate().filter_map(move |(i, v)| part(i, v));
    let mut first = true;
    let mut pending = Some(opening);
    let body = stream::iter(std::iter::from_fn(move || {
        let mut chunk = pending.take()?;
        while chunk.len() < STREAM_CHUNK {
            match elements.next() {
                Some(element) => {
                    if !std::mem::take(&mut first) {
                        chunk.push(b',');
                    }
                    // A `Value` always serializes.
                    let _ = serde_json::to_writer(&mut chunk, &element);
                }
                None => {
                    chunk.extend_from_slice(b"]}");
                    return Some(Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)));
                }
            }
        }
        pending = Some(Vec::with_capacity(STREAM_CHUNK + 1024));
        Some(Ok(bytes::Bytes::from(chunk)))
    }));
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
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

/// The client's address, when the server put it in the request (`http::server` does for
/// every connection); for the audit log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Remote(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Remote(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

impl Remote {
    /// `identity` acting from this address, as the audit log records it.
    pub fn actor(self, identity: &Identity) -> crate::audit::Actor {
        crate::audit::Actor::new(identity.name(), self.0)
    }
}

/// Field `key` of the query, else of the form body, as Jenkins' form fields are read.
pub fn form_field(
    query: &std::collections::HashMap<String, String>,
    body: &str,
    key: &str,
) -> Option<String> {
    query.get(key).cloned().or_else(|| {
        url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    })
}

/// The 302 Jenkins answers form posts with.
pub fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The streamed answer, parsed, next to what the whole value filtered gives.
    async fn both(tree: Option<&str>, n: usize) -> (Value, Value) {
        let query = ApiQuery {
            tree: tree.map(|t| Tree::parse(t).unwrap()),
        };
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"_class": "item", "id": i, "why": "x".repeat(100)}))
            .collect();
        let mut head = serde_json::Map::new();
        head.insert("_class".into(), json!("hudson.model.Queue"));
        head.insert("discoverableItems".into(), json!([]));
        let streamed = streamed_list(&query, head.clone(), "items", items.clone().into_iter());
        let bytes = axum::body::to_bytes(streamed.into_body(), usize::MAX)
            .await
            .unwrap();
        let mut whole = Value::Object(head);
        whole["items"] = Value::Array(items);
        let expected = match &query.tree {
            Some(tree) => tree.apply(whole),
            None => whole,
        };
        (serde_json::from_slice(&bytes).unwrap(), expected)
    }

    #[tokio::test]
    async fn a_streamed_list_is_the_list_filtered() {
        for (tree, n) in [
            (None, 0),
            (None, 3),
            // More than one chunk.
            (None, 2_000),
            (Some("items[id]{1,3}"), 10),
            (Some("items{5,}"), 2_000),
            (Some("items[id]"), 0),
            (Some("_class"), 10),
            (Some("discoverableItems,items[why]{,1}"), 10),
        ] {
            let (streamed, expected) = both(tree, n).await;
            assert_eq!(streamed, expected, "tree {tree:?}, {n} items");
        }
    }
}
