//! Checks every request passes before its handler runs.
//!
//! - [`same_origin`]: a request that changes something (any method but GET, HEAD and
//!   OPTIONS) from another site than the controller's is refused with 403
//!   ([`super::origin`]).
//! - [`bodies`], on every route: a request with a body is authenticated, and must have
//!   Overall/Read, on its headers alone, before a byte of its body is read; the body must
//!   then arrive within `--http-body-timeout` ([`DEFAULT_BODY_READ_TIMEOUT`]), be at most
//!   [`MAX_BODY_BYTES`], and fit in
//!   what all bodies in flight may hold together ([`BODIES_IN_FLIGHT_BYTES`], at most
//!   [`BODIES_PER_CALLER`] of one caller). Without this,
//!   an anonymous client could hold a connection and its buffer for as long as it trickled
//!   a body, 150 of them costing 300 MB. The handler gets the body whole, from memory.
//!
//! The full-duplex CLI (`POST /cli`) is not behind [`bodies`]: its upload body is a stream
//! that lasts the whole command, and `cli::duplex` bounds and authenticates it itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use tokio::sync::Semaphore;

use super::api::{ApiError, caller};
use super::origin;
use crate::auth::Permission;
use crate::state::AppState;

/// Largest request body: job and node XML are at most 1 MiB (`xml::MAX_XML_BYTES`), and
/// forms are small; axum's own default limit, named here.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Time a whole body may take to arrive, unless `--http-body-timeout` says otherwise: 2 MiB
/// in 30 s is 70 KB/s, slower than any link a CI controller is used over, and a trickling
/// client holds its connection no longer.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// What all bodies being received and handled may hold together: sixteen of the largest
/// at once, so a burst of uploads is served and a flood of them is refused (503) instead
/// of growing memory. A body's share is held until its request is answered: the handler
/// works on it in memory.
pub const BODIES_IN_FLIGHT_BYTES: usize = 16 * MAX_BODY_BYTES;
/// Bodies one caller may have in flight at once: a quarter of the budget, so one user's
/// credentials, even a read-only user's, can never refuse everyone else's uploads.
pub const BODIES_PER_CALLER: usize = 4;

/// The memory all bodies in flight may take, and how many each caller has; one per
/// controller.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    callers: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl Default for BodyBudget {
    fn default() -> Self {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(BODIES_IN_FLIGHT_BYTES)),
            callers: Arc::default(),
        }
    }
}

/// A caller's place among the bodies in flight, given back when dropped.
struct CallerSlot {
    callers: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    name: String,
}

impl BodyBudget {
    fn caller_slot(&self, name: &str) -> Option<CallerSlot> {
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        let count = callers.entry(name.to_owned()).or_default();
        if *count >= BODIES_PER_CALLER {
            return None;
        }
        *count += 1;
        Some(CallerSlot {
            callers: self.callers.clone(),
            name: name.to_owned(),
        })
    }
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = callers.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
                callers.remove(&self.name);
            }
        }
    }
}

/// Refuses a state-changing request from another origin (403, one line), before anything.
pub async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_safe(request.method()) {
        return next.run(request).await;
    }
    match origin::check(&state.config, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => {
            tracing::warn!(
                method = %request.method(),
                path = ?request.uri().path(),
                origin = ?refused.claimed,
                expected = ?refused.expected,
                "refused a cross-origin request"
            );
            (
                StatusCode::FORBIDDEN,
                format!("{}\n", origin::MSG_CROSS_ORIGIN),
            )
                .into_response()
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Authenticates a request with a body on its headers, then reads the body within the
/// limits above and hands the request on with it.
pub async fn bodies(
    State((state, budget)): State<(AppState, BodyBudget)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(announced) = body_length(&request).filter(|_| !is_streamed_cli(&request)) else {
        return next.run(request).await;
    };
    // Who asks, before a byte of the body: anonymous has no permission anywhere.
    let identity = match caller(&state, request.headers(), Permission::OverallRead).await {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    if announced > MAX_BODY_BYTES as u64 {
        return too_large().into_response();
    }
    // A body of unknown length may take up to the largest.
    let reserve = if announced == 0 {
        MAX_BODY_BYTES
    } else {
        announced as usize
    };
    let Some(_slot) = budget.caller_slot(identity.name()) else {
        return busy(format!(
            "Too many request bodies of {} at once (at most {BODIES_PER_CALLER}); retry",
            steward_protocol::shown::Shown(identity.name())
        ));
    };
    let Ok(_held) = budget.bytes.clone().try_acquire_many_owned(reserve as u32) else {
        tracing::warn!(
            bytes = reserve,
            "refused a request body: the bodies being read hold their limit"
        );
        let mut response = ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Too many request bodies being received at once (at most {} MiB together); \
                 retry",
                BODIES_IN_FLIGHT_BYTES >> 20
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        return response;
    };
    let (parts, body) = request.into_parts();
    let limit = state.config.http_body_timeout;
    let bytes = match tokio::time::timeout(limit, read_body(body, reserve)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => {
            return ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} s",
                    limit.as_secs()
                ),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A 503 saying `why`, with `Retry-After: 1`.
fn busy(why: String) -> Response {
    let mut response = ApiError(StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    response
}

/// The whole body, at most [`MAX_BODY_BYTES`], in a buffer of `reserved` bytes (what the
/// budget counts), so it never grows past what was counted.
async fn read_body(body: Body, reserved: usize) -> Result<bytes::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut all = bytes::BytesMut::with_capacity(reserved);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if all.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        // A body longer than it announced is cut at what was counted.
        if all.len() + chunk.len() > reserved {
            return Err(ApiError::bad_request(
                "The request body is longer than its Content-Length",
            ));
        }
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
}

/// Whether the request is the full-duplex CLI's (`POST /cli`, under any prefix), whose
/// upload body is a stream that lasts the command.
fn is_streamed_cli(request: &Request) -> bool {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|matched| matched.as_str().trim_end_matches('/'))
        .is_some_and(|path| path == "/cli" || path.ends_with("/cli"))
}

/// The length a request's body announces: `Some(0)` for a body of unknown length
/// (chunked), `None` for a request without one.
fn body_length(request: &Request) -> Option<u64> {
    let headers = request.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Some(0);
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    (length > 0).then_some(length)
}

fn too_large() -> ApiError {
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "The request body is over the limit of {} MiB",
            MAX_BODY_BYTES >> 20
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_holds_at_most_its_share_and_gets_it_back() {
        let budget = BodyBudget::default();
        let held: Vec<_> = (0..BODIES_PER_CALLER)
            .map(|_| budget.caller_slot("mallory").expect("a slot"))
            .collect();
        assert!(budget.caller_slot("mallory").is_none());
        assert!(budget.caller_slot("admin").is_some());
        drop(held);
        assert!(budget.caller_slot("mallory").is_some());
        assert!(budget.callers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_body_is_read_into_what_was_counted_and_no_more() {
        let body = Body::from(vec![b'x'; 10]);
        let bytes = read_body(body, 10).await.ok().unwrap();
        assert_eq!(bytes.len(), 10);
        let over = read_body(Body::from(vec![b'x'; 11]), 10).await;
        assert!(over.is_err());
        let too_large = read_body(Body::from(vec![b'x'; MAX_BODY_BYTES + 1]), MAX_BODY_BYTES).await;
        assert!(matches!(
            too_large,
            Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, _))
        ));
    }
}
