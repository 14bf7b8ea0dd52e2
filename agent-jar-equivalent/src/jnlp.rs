//! `-jnlpUrl` (compat §3.2): fetch the node's JNLP document, decrypt it when the agent
//! holds its secret, and apply its arguments as agent options.
//!
//! With `-secret` the agent fetches `URL?encrypt=true`, which needs no permission, and the
//! secret inside the document wins over the one it was decrypted with. Command-line
//! `-workDir`/`-internalDir` win over the document's. A controller that is not up yet is
//! retried like a connection; a document that cannot be used is an error.

use std::ops::ControlFlow;
use std::time::Duration;

use steward_protocol::jnlp::{self, JnlpError};
use steward_protocol::secret::NodeSecret;
use steward_transport::UntrustedCertificate;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use url::Url;

use crate::ExitReason;
use crate::connect::error_chain;
use crate::options::{AgentOptions, Credentials, DocumentArgs, Source, parse_document_args};
use crate::retry::Retry;

/// Bound on downloading the document: it is about 1 KiB.
pub const JNLP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest document read: Jenkins' are about 1 KiB; anything this big is not a JNLP file.
pub const MAX_JNLP_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JnlpFetchError {
    #[error("{url} is not reachable: {reason}")]
    Unreachable { url: Url, reason: String },
    /// The server's certificate was refused: retried, as the server may be fixed, but loudly.
    #[error("{url}: {problem}")]
    Untrusted {
        url: Url,
        problem: UntrustedCertificate,
    },
    #[error("{url} answered HTTP {status}{hint}")]
    Status {
        url: Url,
        status: u16,
        hint: &'static str,
    },
    #[error("the JNLP document at {0} is over {MAX_JNLP_LEN} bytes")]
    TooLarge(Url),
    #[error("the JNLP document at {0} is not UTF-8")]
    NotUtf8(Url),
    #[error(transparent)]
    Document(#[from] JnlpError),
    #[error("invalid arguments in the JNLP document: {0}")]
    Arguments(String),
    #[error("the JNLP document does not give the {0}")]
    Missing(&'static str),
    #[error(
        "the JNLP document does not enable -webSocket and Steward agents connect over WebSocket only: pass -webSocket"
    )]
    NotWebSocket,
}

