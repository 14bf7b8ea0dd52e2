//! A build's archived artifacts and test report, as Jenkins serves them:
//! - `GET /job/J/N/artifact/PATH`: one artifact, streamed from the disk;
//! - `GET /job/J/N/artifact/*zip*/archive.zip`: all of them as one ZIP (entries under
//!   `archive/`, as Jenkins names them), stored and streamed, ZIP64 past 4 GiB;
//! - `GET /job/J/N/testReport/api/json`: the test result, in Jenkins' shape.
//!
//! `N` may be a permalink (`lastSuccessfulBuild`), so `…/lastSuccessfulBuild/artifact/…`
//! works as in Jenkins.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use steward_protocol::zip;
use tokio::io::AsyncReadExt;

use super::{ApiError, job_caller};
use crate::auth::Permission;
use crate::builds::{self, publish};
use crate::state::AppState;

/// Bytes read from an artifact per chunk of a ZIP download.
const ZIP_CHUNK: usize = 256 << 10;
/// Chunks of a ZIP download queued ahead of a slow client.
const ZIP_QUEUE: usize = 4;

/// `GET /job/J/N/artifact/PATH`.
pub async fn artifact(
    State(state): State<AppState>,
    Path((name, which, path)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let row = builds::find(&state, &job.name, &which).await?;
    let archive = state
        .builds
        .build_dir(&job.name, row.number)
        .join(publish::ARCHIVE_DIR);
    if let Some(zip_name) = path.strip_prefix("*zip*/") {
        return Ok(zip_download(archive, zip_name));
    }
    let file = inside(&archive, &path)
        .ok_or_else(|| ApiError::not_found(format!("No artifact {path}")))?;
    let opened = tokio::fs::File::open(&file).await;
    let (file, meta) = match opened {
        Ok(f) => {
            let meta = f
                .metadata()
                .await
                .map_err(|e| ApiError::not_found(e.to_string()))?;
            (f, meta)
        }
        Err(_) => return Err(ApiError::not_found(format!("No artifact {path}"))),
    };
    if !meta.is_file() {
        return Err(ApiError::not_found(format!("No artifact {path}")));
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10));
    Ok((
        [
            (CONTENT_TYPE, content_type(&path).to_owned()),
            (CONTENT_LENGTH, meta.len().to_string()),
        ],
        body,
    )
        .into_response())
}

/// `relative` under `root`, or `None` when it would leave it.
fn inside(root: &FsPath, relative: &str) -> Option<PathBuf> {
    let path = FsPath::new(relative);
    let clean =
        !relative.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    clean.then(|| root.join(path))
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit('.').next().unwrap_or_default();
    match extension {
        "txt" | "log" | "md" | "csv" => "text/plain;charset=UTF-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html;charset=UTF-8",
        "zip" | "jar" | "war" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// All of an archive as one ZIP, written as it is read.
fn zip_download(archive: PathBuf, zip_name: &str) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(ZIP_QUEUE);
    tokio::spawn(async move {
        if let Err(e) = write_zip(&archive, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    let stream = tokio_stream_from(rx);
    let name = if zip_name.ends_with(".zip") && !zip_name.contains(['"', '/']) {
        zip_name.to_owned()
    } else {
        "archive.zip".to_owned()
    };
    (
        [
            (CONTENT_TYPE, "application/zip".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn write_zip(
    archive: &FsPath,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> std::io::Result<()> {
    let gone = || std::io::Error::other("the client went away");
    let dir = archive.to_path_buf();
    let names = tokio::task::spawn_blocking(move || {
        publish::artifacts(dir.parent().unwrap_or(&dir), usize::MAX)
    })
    .await
    .map_err(std::io::Error::other)?;
    let mut entries = Vec::with_capacity(names.len());
    let mut offset = 0u64;
    for name in names {
        let mut file = tokio::fs::File::open(archive.join(&name)).await?;
        let size = file.metadata().await?.len();
        let zip64 = zip::needs_zip64(size, offset);
        let entry_name = format!("archive/{name}");
        let header = zip::local_header(&entry_name, zip64);
        let start = offset;
        offset += header.len() as u64;
        tx.send(Ok(Bytes::from(header))).await.map_err(|_| gone())?;
        let mut crc = zip::Crc32::new();
        let mut copied = 0u64;
        loop {
            let mut buffer = vec![0u8; ZIP_CHUNK];
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            buffer.truncate(n);
            crc.update(&buffer);
            copied += n as u64;
            tx.send(Ok(Bytes::from(buffer))).await.map_err(|_| gone())?;
        }
        offset += copied;
        let entry = zip::Entry {
            name: entry_name,
            crc: crc.finish(),
            size: copied,
            offset: start,
            zip64,
        };
        let descriptor = zip::data_descriptor(&entry);
        offset += descriptor.len() as u64;
        tx.send(Ok(Bytes::from(descriptor)))
            .await
            .map_err(|_| gone())?;
        entries.push(entry);
    }
    let directory = zip::central_directory(&entries, offset);
    tx.send(Ok(Bytes::from(directory)))
        .await
        .map_err(|_| gone())?;
    Ok(())
}

/// `GET /job/J/N/testReport/api/json`: 404 when the build recorded no tests.
pub async fn test_report(
    State(state): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, job) = job_caller(&state, &headers, &name, Permission::JobRead).await?;
    let row = builds::find(&state, &job.name, &which).await?;
    let path = state
        .builds
        .build_dir(&job.name, row.number)
        .join(publish::TEST_RESULT_FILE);
    match tokio::fs::File::open(&path).await {
        Ok(file) => Ok((
            StatusCode::OK,
            [(CONTENT_TYPE, "application/json;charset=utf-8")],
            Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)),
        )
            .into_response()),
        Err(_) => Err(ApiError::not_found(format!(
            "{} #{} has no test report",
            job.name, row.number
        ))),
    }
}
