//! How the agent and the CLI reach a controller: TLS settings, HTTP(S) proxies from the
//! environment, and WebSocket dialing with custom upgrade headers.
//!
//! - [`tls`]: one rustls configuration (ring provider) for every client connection, with
//!   the platform's roots plus `-cert`, or no checking at all for `-noCertificateCheck`;
//!   [`pinned`] trusts a server that presents exactly a certificate the user gave;
//!   [`untrusted`] tells a refused certificate in words, with the options that fix it.
//! - [`proxy`]: the `CONNECT` tunnel used when `HTTPS_PROXY`/`HTTP_PROXY` apply to a URL.
//! - [`websocket`]: dialing `ws://`/`wss://` and reading a refused upgrade's status and body.
//!
//! Plain HTTP requests go through [`http_client`], a reqwest client on the same TLS settings
//! that honours the same proxy variables.

pub mod pinned;
pub mod proxy;
pub mod tls;
pub mod untrusted;
pub mod websocket;

pub use tls::{TlsOptions, install_crypto_provider, read_cert_option, tls_config};
pub use untrusted::{CERTIFICATE_HINT, UntrustedCertificate};
pub use websocket::{
    BoxedIo, WsConnectError, WsStream, connect_websocket, connect_websocket_with,
    connect_websocket_within,
};

use std::sync::Arc;

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid CA certificate: {0}")]
    BadCertificate(String),
    #[error("cannot read the -cert file {path}: {reason}")]
    CertFile { path: String, reason: String },
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    #[error("HTTP client set-up failed: {0}")]
    HttpClient(String),
    #[error("invalid URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
}

/// Bound on connecting a TCP socket for an HTTP request; an unreachable controller should
/// fail an attempt quickly so the retry loop can report it.
pub const HTTP_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A reqwest client on the shared TLS settings. Proxies come from the usual environment
/// variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, lower case too).
///
/// It keeps no idle connections: its requests are occasional (an agent's `login` probe
/// before each connection, a JNLP document, the CLI's full-duplex pair), and a pooled
/// connection left open by every agent of a fleet would cost the controller a socket and
/// its HTTP buffers per agent (docs/benchmarks.md, fleet figures).
pub fn http_client(tls: &Arc<rustls::ClientConfig>) -> Result<reqwest::Client, TransportError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured((**tls).clone())
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TransportError::HttpClient(e.to_string()))
}

/// The WebSocket URL of `path` under `root`: `http` becomes `ws`, `https` becomes `wss`, and
/// a path prefix such as `/jenkins/` is kept. `path` is relative (`"wsagents/"`, `"cli/ws"`).
pub fn ws_url(root: &url::Url, path: &str) -> Result<url::Url, TransportError> {
    let bad = |reason: &str| TransportError::BadUrl {
        url: root.to_string(),
        reason: reason.into(),
    };
    let scheme = match root.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(bad("expected an http:// or https:// URL")),
    };
    let mut base = root.clone();
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    let mut url = base.join(path).map_err(|e| bad(&e.to_string()))?;
    url.set_scheme(scheme)
        .map_err(|()| bad("cannot change the scheme"))?;
    Ok(url)
}

/// The `Origin` a browser on `url` would send: `scheme://host[:port]`, default ports left
/// out, `ws`/`wss` written as `http`/`https`.
pub fn origin_of(url: &url::Url) -> String {
    let scheme = match url.scheme() {
        "ws" => "http",
        "wss" => "https",
        other => other,
    };
    let host = url.host_str().unwrap_or_default();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_keeps_prefix_and_maps_scheme() {
        let root = url::Url::parse("https://ci.example.com/jenkins").unwrap();
        assert_eq!(
            ws_url(&root, "wsagents/").unwrap().as_str(),
            "wss://ci.example.com/jenkins/wsagents/"
        );
        let root = url::Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            ws_url(&root, "cli/ws").unwrap().as_str(),
            "ws://127.0.0.1:8080/cli/ws"
        );
        assert!(ws_url(&url::Url::parse("ftp://x/").unwrap(), "a").is_err());
    }

    #[test]
    fn origin_drops_path_and_default_port() {
        assert_eq!(
            origin_of(&url::Url::parse("http://127.0.0.1:8080/jenkins/").unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            origin_of(&url::Url::parse("https://ci.example.com:443/").unwrap()),
            "https://ci.example.com"
        );
        assert_eq!(
            origin_of(&url::Url::parse("wss://[::1]:9/").unwrap()),
            "https://[::1]:9"
        );
    }
}
