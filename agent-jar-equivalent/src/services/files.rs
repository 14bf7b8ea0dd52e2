//! The simple file requests: `Stat`, `List`, `MakeDirs`, `Remove` and `Sha256`, each
//! answered with one [`Response`]. Streamed reads and writes live in `transfer`.
//!
//! Paths are resolved against the work dir ([`Context::resolve`]). Every failure becomes a
//! [`Response::Error`] whose message names the path and the OS reason, e.g.
//! `cannot stat /x/y: No such file or directory (os error 2)`. The file system is touched on
//! the blocking pool, never on the runtime's threads.

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use steward_protocol::services::{
    DirEntry, FileKind, FileStat, MAX_LIST_ENTRIES, Request, Response,
};

use super::Context;

/// Read size for hashing: large enough that the syscall cost vanishes next to the hashing.
const HASH_BUFFER: usize = 1024 * 1024;

/// Answers one of the simple file requests; any other request is a caller bug, answered
/// with an error rather than a panic.
pub async fn respond(request: Request, context: &Context) -> Response {
    let context = context.clone();
    let work = move || match request {
        Request::Stat { path } => stat(&context.resolve(&path)).map(Response::Stat),
        Request::List { path } => list(&context.resolve(&path)).map(Response::List),
        Request::MakeDirs { path } => make_dirs(&context.resolve(&path)).map(|()| Response::Done),
        Request::Remove { path } => remove(&context.resolve(&path)).map(|()| Response::Done),
        Request::Sha256 { path } => {
            sha256(&context.resolve(&path)).map(|hex| Response::Sha256 { hex })
        }
        other => Err(format!("{other:?} is not a simple file request")),
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(response)) => response,
        Ok(Err(message)) => Response::Error { message },
        Err(e) => Response::Error {
            message: format!("the file request failed: {e}"),
        },
    }
}

/// `cannot VERB PATH: REASON`, the one shape of every file error.
pub(crate) fn failed(verb: &str, path: &Path, reason: impl std::fmt::Display) -> String {
    format!("cannot {verb} {}: {reason}", path.display())
}

/// The stat of `path` itself (a symlink is reported as one, not followed).
pub fn stat(path: &Path) -> Result<FileStat, String> {
    std::fs::symlink_metadata(path)
        .map(|m| file_stat(&m))
        .map_err(|e| failed("stat", path, e))
}

/// The wire form of a metadata: permission bits only (the kind says the type).
pub fn file_stat(metadata: &Metadata) -> FileStat {
    let file_type = metadata.file_type();
    let kind = if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    FileStat {
        kind,
        size: metadata.len(),
        mode: metadata.permissions().mode() & 0o7777,
        modified_ms: metadata
            .mtime()
            .saturating_mul(1000)
            .saturating_add(metadata.mtime_nsec() / 1_000_000),
    }
}

/// The entries of a directory, sorted by name; more than [`MAX_LIST_ENTRIES`] is an error
/// rather than a silently cut list.
pub fn list(path: &Path) -> Result<Vec<DirEntry>, String> {
    let entries = std::fs::read_dir(path).map_err(|e| failed("list", path, e))?;
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| failed("list", path, e))?;
        if listed.len() == MAX_LIST_ENTRIES {
            return Err(failed(
                "list",
                path,
                format_args!("more than {MAX_LIST_ENTRIES} entries"),
            ));
        }
        // Does not follow symlinks on Unix. An entry removed since readdir is skipped.
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        listed.push(DirEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            stat: file_stat(&metadata),
        });
    }
    listed.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// `mkdir -p`.
pub fn make_dirs(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| failed("create directory", path, e))
}

/// `rm -rf`: a file, a symlink (not its target) or a whole tree; a missing path is fine.
pub fn remove(path: &Path) -> Result<(), String> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed("remove", path, e)),
    };
    let removed = if metadata.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed("remove", path, e)),
        _ => Ok(()),
    }
}

/// The SHA-256 of a file's contents, lower-case hex, read in [`HASH_BUFFER`] pieces.
pub fn sha256(path: &Path) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| failed("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed("read", path, e)),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_kinds_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("l")).unwrap();

        let s = stat(&file).unwrap();
        assert_eq!((s.kind, s.size, s.mode), (FileKind::File, 5, 0o640));
        assert!(s.modified_ms > 1_600_000_000_000);
        assert_eq!(stat(dir.path()).unwrap().kind, FileKind::Dir);
        assert_eq!(stat(&dir.path().join("l")).unwrap().kind, FileKind::Symlink);
    }

    #[test]
    fn errors_name_the_path_and_the_reason() {
        let missing = Path::new("/nonexistent-steward/x");
        assert_eq!(
            stat(missing).unwrap_err(),
            "cannot stat /nonexistent-steward/x: No such file or directory (os error 2)"
        );
        assert!(
            list(missing)
                .unwrap_err()
                .starts_with("cannot list /nonexistent-steward/x: ")
        );
        assert!(
            sha256(missing)
                .unwrap_err()
                .starts_with("cannot open /nonexistent-steward/x: ")
        );
    }

    #[test]
    fn list_is_sorted_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a", "c"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let names: Vec<_> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);

        let big = tempfile::tempdir().unwrap();
        for i in 0..=MAX_LIST_ENTRIES {
            std::fs::File::create(big.path().join(i.to_string())).unwrap();
        }
        let err = list(big.path()).unwrap_err();
        assert!(err.contains("more than 10000 entries"), "{err}");
    }

    #[test]
    fn make_dirs_and_remove_trees() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        make_dirs(&deep).unwrap();
        make_dirs(&deep).unwrap();
        std::fs::write(deep.join("f"), b"x").unwrap();
        remove(&dir.path().join("a")).unwrap();
        assert!(!dir.path().join("a").exists());
        remove(&dir.path().join("a")).unwrap();

        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let err = make_dirs(&dir.path().join("file/sub")).unwrap_err();
        assert!(err.starts_with("cannot create directory "), "{err}");
        assert!(err.contains("Not a directory"), "{err}");
    }

    #[test]
    fn sha256_of_known_contents() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("abc");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(
            sha256(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
