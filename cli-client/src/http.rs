//! The full-duplex HTTP transport (compat §5): two long `POST <root>cli?remoting=false`
//! requests sharing a `Session` id, the download side carrying frames from the server and
//! the upload side a streaming request body carrying ours, in the length-prefixed framing.
//!
//! [`run`] checks the URL leads to a Jenkins-like controller, opens both sides and runs
//! `session.rs` over [`frame_sink`] (upload) and [`frame_stream`] (download).

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream, StreamExt};
use reqwest::{Client, Response, StatusCode};
use steward_protocol::plaincli::{self, FEATURE_INTERRUPT, Frame, HEADER_STEWARD_CLI};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use url::Url;

use crate::answer;
use crate::auth::{AUTHORIZATION, Credentials};
use crate::error::{CliError, one_line, request_failed};
use crate::interrupt::Interrupts;
use crate::options::Config;
use crate::session::{self, Outgoing, SessionError, Setup, Stdio};

/// Endpoint of the full-duplex CLI, relative to the root URL.
pub const CLI_HTTP_PATH: &str = "cli?remoting=false";
/// Pairs the two requests of one session.
pub const HEADER_SESSION: &str = "Session";
/// `download` or `upload`.
pub const HEADER_SIDE: &str = "Side";
/// Present on the download answer of a controller that speaks this transport.
pub const HEADER_HUDSON_DUPLEX: &str = "Hudson-Duplex";
/// The real client sends an `ENCODING` frame this often, so proxies and the server do not
/// take a quiet upload side for a dead one (compat §5).
pub const KEEPALIVE: Duration = Duration::from_secs(3);
/// Frames queued for the upload body. Small: a stalled upload should stop the stdin pump
/// (backpressure) rather than buffer input; one frame is at most one stdin chunk.
pub const UPLOAD_QUEUE_FRAMES: usize = 16;
/// After `EXIT`, how long we wait for the server to answer the ended upload request, so it
/// sees a clean end rather than a reset; it answers as soon as the download side is done.
pub const UPLOAD_CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Most of an error body we read and print; error pages can be large HTML.
pub const MAX_ERROR_BODY: usize = 4096;
/// Bound on reading that error body, so a refusal cannot hang the client.
pub const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the configured command over full-duplex HTTP; an interrupt before the session
/// starts ends it at once with the signal's exit code. `notice` (the WebSocket fallback's)
/// goes to stderr once the root URL answered as a controller's.
pub async fn run<I, O, E>(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
    stdio: &mut Stdio<I, O, E>,
    interrupts: &Interrupts,
    notice: Option<&str>,
) -> Result<i32, CliError>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let client = steward_transport::http_client(tls)?;
    let credentials = config.credentials.as_ref();
    let idle = config.idle_timeout;
    let resolving = resolve_root(&client, &config.root, credentials, idle);
    let base = match interrupts.clone().or_interrupt(resolving).await {
        Ok(base) => base?,
        Err(signal) => return Ok(signal.exit_code()),
    };
    if let Some(notice) = notice {
        // Only a notice: failing to print it must not stop the command.
        let _ = stdio.stderr.write_all(notice.as_bytes()).await;
        let _ = stdio.stderr.flush().await;
    }
    let opening = async {
        let target = base.join(CLI_HTTP_PATH).map_err(|e| CliError::Connect {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        let session_id = new_session_id();
        let opened = open_download(&client, &target, &session_id, credentials, idle).await?;
        Ok::<_, CliError>((target, session_id, opened))
    };
    let (target, session_id, (download, buffered, interrupt)) =
        match interrupts.clone().or_interrupt(opening).await {
            Ok(opened) => opened?,
            Err(signal) => return Ok(signal.exit_code()),
        };

    let (upload_tx, upload_rx) = mpsc::channel(UPLOAD_QUEUE_FRAMES);
    let upload = with_auth(client.post(target.clone()), credentials)
        .header(HEADER_SESSION, &session_id)
        .header(HEADER_SIDE, "upload")
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body_stream(upload_rx)))
        .send();
    let mut upload = pin!(upload);

    let setup = Setup {
        args: config.args.clone(),
        locale: config.locale.clone(),
        keepalive: Some(KEEPALIVE),
        interrupt,
    };
    let mut session = pin!(session::run(
        frame_sink(upload_tx),
        frame_stream(download.bytes_stream(), buffered, idle),
        &setup,
        stdio,
        interrupts.clone(),
    ));
    // The upload request is driven alongside the session; it completes when the server
    // answers it, normally once the download side is done.
    let mut upload_outcome = None;
    let result = loop {
        tokio::select! {
            result = &mut session => break result,
            outcome = &mut upload, if upload_outcome.is_none() => upload_outcome = Some(outcome),
        }
    };
    match result {
        Ok(code) => {
            // The session dropped its sink, which ends the upload body.
            if upload_outcome.is_none() {
                let _ = tokio::time::timeout(UPLOAD_CLOSE_GRACE, upload).await;
            }
            Ok(code)
        }
        // A failed upload explains a download that then ended without EXIT.
        Err(e @ (SessionError::ClosedBeforeExit | SessionError::Connection(_))) => {
            Err(match upload_outcome.and_then(upload_failure) {
                Some(reason) => CliError::Connect {
                    url: target.to_string(),
                    reason: format!("upload side: {reason}"),
                },
                None => e.into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits for `answer` (a request's response, or the first bytes of its body) for at most
/// `idle`: a controller that accepts connections and never answers must not hang the client.
async fn within_idle<T>(
    url: &Url,
    idle: Option<Duration>,
    answer: impl std::future::Future<Output = T>,
) -> Result<T, CliError> {
    match idle {
        Some(limit) => tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| CliError::NoAnswer {
                url: url.to_string(),
                after: limit,
            }),
        None => Ok(answer.await),
    }
}

/// `GET <root>`, following redirects like the real client (the POSTs cannot), and checking
/// the answer comes from a Jenkins-like controller at its root: with `X-Jenkins`, and not a
/// 404 (a controller's root answers, or refuses credentials; a 404 is a wrong path).
/// Returns the URL the redirects led to.
async fn resolve_root(
    client: &Client,
    root: &Url,
    credentials: Option<&Credentials>,
    idle: Option<Duration>,
) -> Result<Url, CliError> {
    let response = within_idle(
        root,
        idle,
        with_auth(client.get(root.clone()), credentials).send(),
    )
    .await?
    .map_err(|e| request_failed(root.as_str(), &e))?;
    let headers = response.headers();
    let status = response.status().as_u16();
    if answer::is_proxy_failure(status, headers) {
        return Err(CliError::Proxy {
            url: root.to_string(),
            status,
        });
    }
    if !answer::from_jenkins(headers) {
        return Err(CliError::NotJenkins {
            url: root.to_string(),
            reason: format!(
                "no {} header in its HTTP {status} answer",
                answer::HEADER_X_JENKINS
            ),
        });
    }
    if status == StatusCode::NOT_FOUND.as_u16() {
        return Err(CliError::NotJenkins {
            url: root.to_string(),
            reason: "HTTP 404 there: is the path in the URL the controller's root?".into(),
        });
    }
    Ok(response.url().clone())
}

/// Opens the download side and reads the server's first byte, 0x00, which says it is
/// ready for the upload side. Returns the response, any frame bytes already received, and
/// whether the controller honours `INTERRUPT`.
async fn open_download(
    client: &Client,
    target: &Url,
    session_id: &str,
    credentials: Option<&Credentials>,
    idle: Option<Duration>,
) -> Result<(Response, BytesMut, bool), CliError> {
    let connect = |reason: String| CliError::Connect {
        url: target.to_string(),
        reason,
    };
    let request = with_auth(client.post(target.clone()), credentials)
        .header(HEADER_SESSION, session_id)
        .header(HEADER_SIDE, "download")
        .header(HEADER_STEWARD_CLI, FEATURE_INTERRUPT)
        .send();
    let mut response = within_idle(target, idle, request)
        .await?
        .map_err(|e| request_failed(target.as_str(), &e))?;
    if response.status() != StatusCode::OK {
        return Err(refusal(target, response).await);
    }
    if !response.headers().contains_key(HEADER_HUDSON_DUPLEX) {
        return Err(CliError::NotJenkins {
            url: target.to_string(),
            reason: format!("no {HEADER_HUDSON_DUPLEX} header in the download side's answer"),
        });
    }
    let interrupt = answer::honours_interrupt(response.headers());
    loop {
        match within_idle(target, idle, response.chunk()).await? {
            Ok(Some(chunk)) if chunk.is_empty() => continue,
            Ok(Some(chunk)) if chunk[0] == 0 => {
                return Ok((response, BytesMut::from(&chunk[1..]), interrupt));
            }
            Ok(Some(chunk)) => {
                return Err(connect(format!(
                    "the download side began with byte 0x{:02x}, expected 0x00",
                    chunk[0]
                )));
            }
            Ok(None) => return Err(SessionError::ClosedBeforeExit.into()),
            Err(e) => return Err(connect(one_line(&e))),
        }
    }
}

/// A non-200 download answer: a proxy's gateway error, or the controller's refusal with its
/// `X-CLI-Error`, else the start of its body.
async fn refusal(target: &Url, response: Response) -> CliError {
    let status = response.status().as_u16();
    if answer::is_proxy_failure(status, response.headers()) {
        return CliError::Proxy {
            url: target.to_string(),
            status,
        };
    }
    let message = match answer::cli_error(response.headers()) {
        Some(header) => Some(header),
        None => tokio::time::timeout(ERROR_BODY_TIMEOUT, error_body(response))
            .await
            .ok()
            .filter(|body| !body.is_empty()),
    };
    CliError::HandshakeRefused { status, message }
}

/// Up to [`MAX_ERROR_BODY`] bytes of a body as trimmed text.
async fn error_body(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&body).trim().to_owned()
}

/// Why the upload request failed, or `None` if the server accepted it.
fn upload_failure(outcome: reqwest::Result<Response>) -> Option<String> {
    match outcome {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("HTTP {}", response.status().as_u16())),
        Err(e) => Some(one_line(&e)),
    }
}

fn with_auth(
    request: reqwest::RequestBuilder,
    credentials: Option<&Credentials>,
) -> reqwest::RequestBuilder {
    match credentials {
        Some(credentials) => request.header(AUTHORIZATION, credentials.header_value()),
        None => request,
    }
}

/// The upload body: the queued frames, ending when the sending side is dropped.
fn body_stream(rx: mpsc::Receiver<Bytes>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok(bytes), rx))
    })
}

