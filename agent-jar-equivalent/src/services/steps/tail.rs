//! `TailStep`: follows a step's log from an offset as it grows, and ends with the step.
//!
//! The answer is [`Response::StepTail`] (or [`Response::Error`]), then one [`StepEvent`]
//! per DATA frame: `Log` chunks of at most [`TAIL_CHUNK`] bytes, then `Ended` once the step
//! has ended *and* the log has been read to its end, then EOF. At the end of the log the
//! tail polls: every [`TAIL_POLL_MIN`] while output flows, slowing to [`TAIL_POLL_MAX`]
//! while the step is silent, so a quiet hour-long step costs a few reads a second. When
//! this agent process started the step, its wrapper's exit also wakes the tail, so the end
//! is seen at once rather than up to [`TAIL_POLL_MAX`] later.
//!
//! With secrets to mask (`TailStepMasked`), the log is read from its start through a
//! [`Masker`] and the first `offset` masked bytes are dropped: the masked stream is a pure
//! function of the log, so a tail resumed at a masked offset continues it exactly, at the
//! cost of reading the log again from the start.
//!
//! The tail owns nothing of the step: a RESET, a lost connection or this handler being
//! dropped ends the tail and leaves the step running. The log is append-only, so a later
//! tail from the last offset received continues with no gap and no repeat. Memory is one
//! batch of [`TAIL_BATCH`] chunks; when the controller reads slowly, sending waits for
//! credit and reading stops.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use steward_channel::{MuxStream, SendHalf, StreamError};
use steward_protocol::channel::{MAX_DATA_PAYLOAD, ResetCode};
use steward_protocol::credentials::SecretBytes;
use steward_protocol::mask::Masker;
use steward_protocol::services::{self, Response};
use steward_protocol::steps::{StepEvent, StepOutcome, StepState};
use tokio_util::sync::CancellationToken;

use super::super::files::failed;
use super::super::{Context, answer, linger};
use super::dir::{LOG_FILE, Leader, StepDir};

/// Most log bytes per event: as many as fit one DATA frame once encoded (a variant byte
/// and a length of at most 3 bytes in front). Every event costs a read here, a frame, and
/// on the controller a write to the console and a wake-up of each follower, so a build
/// printing fast costs half as much in 64 KiB events as in 32 KiB ones.
pub const TAIL_CHUNK: usize = MAX_DATA_PAYLOAD - 16;
/// Most events read from the log in one trip to a blocking thread (about 1 MiB): a step
/// printing fast costs one trip per batch, not per event, and a slow one one per event.
pub const TAIL_BATCH: usize = 16;
/// Poll interval at the end of the log right after output: new lines show within this.
pub const TAIL_POLL_MIN: Duration = Duration::from_millis(20);
/// Longest poll interval, reached by doubling while the step prints nothing: bounds the
/// delay of the first line after a silence, and the cost of a silent step.
pub const TAIL_POLL_MAX: Duration = Duration::from_millis(250);

/// Serves one `TailStep` (`secrets` empty) or `TailStepMasked`.
pub async fn tail(
    stream: MuxStream,
    context: &Context,
    id: &str,
    offset: u64,
    secrets: &[SecretBytes],
) {
    let masking = if secrets.is_empty() {
        None
    } else {
        match Masker::new(secrets.iter().map(|s| s.expose().to_vec())) {
            Ok(masker) => Some(Masking {
                masker,
                skip: offset,
            }),
            Err(e) => {
                // Better no output than a secret shown.
                let message = format!("cannot mask the secrets of step {id}: {e}");
                return answer(stream, &Response::Error { message }).await;
            }
        }
    };
    // A masked tail reads the log from its start.
    let raw_offset = if masking.is_some() { 0 } else { offset };
    let opened = {
        let (context, id) = (context.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || open(&context, &id, raw_offset)).await
    };
    let log = match opened {
        Ok(Ok(log)) => log,
        Ok(Err(message)) => return answer(stream, &Response::Error { message }).await,
        Err(e) => {
            let message = format!("cannot tail step {id}: {e}");
            return answer(stream, &Response::Error { message }).await;
        }
    };
    let (mut send, mut recv) = stream.into_split();
    let start = Response::StepTail { log_len: log.len };
    if send
        .send(Bytes::from(services::encode(&start)))
        .await
        .is_err()
    {
        return;
    }
    let exit = context.steps().wrapper_exit(id);
    match follow(&mut send, log, raw_offset, exit, masking).await {
        Ok(()) => {
            if send.finish().await.is_ok() {
                linger(&mut recv).await;
            }
        }
        Err(Stop::Failed(message)) => send.reset(ResetCode::Failed, &message),
        // The controller went away or cancelled; the step goes on.
        Err(Stop::Gone) => {}
    }
}

/// An open log and what is needed to tell whether its step has ended.
struct Log {
    step: StepDir,
    leader: Option<Leader>,
    file: Arc<File>,
    len: u64,
}

fn open(context: &Context, id: &str, offset: u64) -> Result<Log, String> {
    let step = StepDir::new(context, id)?;
    step.check_exists()?;
    let path = step.file(LOG_FILE);
    let file = File::open(&path).map_err(|e| failed("open", &path, e))?;
    let len = file.metadata().map_err(|e| failed("stat", &path, e))?.len();
    if offset > len {
        return Err(format!(
            "cannot tail {} from byte {offset}: the log has {len} bytes",
            path.display()
        ));
    }
    let leader = step.leader();
    Ok(Log {
        step,
        leader,
        file: Arc::new(file),
        len,
    })
}

