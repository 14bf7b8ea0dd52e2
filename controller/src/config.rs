//! The controller's settings, as parsed from the command line and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default interval between WebSocket pings (compat §9).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default idle close: nginx and most ingresses drop WebSockets silent for 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything [`crate::run`] needs to start a controller.
#[derive(Debug, Clone)]
pub struct Config {
    /// The home directory holding the database and `secrets/`.
    pub home: PathBuf,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Public root URL with its trailing slash, used for the Origin check, JNLP documents and
    /// printed agent commands. Defaults to `http://<listen>/`.
    pub root_url: url::Url,
    /// Whether `root_url` was given (`--url`). Without it, the CLI's Origin check accepts the
    /// origin the request itself names in `Host`, as Jenkins does without a configured URL.
    pub root_url_given: bool,
    /// Interval between server pings on every WebSocket; `None` disables pings.
    pub ws_ping_interval: Option<Duration>,
    /// A WebSocket that sends nothing for this long is closed; `None` disables the check.
    pub ws_idle_timeout: Option<Duration>,
    /// A client must send a complete request head within this long, or its connection is
    /// closed (see [`crate::http::server`]).
    pub http_header_timeout: Duration,
    /// A REST request's whole body must arrive within this long ([`crate::http::guard`]).
    pub http_body_timeout: Duration,
    /// Serve `/cli/ws` (on by default; off makes CLIs fall back to full-duplex HTTP).
    pub websocket_cli: bool,
    /// The agent executable served at `/jnlpJars/agent`; defaults to `agent` next to the
    /// controller's own executable.
    pub agent_binary: Option<PathBuf>,
    /// How long a build waits for its agent to reconnect after losing it before it fails.
    pub build_reconnect_grace: Duration,
    /// How long an on-demand terminal runs on after its last client detached.
    pub terminal_ondemand_idle: Duration,
    /// The settings file; `None`: `HOME/settings.json`.
    pub settings_file: Option<PathBuf>,
    /// Refuse jobs holding elements Steward does not act on, instead of warning.
    pub strict_jobs: bool,
    /// The secret GitHub webhook deliveries are signed with; `None`: all are refused.
    pub github_webhook_secret: Option<WebhookSecret>,
    /// Most connections held at once; `None`: what the open-file limit leaves
    /// ([`crate::http::admission::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// Most connections from one address (an IPv6 /64); `None`: most of `max_connections`,
    /// not applied to loopback ([`crate::http::admission::Caps::new`]).
    pub max_connections_per_address: Option<usize>,
    /// How long and how many audit log entries are kept (`crate::audit`).
    pub audit_retention: crate::audit::Retention,
}

impl Config {
    /// A configuration with the defaults for `home` and `listen`.
    pub fn new(home: PathBuf, listen: SocketAddr) -> Self {
        Config {
            home,
            listen,
            root_url: default_root_url(listen),
            root_url_given: false,
            ws_ping_interval: Some(DEFAULT_PING_INTERVAL),
            ws_idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            http_header_timeout: crate::http::server::DEFAULT_HEADER_READ_TIMEOUT,
            http_body_timeout: crate::http::guard::DEFAULT_BODY_READ_TIMEOUT,
            websocket_cli: true,
            agent_binary: None,
            build_reconnect_grace: crate::builds::DEFAULT_RECONNECT_GRACE,
            terminal_ondemand_idle: crate::terminals::runner::ONDEMAND_IDLE,
            settings_file: None,
            strict_jobs: false,
            github_webhook_secret: None,
            max_connections: None,
            max_connections_per_address: None,
            audit_retention: crate::audit::Retention::default(),
        }
    }
}

/// `http://<listen>/`.
pub fn default_root_url(listen: SocketAddr) -> url::Url {
    url::Url::parse(&format!("http://{listen}/")).expect("a socket address makes a valid URL")
}

