//! The agent's command line (compat §3.1), spelled as `agent.jar` spells it, and the
//! [`AgentOptions`] it turns into.
//!
//! [`crate::argv`] first rewrites Jenkins' single-dash options for clap; the clap struct
//! below then reads them, and [`parse_args`] checks what clap cannot (the two launch forms,
//! URLs, headers). The arguments of a JNLP document go through the same parser in
//! [`parse_document_args`], without `@FILE` reading.
//!
//! Deviation from `agent.jar`: a command-line error prints the message and the usage and
//! exits with status 2, not 0, because scripts and service managers need a failure code.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};
use steward_protocol::secret::NodeSecret;
use steward_transport::TlsOptions;
use url::Url;

use crate::argv::{self, AtFiles};
use crate::duration::parse_duration;
use crate::workdir;

const USAGE: &str = "agent -webSocket -url URL -name NAME -secret SECRET [OPTIONS]
       agent -webSocket -jnlpUrl URL [-secret SECRET] [OPTIONS]
       agent -webSocket -url URL [OPTIONS] SECRET NAME   (deprecated)";

const AFTER_HELP: &str = "\
Options are also accepted with a single dash, as agent.jar spells them (-webSocket,
-jnlpUrl URL). An option value @FILE stands for the first line of FILE; for -cert, for
the whole file. Give the secret as -secret @FILE (a file only you can read): every user of
this machine can read a process's arguments.";

/// The clap view of the command line; see [`AgentOptions`] for the checked result.
#[derive(Debug, Parser)]
#[command(
    name = "agent",
    version = steward_protocol::STEWARD_VERSION,
    about = "Connects this machine to a Steward controller as an inbound agent, like Jenkins' agent.jar -webSocket.",
    override_usage = USAGE,
    after_help = AFTER_HELP,
    args_override_self = true
)]
struct Cli {
    /// Controller root URL, e.g. https://ci.example.com/
    #[arg(long = "url", value_name = "URL")]
    url: Option<String>,
    /// Node name.
    #[arg(long = "name", value_name = "NAME")]
    name: Option<String>,
    /// Node secret (HEX, or @FILE).
    #[arg(long = "secret", value_name = "HEX")]
    secret: Option<String>,
    /// Connect over WebSocket (the only mode Steward agents speak).
    #[arg(long = "webSocket")]
    web_socket: bool,
    /// Legacy: take url, name, secret and work dir from this JNLP document.
    #[arg(long = "jnlpUrl", value_name = "URL")]
    jnlp_url: Option<String>,
    /// Extra WebSocket upgrade header, repeatable; later values for a name win.
    #[arg(long = "webSocketHeader", value_name = "NAME=VALUE", value_parser = parse_header)]
    web_socket_header: Vec<(String, String)>,
    /// Work directory; logs go to DIR/INTERNAL/logs/agent.log.
    #[arg(long = "workDir", value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Name of the internal directory under the work directory [default: remoting].
    #[arg(long = "internalDir", value_name = "NAME")]
    internal_dir: Option<String>,
    /// Fail if the work directory does not exist instead of creating it.
    #[arg(long = "failIfWorkDirIsMissing")]
    fail_if_work_dir_is_missing: bool,
    /// Exit when an established connection ends (initial attempts are still retried).
    #[arg(long = "noReconnect")]
    no_reconnect: bool,
    /// Stop retrying after this long, e.g. 30s, 5m, 1h; exits 0.
    #[arg(long = "noReconnectAfter", value_name = "DURATION", value_parser = parse_duration)]
    no_reconnect_after: Option<Duration>,
    /// Trust this certificate for https:// and wss://: the server's own, or its CA (PEM
    /// text, or @FILE).
    #[arg(long = "cert", value_name = "PEM")]
    cert: Option<String>,
    /// Trust any server certificate.
    #[arg(
        long = "noCertificateCheck",
        visible_alias = "disableHttpsCertValidation"
    )]
    no_certificate_check: bool,
    /// Basic credentials for the HTTP proxy.
    #[arg(long = "proxyCredentials", value_name = "USER:PASS")]
    proxy_credentials: Option<String>,
    /// Credentials (user and API token) for downloading the plain JNLP document.
    #[arg(long = "jnlpCredentials", value_name = "USER:TOKEN")]
    jnlp_credentials: Option<String>,
    /// Deprecated positional form: the node secret.
    #[arg(value_name = "SECRET", hide = true)]
    legacy_secret: Option<String>,
    /// Deprecated positional form: the node name.
    #[arg(value_name = "NAME", hide = true)]
    legacy_name: Option<String>,
}

/// `USER:PASS` for a proxy or the JNLP download; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials(String);

