//! What the agent does for the controller: each stream the controller opens carries one
//! request (`steward_protocol::services`), served here until it is done or cancelled.
//!
//! - [`info`]: OS, arch, CPUs, memory, free disk (and the disk's size), version, clock.
//! - [`exec`]: run a process in its own process group, streaming its output as events.
//! - [`files`]: stat, list, mkdir -p, recursive remove and sha256, one answer each.
//! - [`find`]: the files Ant patterns select under a directory (artifacts, test reports).
//! - [`transfer`]: streamed file reads, and atomic streamed writes.
//! - [`steps`]: durable build steps that outlive the connection and the agent process.
//! - [`terminals`]: terminal holders started and attached to, and relayed to the controller.
//! - [`ssh`]: the SSH server that runs on forwarded SSH connections, its host key and the
//!   notices the controller writes to its terminals.
//!
//! Unknown versions and requests are refused with a RESET that names them. A handler that
//! has answered lingers until the controller closes its half, so that dropping the stream
//! never sends a RESET that could overtake the answer.

pub mod exec;
pub mod files;
pub mod find;
pub mod info;
pub mod ssh;
pub mod steps;
pub mod terminals;
pub mod throughput;
pub mod transfer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use steward_channel::call;
use steward_channel::{Incoming, IncomingStream, MuxStream, RecvHalf};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{self, Request, Response};
use tokio::task::JoinSet;
use tracing::debug;

/// What services need to know about this agent; cheap to clone.
#[derive(Debug, Clone)]
pub struct Context {
    inner: Arc<ContextInner>,
}

#[derive(Debug)]
struct ContextInner {
    work_dir: PathBuf,
    steps: steps::StepTasks,
    /// The channel to the controller while connected: calls the agent makes of it (SSH
    /// logins, the `breakpoint` command) go through whichever connection is current.
    controller: tokio::sync::watch::Sender<Option<steward_channel::Channel>>,
    ssh: ssh::SshState,
    /// Held while a terminal holder starts, so one terminal never gets two.
    terminal_starts: tokio::sync::Mutex<()>,
}

