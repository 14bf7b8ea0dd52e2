//! The client's failures and the exit codes they map to (compat §7.1).
//!
//! A command that ran returns its own exit code; these are the cases where no command ran
//! to completion. Every message is one line, except a refused handshake, which adds the
//! server's `X-CLI-Error` text on a line of its own.

use steward_transport::{TransportError, UntrustedCertificate};

use crate::session::SessionError;

/// Exit codes of the client itself.
pub mod exit {
    /// A command line the client cannot run (usage printed).
    pub const USAGE: i32 = 2;
    /// The URL does not lead to a Jenkins-compatible controller.
    pub const NOT_JENKINS: i32 = 3;
    /// The controller refused the CLI handshake.
    pub const HANDSHAKE_REFUSED: i32 = 15;
    /// Connection problems, and sessions that ended without the command's exit code.
    pub const CONNECTION: i32 = 255;
}

/// Why no exit code came back from the controller.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The upgrade or the download side answered with a status we cannot use.
    #[error("CLI handshake failed with status code {status}{}", own_line(message))]
    HandshakeRefused {
        status: u16,
        /// The server's `X-CLI-Error` (or, over HTTP, the body) text, if any.
        message: Option<String>,
    },
    #[error("{url} does not look like a Jenkins-compatible controller ({reason})")]
    NotJenkins { url: String, reason: String },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// A proxy in front of the controller answered for it (502, 503, 504 without
    /// `X-Jenkins`): the controller is down or too slow.
    #[error("cannot connect to {url}: {}", proxy_failure(*status))]
    Proxy { url: String, status: u16 },
    /// The connection was accepted, but no answer came.
    #[error(
        "cannot connect to {url}: no answer within {}s (-idleTimeout); the controller \
         (or a proxy in front of it) accepted the connection but is stopped or overloaded",
        after.as_secs()
    )]
    NoAnswer {
        url: String,
        after: std::time::Duration,
    },
    /// The server's certificate was refused; the message says which option fixes it.
    #[error("cannot connect to {url}: {problem}")]
    Untrusted {
        url: String,
        problem: UntrustedCertificate,
    },
    #[error("{0}")]
    Transport(TransportError),
    #[error("{0}")]
    Session(SessionError),
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::HandshakeRefused { .. } => exit::HANDSHAKE_REFUSED,
            CliError::NotJenkins { .. } => exit::NOT_JENKINS,
            CliError::Connect { .. }
            | CliError::Proxy { .. }
            | CliError::NoAnswer { .. }
            | CliError::Untrusted { .. }
            | CliError::Transport(_)
            | CliError::Session(_) => exit::CONNECTION,
        }
    }
}

// Written out rather than `#[from]`, which would also make the inner error the `source()`:
// the messages above already include it, and a chain printer would say it twice.
impl From<TransportError> for CliError {
    fn from(e: TransportError) -> Self {
        CliError::Transport(e)
    }
}

impl From<SessionError> for CliError {
    fn from(e: SessionError) -> Self {
        CliError::Session(e)
    }
}

/// What a proxy's gateway error says about the controller behind it.
fn proxy_failure(status: u16) -> String {
    match status {
        502 => "the proxy answered 502 Bad Gateway; it could not reach the controller behind it"
            .to_owned(),
        503 => "the proxy answered 503 Service Unavailable; the controller behind it is not \
                available"
            .to_owned(),
        504 => "the proxy answered 504 Gateway Timeout; the controller behind it did not answer"
            .to_owned(),
        other => format!("the proxy answered HTTP {other}; the controller behind it did not"),
    }
}

/// A request that failed before any answer: a refused certificate says so, anything else is
/// a connection failure with its causes on one line.
pub fn request_failed(url: &str, error: &(dyn std::error::Error + 'static)) -> CliError {
    match UntrustedCertificate::find(error) {
        Some(problem) => CliError::Untrusted {
            url: url.to_owned(),
            problem,
        },
        None => CliError::Connect {
            url: url.to_owned(),
            reason: one_line(error),
        },
    }
}

/// `\nmessage`, or nothing.
fn own_line(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!("\n{m}"))
        .unwrap_or_default()
}

/// An error and its sources on one line (`a: b: c`), for errors such as reqwest's whose
/// `Display` leaves the useful part to the source chain.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = e.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_refusal_prints_the_reason_on_its_own_line() {
        let refused = CliError::HandshakeRefused {
            status: 403,
            message: Some("Unexpected request origin (check your reverse proxy settings)".into()),
        };
        assert_eq!(
            refused.to_string(),
            "CLI handshake failed with status code 403\n\
             Unexpected request origin (check your reverse proxy settings)"
        );
        assert_eq!(refused.exit_code(), 15);
        let bare = CliError::HandshakeRefused {
            status: 401,
            message: None,
        };
        assert_eq!(
            bare.to_string(),
            "CLI handshake failed with status code 401"
        );
    }

    #[test]
    fn exit_codes() {
        let not_jenkins = CliError::NotJenkins {
            url: "http://x/".into(),
            reason: "no X-Jenkins header".into(),
        };
        assert_eq!(not_jenkins.exit_code(), 3);
        assert_eq!(
            CliError::from(SessionError::ClosedBeforeExit).exit_code(),
            255
        );
    }

    #[test]
    fn a_proxys_gateway_error_says_what_happened() {
        let e = CliError::Proxy {
            url: "https://ci.example.com/".into(),
            status: 504,
        };
        assert_eq!(
            e.to_string(),
            "cannot connect to https://ci.example.com/: the proxy answered 504 Gateway \
             Timeout; the controller behind it did not answer"
        );
        assert_eq!(e.exit_code(), 255);
    }

    #[test]
    fn one_line_joins_sources() {
        let inner = std::io::Error::other("connection refused");
        let outer = SessionError::Output {
            stream: "stdout",
            source: inner,
        };
        assert_eq!(one_line(&outer), "writing to stdout: connection refused");
    }
}