impl Credentials {
    /// The `USER:PASS` text, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// Where the agent learns its controller, name and secret.
#[derive(Debug, Clone)]
pub enum Source {
    /// `-url URL -name NAME -secret SECRET`.
    Direct {
        root: Url,
        node_name: String,
        secret: NodeSecret,
    },
    /// `-jnlpUrl URL [-secret SECRET]`: fetched at start-up, see [`crate::jnlp`].
    Jnlp {
        url: Url,
        secret: Option<NodeSecret>,
        /// Whether `-webSocket` was on the command line (the document may also say it).
        web_socket: bool,
        /// `-jnlpCredentials`, for the plain document (needs Agent/Connect).
        credentials: Option<Credentials>,
    },
}

/// Everything the command line asks of the agent, checked.
#[derive(Clone)]
pub struct AgentOptions {
    pub source: Source,
    /// `-webSocketHeader` pairs, one per name (case-insensitive), later values winning.
    pub web_socket_headers: Vec<(String, String)>,
    pub work_dir: Option<PathBuf>,
    /// `-internalDir`; `None` means [`workdir::DEFAULT_INTERNAL_DIR`].
    pub internal_dir: Option<String>,
    pub fail_if_work_dir_is_missing: bool,
    pub no_reconnect: bool,
    pub no_reconnect_after: Option<Duration>,
    pub tls: TlsOptions,
    pub proxy_credentials: Option<Credentials>,
}

impl fmt::Debug for AgentOptions {
    // Header values may carry credentials for a reverse proxy: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentOptions")
            .field("source", &self.source)
            .field(
                "web_socket_headers",
                &header_names(&self.web_socket_headers),
            )
            .field("work_dir", &self.work_dir)
            .field("internal_dir", &self.internal_dir)
            .field(
                "fail_if_work_dir_is_missing",
                &self.fail_if_work_dir_is_missing,
            )
            .field("no_reconnect", &self.no_reconnect)
            .field("no_reconnect_after", &self.no_reconnect_after)
            .field("tls", &self.tls)
            .field("proxy_credentials", &self.proxy_credentials)
            .finish()
    }
}

/// The names of `headers`, for `Debug` output that must not show their values.
pub fn header_names(headers: &[(String, String)]) -> Vec<&str> {
    headers.iter().map(|(name, _)| name.as_str()).collect()
}

/// Reads the agent's command line (program name first). Help and version requests come
/// back as the clap error that prints them; [`clap::Error::exit`] does the rest.
pub fn parse_args<I, T>(args: I) -> Result<AgentOptions, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    let mut cmd = Cli::command();
    let args = argv::normalize(&cmd, args, AtFiles::Expand).map_err(|e| {
        let kind = match e {
            argv::ArgvError::NotUtf8(_) => ErrorKind::InvalidUtf8,
            argv::ArgvError::ReadFile { .. } => ErrorKind::Io,
        };
        cmd.error(kind, e)
    })?;
    let matches = cmd.try_get_matches_from_mut(args)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    into_options(cli).map_err(|(kind, message)| cmd.error(kind, message))
}

type UsageError = (ErrorKind, String);

/// Checks a `USER:PASS` option value.
fn credentials(option: &str, value: String) -> Result<Credentials, UsageError> {
    if value.contains(':') {
        Ok(Credentials(value))
    } else {
        Err((
            ErrorKind::ValueValidation,
            format!("{option} must be USER:PASS"),
        ))
    }
}

