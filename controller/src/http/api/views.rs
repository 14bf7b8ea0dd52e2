//! `/view/NAME/…`, `/createView` and the root's `views`: views as Jenkins' REST shows them
//! (`views`), for python-jenkins' `get_views`, `view_exists`, `create_view`,
//! `reconfig_view`, `delete_view` and `get_jobs(view_name=…)`.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use steward_protocol::view_xml::{ViewConfig, XML_DECLARATION};

use super::jobs::{FREESTYLE_PROJECT, overview};
use super::{ApiError, ApiQuery, caller, redirect};
use crate::auth::{Identity, Permission};
use crate::state::AppState;
use crate::views::{self, View, ViewError};

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::NotFound(_) | ViewError::Empty => ApiError::not_found(e.to_string()),
            ViewError::Store(s) => s.into(),
            // Jenkins' message for a name taken by `/createView`.
            ViewError::Exists(name) => ApiError::bad_request(format!(
                "A view already exists with the name {}",
                steward_protocol::shown::Shown(&name)
            )),
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}

/// `ROOT/view/NAME/`, or the root for the built-in view, as Jenkins points at its primary
/// view.
pub fn view_url(root: &url::Url, view: &View) -> String {
    if view.is_built_in() {
        return root.to_string();
    }
    let segment = url::form_urlencoded::byte_serialize(view.name().as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("{root}view/{segment}/")
}

/// `{"_class", "name", "url"}`, as the root lists its views.
pub fn view_ref(root: &url::Url, view: &View) -> Value {
    json!({"_class": view.config.kind.class(), "name": view.name(), "url": view_url(root, view)})
}

/// The views `identity` may read, by name.
pub async fn readable_views(state: &AppState, identity: &Identity) -> Result<Vec<View>, ApiError> {
    let names = crate::jobs::readable_names(state, identity);
    Ok(views::list(state)
        .await?
        .into_iter()
        .filter(|v| views::readable(identity, v, &names))
        .collect())
}

/// The view `name`, if the caller may read it: 404 for none, 403 without the permission.
async fn readable_view(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
) -> Result<(Identity, View), ApiError> {
    let identity = caller(state, headers, Permission::OverallRead).await?;
    let view = views::get(state, name).await?;
    let names = crate::jobs::readable_names(state, &identity);
    if !views::readable(&identity, &view, &names) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "{} is missing the {} permission",
                identity.name(),
                Permission::ViewRead.display_name()
            ),
        ));
    }
    Ok((identity, view))
}

/// `GET /view/NAME/api/json`: the view and its jobs (`name`, `url`, `color`).
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, view) = readable_view(&state, &headers, &name).await?;
    let root = &state.config.root_url;
    // Only the jobs the caller may read, the jobs' own grants counted.
    let jobs: Vec<Value> = overview(&state, &identity)
        .await?
        .into_iter()
        .filter(|o| view.contains(&o.record.name))
        .map(|o| {
            json!({
                "_class": FREESTYLE_PROJECT,
                "name": o.record.name,
                "url": crate::builds::job_url(root, &o.record.name),
                "color": o.color,
            })
        })
        .collect();
    Ok(query.answer(json!({
        "_class": view.config.kind.class(),
        "description": view.config.description,
        "jobs": jobs,
        "name": view.name(),
        "property": [],
        "url": view_url(root, &view),
    })))
}

/// `GET /view/NAME/config.xml`: the view's XML, as `get-view` prints it.
pub async fn get_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, view) = readable_view(&state, &headers, &name).await?;
    Ok((
        [(CONTENT_TYPE, "application/xml")],
        format!("{XML_DECLARATION}\n{}", view.config.to_xml()),
    )
        .into_response())
}

fn parse(body: &str) -> Result<ViewConfig, ApiError> {
    ViewConfig::from_xml(body).map_err(|e| ViewError::BadXml(e).into())
}

/// `POST /view/NAME/config.xml` (python-jenkins' `reconfig_view`): replaces the view's
/// XML, keeping its name and kind. Needs View/Configure.
pub async fn post_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let (identity, view) = readable_view(&state, &headers, &name).await?;
    identity
        .require(Permission::ViewConfigure)
        .map_err(|denied| ApiError(StatusCode::FORBIDDEN, denied.0))?;
    let config = tokio::task::spawn_blocking(move || parse(&body))
        .await
        .map_err(ApiError::internal)??;
    views::update(&state, view.name(), config).await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct CreateQuery {
    name: Option<String>,
}

/// `POST /createView?name=NAME` with the view's XML as the body (python-jenkins'
/// `create_view`). Needs View/Create.
pub async fn create(
    State(state): State<AppState>,
    Query(query): Query<CreateQuery>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    caller(&state, &headers, Permission::ViewCreate).await?;
    let Some(name) = query.name.filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request("No name is specified"));
    };
    let mut config = tokio::task::spawn_blocking(move || parse(&body))
        .await
        .map_err(ApiError::internal)??;
    config.name = name;
    views::create(&state, config).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /view/NAME/doDelete` (python-jenkins' `delete_view`): 302 to the root. The
/// built-in view is refused (400). Needs View/Delete.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (identity, view) = readable_view(&state, &headers, &name).await?;
    identity
        .require(Permission::ViewDelete)
        .map_err(|denied| ApiError(StatusCode::FORBIDDEN, denied.0))?;
    views::delete(&state, view.name()).await?;
    Ok(redirect(state.config.root_url.as_str()))
}

/// `/view/NAME/job/…` as `/job/…`: Jenkins reaches a job through any view; the path is
/// rewritten before routing (the view is not looked up). `prefix` is the root URL's path.
pub fn through_view(prefix: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("/view/")?;
    let (_view, after) = rest.split_once('/')?;
    after
        .starts_with("job/")
        .then(|| format!("{prefix}/{after}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_reached_through_a_view() {
        assert_eq!(
            through_view("", "/view/web/job/app/api/json").as_deref(),
            Some("/job/app/api/json")
        );
        assert_eq!(
            through_view("/jenkins", "/jenkins/view/All/job/app/1/").as_deref(),
            Some("/jenkins/job/app/1/")
        );
        assert_eq!(through_view("", "/view/web/api/json"), None);
        assert_eq!(through_view("", "/job/app/api/json"), None);
        assert_eq!(through_view("/jenkins", "/view/web/job/app/"), None);
    }
}
