//! The caller's side of durable steps (`steward_protocol::steps`): start a step, follow its
//! log from an offset, kill it, list and remove steps. The controller's build runner uses
//! these; each is one stream on the channel.

use std::time::Duration;

use bytes::Bytes;
use steward_protocol::services::{self, MAX_RESPONSE_LEN, Request, Response};
use steward_protocol::steps::{StepEvent, StepSpec, StepStatus};

use crate::call::{self, CallError};
use crate::{Channel, MuxStream, StreamError};
use steward_protocol::channel::ResetCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepCallError {
    /// The channel or the stream failed: the connection was lost, or the peer reset it.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The agent refused the request; its message names the step or path and the reason.
    #[error("{0}")]
    Refused(String),
    /// The agent answered something this request never gets.
    #[error("unexpected answer to {request}: {answer}")]
    Unexpected {
        request: &'static str,
        answer: String,
    },
}

impl StepCallError {
    /// Whether the connection, not the agent's answer, failed: the caller may retry on a
    /// new connection.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, StepCallError::Call(_))
    }

    /// Whether the agent refused the request outright (a `Refused` reset: a request it does
    /// not know, from a newer controller). On a channel still open, asking again gets the
    /// same answer; a closing channel refuses new streams the same way.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            StepCallError::Call(CallError::Stream(StreamError::Reset {
                code: ResetCode::Refused,
                ..
            }))
        )
    }
}

fn unexpected(request: &'static str, answer: Response) -> StepCallError {
    match answer {
        Response::Error { message } => StepCallError::Refused(message),
        other => StepCallError::Unexpected {
            request,
            answer: format!("{other:?}"),
        },
    }
}

/// A started step: its process group and its directory on the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pgid: i32,
    pub dir: String,
}

/// Starts step `id` running `spec` in `workspace` (relative paths resolve against the
/// agent's work dir).
pub async fn start(
    channel: &Channel,
    id: &str,
    workspace: &str,
    spec: &StepSpec,
) -> Result<Started, StepCallError> {
    let request = Request::StartStep {
        id: id.into(),
        workspace: workspace.into(),
    };
    let mut stream = call::open(channel, &request).await?;
    stream
        .send(Bytes::from(services::encode(spec)))
        .await
        .map_err(CallError::from)?;
    stream.finish().await.map_err(CallError::from)?;
    let body = stream
        .recv
        .read_to_end(MAX_RESPONSE_LEN)
        .await
        .map_err(CallError::from)?;
    match services::decode(&body).map_err(CallError::BadResponse)? {
        Response::StepStarted { pgid, dir } => Ok(Started { pgid, dir }),
        other => Err(unexpected("StartStep", other)),
    }
}

/// A step's log being followed: the events after the agent's `StepTail` answer.
pub struct Tail {
    stream: MuxStream,
    /// The log's length when the tail started.
    pub log_len: u64,
    /// An event [`Tail::ready_log`] read that was not log output: `next` returns it.
    held: Option<Result<StepEvent, StepCallError>>,
}

impl Tail {
    /// Follows step `id` from byte `offset` of its log.
    pub async fn open(channel: &Channel, id: &str, offset: u64) -> Result<Tail, StepCallError> {
        Tail::open_masked(channel, id, offset, &[]).await
    }

    /// Follows step `id` with `secrets` masked in its log, from byte `offset` of the
    /// masked log (the plain log when there are no secrets).
    pub async fn open_masked(
        channel: &Channel,
        id: &str,
        offset: u64,
        secrets: &[steward_protocol::credentials::SecretBytes],
    ) -> Result<Tail, StepCallError> {
        let request = if secrets.is_empty() {
            Request::TailStep {
                id: id.into(),
                offset,
            }
        } else {
            Request::TailStepMasked {
                id: id.into(),
                offset,
                secrets: secrets.to_vec(),
            }
        };
        let mut stream = call::open(channel, &request).await?;
        stream.finish().await.map_err(CallError::from)?;
        match call::read_response(&mut stream).await? {
            Response::StepTail { log_len } => Ok(Tail {
                stream,
                log_len,
                held: None,
            }),
            other => Err(unexpected("TailStep", other)),
        }
    }

    /// The next event; `None` after the stream's end, which follows [`StepEvent::Ended`].
    pub async fn next(&mut self) -> Option<Result<StepEvent, StepCallError>> {
        if let Some(held) = self.held.take() {
            return Some(held);
        }
        let frame = match self.stream.recv().await? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(CallError::from(e).into())),
        };
        Some(decode_event(&frame))
    }

    /// Log output that has already arrived, without waiting: lets the caller write what
    /// is queued at once. Any other event is kept for [`Tail::next`].
    pub fn ready_log(&mut self) -> Option<Vec<u8>> {
        if self.held.is_some() {
            return None;
        }
        let frame = self.stream.recv.try_recv()?;
        match decode_event(&frame) {
            Ok(StepEvent::Log(data)) => Some(data),
            other => {
                self.held = Some(other);
                None
            }
        }
    }
}

fn decode_event(frame: &[u8]) -> Result<StepEvent, StepCallError> {
    services::decode(frame).map_err(|e| CallError::BadResponse(e).into())
}

/// SIGTERM to step `id`'s process group, SIGKILL to what is left after `grace`.
pub async fn kill(channel: &Channel, id: &str, grace: Duration) -> Result<(), StepCallError> {
    let request = Request::KillStep {
        id: id.into(),
        grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
    };
    match call::call(channel, &request).await? {
        Response::Done => Ok(()),
        other => Err(unexpected("KillStep", other)),
    }
}

/// Every step in the agent's work dir, sorted by id.
pub async fn list(channel: &Channel) -> Result<Vec<StepStatus>, StepCallError> {
    match call::call(channel, &Request::ListSteps).await? {
        Response::Steps(steps) => Ok(steps),
        other => Err(unexpected("ListSteps", other)),
    }
}

/// Deletes an ended step's directory.
pub async fn remove(channel: &Channel, id: &str) -> Result<(), StepCallError> {
    match call::call(channel, &Request::RemoveStep { id: id.into() }).await? {
        Response::Done => Ok(()),
        other => Err(unexpected("RemoveStep", other)),
    }
}
