//! The publishers a build runs after its steps, as Jenkins' do: "Archive the artifacts"
//! (`ArtifactArchiver`) and "Publish JUnit test result report" (`JUnitResultArchiver`).
//!
//! Both find their files on the agent with Ant patterns (`FindFiles`) and stream them over
//! the channel (`ReadFile`) a chunk at a time: memory stays at one chunk whatever the
//! files' size. Artifacts land in `BUILD_DIR/archive/PATH`, written to a temporary name
//! and renamed, and go with the build. Test reports are read into the build's test result
//! (`BUILD_DIR/junitResult.json`, Jenkins' `testReport/api/json` shape), whose counts the
//! store keeps for listings; failures make a successful build UNSTABLE.
//!
//! A publisher runs again when a controller restarted during it resumes the build: both
//! are idempotent (the same files, the same result).

use std::path::{Component, Path, PathBuf};

use steward_channel::Channel;
use steward_channel::call::{call, open, read_response};
use steward_protocol::job_xml::publishers::{ArtifactArchiver, JUnitArchiver};
use steward_protocol::junit::{self, Limits, StdioRetention, TestResult};
use steward_protocol::services::{FindFiles, FoundFile, Request, Response};
use tokio::io::AsyncWriteExt;

use crate::state::AppState;
use crate::store::builds::{BuildResult, BuildRow};

/// Most files one publisher takes: the answer listing them must fit one response.
pub const MAX_PUBLISHED_FILES: u32 = 50_000;
/// The directory of a build's artifacts, under its build directory.
pub const ARCHIVE_DIR: &str = "archive";
/// A build's test result, under its build directory.
pub const TEST_RESULT_FILE: &str = "junitResult.json";

/// What a publisher did to the build.
#[derive(Debug, Default)]
pub struct Published {
    /// Console lines to write, in order.
    pub lines: Vec<String>,
    /// The result the build has now (worse than before, or the same).
    pub result: Option<BuildResult>,
}

/// Files under `workspace` on the agent matching the patterns.
async fn find(
    channel: &Channel,
    workspace: &str,
    includes: &str,
    excludes: &str,
    case_sensitive: bool,
    default_excludes: bool,
) -> Result<Vec<FoundFile>, String> {
    let request = Request::FindFiles(FindFiles {
        dir: workspace.to_owned(),
        includes: includes.to_owned(),
        excludes: excludes.to_owned(),
        case_sensitive,
        default_excludes,
        max: MAX_PUBLISHED_FILES,
    });
    match call(channel, &request).await {
        Ok(Response::Files(files)) => Ok(files),
        Ok(Response::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("cannot list the workspace's files: {e}")),
    }
}

/// `relative` as a path under `root`, refused when it would leave it (an agent's answer
/// is untrusted).
fn inside(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let path = Path::new(relative);
    let clean =
        !relative.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if clean {
        Ok(root.join(path))
    } else {
        Err(format!(
            "the agent named a file outside the workspace: {relative:?}"
        ))
    }
}

