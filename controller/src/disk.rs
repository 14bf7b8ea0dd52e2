//! The controller's own disk: space kept in reserve so that a full disk never leaves a
//! build half-recorded, and the "disk full" state the rest of the controller acts on.
//!
//! At start-up the controller writes [`RESERVE_BYTES`] to `HOME/reserved-space`. When a
//! write fails for lack of space (a console append, a database write that must not be
//! lost), [`Disk::out_of_space`] deletes that file and the controller is *full*:
//!
//! - builds stop appending their steps' output (a build that prints fails, with the reason);
//! - the scheduler starts nothing, and queued builds say why;
//! - what the freed space is for goes on: recording builds' results, their consoles'
//!   closing lines, and deleting builds to make room.
//!
//! [`watch`] looks at the free space every [`FULL_RECHECK`] while full, and when there is
//! room for the reserve and a margin ([`RESUME_MARGIN_BYTES`]), writes the reserve again
//! and ends the full state (waking whoever waits on [`Disk::subscribe`]).

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::units::format_bytes;

/// The reserve's file in the home.
pub const RESERVE_FILE: &str = "reserved-space";
/// Space held back for records and deletions: a build's result is a few database pages,
/// and SQLite's write-ahead log grows by at most its checkpoint size (4 MiB) before it is
/// reused; 8 MiB covers that with the consoles' closing lines.
pub const RESERVE_BYTES: u64 = 8 * 1024 * 1024;
/// Free space, beyond the reserve, needed to leave the full state: less would fill again
/// with the next console.
pub const RESUME_MARGIN_BYTES: u64 = 16 * 1024 * 1024;
/// How often the free space is looked at while full: a `statvfs`, so cheap; often enough
/// that builds start again within seconds of an operator freeing space.
pub const FULL_RECHECK: Duration = Duration::from_secs(2);
/// Chunk written when the reserve is made.
const WRITE_CHUNK: usize = 1024 * 1024;

/// What an append of build output gets while the disk is full.
pub const FULL_MESSAGE: &str = "the controller's disk is full";

/// The controller's disk; one per controller.
pub struct Disk {
    root: PathBuf,
    reserve: PathBuf,
    state: Mutex<Reserve>,
    /// `true` while full; changes only on a real change.
    full: watch::Sender<bool>,
}

/// The reserve's state, behind the lock.
#[derive(Debug, Default)]
struct Reserve {
    /// Whether the reserve file is in place.
    held: bool,
    /// Failed writes so far: a [`Disk::recheck`] that wrote the reserve while another
    /// failed gives up, rather than end the full state the failure began.
    failures: u64,
}

impl Disk {
    /// Writes the reserve in `home` (or finds it there). A disk with no room for it starts
    /// out full. Blocking: call it at start-up.
    pub fn open(home: &Path) -> Disk {
        let disk = Disk {
            root: home.to_path_buf(),
            reserve: home.join(RESERVE_FILE),
            state: Mutex::default(),
            full: watch::Sender::new(false),
        };
        match disk.write_reserve() {
            Ok(()) => disk.lock().held = true,
            Err(e) => {
                tracing::error!(path = ?disk.reserve, error = ?e.to_string(), "cannot reserve space for build records: the controller's disk is full; builds start once space is freed");
                disk.set_full(true);
            }
        }
        disk
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reserve> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the full state, telling subscribers only when it changes; whether it did.
    fn set_full(&self, full: bool) -> bool {
        self.full.send_if_modified(|now| {
            let changed = *now != full;
            *now = full;
            changed
        })
    }

    /// Whether the disk is full: build output is not written and no build starts.
    pub fn is_full(&self) -> bool {
        *self.full.borrow()
    }

    /// Follows the full state.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.full.subscribe()
    }

    /// Bytes free for the controller in its home, if the system says.
    pub fn free_bytes(&self) -> Option<u64> {
        free_bytes(&self.root)
    }

    /// Why queued builds wait while the disk is full.
    pub fn wait_reason(&self) -> String {
        let free = self
            .free_bytes()
            .map(|b| format!("{} free in {}", format_bytes(b), self.root.display()))
            .unwrap_or_else(|| self.root.display().to_string());
        format!("The controller's disk is full ({free}); builds start once space is freed")
    }

    /// A write failed for lack of space (`what` failed with `error`): gives the reserve up
    /// to what must still be written, and makes the disk full. Blocking only for an unlink.
    pub fn out_of_space(&self, what: &str, error: &dyn Display) {
        let mut state = self.lock();
        state.failures += 1;
        let released = state.held && std::fs::remove_file(&self.reserve).is_ok();
        if released {
            state.held = false;
        }
        let became_full = self.set_full(true);
        drop(state);
        if became_full || released {
            tracing::error!(
                what,
                error = ?error.to_string(),
                released_bytes = if released { RESERVE_BYTES } else { 0 },
                "the controller's disk is full: builds that print fail and none starts until space is freed; the reserved space goes to build records and deletions"
            );
        }
    }

