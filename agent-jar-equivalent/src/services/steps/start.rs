//! `StartStep`: writes the step's directory and starts its wrapper detached from the agent.
//!
//! The directory is built under a hidden temp name (`steps/.ID.new-RANDOM`) and renamed to
//! `steps/ID` only when `script.sh`, `log`, `pgid` and `leader` are all in place, with
//! `RENAME_NOREPLACE` so two starts of one id cannot both win. The wrapper is started
//! before the rename (its pid is the `pgid` to record) but waits on a pipe from the agent
//! and runs the script only once the step is in place: if the agent dies in between, the
//! pipe ends, the wrapper exits without running anything, and the step (if renamed
//! already) reads as lost rather than running unrecorded. A lost connection, on the other
//! hand, does not stop a launch under way: it runs in a task of its own, so the step starts
//! and the controller finds it running when it looks again, instead of a step cut off
//! between the wrapper's start and its word, which would read as lost.
//!
//! The wrapper is `/bin/sh -c WRAPPER steward-step DIR`, in its own session (setsid: no
//! terminal, no signal aimed at the agent's group reaches it), stdin from `/dev/null` once
//! released, stdout and stderr appended to `log`, in the workspace with the step's
//! environment, plus what the `breakpoint` command needs (`STEWARD_AGENT_SOCKET`, and its
//! directory first on PATH). The agent reaps it while it lives; after the agent's death init does.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use steward_channel::MuxStream;
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{self, Response};
use steward_protocol::steps::{MAX_STEP_SPEC_LEN, StepSpec, check_step_env};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tracing::debug;

use super::super::files::failed;
use super::super::{Context, answer};
use super::dir::{LEADER_FILE, LOG_FILE, Leader, PGID_FILE, SCRIPT_FILE, StepDir, write_new};
use crate::breakpoint;

/// The wrapper, `$1` being the step's directory. It waits for the agent's word (a line on
/// stdin; EOF means the agent gave up), runs the script in the foreground (with the
/// interpreter and arguments of its `#!` line when it has one, as Jenkins' `Shell` does,
/// else `/bin/sh -xe`), and records its status. It catches TERM, INT and HUP so that `KillStep`'s SIGTERM to the group stops the
/// script but not the wrapper: a trap set while a foreground command runs waits for that
/// command to end, and the script starts with default handlers (caught signals are reset by
/// exec, unlike ignored ones). Then the script's leftovers get SIGTERM, as Jenkins' process
/// tree killer does at the end of a step, and the status goes to `result` by a rename.
/// `command -p` finds `mv` on the system's default PATH whatever PATH the step was given.
pub const WRAPPER: &str = r#"read go || exit 0
exec </dev/null
trap : TERM INT HUP
dir=$1
first=
IFS= read -r first <"$dir/script.sh" || :
case $first in
'#!'*)
    first=${first#??}
    first=${first%"$(printf '\r')"}
    set -f
    set -- $first
    set +f
    ;;
*) set -- ;;
esac
if [ $# -gt 0 ]; then
    "$@" "$dir/script.sh"
else
    /bin/sh -xe "$dir/script.sh"
fi
status=$?
trap '' TERM
kill -TERM 0 2>/dev/null
printf '%s\n' "$status" >"$dir/result.tmp" && command -p mv -f "$dir/result.tmp" "$dir/result"
"#;

/// Serves one `StartStep`: reads the [`StepSpec`] until EOF, starts the step, answers.
pub async fn start(mut stream: MuxStream, context: &Context, id: &str, workspace: &str) {
    let spec = match read_spec(&mut stream).await {
        Body::Spec(spec) => spec,
        Body::Malformed(message) => return answer(stream, &Response::Error { message }).await,
        Body::TooLarge => {
            let reason = format!("the step spec is over {MAX_STEP_SPEC_LEN} bytes");
            return stream.reset(ResetCode::Refused, &reason);
        }
        // Cancelled or lost: no one to answer.
        Body::Gone => return,
    };
    let launching = tokio::spawn({
        let (context, id, workspace) = (context.clone(), id.to_owned(), workspace.to_owned());
        async move { launch(&context, &id, &workspace, spec).await }
    });
    let launched = launching
        .await
        .unwrap_or_else(|e| Err(format!("starting step {id} failed: {e}")));
    let response = match launched {
        Ok((pgid, dir)) => {
            debug!(step = id, pgid, "step started");
            Response::StepStarted {
                pgid,
                dir: dir.display().to_string(),
            }
        }
        Err(message) => {
            debug!(step = id, ?message, "step not started");
            Response::Error { message }
        }
    };
    answer(stream, &response).await;
}

/// What a `StartStep` stream carried.
enum Body {
    Spec(StepSpec),
    Malformed(String),
    TooLarge,
    Gone,
}

/// The stream's data until EOF, decoded; no more than [`MAX_STEP_SPEC_LEN`] bytes are held.
async fn read_spec(stream: &mut MuxStream) -> Body {
    let mut body = Vec::new();
    loop {
        match stream.recv().await {
            Some(Ok(chunk)) if body.len() + chunk.len() > MAX_STEP_SPEC_LEN => {
                return Body::TooLarge;
            }
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            None => break,
            Some(Err(_)) => return Body::Gone,
        }
    }
    match services::decode::<StepSpec>(&body) {
        Ok(spec) => Body::Spec(spec),
        Err(e) => Body::Malformed(format!("malformed step spec: {e}")),
    }
}

/// Starts the step; its pgid and directory, or why not (naming the path and the reason).
async fn launch(
    context: &Context,
    id: &str,
    workspace: &str,
    spec: StepSpec,
) -> Result<(i32, PathBuf), String> {
    let step = StepDir::new(context, id)?;
    check_step_env(&spec.env)?;
    let workspace = context.resolve(workspace);
    let prepared = {
        let (for_step, for_workspace) = (step.clone(), workspace.clone());
        let script = spec.script;
        tokio::task::spawn_blocking(move || prepare(&for_step, &for_workspace, &script))
            .await
            .map_err(|e| failed("create step", &step.path, e))??
    };
    let temp = prepared.temp;
    // `breakpoint` on the step's PATH, and the socket it reaches this agent by; PATH from
    // the controller's environment if it set one.
    let path = spec.env.iter().rev().find(|(k, _)| k == "PATH");
    let command_env = breakpoint::command_env(
        context.work_dir(),
        path.map(|(_, v)| std::ffi::OsStr::new(v)),
    );
    let mut child = match spawn(&step, &workspace, &spec.env, &command_env, prepared.log) {
        Ok(child) => child,
        Err(e) => {
            remove_temp(temp.clone()).await;
            return Err(format!("cannot start /bin/sh for step {id}: {e}"));
        }
    };
    // Dropping `child` from here on leaves the wrapper to tokio's orphan reaping, and
    // dropping its stdin makes it exit without running the script.
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let placed = {
        let (for_step, for_temp) = (step.clone(), temp.clone());
        tokio::task::spawn_blocking(move || place(&for_step, &for_temp, pid)).await
    };
    match placed {
        Ok(Ok(())) => {}
        Ok(Err(message)) => {
            remove_temp(temp).await;
            return Err(message);
        }
        Err(e) => {
            remove_temp(temp).await;
            return Err(failed("create step", &step.path, e));
        }
    }
    // The step is in place: release the wrapper.
    let released = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(b"go\n").await,
        None => Err(std::io::ErrorKind::BrokenPipe.into()),
    };
    if let Err(e) = released {
        // The wrapper died before reading its word; the step stays, and reads as lost.
        return Err(format!(
            "the shell of step {id} exited before starting: {e}"
        ));
    }
    context.steps().reap(id, child);
    Ok((pid, step.path))
}

