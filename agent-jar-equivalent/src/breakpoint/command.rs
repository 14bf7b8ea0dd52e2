//! `breakpoint`, the command: reads its arguments and the build from the environment,
//! makes one call over the agent's local socket, and prints the answer.
//!
//! Exit codes: 0 when the call succeeded, 1 when it was refused (no breakpoint there) or
//! could not be made (outside a build, no agent), 2 for usage errors.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use steward_protocol::breakpoint::{
    self as wire, BreakpointCall, BreakpointCommand, BreakpointReply, BuildRef,
};

use super::{BUILD_KEY_ENV, CONNECTION_ENV, SOCKET_ENV, output};
use crate::duration::parse_duration;

pub const USAGE: &str = "\
usage: breakpoint status [-json]
       breakpoint extend [--for DUR]
       breakpoint resume
       breakpoint wait [--for DUR]

Inside a Steward build (a step, or an SSH session into a build held at a breakpoint):
  status   show the breakpoint: reason, expiry, clients (-json: as JSON)
  extend   push the expiry back by DUR (default 30m), up to the breakpoint's maximum
  resume   end the breakpoint now and let the build finish
  wait     in a step: hold the build at a breakpoint here (for DUR at most) and
           return once it ends
DUR is a whole number and a unit: 90s, 30m, 1h, 2d.
";

/// How long the command waits for any answer but `wait`'s: the relay's wait for a
/// controller connection plus its bound on the call, with room to spare.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `wait` keeps trying to reach an agent that went away under it: an agent being
/// restarted (an upgrade, a crash and its service manager) is back well within this.
const AGENT_RESTART_PATIENCE: Duration = Duration::from_secs(120);
/// The pause between those tries; the socket reappears once, so there is no hurry.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Status { json: bool },
    Extend { by: Option<Duration> },
    Resume,
    Wait { at_most: Option<Duration> },
    Help,
}

/// Why the command failed, and so its exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Exit 2, with the usage.
    #[error("{0}")]
    Usage(String),
    /// Exit 1.
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
        }
    }
}