/// Streams file `path` of the agent into `to` (through a temporary file beside it);
/// the bytes copied.
async fn fetch(channel: &Channel, path: &str, to: &Path) -> Result<u64, String> {
    let failed = |e: &dyn std::fmt::Display| format!("cannot copy {path}: {e}");
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| failed(&e))?;
    }
    let temp = to.with_file_name(format!(
        ".{}.part",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let request = Request::ReadFile {
        path: path.to_owned(),
        offset: 0,
    };
    let mut stream = open(channel, &request).await.map_err(|e| failed(&e))?;
    stream.finish().await.map_err(|e| failed(&e))?;
    match read_response(&mut stream).await {
        Ok(Response::FileStart { .. }) => {}
        Ok(Response::Error { message }) => return Err(message),
        Ok(other) => return Err(failed(&format!("unexpected answer {other:?}"))),
        Err(e) => return Err(failed(&e)),
    }
    let file = tokio::fs::File::create(&temp)
        .await
        .map_err(|e| failed(&e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut copied = 0u64;
    let written: Result<(), String> = async {
        while let Some(chunk) = stream.recv().await {
            let chunk = chunk.map_err(|e| failed(&e))?;
            copied += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(|e| failed(&e))?;
        }
        out.flush().await.map_err(|e| failed(&e))
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    tokio::fs::rename(&temp, to).await.map_err(|e| failed(&e))?;
    Ok(copied)
}

/// "Archive the artifacts".
pub async fn archive(
    state: &AppState,
    channel: &Channel,
    row: &BuildRow,
    workspace: &str,
    archiver: &ArtifactArchiver,
    result: BuildResult,
) -> Published {
    let mut published = Published::default();
    if archiver.only_if_successful
        && !matches!(result, BuildResult::Success | BuildResult::Unstable)
    {
        published
            .lines
            .push("Skipped archiving because build is not successful\n".into());
        return published;
    }
    published.lines.push("Archiving artifacts\n".into());
    let files = match find(
        channel,
        workspace,
        &archiver.artifacts,
        &archiver.excludes,
        archiver.case_sensitive,
        archiver.default_excludes,
    )
    .await
    {
        Ok(files) => files,
        Err(why) => {
            published.lines.push(format!("ERROR: {why}\n"));
            published.result = Some(BuildResult::Failure);
            return published;
        }
    };
    if files.is_empty() {
        let message = format!(
            "No artifacts found that match the file pattern \"{}\". Configuration error?\n",
            archiver.artifacts
        );
        if archiver.allow_empty {
            published.lines.push(message);
        } else {
            published.lines.push(format!("ERROR: {message}"));
            published.result = Some(BuildResult::Failure);
        }
        return published;
    }
    let root = state
        .builds
        .build_dir(&row.job, row.number)
        .join(ARCHIVE_DIR);
    for file in &files {
        let copied = match inside(&root, &file.path) {
            Ok(to) => fetch(channel, &format!("{workspace}/{}", file.path), &to).await,
            Err(why) => Err(why),
        };
        if let Err(why) = copied {
            published.lines.push(format!("ERROR: {why}\n"));
            published.result = Some(BuildResult::Failure);
            return published;
        }
    }
    tracing::info!(job = ?row.job, number = row.number, files = files.len(), "artifacts archived");
    published
}

/// "Publish JUnit test result report".
pub async fn record_tests(
    state: &AppState,
    channel: &Channel,
    row: &BuildRow,
    workspace: &str,
    archiver: &JUnitArchiver,
    result: BuildResult,
) -> Published {
    let mut published = Published::default();
    published.lines.push("Recording test results\n".into());
    let failed = |why: String| Published {
        lines: vec![
            "Recording test results\n".into(),
            format!("ERROR: Step ‘Publish JUnit test result report’ failed: {why}\n"),
        ],
        result: Some(BuildResult::Failure),
    };
    let files = match find(channel, workspace, &archiver.test_results, "", true, true).await {
        Ok(files) => files,
        Err(why) => return failed(why),
    };
    if files.is_empty() {
        if archiver.allow_empty_results {
            published
                .lines
                .push("None of the test reports contained any result\n".into());
            return published;
        }
        return failed("No test report files were found. Configuration error?".into());
    }
    let build_dir = state.builds.build_dir(&row.job, row.number);
    let scratch = build_dir.join(".junit-reports");
    let mut test_result = TestResult::new();
    let limits = Limits {
        stdio: if archiver.keep_long_stdio {
            StdioRetention::All
        } else {
            StdioRetention::None
        },
        ..Limits::default()
    };
    for (index, file) in files.iter().enumerate() {
        if file.size > limits.max_report_bytes {
            return failed(format!(
                "{} is {} bytes, over the limit of {} for a test report",
                file.path, file.size, limits.max_report_bytes
            ));
        }
        let local = scratch.join(format!("{index}.xml"));
        if let Err(why) = fetch(channel, &format!("{workspace}/{}", file.path), &local).await {
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            return failed(why);
        }
        let (path, for_parse, limits) = (file.path.clone(), local.clone(), limits.clone());
        let parsed = tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::with_capacity(
                1 << 16,
                std::fs::File::open(&for_parse)
                    .map_err(|e| junit::JunitError::Io(e.to_string()))?,
            );
            junit::parse_report(reader, &limits)
        })
        .await
        .unwrap_or_else(|e| Err(junit::JunitError::Io(e.to_string())));
        let _ = tokio::fs::remove_file(&local).await;
        if let Err(e) = test_result.add_file(&path, parsed) {
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            return failed(format!("{path}: {e}"));
        }
    }
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let previous = previous_result(state, row).await;
    test_result.compare_with(row.number as u32, previous.iter());
    let (total, failed_count, skipped) = (
        test_result.total() as u64,
        test_result.fail_count() as u64,
        test_result.skip_count() as u64,
    );
    let path = build_dir.join(TEST_RESULT_FILE);
    let saved = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let temp = path.with_extension("json.tmp");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&temp)?);
        serde_json::to_writer(&mut out, &test_result)?;
        std::io::Write::flush(&mut out)?;
        std::fs::rename(&temp, &path)
    })
    .await;
    if !matches!(saved, Ok(Ok(()))) {
        return failed("the test result cannot be saved".into());
    }
    let id = row.id;
    if let Err(e) = state
        .store
        .call(move |c| crate::store::builds::set_test_counts(c, id, total, failed_count, skipped))
        .await
    {
        tracing::warn!(job = ?row.job, number = row.number, error = ?e.to_string(), "cannot record the test counts");
    }
    if failed_count > 0 && !archiver.skip_marking_build_unstable && result == BuildResult::Success {
        published.result = Some(BuildResult::Unstable);
    }
    if total == 0 && !archiver.allow_empty_results {
        return failed("None of the test reports contained any result".into());
    }
    published
}

/// The previous build's test result, if it has one.
async fn previous_result(state: &AppState, row: &BuildRow) -> Option<TestResult> {
    let (job, number) = (row.job.clone(), row.number);
    let previous = state
        .store
        .call(move |c| crate::store::builds::previous_number(c, &job, number))
        .await
        .ok()??;
    let path = state
        .builds
        .build_dir(&row.job, previous)
        .join(TEST_RESULT_FILE);
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(path).ok()?;
        serde_json::from_reader(std::io::BufReader::new(file)).ok()
    })
    .await
    .ok()?
}

/// A build's artifacts: paths relative to its archive, sorted, at most `limit`.
pub fn artifacts(build_dir: &Path, limit: usize) -> Vec<String> {
    let root = build_dir.join(ARCHIVE_DIR);
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') && name.ends_with(".part") {
                continue;
            }
            let relative = dir.join(name);
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(relative),
                Ok(kind) if kind.is_file() => {
                    if found.len() == limit {
                        break;
                    }
                    found.push(relative.to_string_lossy().into_owned());
                }
                _ => {}
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_paths_stay_inside() {
        let root = Path::new("/b/archive");
        assert_eq!(inside(root, "dist/a.tar").unwrap(), root.join("dist/a.tar"));
        for bad in ["../x", "/etc/passwd", "a/../../x", "", "./a"] {
            assert!(inside(root, bad).is_err(), "{bad}");
        }
    }
}
