//! The agent's side of terminals: it starts holders ([`crate::terminals::holder`]) and
//! relays between a holder's socket and the controller's stream, frame for frame, without
//! decoding the output. The holder, not the agent, owns the terminal: a relay that ends (the
//! connection dropped, the agent killed) detaches, and the next one picks up where the
//! controller's copy of the output ends.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use steward_channel::MuxStream;
use steward_protocol::services::{Response, decode, encode};
use steward_protocol::terminals::{
    HolderHello, HolderSpec, RunInfo, TerminalAnswer, TerminalEvent, TerminalInput, TerminalOpen,
    frame,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{debug, warn};

use super::{Context, answer};
use crate::terminals::holder::read_frame;
use crate::terminals::{self, HOLDER_NAME, LOG_FILE, NAME_FILE, SocketPath};

/// How long a new holder may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a holder has to answer a hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `StopTerminal` waits for the program to end before answering anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `Terminal`: attach (starting a holder if asked), answer, then relay until either side ends.
pub async fn open(mut stream: MuxStream, open: TerminalOpen, context: &Context) {
    let dir = terminals::dir(context.work_dir(), &open.name);
    let attached = match connect(&dir).await {
        Some(socket) => hello(socket, &open).await,
        None => match &open.launch {
            None => return answer(stream, &Response::Terminal(TerminalAnswer::NotRunning)).await,
            Some(launch) => {
                let spec = HolderSpec {
                    name: open.name.clone(),
                    launch: launch.clone(),
                };
                match start(context, &dir, &spec).await {
                    Ok(socket) => hello(socket, &open).await.map(|(socket, mut info)| {
                        info.started_now = true;
                        (socket, info)
                    }),
                    Err(message) => Err(message),
                }
            }
        },
    };
    let (socket, info) = match attached {
        Ok(attached) => attached,
        Err(message) => return answer(stream, &Response::Error { message }).await,
    };
    debug!(terminal = open.name, run = info.run, "terminal attached");
    // The answer without EOF: events follow on the same stream.
    let answered = stream
        .send(Bytes::from(encode(&Response::Terminal(
            TerminalAnswer::Attached(info),
        ))))
        .await;
    if answered.is_ok() {
        relay(stream, socket).await;
    }
    debug!(terminal = open.name, "terminal detached");
}

/// Connects to the holder in `dir`, if one listens there.
async fn connect(dir: &Path) -> Option<UnixStream> {
    let socket = SocketPath::of(dir).ok()?;
    UnixStream::connect(&socket.path).await.ok()
}

/// Says hello and reads the holder's [`RunInfo`].
async fn hello(
    mut socket: UnixStream,
    open: &TerminalOpen,
) -> Result<(UnixStream, RunInfo), String> {
    let hello = HolderHello {
        resume: open.resume.clone(),
    };
    let greeting = async {
        socket.write_all(&frame(&encode(&hello))).await?;
        read_frame(&mut socket).await
    };
    match tokio::time::timeout(HELLO_TIMEOUT, greeting).await {
        Ok(Ok(Some(body))) => match decode::<RunInfo>(&body) {
            Ok(info) => Ok((socket, info)),
            Err(e) => Err(format!(
                "terminal {}: the holder answered garbage: {e}",
                open.name
            )),
        },
        Ok(Ok(None)) => Err(format!(
            "terminal {}: the holder closed its socket",
            open.name
        )),
        Ok(Err(e)) => Err(format!(
            "terminal {}: the holder's socket failed: {e}",
            open.name
        )),
        Err(_) => Err(format!(
            "terminal {}: the holder did not answer within {} s",
            open.name,
            HELLO_TIMEOUT.as_secs()
        )),
    }
}

/// Starts a holder for `spec` in `dir` and connects to it.
async fn start(context: &Context, dir: &Path, spec: &HolderSpec) -> Result<UnixStream, String> {
    // One start at a time on this agent: two requests for one terminal must not start two.
    let _starting = context.terminal_starts().lock().await;
    if let Some(socket) = connect(dir).await {
        return Ok(socket);
    }
    let failed =
        |what: &str, e: std::io::Error| format!("cannot start terminal {}: {what}: {e}", spec.name);
    create_private_dir(dir).map_err(|e| failed(&dir.display().to_string(), e))?;
    std::fs::write(dir.join(NAME_FILE), &spec.name).map_err(|e| failed("its name file", e))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG_FILE))
        .map_err(|e| failed("its log", e))?;
    let exe = std::env::current_exe().map_err(|e| failed("the agent's binary", e))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg0(HOLDER_NAME)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // SAFETY: setsid is async-signal-safe: the holder leaves the agent's session and group,
    // so nothing aimed at the agent (a terminal's Ctrl-C, a kill of its group) reaches it.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = tokio::process::Command::from(command)
        .spawn()
        .map_err(|e| failed("the holder", e))?;
    let mut stdin = child.stdin.take().ok_or("the holder has no stdin")?;
    let stdout = child.stdout.take().ok_or("the holder has no stdout")?;
    // Reaped while this agent lives; after that, by init.
    context.steps().spawn(async move {
        let _ = child.wait().await;
    });
    let told = async {
        stdin.write_all(&encode(spec)).await?;
        drop(stdin);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = match tokio::time::timeout(START_TIMEOUT, told).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => return Err(failed("talking to the holder", e)),
        Err(_) => {
            return Err(format!(
                "cannot start terminal {}: the holder was not ready within {} s",
                spec.name,
                START_TIMEOUT.as_secs()
            ));
        }
    };
    match line.trim_end() {
        "ready" => {}
        other => {
            let why = other
                .strip_prefix("error: ")
                .unwrap_or(if other.is_empty() {
                    "the holder exited"
                } else {
                    other
                });
            return Err(format!("cannot start terminal {}: {why}", spec.name));
        }
    }
    connect(dir).await.ok_or_else(|| {
        format!(
            "cannot start terminal {}: its holder does not listen",
            spec.name
        )
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Frames from the holder become DATA on the stream, DATA from the stream frames to the
/// holder, until either side ends.
async fn relay(stream: MuxStream, socket: UnixStream) {
    let (mut send, mut recv) = stream.into_split();
    let (mut from_holder, mut to_holder) = socket.into_split();
    let up = async {
        while let Ok(Some(body)) = read_frame(&mut from_holder).await {
            if send.send(Bytes::from(body)).await.is_err() {
                return;
            }
        }
        let _ = send.finish().await;
    };
    let down = async {
        while let Some(Ok(data)) = recv.recv().await {
            if to_holder.write_all(&frame(&data)).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// `StopTerminal`: asks the holder to end its program and waits (a while) for the end.
pub async fn stop(context: &Context, name: &str) -> Response {
    let dir = terminals::dir(context.work_dir(), name);
    let Some(socket) = connect(&dir).await else {
        return Response::Done;
    };
    let open = TerminalOpen {
        name: name.to_owned(),
        launch: None,
        resume: None,
    };
    let (mut socket, _) = match hello(socket, &open).await {
        Ok(attached) => attached,
        Err(message) => return Response::Error { message },
    };
    if let Err(e) = socket
        .write_all(&frame(&encode(&TerminalInput::Stop)))
        .await
    {
        return Response::Error {
            message: format!("terminal {name}: cannot stop it: {e}"),
        };
    }
    let ended = async {
        while let Ok(Some(body)) = read_frame(&mut socket).await {
            if let Ok(TerminalEvent::Exited { .. }) = decode::<TerminalEvent>(&body) {
                return;
            }
        }
    };
    if tokio::time::timeout(STOP_TIMEOUT, ended).await.is_err() {
        warn!(
            terminal = name,
            "the terminal's program did not end within {STOP_TIMEOUT:?}"
        );
    }
    Response::Done
}

/// `ListTerminals`: the names of the terminals whose holders answer.
pub async fn list(context: &Context) -> Response {
    let root = terminals::root(context.work_dir());
    let mut names = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(name) = std::fs::read_to_string(dir.join(NAME_FILE)) else {
                continue;
            };
            if connect(&dir).await.is_some() {
                names.push(name);
            }
        }
    }
    names.sort();
    Response::Terminals(names)
}
