//! `GET /audit-log/api/json[?since=WHEN&user=USER]`: the audit log as `audit-log -json`
//! gives it, inside `{"_class": "steward.audit.AuditLog", "entries": […]}`, for
//! administrators. Streamed a page of entries at a time, so a long log is never held whole.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderMap;
use http::header::CONTENT_TYPE;

use super::{ApiError, caller};
use crate::audit::query::{self, PAGE};
use crate::auth::Permission;
use crate::state::AppState;
use crate::store::audit::{Filter, page};

pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::OverallAdminister).await?;
    let filter = query::filter(
        params.get("since").map(String::as_str),
        params.get("user").map(String::as_str),
        crate::builds::now_ms(),
    )
    .map_err(ApiError::bad_request)?;
    // The first page before the answer starts, so a store failure is still a status.
    let first = read(&state, &filter, 0).await?;
    let opening = Bytes::from_static(br#"{"_class":"steward.audit.AuditLog","entries":["#);
    let pages =
        futures_util::stream::unfold(Some((state, filter, first, true)), |next| async move {
            let (state, filter, rows, first) = next?;
            let Some(last) = rows.last().map(|r| r.id) else {
                return Some((Ok(Bytes::from_static(b"]}")), None));
            };
            let mut chunk = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                if !(first && i == 0) {
                    chunk.push(b',');
                }
                // A `Value` always serializes.
                let _ = serde_json::to_writer(&mut chunk, &query::json(row));
            }
            let following = if rows.len() < PAGE {
                Ok(Vec::new())
            } else {
                read(&state, &filter, last).await
            };
            match following {
                Ok(rows) => Some((Ok(Bytes::from(chunk)), Some((state, filter, rows, false)))),
                // The answer has started: all that is left is to break it off.
                Err(e) => Some((Err(std::io::Error::other(e.1)), None)),
            }
        });
    let body = futures_util::stream::once(async { Ok::<_, std::io::Error>(opening) }).chain(pages);
    Ok((
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

async fn read(
    state: &AppState,
    filter: &Filter,
    after: i64,
) -> Result<Vec<crate::store::audit::AuditRow>, ApiError> {
    let filter = filter.clone();
    Ok(state
        .store
        .call(move |c| page(c, &filter, after, PAGE))
        .await?)
}