fn into_options(cli: Cli) -> Result<AgentOptions, UsageError> {
    let conflict = |m: &str| (ErrorKind::ArgumentConflict, m.to_owned());
    let missing = |m: &str| (ErrorKind::MissingRequiredArgument, m.to_owned());
    let invalid = |m: String| (ErrorKind::ValueValidation, m);

    let source = if let Some(jnlp_url) = &cli.jnlp_url {
        if cli.url.is_some() || cli.name.is_some() {
            return Err(conflict(
                "-jnlpUrl cannot be combined with -url or -name: the JNLP document names the controller and the node",
            ));
        }
        if cli.legacy_secret.is_some() {
            return Err(conflict(
                "-jnlpUrl takes no positional SECRET NAME: give the secret as -secret SECRET",
            ));
        }
        Source::Jnlp {
            url: http_url(jnlp_url).map_err(|e| invalid(format!("-jnlpUrl: {e}")))?,
            secret: cli
                .secret
                .as_deref()
                .map(secret)
                .transpose()
                .map_err(invalid)?,
            web_socket: cli.web_socket,
            credentials: cli
                .jnlp_credentials
                .map(|c| credentials("-jnlpCredentials", c))
                .transpose()?,
        }
    } else {
        if !cli.web_socket {
            return Err(missing(
                "-webSocket is required: Steward agents connect over WebSocket only",
            ));
        }
        let url = cli
            .url
            .as_deref()
            .ok_or_else(|| missing("-url URL is required (or -jnlpUrl URL)"))?;
        let (secret_text, name) = match (cli.legacy_secret, cli.legacy_name) {
            (None, _) => (cli.secret, cli.name),
            (Some(_), None) => {
                return Err(missing(
                    "the deprecated positional form needs both SECRET and NAME",
                ));
            }
            (Some(s), Some(n)) => {
                if cli.secret.is_some() || cli.name.is_some() {
                    return Err(conflict(
                        "give the secret and name either as -secret/-name or as positional SECRET NAME, not both",
                    ));
                }
                (Some(s), Some(n))
            }
        };
        let node_name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| missing("-name NAME is required"))?;
        let secret_text = secret_text.ok_or_else(|| missing("-secret SECRET is required"))?;
        Source::Direct {
            root: root_url(url).map_err(|e| invalid(format!("-url: {e}")))?,
            node_name,
            secret: secret(&secret_text).map_err(invalid)?,
        }
    };

    if let Some(dir) = &cli.internal_dir {
        workdir::check_internal_dir(dir).map_err(|e| invalid(format!("-internalDir: {e}")))?;
    }
    let extra_ca_pem = cli
        .cert
        .as_deref()
        .map(steward_transport::read_cert_option)
        .transpose()
        .map_err(|e| {
            let kind = match e {
                steward_transport::TransportError::CertFile { .. } => ErrorKind::Io,
                _ => ErrorKind::ValueValidation,
            };
            (kind, e.to_string())
        })?;
    let proxy_credentials = cli
        .proxy_credentials
        .map(|c| credentials("-proxyCredentials", c))
        .transpose()?;

    Ok(AgentOptions {
        source,
        web_socket_headers: last_wins(cli.web_socket_header),
        work_dir: cli.work_dir,
        internal_dir: cli.internal_dir,
        fail_if_work_dir_is_missing: cli.fail_if_work_dir_is_missing,
        no_reconnect: cli.no_reconnect,
        no_reconnect_after: cli.no_reconnect_after,
        tls: TlsOptions {
            extra_ca_pem,
            no_certificate_check: cli.no_certificate_check,
        },
        proxy_credentials,
    })
}

/// What a JNLP document's `<argument>`s say (compat §3.2).
#[derive(Debug, Clone, Default)]
pub struct DocumentArgs {
    pub secret: Option<NodeSecret>,
    pub node_name: Option<String>,
    pub web_socket: bool,
    pub work_dir: Option<PathBuf>,
    pub internal_dir: Option<String>,
    pub root: Option<Url>,
}

/// Reads a JNLP document's arguments as agent options. Only the options Jenkins writes
/// there are taken; `@FILE` values are not read.
pub fn parse_document_args(args: &[String]) -> Result<DocumentArgs, String> {
    let mut cmd = Cli::command();
    let all = std::iter::once("agent".to_owned()).chain(args.iter().cloned());
    let normalized = argv::normalize(&cmd, all, AtFiles::Keep).map_err(|e| e.to_string())?;
    let first_line = |e: clap::Error| {
        let text = e.to_string();
        let line = text.lines().next().unwrap_or_default();
        line.strip_prefix("error: ").unwrap_or(line).to_owned()
    };
    let matches = cmd
        .try_get_matches_from_mut(normalized)
        .map_err(first_line)?;
    let cli = Cli::from_arg_matches(&matches).map_err(first_line)?;
    if let Some(dir) = &cli.internal_dir {
        workdir::check_internal_dir(dir).map_err(|e| format!("-internalDir: {e}"))?;
    }
    Ok(DocumentArgs {
        secret: cli
            .secret
            .or(cli.legacy_secret)
            .as_deref()
            .map(secret)
            .transpose()?,
        node_name: cli.name.or(cli.legacy_name),
        web_socket: cli.web_socket,
        work_dir: cli.work_dir,
        internal_dir: cli.internal_dir,
        root: cli
            .url
            .as_deref()
            .map(root_url)
            .transpose()
            .map_err(|e| format!("-url: {e}"))?,
    })
}

fn secret(text: &str) -> Result<NodeSecret, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the secret is empty".to_owned());
    }
    Ok(NodeSecret::new(text))
}

/// An `http(s)://` URL.
fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?} is not an http:// or https:// URL"));
    }
    Ok(url)
}

/// A controller root URL: `http(s)://`, path ending in `/` so a prefix like `/jenkins/` is
/// kept when paths are joined to it.
pub fn root_url(text: &str) -> Result<Url, String> {
    let mut url = http_url(text)?;
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `NAME=VALUE`, split at the first `=`; both must be valid in an HTTP header.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    http::HeaderValue::from_str(value)
        .map_err(|_| format!("the value for header {name} is not a valid header value"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// One pair per header name (names compare case-insensitively), the last value winning,
/// in the order each name was first given.
fn last_wins(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            Some(existing) => *existing = (name, value),
            None => out.push((name, value)),
        }
    }
    out
}

#[cfg(test)]
mod tests;
