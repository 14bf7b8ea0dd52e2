//! `cli ssh-tunnel TARGET -p PORT`: a local port for SSH clients that cannot run a
//! ProxyCommand. Each accepted connection gets a WebSocket of its own to the target; a
//! connection whose WebSocket fails is closed and the reason logged to stderr, and the
//! listener goes on until the client is interrupted.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::dial;
use super::error::SshError;
use super::relay;
use super::target::Target;
use crate::options::Config;

/// Most connections relayed at once: each holds a WebSocket and two buffers, and a local
/// port should not let one user open controller connections without bound. Connections
/// past it wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// Binds `127.0.0.1:port` (0: the system chooses), for [`serve`].
pub async fn bind(port: u16) -> Result<TcpListener, SshError> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpListener::bind(address)
        .await
        .map_err(|source| SshError::Listen {
            address: address.to_string(),
            source,
        })
}

/// Accepts connections on `listener` and relays each to `target`, logging each one's end
/// to `log`; runs until dropped.
pub async fn serve(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
    target: &Target,
    listener: TcpListener,
    log: impl Fn(String),
) -> Result<(), SshError> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped with this future, which ends every relay.
    let mut relays = JoinSet::new();
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(ended) = relays.join_next() => {
                if let Ok((peer, Err(e))) = ended {
                    log(format!("connection from {peer}: {e}"));
                }
                continue;
            }
        };
        let (stream, peer) = accepted.map_err(|source| SshError::Listen {
            address: listener
                .local_addr()
                .map_or_else(|_| "the local port".to_owned(), |a| a.to_string()),
            source,
        })?;
        let (config, tls, target) = (config.clone(), tls.clone(), target.clone());
        relays.spawn(async move {
            let result = connection(&config, &tls, &target, stream).await;
            drop(slot);
            (peer, result)
        });
    }
}

/// Relays one accepted connection; dropping the stream closes it.
async fn connection(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
    target: &Target,
    stream: TcpStream,
) -> Result<(), SshError> {
    let _ = stream.set_nodelay(true);
    let socket = dial::open(config, tls, target).await?;
    let (read, write) = stream.into_split();
    let end = relay::relay(read, write, socket, config.idle_timeout).await?;
    match end.failure() {
        Some(why) => Err(SshError::Closed(why)),
        None => Ok(()),
    }
}
