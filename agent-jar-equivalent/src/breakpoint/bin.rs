//! `WORKDIR/remoting/bin`: the directory whose `breakpoint` and `steward-git` are symlinks
//! to this binary, and the environment (PATH, the socket) under which steps and SSH
//! sessions find them.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::{COMMAND_NAME, INTERNAL_DIR, SOCKET_ENV, socket_path};

/// The bin directory's name under the internal directory.
const BIN_DIR: &str = "bin";
/// PATH for a process when neither the controller nor the agent's own environment has one:
/// what a login shell on a Unix system starts from.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Where the bin directory of the agent on `work_dir` is (without creating it).
pub fn bin_path(work_dir: &Path) -> PathBuf {
    work_dir.join(INTERNAL_DIR).join(BIN_DIR)
}

/// Makes sure `WORKDIR/remoting/bin/breakpoint` and `…/steward-git` (a build's checkout,
/// [`crate::git`]) are symlinks to the running binary and returns the directory. Idempotent; a link to anything else (an older binary) is replaced
/// atomically, so a step running `breakpoint` meanwhile finds either link, never none.
pub fn bin_dir(work_dir: &Path) -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    link_in(&bin_path(work_dir), &exe)?;
    link_named(&bin_path(work_dir), crate::git::COMMAND_NAME, &exe)?;
    Ok(bin_path(work_dir))
}

/// Creates `dir` and points `dir/breakpoint` at `target`.
fn link_in(dir: &Path, target: &Path) -> std::io::Result<()> {
    link_named(dir, COMMAND_NAME, target)
}

/// Creates `dir` and points `dir/NAME` at `target`.
fn link_named(dir: &Path, name: &str, target: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let link = dir.join(name);
    if std::fs::read_link(&link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let temp = dir.join(format!(".{name}.new-{:016x}", rand::random::<u64>()));
    std::os::unix::fs::symlink(target, &temp)?;
    std::fs::rename(&temp, &link).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// The variables a step or SSH session on `work_dir` gets so `breakpoint` works: the
/// socket, and PATH with the bin directory first. `path` is the PATH it would have had
/// (the agent's own when `None`).
pub fn command_env(work_dir: &Path, path: Option<&OsStr>) -> Vec<(&'static str, OsString)> {
    let mut env = vec![(SOCKET_ENV, socket_path(work_dir).into_os_string())];
    let inherited = match path {
        Some(path) => path.to_os_string(),
        None => std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    };
    let dirs = std::iter::once(bin_path(work_dir)).chain(std::env::split_paths(&inherited));
    // A work dir whose path holds ':' cannot be on PATH; the step keeps its PATH then, and
    // `breakpoint` is reached by its full path.
    if let Ok(joined) = std::env::join_paths(dirs) {
        env.push(("PATH", joined));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_made_once_and_a_stale_one_replaced() {
        let work = tempfile::tempdir().unwrap();
        let dir = bin_path(work.path());
        let link = dir.join(COMMAND_NAME);
        link_in(&dir, Path::new("/old/agent")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/old/agent"));
        link_in(&dir, Path::new("/new/agent")).unwrap();
        link_in(&dir, Path::new("/new/agent")).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/new/agent"));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from(COMMAND_NAME)], "no temp link left");

        assert_eq!(bin_dir(work.path()).unwrap(), dir);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::env::current_exe().unwrap()
        );
    }

    #[test]
    fn the_environment_puts_the_bin_dir_first() {
        let work = Path::new("/w");
        let env = command_env(work, Some(OsStr::new("/usr/bin:/bin")));
        assert_eq!(
            env,
            [
                (SOCKET_ENV, OsString::from("/w/remoting/agent.sock")),
                ("PATH", OsString::from("/w/remoting/bin:/usr/bin:/bin")),
            ]
        );
        let env = command_env(Path::new("/a:b"), Some(OsStr::new("/bin")));
        assert_eq!(env.len(), 1, "no PATH through a directory with ':'");
    }
}
