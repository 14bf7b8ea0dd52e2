//! A step's directory, `WORKDIR/steps/ID/`, and what it says about the step:
//!
//! | file | written by | what |
//! | --- | --- | --- |
//! | `script.sh` | the agent, at start | the script, run as `/bin/sh -xe script.sh` |
//! | `log` | the step (stdout and stderr, appended) | everything the step printed |
//! | `pgid` | the agent, at start | the process group (and session) id, e.g. `4242` |
//! | `leader` | the agent, at start | `BOOT_ID START_TICKS` of the group's leader, the wrapper |
//! | `result` | the wrapper, when the script ends | the exit status (`$?`), e.g. `3`; atomic (temp + rename) |
//!
//! A step is running while its wrapper is: the process `pgid` exists, is not a zombie, and
//! started at `START_TICKS` of boot `BOOT_ID`. The check by start time matters because
//! process ids are reused: after a reboot, or a long uptime, `pgid` may name another
//! process. Ended means a `result`, or, when the wrapper is gone without writing one, lost.
//! Lost is only concluded from what was read: a `/proc` entry or `result` file that cannot
//! be read for another reason than its absence (too many open files, say) leaves the step
//! running, to be looked at again. Linux only: it reads `/proc`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use steward_protocol::steps::{StepOutcome, StepState, check_step_id};

use super::super::Context;
use super::super::files::failed;

/// The folder under the work dir that holds one directory per step.
pub const STEPS_DIR: &str = "steps";
pub const SCRIPT_FILE: &str = "script.sh";
pub const LOG_FILE: &str = "log";
pub const PGID_FILE: &str = "pgid";
pub const LEADER_FILE: &str = "leader";
pub const RESULT_FILE: &str = "result";
/// Longest `result`, `pgid` or `leader` file read: they hold a line of a few dozen bytes.
const MAX_SMALL_FILE: u64 = 256;

/// The directory of step `id` (which may not exist).
#[derive(Debug, Clone)]
pub struct StepDir {
    pub id: String,
    pub path: PathBuf,
}

impl StepDir {
    /// Checks `id` and names its directory under `context`'s work dir.
    pub fn new(context: &Context, id: &str) -> Result<StepDir, String> {
        check_step_id(id)?;
        Ok(StepDir {
            id: id.to_owned(),
            path: steps_root(context).join(id),
        })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// `Ok` when the step exists; else why not, naming the directory.
    pub fn check_exists(&self) -> Result<(), String> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(failed("use step", &self.path, "Not a directory")),
            Err(e) => Err(failed("find step", &self.path, e)),
        }
    }

    /// The log's length now (0 when it cannot be read).
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(self.file(LOG_FILE)).map_or(0, |m| m.len())
    }

    /// The exit status in `result`, once the wrapper has written it.
    pub fn result(&self) -> Option<i32> {
        self.read_result().ok().flatten()
    }

    /// [`StepDir::result`], or `Err` when the file is there but could not be read.
    fn read_result(&self) -> std::io::Result<Option<i32>> {
        Ok(read_small_checked(&self.file(RESULT_FILE))?.and_then(|s| s.trim().parse().ok()))
    }

    /// The group leader recorded at start; `None` if the agent died before recording it
    /// (then the wrapper never ran the script: it waits for the record first).
    pub fn leader(&self) -> Option<Leader> {
        let pgid = read_small(&self.file(PGID_FILE))?.trim().parse().ok()?;
        let identity = read_small(&self.file(LEADER_FILE))?;
        let mut fields = identity.split_whitespace();
        let boot_id = fields.next()?.to_owned();
        let start_ticks = fields.next()?.parse().ok()?;
        Some(Leader {
            pgid,
            boot_id,
            start_ticks,
        })
    }

    /// Whether the step runs, and how it ended if not. Blocking (files and `/proc`).
    pub fn state(&self) -> StepState {
        self.state_with(self.leader().as_ref())
    }

    /// [`StepDir::state`] with the leader already read (it never changes).
    pub fn state_with(&self, leader: Option<&Leader>) -> StepState {
        if let Ok(Some(code)) = self.read_result() {
            return StepState::Ended(StepOutcome::Exited { code });
        }
        if let Some(leader) = leader
            && !leader.is_gone()
        {
            return StepState::Running { pgid: leader.pgid };
        }
        // The wrapper is gone, so whatever it was going to write is in place by now: a
        // result that appeared since the first look is the outcome, not a loss.
        match (self.read_result(), leader) {
            (Ok(Some(code)), _) => StepState::Ended(StepOutcome::Exited { code }),
            // Cannot tell yet: as running, and looked at again. (Without a recorded
            // leader the wrapper never ran the script: it waits for the record first.)
            (Err(_), Some(leader)) => StepState::Running { pgid: leader.pgid },
            _ => StepState::Ended(StepOutcome::Lost),
        }
    }
}

/// `WORKDIR/steps`.
pub fn steps_root(context: &Context) -> PathBuf {
    context.work_dir().join(STEPS_DIR)
}

/// A step's wrapper, the leader of its session and process group, told apart from a later
/// process that gets the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub pgid: i32,
    boot_id: String,
    start_ticks: u64,
}

impl Leader {
    /// The identity of the running process `pid`.
    pub fn of(pid: i32) -> Result<Leader, String> {
        let stat = proc_stat(pid)
            .ok_or_else(|| format!("cannot read /proc/{pid}/stat: the process is gone"))?;
        Ok(Leader {
            pgid: pid,
            boot_id: boot_id().to_owned(),
            start_ticks: stat.start_ticks,
        })
    }

