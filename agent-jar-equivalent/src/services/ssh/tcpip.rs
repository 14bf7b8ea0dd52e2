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
/// or `cancel` fires. A failed connection refuses the channel. How it ended, in words.
pub async fn forward(
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    host: String,
    port: u32,
    cancel: CancellationToken,
) -> String {
    let Ok(port) = u16::try_from(port) else {
        reply.reject(ChannelOpenFailure::ConnectFailed).await;
        return format!("refused: port {port} is out of range");
    };
    let connected = tokio::select! {
        () = cancel.cancelled() => return "the connection ended".into(),
        connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port))) => connected,
    };
    let mut tcp = match connected {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            debug!(host = ?host, port, error = %e, "direct-tcpip connect failed");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return format!("refused: cannot connect: {e}");
        }
        Err(_) => {
            debug!(host = ?host, port, "direct-tcpip connect timed out");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return "refused: the connection timed out".into();
        }
    };
    let _ = tcp.set_nodelay(true);
    reply.accept().await;
    let mut stream = channel.into_stream();
    tokio::select! {
        () = cancel.cancelled() => "the SSH connection ended".into(),
        copied = tokio::io::copy_bidirectional(&mut stream, &mut tcp) => match copied {
            Ok((sent, received)) => format!("forward ended: {sent} bytes sent, {received} bytes received"),
            Err(e) => {
                debug!(host = ?host, port, error = %e, "direct-tcpip ended");
                format!("forward ended: {e}")
            }
        },
    }
}