/// Reads the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Action, Failure> {
    let args: Vec<&str> = args
        .iter()
        .map(|a| {
            a.to_str()
                .ok_or_else(|| Failure::Usage(format!("argument {a:?} is not valid UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let Some((&command, mut rest)) = args.split_first() else {
        return Err(Failure::Usage("no command given".into()));
    };
    let mut json = false;
    let mut duration = None;
    while let Some((&arg, tail)) = rest.split_first() {
        rest = tail;
        let flag = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        let (name, inline) =
            match flag.map(|f| f.split_once('=').map_or((f, None), |(n, v)| (n, Some(v)))) {
                Some(pair) => pair,
                None => return Err(Failure::Usage(format!("unexpected argument {arg:?}"))),
            };
        match (command, name) {
            ("status", "json") if inline.is_none() => json = true,
            ("extend" | "wait", "for") => {
                let value = match inline {
                    Some(value) => value,
                    None => {
                        let (&value, tail) = rest
                            .split_first()
                            .ok_or_else(|| Failure::Usage(format!("{arg} needs a duration")))?;
                        rest = tail;
                        value
                    }
                };
                let parsed =
                    parse_duration(value).map_err(|e| Failure::Usage(format!("--for: {e}")))?;
                duration = Some(parsed);
            }
            ("help" | "-h" | "--help", _) => {}
            _ => {
                return Err(Failure::Usage(format!(
                    "unknown option {arg:?} for {command}"
                )));
            }
        }
    }
    match command {
        "status" => Ok(Action::Status { json }),
        "extend" => Ok(Action::Extend { by: duration }),
        "resume" => Ok(Action::Resume),
        "wait" => Ok(Action::Wait { at_most: duration }),
        "help" | "-h" | "--help" => Ok(Action::Help),
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
}

/// Where the call goes and for which build, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub build: BuildRef,
    pub connection: Option<u64>,
    /// `STEWARD_BUILD_KEY`: the build's key, which the controller asks for.
    pub build_key: String,
    pub socket: PathBuf,
}

/// Reads `JOB_NAME`, `BUILD_NUMBER`, `STEWARD_SSH_CONNECTION` and `STEWARD_AGENT_SOCKET`
/// through `var`.
pub fn target(var: impl Fn(&str) -> Option<OsString>) -> Result<Target, Failure> {
    let text = |name: &str| var(name).filter(|v| !v.is_empty());
    let (Some(job), Some(number)) = (text("JOB_NAME"), text("BUILD_NUMBER")) else {
        return Err(Failure::Failed(
            "not inside a Steward build (JOB_NAME and BUILD_NUMBER are not set)".into(),
        ));
    };
    let job = job
        .into_string()
        .map_err(|j| Failure::Failed(format!("JOB_NAME {j:?} is not valid UTF-8")))?;
    let number = number
        .to_str()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Failure::Failed(format!("BUILD_NUMBER {number:?} is not a build number")))?;
    let connection = match text(CONNECTION_ENV) {
        None => None,
        Some(c) => Some(c.to_str().and_then(|c| c.parse().ok()).ok_or_else(|| {
            Failure::Failed(format!("{CONNECTION_ENV} {c:?} is not a connection number"))
        })?),
    };
    let socket = text(SOCKET_ENV).map(PathBuf::from).ok_or_else(|| {
        Failure::Failed(format!(
            "{SOCKET_ENV} is not set: run breakpoint in a build step or an SSH session on the agent"
        ))
    })?;
    let build_key = text(BUILD_KEY_ENV)
        .and_then(|k| k.into_string().ok())
        .ok_or_else(|| {
            Failure::Failed(format!(
                "{BUILD_KEY_ENV} is not set: run breakpoint in a build step or in an SSH session into the build"
            ))
        })?;
    Ok(Target {
        build: BuildRef { job, number },
        connection,
        build_key,
        socket,
    })
}

/// The command as a program: `args` after the name, the process' environment; prints and
/// returns the exit code.
pub fn main(args: &[OsString]) -> u8 {
    let stdout = &mut std::io::stdout().lock();
    let stderr = &mut std::io::stderr().lock();
    let var = |name: &str| std::env::var_os(name);
    match run(args, var, stdout) {
        Ok(()) => 0,
        Err(failure) => {
            let _ = writeln!(stderr, "breakpoint: {failure}");
            if let Failure::Usage(_) = failure {
                let _ = write!(stderr, "{USAGE}");
            }
            failure.code()
        }
    }
}

/// Parses, calls, prints the answer to `out`.
pub fn run(
    args: &[OsString],
    var: impl Fn(&str) -> Option<OsString>,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let action = parse(args)?;
    let command = match action {
        Action::Help => {
            let _ = write!(out, "{USAGE}");
            return Ok(());
        }
        Action::Status { .. } => BreakpointCommand::Status,
        Action::Extend { by } => BreakpointCommand::Extend {
            by_ms: by.map(millis),
        },
        Action::Resume => BreakpointCommand::Resume,
        Action::Wait { at_most } => BreakpointCommand::Wait {
            for_ms: at_most.map(millis),
            // Once per invocation: asked again after the agent restarts, the controller
            // joins the breakpoint this command started instead of starting another.
            token: format!("{:032x}", rand::random::<u128>()),
        },
    };
    let target = target(var)?;
    let call = BreakpointCall {
        build: target.build,
        connection: target.connection,
        build_key: target.build_key,
        command,
    };
    let reply = match &call.command {
        BreakpointCommand::Wait { .. } => wait(&target.socket, &call)?,
        _ => ask(&target.socket, &call, Some(REPLY_TIMEOUT))
            .map_err(|e| Failure::Failed(e.to_string()))?,
    };
    print(&action, reply, out)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Prints the answer to `action`, or fails with the controller's refusal.
fn print(action: &Action, reply: BreakpointReply, out: &mut dyn Write) -> Result<(), Failure> {
    let now = now_ms();
    let text = match (action, reply) {
        (_, BreakpointReply::Refused { message }) => return Err(Failure::Failed(message)),
        (Action::Status { json: true }, BreakpointReply::Status(status)) => {
            let mut json = serde_json::to_string_pretty(&status)
                .map_err(|e| Failure::Failed(format!("cannot write JSON: {e}")))?;
            json.push('\n');
            json
        }
        (Action::Status { json: false }, BreakpointReply::Status(status)) => {
            output::status(&status, now)
        }
        (Action::Extend { .. }, BreakpointReply::Status(status)) => output::extended(&status, now),
        (Action::Resume, BreakpointReply::Resumed) => "Resumed.\n".to_owned(),
        (Action::Wait { .. }, BreakpointReply::Ended { how }) => {
            format!("Breakpoint ended: {how}\n")
        }
        (_, other) => {
            return Err(Failure::Failed(format!(
                "unexpected answer from the agent: {other:?}"
            )));
        }
    };
    out.write_all(text.as_bytes())
        .map_err(|e| Failure::Failed(format!("cannot write the answer: {e}")))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why a call over the socket got no answer.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("cannot reach the agent at {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The call was sent (or sending it failed midway) but no answer came back.
    #[error("the agent at {} did not answer: {reason}", path.display())]
    Lost { path: PathBuf, reason: String },
    #[error("the agent's answer is unreadable: {0}")]
    Malformed(wire::FrameError),
}

/// One call: connect, send the frame, read the framed answer (within `timeout`).
fn ask(
    socket: &Path,
    call: &BreakpointCall,
    timeout: Option<Duration>,
) -> Result<BreakpointReply, AskError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| AskError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    let lost = |reason: String| AskError::Lost {
        path: socket.to_path_buf(),
        reason,
    };
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            lost("no answer in time".into())
        }
        std::io::ErrorKind::UnexpectedEof => lost("it closed the connection".into()),
        _ => lost(e.to_string()),
    };
    stream.set_read_timeout(timeout).map_err(io)?;
    stream.set_write_timeout(timeout).map_err(io)?;
    // An agent turning the command away answers before reading, and may close first: its
    // answer is still worth reading when the call could not be written.
    let sent = stream.write_all(&wire::frame(call));
    let mut header = [0; 4];
    if let Err(e) = stream.read_exact(&mut header) {
        return Err(io(sent.err().unwrap_or(e)));
    }
    let len = wire::frame_len(header).map_err(AskError::Malformed)?;
    let mut body = vec![0; len];
    stream.read_exact(&mut body).map_err(io)?;
    wire::unframe(&body).map_err(AskError::Malformed)
}

/// `wait`: the call, asked again with its token when the agent goes away under it, until
/// the agent has been unreachable for [`AGENT_RESTART_PATIENCE`]. No agent at the first
/// attempt is an error at once: there is nothing to wait for.
fn wait(socket: &Path, call: &BreakpointCall) -> Result<BreakpointReply, Failure> {
    let mut reached = false;
    let mut failing_since: Option<Instant> = None;
    loop {
        let attempt = Instant::now();
        let error = match ask(socket, call, None) {
            Ok(reply) => return Ok(reply),
            Err(e @ AskError::Malformed(_)) => return Err(Failure::Failed(e.to_string())),
            Err(e) => e,
        };
        reached |= matches!(error, AskError::Lost { .. });
        // An attempt that waited long was a healthy wait: the count starts again.
        if attempt.elapsed() >= AGENT_RESTART_PATIENCE {
            failing_since = None;
        }
        let since = *failing_since.get_or_insert(attempt);
        if !reached || since.elapsed() >= AGENT_RESTART_PATIENCE {
            return Err(Failure::Failed(error.to_string()));
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

#[cfg(test)]
mod tests;
