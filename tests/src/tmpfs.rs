//! A small file system of its own for a test that fills a disk: a tmpfs mounted on a
//! temporary directory, unmounted when dropped. Mounting needs root (CI runs the suite as
//! root); elsewhere [`Tmpfs::mount`] says why it cannot and the test skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB, or `None`, having printed why, when this process
    /// cannot mount (not root).
    pub fn mount(size_mib: u32) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "skipped: mounting a {size_mib} MiB tmpfs to fill needs root (CI runs the tests as root)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("a mount point");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {}",
            dir.path().display()
        );
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on it.
    pub fn free_bytes(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stat) }, 0);
        stat.f_bavail as u64 * stat.f_frsize as u64
    }

    /// Fills what is left of it with the file `name`, to the last byte; its path.
    pub fn fill(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let mut file = std::fs::File::create(&path).expect("the filler file");
        let mut chunk = vec![0u8; 1024 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    if chunk.len() == 1 {
                        break;
                    }
                    let half = chunk.len() / 2;
                    chunk.truncate(half);
                }
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process of the test may still hold a file there.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