impl Context {
    /// `work_dir` is where relative paths resolve (`-workDir`, else the current directory).
    pub fn new(work_dir: PathBuf) -> Self {
        Context {
            inner: Arc::new(ContextInner {
                work_dir,
                steps: steps::StepTasks::default(),
                controller: tokio::sync::watch::Sender::new(None),
                ssh: ssh::SshState::default(),
                terminal_starts: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn work_dir(&self) -> &Path {
        &self.inner.work_dir
    }

    /// The tasks steps leave running, which outlive connections but not the agent.
    pub fn steps(&self) -> &steps::StepTasks {
        &self.inner.steps
    }

    /// The SSH server's connections and host key.
    pub fn ssh(&self) -> &ssh::SshState {
        &self.inner.ssh
    }

    /// Taken while a terminal holder starts.
    pub fn terminal_starts(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.terminal_starts
    }

    /// Records the channel of the current connection (`None` once it ends).
    pub fn set_controller(&self, channel: Option<steward_channel::Channel>) {
        self.inner.controller.send_replace(channel);
    }

    /// The channel to the controller, waiting up to `patience` for a connection.
    pub async fn controller(&self, patience: Duration) -> Option<steward_channel::Channel> {
        let mut watch = self.inner.controller.subscribe();
        let connected = watch.wait_for(|c| c.as_ref().is_some_and(|c| !c.is_closed()));
        match tokio::time::timeout(patience, connected).await {
            Ok(Ok(channel)) => channel.clone(),
            _ => None,
        }
    }

    /// Resolves a path from the controller against the work dir.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.inner.work_dir.join(path)
        }
    }
}

/// Serves streams until the channel closes. Handlers run as tasks owned here: when this
/// future is dropped they are aborted, which kills the processes they started.
pub async fn serve(mut incoming: Incoming, context: Context) {
    let mut handlers = JoinSet::new();
    loop {
        tokio::select! {
            accepted = incoming.accept() => match accepted {
                Some(accepted) => {
                    handlers.spawn(handle(accepted, context.clone()));
                }
                None => break,
            },
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
        }
    }
    handlers.shutdown().await;
}

async fn handle(accepted: IncomingStream, context: Context) {
    let IncomingStream { header, stream } = accepted;
    let request = match services::decode_request(&header) {
        Ok(request) => request,
        Err(e) => {
            debug!(error = ?e.to_string(), "refusing a request");
            stream.reset(ResetCode::Refused, &e.to_string());
            return;
        }
    };
    match request {
        Request::Info => answer(stream, &info::info(&context)).await,
        Request::InfoV2 => answer(stream, &info::info_v2(&context)).await,
        Request::Exec(exec) => exec::run(stream, exec, &context).await,
        Request::ReadFile { path, offset } => {
            transfer::read(stream, &context.resolve(&path), offset).await
        }
        Request::WriteFile { path, mode } => {
            transfer::write(stream, &context.resolve(&path), mode).await
        }
        Request::Discard => throughput::discard(stream).await,
        Request::Generate { bytes } => throughput::generate(stream, bytes).await,
        Request::StartStep { id, workspace } => {
            steps::start::start(stream, &context, &id, &workspace).await
        }
        Request::TailStep { id, offset } => {
            steps::tail::tail(stream, &context, &id, offset, &[]).await
        }
        Request::TailStepMasked {
            id,
            offset,
            secrets,
        } => steps::tail::tail(stream, &context, &id, offset, &secrets).await,
        Request::KillStep { id, grace_ms } => {
            let response = steps::kill::kill(&context, &id, grace_ms).await;
            answer(stream, &response).await;
        }
        Request::ListSteps => answer(stream, &steps::list(&context).await).await,
        Request::RemoveStep { id } => answer(stream, &steps::remove(&context, &id).await).await,
        Request::Ssh(request) => ssh::serve(stream, request, &context).await,
        Request::SshHostKey => answer(stream, &ssh::host_key_response(&context)).await,
        Request::SshNotice { connections, text } => {
            let written = context.ssh().sessions().notice(&connections, &text).await;
            let response = if written > 0 {
                Response::Done
            } else {
                // Logged in, but no session started yet: the controller tries again.
                Response::Error {
                    message: "no session of these connections to write to".into(),
                }
            };
            answer(stream, &response).await;
        }
        Request::Terminal(open) => terminals::open(stream, open, &context).await,
        Request::StopTerminal { name } => {
            answer(stream, &terminals::stop(&context, &name).await).await
        }
        Request::ListTerminals => answer(stream, &terminals::list(&context).await).await,
        Request::FindFiles(request) => answer(stream, &find::find(&context, request).await).await,
        simple @ (Request::Stat { .. }
        | Request::List { .. }
        | Request::MakeDirs { .. }
        | Request::Remove { .. }
        | Request::Sha256 { .. }) => {
            let response = files::respond(simple, &context).await;
            answer(stream, &response).await;
        }
    }
}

/// How long a handler that has answered waits for the controller to close its half of the
/// stream. Past it the stream is dropped (and reset); by then the answer is long delivered.
pub const LINGER: Duration = Duration::from_secs(30);

/// Sends one response and EOF, then lingers.
async fn answer(mut stream: MuxStream, response: &Response) {
    if call::reply(&mut stream, response).await.is_ok() {
        linger(&mut stream.recv).await;
    }
}

/// Waits until the controller has closed its half (EOF or RESET), discarding what it still
/// sends. Dropping a receive half before its EOF queues a RESET, and RESET travels ahead of
/// queued DATA: without this wait it could overtake the answer just sent.
pub(crate) async fn linger(recv: &mut RecvHalf) {
    let drained = async { while let Some(Ok(_)) = recv.recv().await {} };
    let _ = tokio::time::timeout(LINGER, drained).await;
}