/// Frames to the server, each encoded into one chunk of the upload body; a keepalive is an
/// extra `ENCODING` frame, as the real client sends (compat §5).
pub fn frame_sink(tx: mpsc::Sender<Bytes>) -> impl Sink<Outgoing, Error = SessionError> {
    futures_util::sink::unfold(tx, |tx, out: Outgoing| async move {
        let frame = match out {
            Outgoing::Frame(frame) => frame,
            Outgoing::Keepalive => Frame::Encoding(session::ENCODING.to_owned()),
        };
        let mut buf = BytesMut::new();
        plaincli::encode_http(&frame, &mut buf).map_err(SessionError::Encode)?;
        tx.send(buf.freeze())
            .await
            .map_err(|_| SessionError::Connection("the upload request ended".into()))?;
        Ok(tx)
    })
}

/// Frames from the server, decoded from the download body however it is chunked.
/// `buffered` holds bytes already read past the first byte. A body silent for
/// `idle_timeout` ends the stream with [`SessionError::Idle`]: the controller sends an empty
/// `STDOUT` frame when a command is quiet, so silence means it is gone.
pub fn frame_stream<B, E>(
    body: B,
    buffered: BytesMut,
    idle_timeout: Option<Duration>,
) -> impl Stream<Item = Result<Frame, SessionError>>
where
    B: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error,
{
    struct State<B> {
        body: Pin<Box<B>>,
        buf: BytesMut,
        failed: bool,
    }
    let state = State {
        body: Box::pin(body),
        buf: buffered,
        failed: false,
    };
    futures_util::stream::unfold(state, move |mut state| async move {
        if state.failed {
            return None;
        }
        loop {
            // decode_http refuses oversized lengths before buffering, so `buf` stays
            // within one frame plus one chunk.
            match plaincli::decode_http(&mut state.buf, plaincli::Direction::ServerToClient) {
                Ok(Some(frame)) => return Some((Ok(frame), state)),
                Ok(None) => {}
                Err(e) => {
                    state.failed = true;
                    return Some((Err(e.into()), state));
                }
            }
            let next = match idle_timeout {
                Some(limit) => match tokio::time::timeout(limit, state.body.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        state.failed = true;
                        return Some((Err(SessionError::Idle(limit)), state));
                    }
                },
                None => state.body.next().await,
            };
            match next {
                Some(Ok(chunk)) => state.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    state.failed = true;
                    return Some((Err(SessionError::Connection(one_line(&e))), state));
                }
                // A partial frame at the end is no frame: the session reports the
                // missing EXIT.
                None => return None,
            }
        }
    })
}

