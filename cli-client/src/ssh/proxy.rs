//! `cli ssh-proxy TARGET`: ssh's ProxyCommand. One WebSocket to the target; stdin goes up
//! as binary messages, binary messages come down to stdout, and nothing else is written to
//! stdout. Ends when either side does.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::dial;
use super::error::SshError;
use super::relay;
use super::target::Target;
use crate::options::Config;

/// Relays `input` and `output` (the process's stdin and stdout) to `target`.
pub async fn run<R, W>(
    config: &Config,
    tls: &Arc<rustls::ClientConfig>,
    target: &Target,
    input: R,
    output: W,
) -> Result<(), SshError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let socket = dial::open(config, tls, target).await?;
    let end = relay::relay(input, output, socket, config.idle_timeout).await?;
    match end.failure() {
        Some(why) => Err(SshError::Closed(why)),
        None => Ok(()),
    }
}
