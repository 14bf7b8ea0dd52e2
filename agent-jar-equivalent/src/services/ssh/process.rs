//! The processes an SSH session starts, and how they end.
//!
//! Every session's process leads a process group of its own (a new session, for a pty, so
//! the terminal becomes its controlling terminal). The group is the unit of signals from the
//! client, and of ending: when the session's channel or connection closes, or the process
//! exits leaving others behind, [`ProcessTree::terminate`] sends SIGHUP and SIGTERM, waits a
//! short grace, then SIGKILLs whatever is left. For a pty session, whose shell may have put
//! jobs in groups of their own, every process of the terminal's session goes too.

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
}

impl ProcessTree {
    /// The tree led by `child`, spawned in a group (or session) of its own.
    pub fn of(child: &Child, whole_session: bool) -> Option<Self> {
        // Never 0 or negative: killpg(0) would be this agent's own group.
        let pgid = libc::pid_t::try_from(child.id()?).ok().filter(|p| *p > 0)?;
        Some(ProcessTree {
            pgid,
            whole_session,
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
    }

    /// Whether any member is still running (zombies, already dead, do not count).
    pub fn alive(&self) -> bool {
        !members(Field::Group, self.pgid).is_empty()
            || (self.whole_session && !members(Field::Session, self.pgid).is_empty())
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
        let tree = ProcessTree::of(&child, false).unwrap();
        let started = tokio::time::Instant::now();
        tree.terminate(&mut child).await;
        assert!(!tree.alive());
        assert!(started.elapsed() < TERMINATE_GRACE + Duration::from_secs(5));
    }
}