    /// The `leader` file's line.
    pub fn record(&self) -> String {
        format!("{} {}\n", self.boot_id, self.start_ticks)
    }

    /// Whether the wrapper still runs (a zombie has ended: it only waits to be reaped);
    /// when `/proc` cannot be read, it is taken to run.
    pub fn is_alive(&self) -> bool {
        !self.is_gone()
    }

    /// Whether the wrapper has certainly ended: this is another boot, or `/proc` has no
    /// such process, another process with the id, or the wrapper as a zombie. `false` when
    /// `/proc` cannot be read.
    pub fn is_gone(&self) -> bool {
        if self.boot_id != boot_id() {
            return true;
        }
        match read_proc_stat(self.pgid) {
            Ok(None) => true,
            Ok(Some(s)) => s.start_ticks != self.start_ticks || !s.is_running(),
            Err(_) => false,
        }
    }

    /// Whether signalling group `pgid` reaches only the step's processes: its wrapper runs,
    /// or no process has the id at all (the group may have lost its leader and live on as
    /// leftovers; an id in use as a group cannot be handed to a new process). A process with
    /// the id that is not the wrapper means the step is long gone and the id reused.
    pub fn group_is_ours(&self) -> bool {
        if self.boot_id != boot_id() {
            return false;
        }
        match proc_stat(self.pgid) {
            None => true,
            Some(stat) => stat.start_ticks == self.start_ticks,
        }
    }
}

/// The fields of `/proc/PID/stat` steps need.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub pid: i32,
    pub state: char,
    pub pgrp: i32,
    pub start_ticks: u64,
}

impl ProcStat {
    /// Neither a zombie nor dead.
    pub fn is_running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/PID/stat`; `None` when there is no such process (or it cannot be read).
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    read_proc_stat(pid).ok().flatten()
}

/// Reads `/proc/PID/stat`: `Ok(None)` when there is no such process, `Err` when it could
/// not be read for another reason (then nothing can be said of the process).
fn read_proc_stat(pid: i32) -> std::io::Result<Option<ProcStat>> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => Ok(parse_stat(pid, &text)),
        // ESRCH: the process ended between the open and the read.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The command name (field 2) is in parentheses and may hold spaces or `)`, so the fields
/// are counted from the last `)`: state is field 3, the process group 5, the start time 22.
fn parse_stat(pid: i32, text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        pid,
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// The live (not zombie) processes of group `pgid`, by a scan of `/proc`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_stat)
        .filter(|s| s.pgrp == pgid && s.is_running())
        .map(|s| s.pid)
        .collect()
}

/// This boot's id: process start times count from boot, so they identify a process only
/// within one boot.
fn boot_id() -> &'static str {
    static BOOT_ID: OnceLock<String> = OnceLock::new();
    BOOT_ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown-boot".to_owned())
    })
}

/// A small text file's contents; `None` if missing, unreadable or not text.
fn read_small(path: &Path) -> Option<String> {
    read_small_checked(path).ok().flatten()
}

/// A small text file's first [`MAX_SMALL_FILE`] bytes: `Ok(None)` when it does not exist
/// or is not text, `Err` when it could not be read.
fn read_small_checked(path: &Path) -> std::io::Result<Option<String>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buffer = vec![0u8; MAX_SMALL_FILE as usize];
    let n = file.read_at(&mut buffer, 0)?;
    buffer.truncate(n);
    Ok(String::from_utf8(buffer).ok())
}

/// Writes a small file that must not exist yet.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| failed("create", path, e))?;
    file.write_all(contents)
        .map_err(|e| failed("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (we(i)rd) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 200 18446744073709551615";
        let stat = parse_stat(4242, line).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.pgrp, 4240);
        assert_eq!(stat.start_ticks, 987_654);
        assert!(stat.is_running());
        assert!(parse_stat(1, "garbage").is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = std::process::id() as i32;
        let leader = Leader::of(me).unwrap();
        assert!(leader.is_alive() && leader.group_is_ours());
        let reused = Leader {
            start_ticks: leader.start_ticks + 1,
            ..leader.clone()
        };
        assert!(!reused.is_alive() && !reused.group_is_ours());
        let other_boot = Leader {
            boot_id: "another-boot".into(),
            ..leader
        };
        assert!(!other_boot.is_alive() && !other_boot.group_is_ours());
    }

    #[test]
    fn a_gone_wrapper_is_lost_only_when_its_result_is_known_to_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let step = StepDir {
            id: "s".into(),
            path: dir.path().to_path_buf(),
        };
        let me = Leader::of(std::process::id() as i32).unwrap();
        let gone = Leader {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert_eq!(
            step.state_with(Some(&me)),
            StepState::Running { pgid: me.pgid }
        );
        assert_eq!(
            step.state_with(Some(&gone)),
            StepState::Ended(StepOutcome::Lost)
        );
        // A `result` that is there but cannot be read (a directory: EISDIR) says
        // nothing: the step is looked at again rather than declared lost.
        std::fs::create_dir(step.file(RESULT_FILE)).unwrap();
        assert_eq!(
            step.state_with(Some(&gone)),
            StepState::Running { pgid: gone.pgid }
        );
        std::fs::remove_dir(step.file(RESULT_FILE)).unwrap();
        std::fs::write(step.file(RESULT_FILE), "3\n").unwrap();
        assert_eq!(
            step.state_with(Some(&gone)),
            StepState::Ended(StepOutcome::Exited { code: 3 })
        );
        assert_eq!(
            step.state_with(None),
            StepState::Ended(StepOutcome::Exited { code: 3 })
        );
    }
}