/// A random (version 4) UUID in its usual text form, naming one session.
pub fn new_session_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;

    fn encoded(frames: &[Frame]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for frame in frames {
            plaincli::encode_http(frame, &mut buf).unwrap();
        }
        buf.to_vec()
    }

    async fn collect(
        chunks: Vec<Result<Bytes, std::io::Error>>,
        buffered: &[u8],
    ) -> Vec<Result<Frame, SessionError>> {
        frame_stream(
            futures_util::stream::iter(chunks),
            BytesMut::from(buffered),
            None,
        )
        .collect()
        .await
    }

    #[tokio::test]
    async fn frames_are_decoded_across_any_chunking() {
        let frames = [
            Frame::Stdout(Bytes::from_static(b"hello")),
            Frame::Stderr(Bytes::new()),
            Frame::Exit(3),
        ];
        let bytes = encoded(&frames);
        for chunk_len in 1..=bytes.len() {
            // Part of the first chunk may already sit in the buffer after the 0x00 byte.
            let (buffered, rest) = bytes.split_at(chunk_len.min(3));
            let chunks = rest
                .chunks(chunk_len)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let got: Vec<Frame> = collect(chunks, buffered)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, frames, "chunks of {chunk_len}");
        }
    }

    #[tokio::test]
    async fn corrupt_and_failing_bodies_end_with_an_error() {
        let negative = vec![Ok(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 7]))];
        let got = collect(negative, &[]).await;
        assert!(matches!(got.as_slice(), [Err(SessionError::BadFrame(_))]));

        let broken = vec![
            Ok(Bytes::from(encoded(&[Frame::Stdout(Bytes::from_static(
                b"x",
            ))]))),
            Err(std::io::Error::other("reset by peer")),
            Ok(Bytes::from(encoded(&[Frame::Exit(0)]))),
        ];
        let got = collect(broken, &[]).await;
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[1], Err(SessionError::Connection(m)) if m == "reset by peer"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_is_an_idle_timeout_but_empty_frames_keep_it_alive() {
        let idle = Duration::from_secs(60);
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut frames = pin!(frame_stream(body, BytesMut::new(), Some(idle)));
        let start = tokio::time::Instant::now();
        let keepalive = Bytes::from(encoded(&[Frame::Stdout(Bytes::new())]));
        let feeder = async {
            // Two keepalives 45 s apart, each within the timeout; then silence.
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_secs(45)).await;
                tx.send(Ok(keepalive.clone())).await.unwrap();
            }
            tx
        };
        let reader = async {
            let mut seen = Vec::new();
            while let Some(item) = frames.next().await {
                seen.push(item);
            }
            seen
        };
        let (_tx, seen) = tokio::join!(feeder, reader);
        assert!(
            matches!(
                seen.as_slice(),
                [
                    Ok(Frame::Stdout(a)),
                    Ok(Frame::Stdout(b)),
                    Err(SessionError::Idle(d)),
                ] if a.is_empty() && b.is_empty() && *d == idle
            ),
            "{seen:?}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(90) + idle);
    }

    #[tokio::test]
    async fn truncated_body_just_ends() {
        let bytes = encoded(&[Frame::Exit(0)]);
        let got = collect(vec![Ok(Bytes::copy_from_slice(&bytes[..6]))], &[]).await;
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn sink_writes_one_length_prefixed_chunk_per_frame() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut sink = pin!(frame_sink(tx));
        sink.send(Outgoing::Frame(Frame::Arg("help".into())))
            .await
            .unwrap();
        sink.send(Outgoing::Frame(Frame::Start)).await.unwrap();
        sink.send(Outgoing::Keepalive).await.unwrap();
        assert_eq!(
            rx.recv().await.unwrap().as_ref(),
            [0, 0, 0, 6, 0, 0, 4, b'h', b'e', b'l', b'p']
        );
        assert_eq!(rx.recv().await.unwrap().as_ref(), [0, 0, 0, 0, 3]);
        assert_eq!(
            rx.recv().await.unwrap().as_ref(),
            [0, 0, 0, 7, 2, 0, 5, b'U', b'T', b'F', b'-', b'8']
        );
        drop(rx);
        assert!(matches!(
            sink.send(Outgoing::Frame(Frame::EndStdin)).await,
            Err(SessionError::Connection(_))
        ));
    }

    #[tokio::test]
    async fn session_runs_over_the_http_framing() {
        let (upload_tx, mut upload_rx) = mpsc::channel::<Bytes>(UPLOAD_QUEUE_FRAMES);
        let (download_tx, download_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let download = futures_util::stream::unfold(download_rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let (stdin, _feeder) = tokio::io::duplex(16);
        let mut stdio = Stdio {
            stdin,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let setup = Setup {
            args: vec!["who-am-i".into()],
            locale: "en_US".into(),
            keepalive: Some(KEEPALIVE),
            interrupt: false,
        };
        let server = async move {
            let mut upload = BytesMut::new();
            let mut seen = Vec::new();
            while !seen.contains(&Frame::Start) {
                upload.extend_from_slice(&upload_rx.recv().await.unwrap());
                while let Some(frame) =
                    plaincli::decode_http(&mut upload, plaincli::Direction::ClientToServer).unwrap()
                {
                    seen.push(frame);
                }
            }
            let reply = encoded(&[
                Frame::Stdout(Bytes::from_static(b"Authenticated as: anonymous\n")),
                Frame::Exit(0),
            ]);
            // Split mid-frame, as a proxy may.
            let (a, b) = reply.split_at(7);
            for part in [a, b] {
                download_tx
                    .send(Ok(Bytes::copy_from_slice(part)))
                    .await
                    .unwrap();
            }
            seen
        };
        let (code, seen) = tokio::join!(
            session::run(
                frame_sink(upload_tx),
                frame_stream(download, BytesMut::new(), None),
                &setup,
                &mut stdio,
                Interrupts::none(),
            ),
            server
        );
        assert_eq!(code.unwrap(), 0);
        assert_eq!(
            seen,
            [
                Frame::Arg("who-am-i".into()),
                Frame::Encoding("UTF-8".into()),
                Frame::Locale("en_US".into()),
                Frame::Start
            ]
        );
        assert_eq!(stdio.stdout, b"Authenticated as: anonymous\n");
    }

    #[test]
    fn session_ids_are_uuid_v4() {
        let id = new_session_id();
        assert_eq!(id.len(), 36);
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(new_session_id(), id);
    }
}