    /// Ends the full state when there is room for the reserve and the margin, writing the
    /// reserve again; whether the disk is (now) not full. Blocking; the reserve is written
    /// without holding the lock, so a failing write elsewhere never waits for it.
    pub fn recheck(&self) -> bool {
        if !self.is_full() {
            return true;
        }
        let (held, failures) = {
            let state = self.lock();
            (state.held, state.failures)
        };
        let needed = RESUME_MARGIN_BYTES + if held { 0 } else { RESERVE_BYTES };
        if self.free_bytes().is_none_or(|free| free < needed) {
            return false;
        }
        let fresh = self.reserve.with_extension("new");
        if !held && let Err(e) = write_zeros(&fresh, RESERVE_BYTES) {
            tracing::warn!(path = ?fresh, error = ?e.to_string(), "cannot write the reserved space yet");
            return false;
        }
        let mut state = self.lock();
        if state.failures != failures {
            // A write failed meanwhile: the disk filled again; the new reserve goes back.
            drop(state);
            let _ = std::fs::remove_file(&fresh);
            return false;
        }
        if !held {
            if let Err(e) = std::fs::rename(&fresh, &self.reserve) {
                drop(state);
                tracing::warn!(path = ?self.reserve, error = ?e.to_string(), "cannot put the reserved space in place");
                let _ = std::fs::remove_file(&fresh);
                return false;
            }
            state.held = true;
        }
        self.set_full(false);
        drop(state);
        tracing::info!(
            free = self.free_bytes().map(format_bytes).unwrap_or_default(),
            "the controller's disk has room again: builds start and print again"
        );
        true
    }

    /// Writes the reserve file in full, unless it is there already.
    fn write_reserve(&self) -> std::io::Result<()> {
        if std::fs::metadata(&self.reserve).is_ok_and(|m| m.len() == RESERVE_BYTES) {
            return Ok(());
        }
        write_zeros(&self.reserve, RESERVE_BYTES)
    }
}

/// Writes `len` zeros to `path`, synced; a file left half-written is removed (half a
/// reserve is none).
fn write_zeros(path: &Path, len: u64) -> std::io::Result<()> {
    let written = (|| {
        let mut file = std::fs::File::create(path)?;
        let zeros = vec![0u8; WRITE_CHUNK];
        let mut left = len;
        while left > 0 {
            let n = left.min(WRITE_CHUNK as u64) as usize;
            file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Ends the full state as soon as space allows: looks every [`FULL_RECHECK`] while full.
pub async fn watch(disk: std::sync::Arc<Disk>, shutdown: CancellationToken) {
    let mut full = disk.subscribe();
    loop {
        if *full.borrow_and_update() {
            let d = disk.clone();
            let _ = tokio::task::spawn_blocking(move || d.recheck()).await;
            tokio::select! {
                () = tokio::time::sleep(FULL_RECHECK) => {}
                () = shutdown.cancelled() => return,
            }
        } else {
            tokio::select! {
                changed = full.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

/// The error an append of build output gets while the disk is full.
pub fn full_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::StorageFull, FULL_MESSAGE)
}

/// Bytes free for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    (rc == 0).then(|| (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_written_given_up_and_written_again() {
        let home = tempfile::tempdir().unwrap();
        let disk = Disk::open(home.path());
        let reserve = home.path().join(RESERVE_FILE);
        assert_eq!(std::fs::metadata(&reserve).unwrap().len(), RESERVE_BYTES);
        assert!(!disk.is_full());

        let mut full = disk.subscribe();
        disk.out_of_space("a test", &"No space left on device");
        assert!(disk.is_full());
        assert!(full.has_changed().unwrap());
        full.borrow_and_update();
        assert!(!reserve.exists());
        // A second failure has nothing more to give, and changes nothing anyone waits on.
        disk.out_of_space("a test", &"No space left on device");
        assert!(disk.is_full());
        assert!(!full.has_changed().unwrap());

        // This temp dir's file system has room: the reserve comes back and the state ends.
        assert!(disk.recheck());
        assert!(!disk.is_full());
        assert_eq!(std::fs::metadata(&reserve).unwrap().len(), RESERVE_BYTES);
    }

    #[test]
    fn out_of_space_errors_are_told_apart() {
        assert!(is_out_of_space(&std::io::Error::from_raw_os_error(
            libc::ENOSPC
        )));
        assert!(is_out_of_space(&std::io::Error::from_raw_os_error(
            libc::EDQUOT
        )));
        assert!(is_out_of_space(&full_error()));
        assert!(!is_out_of_space(&std::io::Error::from_raw_os_error(
            libc::EACCES
        )));
    }
}