/// The temp directory with `script.sh` and an empty `log`, opened for appending.
struct Prepared {
    temp: PathBuf,
    log: std::fs::File,
}

/// `mkdir -p` of the workspace and `steps/`; the temp directory with the script and log.
fn prepare(step: &StepDir, workspace: &Path, script: &[u8]) -> Result<Prepared, String> {
    if step.path.exists() {
        return Err(format!(
            "step {} already exists in {}",
            step.id,
            step.path.display()
        ));
    }
    std::fs::create_dir_all(workspace).map_err(|e| failed("create directory", workspace, e))?;
    let root = step.path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(root).map_err(|e| failed("create directory", root, e))?;
    let temp = root.join(format!(".{}.new-{:016x}", step.id, rand::random::<u64>()));
    std::fs::create_dir(&temp).map_err(|e| failed("create directory", &temp, e))?;
    let prepared = (|| {
        write_new(&temp.join(SCRIPT_FILE), script)?;
        let log_path = temp.join(LOG_FILE);
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&log_path)
            .map_err(|e| failed("create", &log_path, e))?;
        Ok(log)
    })();
    match prepared {
        Ok(log) => Ok(Prepared { temp, log }),
        Err(message) => {
            let _ = std::fs::remove_dir_all(&temp);
            Err(message)
        }
    }
}

/// Starts the wrapper, waiting for its word, in a session of its own.
fn spawn(
    step: &StepDir,
    workspace: &Path,
    env: &[(String, String)],
    command_env: &[(&str, std::ffi::OsString)],
    log: std::fs::File,
) -> std::io::Result<Child> {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg("steward-step")
        .arg(&step.path)
        .current_dir(workspace)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(command_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        // The step must outlive this agent: never killed on drop.
        .kill_on_drop(false);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Records the leader in the temp directory and renames it to the step's name.
fn place(step: &StepDir, temp: &Path, pid: i32) -> Result<(), String> {
    let leader = Leader::of(pid).map_err(|e| format!("cannot record step {}: {e}", step.id))?;
    write_new(&temp.join(PGID_FILE), format!("{pid}\n").as_bytes())?;
    write_new(&temp.join(LEADER_FILE), leader.record().as_bytes())?;
    rename_no_replace(temp, &step.path).map_err(|e| {
        if e.raw_os_error() == Some(libc::EEXIST) || e.raw_os_error() == Some(libc::ENOTEMPTY) {
            format!("step {} already exists in {}", step.id, step.path.display())
        } else {
            failed("create step", &step.path, e)
        }
    })
}

/// `rename(from, to)` that fails with EEXIST rather than replace `to`. File systems without
/// `RENAME_NOREPLACE` (and systems other than Linux) get a plain rename, which still refuses
/// a non-empty directory (a step directory is never empty).
#[cfg(target_os = "linux")]
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes());
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let renamed = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if renamed == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => std::fs::rename(from, to),
        _ => Err(error),
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)
}

async fn remove_temp(temp: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(temp)).await;
}
