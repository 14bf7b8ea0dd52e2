//! The processes an SSH session starts, and how they end.
//!
//! Every session's process leads a process group of its own (a new session, for a pty, so
//! the terminal becomes its controlling terminal). The group is the unit of signals from the
//! client, and of ending: when the session's channel or connection closes, or the process
//! exits leaving others behind, [`ProcessTree::terminate`] sends SIGHUP and SIGTERM, waits a
//! short grace, then SIGKILLs whatever is left. For a pty session, whose shell may have put
//! jobs in groups of their own, every process of the terminal's session goes too.
//!
//! A process that leaves both (`setsid`, a daemon) still carries the session's cookie in
//! its environment, `STEWARD_SSH_SESSION`, as Jenkins' process-tree killer finds a build's
//! processes by `BUILD_ID`: those are signalled too.

use std::time::Duration;

use russh::Sig;
use tokio::process::Child;

/// How long processes get to exit after SIGHUP/SIGTERM before SIGKILL: enough for a shell
/// to save its history, short enough that a closed session is gone promptly.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);
/// How often the group is checked for survivors during the grace.
const SURVIVOR_CHECK: Duration = Duration::from_millis(20);

/// The processes of one session: a process group, and for a pty the whole session.
#[derive(Debug)]
pub struct ProcessTree {
    pgid: libc::pid_t,
    /// Set for a pty session, whose leader called setsid(): the session id equals the pgid.
    whole_session: bool,
    /// `STEWARD_SSH_SESSION=COOKIE`, as it appears in `/proc/PID/environ`.
    cookie: Vec<u8>,
}

/// The variable every process of a session inherits, naming the session.
pub const COOKIE_VAR: &str = "STEWARD_SSH_SESSION";