enum Stop {
    Failed(String),
    Gone,
}

impl From<StreamError> for Stop {
    fn from(_: StreamError) -> Stop {
        Stop::Gone
    }
}

/// What the log has next.
enum Next {
    /// Chunks of at most [`TAIL_CHUNK`] bytes, in order, none empty.
    Data(Vec<Vec<u8>>),
    /// At the end of the log, the step running.
    Wait,
    /// At the end of the log, the step ended before the last read: nothing more will come.
    Ended(StepOutcome),
}

/// A masked tail's state: the masker, and how many masked bytes are still to be dropped
/// (the controller has them).
struct Masking {
    masker: Masker,
    skip: u64,
}

impl Masking {
    /// What `data` (or, with `None`, the end of the log) adds to the masked stream, less
    /// what is to be dropped.
    fn next(&mut self, data: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        match data {
            Some(data) => self.masker.feed(data, &mut out),
            None => self.masker.finish(&mut out),
        }
        let dropped = (self.skip.min(out.len() as u64)) as usize;
        self.skip -= dropped as u64;
        out.drain(..dropped);
        out
    }
}

/// Sends the log from `offset` until the step has ended and all of it is sent. `exit`, when
/// given, is cancelled when the step's wrapper exits.
async fn follow(
    send: &mut SendHalf,
    log: Log,
    mut offset: u64,
    mut exit: Option<CancellationToken>,
    mut masking: Option<Masking>,
) -> Result<(), Stop> {
    let cancelled = send.closed_token();
    let log = Arc::new(log);
    let mut poll = TAIL_POLL_MIN;
    loop {
        let next = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || next(&log, offset))
                .await
                .map_err(|e| Stop::Failed(format!("cannot read the log: {e}")))?
                .map_err(Stop::Failed)?
        };
        match next {
            Next::Data(chunks) => {
                for data in chunks {
                    offset += data.len() as u64;
                    match &mut masking {
                        None => emit(send, &StepEvent::Log(data)).await?,
                        Some(masking) => emit_log(send, masking.next(Some(&data))).await?,
                    }
                }
                poll = TAIL_POLL_MIN;
            }
            Next::Ended(outcome) => {
                if let Some(masking) = &mut masking {
                    emit_log(send, masking.next(None)).await?;
                }
                emit(send, &StepEvent::Ended(outcome)).await?;
                return Ok(());
            }
            Next::Wait => {
                let exited = async {
                    match &exit {
                        Some(exit) => exit.cancelled().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    // Look once more now; from then on the timer alone (the token stays
                    // cancelled).
                    () = exited => exit = None,
                    () = cancelled.cancelled() => return Err(Stop::Gone),
                }
                poll = (poll * 2).min(TAIL_POLL_MAX);
            }
        }
    }
}

/// One look at the log at `offset`. The state is read only at the end of the log, and an
/// ended step is read once more after it: output written before the end is never missed.
fn next(log: &Log, offset: u64) -> Result<Next, String> {
    let chunks = read_batch(log, offset)?;
    if !chunks.is_empty() {
        return Ok(Next::Data(chunks));
    }
    match log.step.state_with(log.leader.as_ref()) {
        StepState::Running { .. } => Ok(Next::Wait),
        StepState::Ended(outcome) => {
            let chunks = read_batch(log, offset)?;
            Ok(if chunks.is_empty() {
                Next::Ended(outcome)
            } else {
                Next::Data(chunks)
            })
        }
    }
}

/// Up to [`TAIL_BATCH`] chunks from `offset`: fewer at the end of the log, none there.
fn read_batch(log: &Log, mut offset: u64) -> Result<Vec<Vec<u8>>, String> {
    let mut chunks = Vec::new();
    while chunks.len() < TAIL_BATCH {
        let data = read_at(log, offset)?;
        let full = data.len() == TAIL_CHUNK;
        if !data.is_empty() {
            offset += data.len() as u64;
            chunks.push(data);
        }
        if !full {
            break;
        }
    }
    Ok(chunks)
}

fn read_at(log: &Log, offset: u64) -> Result<Vec<u8>, String> {
    let mut buffer = vec![0u8; TAIL_CHUNK];
    loop {
        match log.file.read_at(&mut buffer, offset) {
            Ok(n) => {
                buffer.truncate(n);
                return Ok(buffer);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed("read", &log.step.file(LOG_FILE), e)),
        }
    }
}

/// Sends masked output, which masking may have made longer than a chunk, in chunks.
async fn emit_log(send: &mut SendHalf, data: Vec<u8>) -> Result<(), StreamError> {
    for chunk in data.chunks(TAIL_CHUNK) {
        emit(send, &StepEvent::Log(chunk.to_vec())).await?;
    }
    Ok(())
}

async fn emit(send: &mut SendHalf, event: &StepEvent) -> Result<(), StreamError> {
    send.send(Bytes::from(services::encode(event))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_log_event_fits_one_data_frame() {
        let event = StepEvent::Log(vec![b'x'; TAIL_CHUNK]);
        assert!(services::encode(&event).len() <= MAX_DATA_PAYLOAD);
    }
}