/// Normalises a user-given root URL: http(s) only, with a trailing slash.
pub fn parse_root_url(text: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(text).map_err(|e| format!("invalid --url {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid --url {text:?}: expected http:// or https://"
        ));
    }
    if url.host_str().is_none() {
        return Err(format!("invalid --url {text:?}: no host"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The `Origin` browsers and CLIs send for pages under `root`: scheme, host and port.
pub fn expected_origin(root: &url::Url) -> String {
    root.origin().ascii_serialization()
}

impl Config {
    /// The `Origin` a CLI WebSocket request must carry. With `--url` it is that URL's origin;
    /// without, the one the request addresses (`X-Forwarded-Proto` and `Host`), so
    /// `localhost`, another interface's address or a wildcard listen all work.
    pub fn origin_for(&self, headers: &http::HeaderMap) -> Option<String> {
        if self.root_url_given {
            return Some(expected_origin(&self.root_url));
        }
        let host = headers.get(http::header::HOST)?.to_str().ok()?;
        let scheme = headers
            .get("X-Forwarded-Proto")
            .and_then(|v| v.to_str().ok())
            .filter(|s| *s == "https" || *s == "http")
            .unwrap_or("http");
        let url = url::Url::parse(&format!("{scheme}://{host}/")).ok()?;
        Some(expected_origin(&url))
    }

    /// Checks combinations of settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.http_body_timeout.is_zero() {
            return Err(
                "--http-body-timeout must be at least 1 second: it is what ends requests whose body never comes"
                    .into(),
            );
        }
        if self.http_header_timeout.is_zero() {
            return Err(
                "--http-header-timeout must be at least 1 second: it is what closes connections that never finish a request"
                    .into(),
            );
        }
        if self.max_connections == Some(0) {
            return Err("--max-connections must be at least 1".into());
        }
        if self.max_connections_per_address == Some(0) {
            return Err("--max-connections-per-address must be at least 1".into());
        }
        if self.audit_retention.max_age.is_zero() {
            return Err("--audit-retention must be more than 0 (e.g. 90d)".into());
        }
        if self.audit_retention.max_entries == 0 {
            return Err("--audit-max-entries must be at least 1".into());
        }
        if let Some(idle) = self.ws_idle_timeout {
            match self.ws_ping_interval {
                None => {
                    return Err(format!(
                        "--ws-ping-interval 0 with --ws-idle-timeout {}: agents only answer pings, so every quiet connection would be closed; disable both or ping more often than the idle timeout",
                        idle.as_secs()
                    ));
                }
                Some(ping) if ping >= idle => {
                    return Err(format!(
                        "--ws-ping-interval {} must be shorter than --ws-idle-timeout {}",
                        ping.as_secs(),
                        idle.as_secs()
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_url_gets_trailing_slash() {
        assert_eq!(
            parse_root_url("https://ci.example.com/jenkins")
                .unwrap()
                .as_str(),
            "https://ci.example.com/jenkins/"
        );
        assert!(parse_root_url("ftp://x/").is_err());
        assert!(parse_root_url("nonsense").is_err());
    }

    #[test]
    fn origin_follows_the_request_without_url() {
        let mut config = Config::new("h".into(), "0.0.0.0:8080".parse().unwrap());
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, "localhost:8080".parse().unwrap());
        assert_eq!(
            config.origin_for(&headers).as_deref(),
            Some("http://localhost:8080")
        );
        headers.insert("X-Forwarded-Proto", "https".parse().unwrap());
        headers.insert(http::header::HOST, "ci.example.com".parse().unwrap());
        assert_eq!(
            config.origin_for(&headers).as_deref(),
            Some("https://ci.example.com")
        );
        config.root_url = parse_root_url("https://ci.example.com/jenkins/").unwrap();
        config.root_url_given = true;
        headers.insert(http::header::HOST, "evil.example".parse().unwrap());
        assert_eq!(
            config.origin_for(&headers).as_deref(),
            Some("https://ci.example.com")
        );
    }

    #[test]
    fn pings_must_come_before_the_idle_timeout() {
        let mut config = Config::new("h".into(), "127.0.0.1:0".parse().unwrap());
        assert!(config.validate().is_ok());
        config.ws_ping_interval = None;
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("--ws-ping-interval 0")
        );
        config.ws_ping_interval = Some(Duration::from_secs(60));
        assert!(config.validate().is_err());
        config.ws_idle_timeout = None;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_header_timeout_cannot_be_turned_off() {
        let mut config = Config::new("h".into(), "127.0.0.1:0".parse().unwrap());
        config.http_header_timeout = Duration::ZERO;
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("--http-header-timeout")
        );
    }

    #[test]
    fn connection_caps_cannot_be_zero() {
        let mut config = Config::new("h".into(), "127.0.0.1:0".parse().unwrap());
        config.max_connections = Some(0);
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("--max-connections ")
        );
        config.max_connections = Some(1);
        config.max_connections_per_address = Some(0);
        assert!(
            config
                .validate()
                .unwrap_err()
                .contains("--max-connections-per-address")
        );
        config.max_connections_per_address = Some(1);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn origin_is_scheme_host_port() {
        assert_eq!(
            expected_origin(&parse_root_url("https://ci.example.com/jenkins/").unwrap()),
            "https://ci.example.com"
        );
        assert_eq!(
            expected_origin(&parse_root_url("http://127.0.0.1:8080/").unwrap()),
            "http://127.0.0.1:8080"
        );
    }
}

/// A webhook's shared secret; its `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// The secret a webhook secret file holds: its content without the final line end; empty
/// is refused.
pub fn webhook_secret(mut content: Vec<u8>) -> Result<WebhookSecret, String> {
    while content.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        content.pop();
    }
    if content.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(WebhookSecret(content))
}
