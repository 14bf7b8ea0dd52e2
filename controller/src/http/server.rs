//! The accept loop: every TCP connection is served as HTTP/1.1 (with upgrades, for the
//! WebSockets) by hyper, with limits on how long and how large a request head may be.
//!
//! `axum::serve` offers neither limit: it serves through hyper-util's auto builder, which
//! first waits, without a deadline, for the bytes that tell HTTP/1 from HTTP/2, and sets no
//! timer, so hyper's header timeout never runs. A client that connects and sends nothing, or
//! trickles a request head byte by byte (slowloris), would hold its connection and task
//! forever. Steward speaks HTTP/1.1 only (agents, CLIs and proxies all do), so this loop uses
//! hyper's HTTP/1 server directly.
//!
//! What a bad client gets:
//! - a head not complete within the header timeout (`--http-header-timeout`, default
//!   [`DEFAULT_HEADER_READ_TIMEOUT`]): the connection is closed without an answer;
//! - a head over [`MAX_REQUEST_HEAD`] bytes or with more than [`MAX_HEADERS`] fields: `431`,
//!   then close;
//! - bytes that are not HTTP: `400`, then close.
//!
//! The header timeout also closes a keep-alive connection that stays idle that long between
//! requests.
//!
//! Before any of that, a connection must fit under the connection caps
//! ([`admission`](super::admission)): past them it is answered `503` at once and closed.
//! Accepting itself goes on through a full descriptor table ([`accept`](super::accept)).
//!
//! Every connection reads through [`AdaptiveRead`], which batches reads while bulk data
//! flows (an agent uploading a file) and holds no buffer at rest.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::accept::Acceptor;
use super::adaptive_read::AdaptiveRead;
use super::admission::{Admission, Admitted, Caps, Refuser};
use super::log_throttle::Throttle;

/// How long a client may take to send a complete request head, unless configured: long
/// enough for a slow link or a proxy, short enough that idle sockets do not pile up
/// (hyper's own default).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers) read before answering 431. Agents and
/// CLIs send well under 4 KiB; a proxy's cookies and forwarding headers fit many times over,
/// and each connection buffers at most this much while it reads a head.
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Most header fields in one request before answering 431 (hyper's default, named here).
pub const MAX_HEADERS: usize = 100;
/// Connections the kernel completes and queues before the accept loop takes them (capped
/// by `net.core.somaxconn`). The standard library's 128 is too few for a burst: when the
/// queue is full the kernel drops the handshake's last ACK, and a client that sends nothing
/// first (an agent storm after a restart is close to that) waits for SYN-ACK retransmits,
/// seconds apart. A fleet of 10,000 agents reconnecting after a restart arrives within a
/// second or two (docs/benchmarks.md, fleet figures).
pub const LISTEN_BACKLOG: u32 = 8192;
/// How long shutdown waits for connections to finish their current request; a client in
/// the middle of a slow request head would otherwise hold shutdown for the header timeout.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// Binds `addr` for [`serve`], with address reuse (a restart need not wait for old
/// connections in TIME_WAIT) and a [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `shutdown`, then lets every connection finish its
/// current request, waiting at most [`SHUTDOWN_DRAIN`] for them. Connections past `caps`
/// are refused.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    caps: Caps,
    shutdown: CancellationToken,
) {
    let mut acceptor = Acceptor::new(listener);
    let admission = Admission::new(caps);
    let refuser = Refuser::default();
    let mut refusals = Throttle::default();
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_header_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_HEADERS);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let slot = match admission.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                if let Some(refused) = refusals.note(Instant::now()) {
                    tracing::warn!(refused, %remote, "refused connections: {refusal}");
                }
                refuser.refuse(tcp, &refusal, &connections);
                continue;
            }
        };
        // Small frames (a call's answer, a CLI prompt) must not wait for Nagle's timer.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // What `ConnectInfo<SocketAddr>` extractors read (the agent log's `remote`).
            request.extensions_mut().insert(ConnectInfo(remote));
            app.clone().oneshot(request.map(Body::new))
        });
        let connection = http
            .serve_connection(
                TokioIo::new(AdaptiveRead::new(Admitted::new(tcp, slot))),
                service,
            )
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // Header timeouts, malformed requests and peers that hang up all end here.
                tracing::debug!(%remote, error = ?e.to_string(), "HTTP connection ended with an error");
            }
        });
    }
    connections.close();
    if tokio::time::timeout(SHUTDOWN_DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::debug!(
            open = connections.len(),
            "HTTP connections still open after the shutdown drain"
        );
    }
}