impl JnlpFetchError {
    /// Whether trying again later may help: the controller is down, starting or overloaded.
    pub fn is_retryable(&self) -> bool {
        match self {
            JnlpFetchError::Unreachable { .. } | JnlpFetchError::Untrusted { .. } => true,
            JnlpFetchError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Fetches the document's arguments, in order.
pub async fn fetch_arguments(
    http: &reqwest::Client,
    url: &Url,
    secret: Option<&NodeSecret>,
    credentials: Option<&Credentials>,
) -> Result<Vec<String>, JnlpFetchError> {
    let mut url = url.clone();
    if secret.is_some() {
        url.query_pairs_mut().append_pair("encrypt", "true");
    }
    // The encrypted form needs no permission; credentials only go with the plain one.
    let credentials = credentials.filter(|_| secret.is_none());
    let body = match tokio::time::timeout(JNLP_TIMEOUT, download(http, &url, credentials)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(JnlpFetchError::Unreachable {
                url,
                reason: format!("no answer within {}s", JNLP_TIMEOUT.as_secs()),
            });
        }
    };
    let document = match secret {
        Some(secret) => jnlp::decrypt(secret, &body)?,
        None => String::from_utf8(body).map_err(|_| JnlpFetchError::NotUtf8(url.clone()))?,
    };
    Ok(jnlp::parse_arguments(&document)?)
}

async fn download(
    http: &reqwest::Client,
    url: &Url,
    credentials: Option<&Credentials>,
) -> Result<Vec<u8>, JnlpFetchError> {
    let unreachable = |e: reqwest::Error| match UntrustedCertificate::find(&e) {
        Some(problem) => JnlpFetchError::Untrusted {
            url: url.clone(),
            problem,
        },
        None => JnlpFetchError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        },
    };
    let mut request = http.get(url.clone());
    if let Some((user, password)) = credentials.and_then(|c| c.expose().split_once(':')) {
        request = request.basic_auth(user, Some(password));
    }
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    if status != 200 {
        let hint = if matches!(status, 401 | 403)
            && !url.query().is_some_and(|q| q.contains("encrypt"))
        {
            ": the plain document needs the Agent/Connect permission; pass -secret to fetch the encrypted one, or -jnlpCredentials USER:TOKEN"
        } else {
            ""
        };
        return Err(JnlpFetchError::Status {
            url: url.clone(),
            status,
            hint,
        });
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_JNLP_LEN as u64)
    {
        return Err(JnlpFetchError::TooLarge(url.clone()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_JNLP_LEN {
            return Err(JnlpFetchError::TooLarge(url.clone()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns `-jnlpUrl` options into `-url` options with what the document says.
pub fn apply(options: AgentOptions, doc: DocumentArgs) -> Result<AgentOptions, JnlpFetchError> {
    let Source::Jnlp {
        secret, web_socket, ..
    } = &options.source
    else {
        return Ok(options);
    };
    if !(*web_socket || doc.web_socket) {
        return Err(JnlpFetchError::NotWebSocket);
    }
    let secret = doc
        .secret
        .or_else(|| secret.clone())
        .ok_or(JnlpFetchError::Missing("node secret"))?;
    let node_name = doc
        .node_name
        .filter(|n| !n.is_empty())
        .ok_or(JnlpFetchError::Missing("node name"))?;
    let root = doc
        .root
        .ok_or(JnlpFetchError::Missing("controller URL (-url)"))?;
    Ok(AgentOptions {
        source: Source::Direct {
            root,
            node_name,
            secret,
        },
        work_dir: options.work_dir.or(doc.work_dir),
        internal_dir: options.internal_dir.or(doc.internal_dir),
        ..options
    })
}

/// Fetches and applies the document, retrying while the controller is not reachable.
/// `Break` when shutdown or `-noReconnectAfter` ended the wait.
pub async fn resolve(
    options: AgentOptions,
    http: &reqwest::Client,
    shutdown: &CancellationToken,
) -> Result<ControlFlow<ExitReason, AgentOptions>, JnlpFetchError> {
    let Source::Jnlp {
        url,
        secret,
        credentials,
        ..
    } = &options.source
    else {
        return Ok(ControlFlow::Continue(options));
    };
    let mut retry = Retry::new(options.no_reconnect_after);
    loop {
        let fetched = tokio::select! {
            () = shutdown.cancelled() => return Ok(ControlFlow::Break(ExitReason::Shutdown)),
            fetched = fetch_arguments(http, url, secret.as_ref(), credentials.as_ref()) => fetched,
        };
        match fetched {
            Ok(arguments) => {
                let doc = parse_document_args(&arguments).map_err(JnlpFetchError::Arguments)?;
                return apply(options, doc).map(ControlFlow::Continue);
            }
            Err(e) if e.is_retryable() => {
                if let JnlpFetchError::Untrusted { .. } = e {
                    error!("Failed to obtain {url}: {e}");
                } else {
                    info!("Failed to obtain {url}: {e}");
                }
                if let Err(stop) = retry.wait(shutdown).await {
                    return Ok(ControlFlow::Break(stop));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::options::parse_args;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const DOC_SECRET: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn jnlp_options(extra: &[&str]) -> AgentOptions {
        let mut args = vec![
            "agent",
            "-jnlpUrl",
            "http://ci/computer/n/jenkins-agent.jnlp",
        ];
        args.extend_from_slice(extra);
        parse_args(args).unwrap()
    }

    fn document(web_socket: bool) -> DocumentArgs {
        let secret = NodeSecret::new(DOC_SECRET);
        let launch = jnlp::AgentLaunch {
            node_name: "linux-1",
            secret: &secret,
            web_socket,
            work_dir: Some(("/home/ci/agent", "remoting")),
            root_url: "https://ci.example.com/jenkins/",
        };
        // Through the real encrypt/decrypt and parse path.
        let body = jnlp::encrypt(
            &NodeSecret::new(SECRET),
            [3; 16],
            launch.document().as_bytes(),
        )
        .unwrap();
        let text = jnlp::decrypt(&NodeSecret::new(SECRET), &body).unwrap();
        parse_document_args(&jnlp::parse_arguments(&text).unwrap()).unwrap()
    }

    #[test]
    fn document_supplies_url_name_secret_and_work_dir() {
        let options = apply(jnlp_options(&["-secret", SECRET]), document(true)).unwrap();
        match &options.source {
            Source::Direct {
                root,
                node_name,
                secret,
            } => {
                assert_eq!(root.as_str(), "https://ci.example.com/jenkins/");
                assert_eq!(node_name, "linux-1");
                // The document's secret wins over the one used to decrypt it.
                assert_eq!(secret.expose(), DOC_SECRET);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(options.work_dir, Some(PathBuf::from("/home/ci/agent")));
        assert_eq!(options.internal_dir.as_deref(), Some("remoting"));
    }

    #[test]
    fn command_line_work_dir_wins() {
        let options = apply(
            jnlp_options(&["-workDir", "/mine", "-internalDir", "int"]),
            document(true),
        )
        .unwrap();
        assert_eq!(options.work_dir, Some(PathBuf::from("/mine")));
        assert_eq!(options.internal_dir.as_deref(), Some("int"));
    }

    #[test]
    fn web_socket_from_either_side() {
        assert!(apply(jnlp_options(&["-webSocket"]), document(false)).is_ok());
        assert!(matches!(
            apply(jnlp_options(&[]), document(false)),
            Err(JnlpFetchError::NotWebSocket)
        ));
    }

    #[test]
    fn incomplete_documents_are_refused() {
        let doc = DocumentArgs {
            web_socket: true,
            ..DocumentArgs::default()
        };
        assert!(matches!(
            apply(jnlp_options(&[]), doc.clone()),
            Err(JnlpFetchError::Missing("node secret"))
        ));
        // The command-line secret stands in when the document has none.
        let err = apply(jnlp_options(&["-secret", SECRET]), doc).unwrap_err();
        assert!(matches!(err, JnlpFetchError::Missing("node name")), "{err}");
    }

    #[test]
    fn only_a_down_controller_is_retried() {
        let url = Url::parse("http://ci/x.jnlp").unwrap();
        let status = |status| JnlpFetchError::Status {
            url: url.clone(),
            status,
            hint: "",
        };
        assert!(status(503).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!status(403).is_retryable());
        assert!(!JnlpFetchError::Document(JnlpError::NotUtf8).is_retryable());
    }
}
