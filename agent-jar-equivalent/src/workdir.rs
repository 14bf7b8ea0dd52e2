//! The agent's work directory (`-workDir`, `-internalDir`, `-failIfWorkDirIsMissing`):
//! creates `DIR/INTERNAL/logs/` and names the log file the agent appends to.

use std::io;
use std::path::{Component, Path, PathBuf};

/// `-internalDir` when none is given, as in Jenkins.
pub const DEFAULT_INTERNAL_DIR: &str = "remoting";
/// Folder under the internal directory that holds the logs.
pub const LOGS_DIR: &str = "logs";
/// The agent's log file in [`LOGS_DIR`].
pub const LOG_FILE_NAME: &str = "agent.log";

#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    #[error(
        "the work directory {} does not exist and -failIfWorkDirIsMissing is set",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("the work directory {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("invalid internal directory {name:?}: {reason}")]
    BadInternalDir { name: String, reason: String },
}

/// An internal directory must be one plain folder name: it comes from the command line or
/// from the controller's JNLP document, and must not lead out of the work directory.
pub fn check_internal_dir(name: &str) -> Result<(), String> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(()),
        _ => Err(format!("{name:?} must be a single folder name")),
    }
}

/// Creates `work_dir/internal_dir/logs` and returns the log file's path.
pub fn prepare(
    work_dir: &Path,
    internal_dir: &str,
    fail_if_missing: bool,
) -> Result<PathBuf, WorkDirError> {
    check_internal_dir(internal_dir).map_err(|reason| WorkDirError::BadInternalDir {
        name: internal_dir.to_owned(),
        reason,
    })?;
    match std::fs::metadata(work_dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(WorkDirError::NotADirectory(work_dir.to_owned()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound && fail_if_missing => {
            return Err(WorkDirError::Missing(work_dir.to_owned()));
        }
        Err(_) => {} // create_dir_all below reports the real problem
    }
    let logs = work_dir.join(internal_dir).join(LOGS_DIR);
    std::fs::create_dir_all(&logs).map_err(|source| WorkDirError::Create {
        path: logs.clone(),
        source,
    })?;
    Ok(logs.join(LOG_FILE_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_log_folder() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("agent");
        let log = prepare(&work, DEFAULT_INTERNAL_DIR, false).unwrap();
        assert_eq!(log, work.join("remoting/logs/agent.log"));
        assert!(work.join("remoting/logs").is_dir());
        // A second start finds everything in place.
        assert_eq!(prepare(&work, DEFAULT_INTERNAL_DIR, true).unwrap(), log);
    }

    #[test]
    fn missing_work_dir_fails_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("absent");
        let err = prepare(&work, "remoting", true).unwrap_err();
        assert!(matches!(err, WorkDirError::Missing(_)), "{err}");
        assert!(!work.exists());
    }

    #[test]
    fn a_file_is_not_a_work_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            prepare(&file, "remoting", false),
            Err(WorkDirError::NotADirectory(_))
        ));
    }

    #[test]
    fn internal_dir_is_one_folder_name() {
        assert!(check_internal_dir("remoting").is_ok());
        for bad in ["", "..", ".", "a/b", "/abs", "../up"] {
            assert!(check_internal_dir(bad).is_err(), "{bad:?}");
        }
    }
}
