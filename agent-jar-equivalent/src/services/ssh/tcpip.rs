//! `direct-tcpip` channels (`ssh -L`): a TCP connection from the agent to the host and
//! port the client names, its bytes carried by the channel both ways.

use std::time::Duration;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How long connecting to the forwarded address may take before the channel is refused.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `host:port`, then accepts the channel and copies until either side ends,
/// or `cancel` fires. A failed connection refuses the channel.
pub async fn forward(
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    host: String,
    port: u32,
    cancel: CancellationToken,
) {
    let Ok(port) = u16::try_from(port) else {
        reply.reject(ChannelOpenFailure::ConnectFailed).await;
        return;
    };
    let connected = tokio::select! {
        () = cancel.cancelled() => return,
        connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port))) => connected,
    };
    let mut tcp = match connected {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            debug!(host = ?host, port, error = %e, "direct-tcpip connect failed");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
        Err(_) => {
            debug!(host = ?host, port, "direct-tcpip connect timed out");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    reply.accept().await;
    let mut stream = channel.into_stream();
    tokio::select! {
        () = cancel.cancelled() => {}
        copied = tokio::io::copy_bidirectional(&mut stream, &mut tcp) => {
            if let Err(e) = copied {
                debug!(host = ?host, port, error = %e, "direct-tcpip ended");
            }
        }
    }
}