/// A new session's cookie.
pub fn new_cookie() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl ProcessTree {
    /// The tree led by `child`, spawned in a group (or session) of its own.
    pub fn of(child: &Child, whole_session: bool, cookie: &str) -> Option<Self> {
        // Never 0 or negative: killpg(0) would be this agent's own group.
        let pgid = libc::pid_t::try_from(child.id()?).ok().filter(|p| *p > 0)?;
        Some(ProcessTree {
            pgid,
            whole_session,
            cookie: format!("{COOKIE_VAR}={cookie}").into_bytes(),
        })
    }

    pub fn pgid(&self) -> libc::pid_t {
        self.pgid
    }

    /// Sends `signal` to every member of the group (and of the session, for a pty).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: killpg only sends a signal; no memory is involved.
        unsafe {
            libc::killpg(self.pgid, signal);
        }
        if self.whole_session {
            for pid in members(Field::Session, self.pgid) {
                // SAFETY: as above, for one process of the session.
                unsafe {
                    libc::kill(pid, signal);
                }
            }
        }
        for pid in self.escaped() {
            // SAFETY: as above, for one process that carries the session's cookie.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// Running processes that left the group and session but carry the cookie.
    fn escaped(&self) -> Vec<libc::pid_t> {
        let me = std::process::id() as libc::pid_t;
        with_cookie(&self.cookie)
            .into_iter()
            .filter(|pid| *pid != me)
            .collect()
    }

    /// Whether any member is still running (zombies, already dead, do not count).
    pub fn alive(&self) -> bool {
        !members(Field::Group, self.pgid).is_empty()
            || (self.whole_session && !members(Field::Session, self.pgid).is_empty())
            || !self.escaped().is_empty()
    }

    /// Ends every process of the tree: SIGHUP and SIGTERM, then SIGKILL after
    /// [`TERMINATE_GRACE`]. Reaps `child` on the way, so its group can empty.
    pub async fn terminate(&self, child: &mut Child) {
        self.signal(libc::SIGHUP);
        self.signal(libc::SIGTERM);
        // SIGCONT lets stopped members see the signals.
        self.signal(libc::SIGCONT);
        let deadline = tokio::time::Instant::now() + TERMINATE_GRACE;
        let _ = tokio::time::timeout_at(deadline, child.wait()).await;
        while self.alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(SURVIVOR_CHECK).await;
        }
        self.signal(libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Running processes (of this user: others' environments cannot be read) whose
/// environment holds `entry` (`NAME=VALUE`).
fn with_cookie(entry: &[u8]) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry_dir in entries.flatten() {
        let Some(pid) = entry_dir
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry_dir.path().join("environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|var| var == entry) {
            continue;
        }
        let zombie = std::fs::read_to_string(entry_dir.path().join("stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s == "Z"))
            })
            .unwrap_or(true);
        if !zombie {
            found.push(pid);
        }
    }
    found
}

#[derive(Clone, Copy)]
enum Field {
    Group,
    Session,
}

/// Running processes whose group or session id is `id`, from `/proc` (none where there is
/// no `/proc`).
fn members(field: Field, id: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp session …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().take(4).collect();
        let index = match field {
            Field::Group => 2,
            Field::Session => 3,
        };
        let zombie = fields.first() == Some(&"Z");
        if !zombie && fields.get(index).and_then(|s| s.parse().ok()) == Some(id) {
            members.push(pid);
        }
    }
    members
}

/// The signal number for an RFC 4254 signal name (`TERM`, `KILL`…).
pub fn signal_number(signal: &Sig) -> Option<libc::c_int> {
    Some(match signal {
        Sig::ABRT => libc::SIGABRT,
        Sig::ALRM => libc::SIGALRM,
        Sig::FPE => libc::SIGFPE,
        Sig::HUP => libc::SIGHUP,
        Sig::ILL => libc::SIGILL,
        Sig::INT => libc::SIGINT,
        Sig::KILL => libc::SIGKILL,
        Sig::PIPE => libc::SIGPIPE,
        Sig::QUIT => libc::SIGQUIT,
        Sig::SEGV => libc::SIGSEGV,
        Sig::TERM => libc::SIGTERM,
        Sig::USR1 => libc::SIGUSR1,
        Sig::Custom(name) if name == "USR2" => libc::SIGUSR2,
        Sig::Custom(_) => return None,
    })
}

/// The RFC 4254 name of a signal that ended a process; `None` for signals it does not name
/// (reported as exit status 128 + n instead, as shells do).
pub fn signal_name(number: libc::c_int) -> Option<Sig> {
    Some(match number {
        libc::SIGABRT => Sig::ABRT,
        libc::SIGALRM => Sig::ALRM,
        libc::SIGFPE => Sig::FPE,
        libc::SIGHUP => Sig::HUP,
        libc::SIGILL => Sig::ILL,
        libc::SIGINT => Sig::INT,
        libc::SIGKILL => Sig::KILL,
        libc::SIGPIPE => Sig::PIPE,
        libc::SIGQUIT => Sig::QUIT,
        libc::SIGSEGV => Sig::SEGV,
        libc::SIGTERM => Sig::TERM,
        libc::SIGUSR1 => Sig::USR1,
        libc::SIGUSR2 => Sig::Custom("USR2".into()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_round_trip() {
        for n in [libc::SIGTERM, libc::SIGKILL, libc::SIGHUP, libc::SIGUSR2] {
            let name = signal_name(n).unwrap();
            assert_eq!(signal_number(&name), Some(n));
        }
        assert!(signal_name(libc::SIGWINCH).is_none());
        assert_eq!(signal_number(&Sig::Custom("NOPE".into())), None);
    }

    #[tokio::test]
    async fn terminate_leaves_no_survivor() {
        // A shell that ignores SIGTERM and SIGHUP, with a child of its own.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' TERM HUP; sleep 1000 & wait"])
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let tree = ProcessTree::of(&child, false, &new_cookie()).unwrap();
        tree.terminate(&mut child).await;
        assert!(!tree.alive());
    }

    #[tokio::test]
    async fn a_process_that_left_the_group_is_found_by_its_cookie_and_ended() {
        let cookie = new_cookie();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // `setsid` puts the sleep in a session (and group) of its own.
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "setsid sh -c 'echo $$ > {}; exec sleep 1000' & wait",
                pid_file.display()
            ))
            .env(COOKIE_VAR, &cookie)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let written = async {
            loop {
                if let Some(pid) = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<libc::pid_t>().ok())
                {
                    break pid;
                }
                tokio::task::yield_now().await;
            }
        };
        let pid = tokio::time::timeout(Duration::from_secs(20), written)
            .await
            .expect("the escaped process wrote its pid");
        let tree = ProcessTree::of(&child, false, &cookie).unwrap();
        assert!(
            tree.escaped().contains(&pid),
            "the escaped process is found"
        );
        tree.terminate(&mut child).await;
        assert!(!tree.alive());
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty()
                || stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
            "{stat}"
        );
    }
}
