//! HTTP proxies for WebSocket connections: which proxy applies to a URL (the same
//! environment variables reqwest reads) and the `CONNECT` tunnel through it.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest proxy answer to a `CONNECT` we read; real answers are a few hundred bytes.
pub const MAX_CONNECT_RESPONSE: usize = 16 * 1024;
/// Bound on the proxy answering a `CONNECT`.
pub const CONNECT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// The proxy a connection to some URL goes through.
#[derive(Debug, Clone)]
pub struct ProxyRoute {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value, from the proxy URL or `-proxyCredentials`.
    pub authorization: Option<String>,
}

/// The proxy the environment names for `url` (a `ws`/`wss` URL is looked up as
/// `http`/`https`), honouring `NO_PROXY`.
pub fn route_for(url: &url::Url, credentials: Option<&str>) -> Result<Option<ProxyRoute>, String> {
    let mut lookup = url.clone();
    let scheme = match url.scheme() {
        "ws" => "http",
        "wss" => "https",
        s => s,
    };
    lookup
        .set_scheme(scheme)
        .map_err(|()| format!("cannot look up a proxy for {url}"))?;
    let uri: http::Uri = lookup
        .as_str()
        .parse()
        .map_err(|e| format!("cannot look up a proxy for {url}: {e}"))?;
    let matcher = hyper_util::client::proxy::matcher::Matcher::from_env();
    let Some(intercept) = matcher.intercept(&uri) else {
        return Ok(None);
    };
    let proxy = intercept.uri();
    if proxy.scheme_str() != Some("http") {
        return Err(format!(
            "proxy {proxy}: only http:// proxies are supported for WebSocket connections"
        ));
    }
    let host = proxy
        .host()
        .ok_or_else(|| format!("proxy {proxy} has no host"))?
        .to_owned();
    let port = proxy.port_u16().unwrap_or(80);
    let authorization = match credentials {
        Some(creds) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )),
        None => intercept
            .basic_auth()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    Ok(Some(ProxyRoute {
        host,
        port,
        authorization,
    }))
}

/// Opens a TCP connection to `target_host:target_port` through the proxy with `CONNECT`.
pub async fn tunnel(
    route: &ProxyRoute,
    target_host: &str,
    target_port: u16,
) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect((route.host.as_str(), route.port))
        .await
        .map_err(|e| format!("cannot reach proxy {}:{}: {e}", route.host, route.port))?;
    let authority = if target_host.contains(':') {
        format!("[{target_host}]:{target_port}")
    } else {
        format!("{target_host}:{target_port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &route.authorization {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("proxy CONNECT failed: {e}"))?;
    let head = tokio::time::timeout(CONNECT_RESPONSE_TIMEOUT, read_response_head(&mut stream))
        .await
        .map_err(|_| {
            format!(
                "proxy {}:{} did not answer CONNECT within {CONNECT_RESPONSE_TIMEOUT:?}",
                route.host, route.port
            )
        })??;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!("proxy refused CONNECT {authority}: {status_line}"));
    }
    Ok(stream)
}

/// Reads up to the blank line ending the proxy's answer, one byte at a time so nothing of
/// the tunnelled stream is consumed.
async fn read_response_head(stream: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_RESPONSE {
            return Err(format!(
                "proxy answer to CONNECT is over {MAX_CONNECT_RESPONSE} bytes"
            ));
        }
        let byte = stream
            .read_u8()
            .await
            .map_err(|e| format!("proxy closed during CONNECT: {e}"))?;
        head.push(byte);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
