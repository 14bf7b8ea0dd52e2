//! What the agent does for the controller: each stream the controller opens carries one
//! request (`steward_protocol::services`), served here until it is done or cancelled.
//!
//! - [`info`]: OS, arch, CPUs, memory, free disk, version, clock.
//!
//! Unknown versions and requests are refused with a RESET that names them.

pub mod info;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use steward_channel::call;
use steward_channel::{Incoming, IncomingStream};
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
}

impl Context {
    /// `work_dir` is where relative paths resolve (`-workDir`, else the current directory).
    pub fn new(work_dir: PathBuf) -> Self {
        Context {
            inner: Arc::new(ContextInner { work_dir }),
        }
    }

    pub fn work_dir(&self) -> &Path {
        &self.inner.work_dir
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
    let IncomingStream { header, mut stream } = accepted;
    let request = match services::decode_request(&header) {
        Ok(request) => request,
        Err(e) => {
            debug!(error = %e, "refusing a request");
            stream.reset(ResetCode::Refused, &e.to_string());
            return;
        }
    };
    match request {
        Request::Info => {
            let response = Response::Info(info::collect(&context));
            let _ = call::reply(&mut stream, &response).await;
        }
        other => {
            let what = format!("{other:?}");
            let name = what.split(['(', ' ', '{']).next().unwrap_or("request");
            stream.reset(
                ResetCode::Refused,
                &format!("{name} is not offered by this agent yet"),
            );
        }
    }
}
