//! Console endings written late: when a build ended while the disk was full, its record
//! holds the closing text its console lacks (the error saying why, `Finished: RESULT`) and
//! the console length it follows. [`write`] puts it there as soon as space allows, then
//! forgets it; [`resume`] picks up those a stopped controller left.
//!
//! The console is cut back to that length first, so a tail written halfway before a
//! failure or a restart is written whole once, never twice.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds::{self as records, ConsoleTail};

/// First pause after a failed attempt.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest pause between attempts; the end of the disk's full state wakes a writer sooner.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Writes `tail` into its build's console, trying again until it fits, then clears it
/// from the record. Ends early on shutdown (the record keeps it for the next start), or
/// when the build or its console is gone.
pub async fn write(state: AppState, tail: ConsoleTail) {
    let path = state.builds.console_path(&tail.job, tail.number);
    let mut full = state.disk.subscribe();
    let mut pause = RETRY_FIRST;
    let id = tail.build_id;
    loop {
        // Deleted meanwhile: nothing to complete.
        if let Ok(false) = state.store.call(move |c| records::exists(c, id)).await {
            return;
        }
        let (p, text, at) = (path.clone(), tail.text.clone(), tail.at);
        let written = tokio::task::spawn_blocking(move || put(&p, at, text.as_bytes()))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(true) => break,
            // The console is gone: its build was deleted.
            Ok(false) => return,
            Err(e) => {
                if crate::disk::is_out_of_space(&e) {
                    state
                        .disk
                        .out_of_space("writing a console's closing lines", &e);
                }
                tracing::warn!(job = ?tail.job, number = tail.number, error = ?e.to_string(), retry_in = ?pause, "cannot write the end of a console yet");
            }
        }
        // While the disk is full, its end is the moment to try again.
        let room = async {
            if *full.borrow_and_update() {
                let _ = full.wait_for(|full| !full).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = room => {}
            () = state.shutdown.cancelled() => return,
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
    if let Err(e) = state
        .store
        .call(move |c| records::clear_console_tail(c, id))
        .await
    {
        // Written again at the next start, over itself: harmless.
        tracing::warn!(job = ?tail.job, number = tail.number, error = ?e.to_string(), "cannot note that a console's end is written");
    }
}

/// Starts a writer for every console tail the store holds; called at start-up.
pub async fn resume(state: &AppState) -> Result<(), StoreError> {
    let tails = state.store.call(|c| records::console_tails(c)).await?;
    for tail in tails {
        state.tasks.spawn(write(state.clone(), tail));
    }
    Ok(())
}

/// Cuts the console at `path` back to `at` bytes and appends `text`, synced. A console
/// that never could be created (`at` 0) is created; one that is gone otherwise was deleted
/// with its build: `false`. A console shorter than `at` (bytes a crash lost) gets the text
/// at its end, never after a gap.
fn put(path: &Path, at: u64, text: &[u8]) -> std::io::Result<bool> {
    if at == 0
        && let Some(dir) = path.parent()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .create(at == 0)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let at = at.min(len);
    if len > at {
        file.set_len(at)?;
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(at))?;
    file.write_all(text)?;
    file.sync_data()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_goes_where_it_belongs_once_whatever_was_written_of_it_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"output\n\nERROR: the contr").unwrap();
        let tail = b"\nERROR: the controller's disk is full\nFinished: FAILURE\n";
        assert!(put(&path, 7, tail).unwrap());
        assert!(put(&path, 7, tail).unwrap());
        let mut expected = b"output\n".to_vec();
        expected.extend_from_slice(tail);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        // A console that could never be created is, with the tail.
        let never = dir.path().join("7").join("log");
        assert!(put(&never, 0, tail).unwrap());
        assert_eq!(std::fs::read(&never).unwrap(), tail);
        // One deleted with its build stays deleted.
        assert!(!put(&dir.path().join("8").join("log"), 5, tail).unwrap());
        assert!(!dir.path().join("8").exists());
        // One shorter than the tail's place (a crash lost its last bytes) leaves no gap.
        let short = dir.path().join("short");
        std::fs::write(&short, b"out").unwrap();
        assert!(put(&short, 7, tail).unwrap());
        let mut expected = b"out".to_vec();
        expected.extend_from_slice(tail);
        assert_eq!(std::fs::read(&short).unwrap(), expected);
    }
}
