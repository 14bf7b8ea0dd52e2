//! The nodes' SSH host keys, as the controller's `ssh-host-keys [TARGET…]` command prints
//! them: one line per target, `TARGET\tNODE\tKEY\tFINGERPRINT`, KEY being
//! `ssh-ed25519 BASE64` and FINGERPRINT `SHA256:…`, or `-` in both while the node's key is
//! not known yet. No target lists every node.
//!
//! [`parse`] reads that output; [`fetch`] runs the command through the client's own session
//! code (WebSocket or full-duplex HTTP, as configured) and captures it. What is read here
//! is written into `known_hosts` files, so every field is checked: the key must parse and
//! its fingerprint be the one the controller printed.

use std::pin::Pin;
use std::task::{Context, Poll};

use steward_protocol::shown::Shown;
use steward_protocol::ssh::PublicKey;
use tokio::io::AsyncWrite;

use super::target::{Target, check_name};
use crate::{CliError, Config, Interrupts, Stdio};

/// The controller's command that prints the host keys.
pub const COMMAND: &str = "ssh-host-keys";
/// Most output taken from it: a line is about 150 bytes, so 4 MiB is over 25,000 nodes, and
/// a controller sending more is not one to trust with `known_hosts`.
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// What the command prints in KEY and FINGERPRINT when the node's key is not known yet.
const UNKNOWN: &str = "-";

/// One line of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub target: Target,
    /// The node the target is on: itself, or the one running the build.
    pub node: String,
    /// `None` while the node's agent has not reported its key.
    pub key: Option<KnownKey>,
}

/// A host key checked against its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    /// `TYPE BASE64`, as a `known_hosts` line holds it.
    pub openssh: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

/// Output that is not what `ssh-host-keys` prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeysError {
    #[error("the controller's {COMMAND} output, line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("the controller's {COMMAND} output is longer than {MAX_OUTPUT} bytes")]
    TooLong,
    #[error("the controller's {COMMAND} output is not UTF-8")]
    NotText,
}

/// Reads the whole output of `ssh-host-keys`; blank lines are passed over.
pub fn parse(output: &str) -> Result<Vec<HostKey>, HostKeysError> {
    output
        .lines()
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(index, text)| {
            parse_line(text).map_err(|reason| HostKeysError::Malformed {
                line: index + 1,
                reason,
            })
        })
        .collect()
}

fn parse_line(text: &str) -> Result<HostKey, String> {
    let fields: Vec<&str> = text.split('\t').collect();
    let [target, node, key, fingerprint] = fields[..] else {
        return Err(format!(
            "expected TARGET, NODE, KEY and FINGERPRINT separated by tabs, got ‘{}’",
            Shown(text)
        ));
    };
    let target = Target::parse(target).map_err(|e| e.to_string())?;
    if node.is_empty() || check_name(node, node).is_err() {
        return Err(format!("‘{}’ is not a node name", Shown(node)));
    }
    let key = match (key, fingerprint) {
        (UNKNOWN, UNKNOWN) => None,
        (UNKNOWN, _) | (_, UNKNOWN) => {
            return Err(format!(
                "node ‘{}’ has a key without a fingerprint or a fingerprint without a key",
                Shown(node)
            ));
        }
        (key, fingerprint) => {
            let parsed = PublicKey::parse(key)
                .map_err(|e| format!("the host key of node ‘{}’: {e}", Shown(node)))?;
            if !parsed.comment.is_empty() {
                return Err(format!(
                    "the host key of node ‘{}’ has more than TYPE and BASE64",
                    Shown(node)
                ));
            }
            if parsed.fingerprint() != fingerprint {
                return Err(format!(
                    "the host key of node ‘{}’ has the fingerprint {}, not {}",
                    Shown(node),
                    parsed.fingerprint(),
                    Shown(fingerprint)
                ));
            }
            Some(KnownKey {
                openssh: parsed.openssh(),
                fingerprint: parsed.fingerprint(),
            })
        }
    };
    Ok(HostKey {
        target,
        node: node.to_owned(),
        key,
    })
}

/// What running `ssh-host-keys` gave.
#[derive(Debug)]
pub enum Fetched {
    Keys(Vec<HostKey>),
    /// The command failed with this exit code; the controller's message has gone to stderr.
    Failed(i32),
}

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Cli(#[from] CliError),
    #[error("{0}")]
    Output(#[from] HostKeysError),
}

/// Runs `ssh-host-keys TARGET…` on the controller (every node when `targets` is empty) and
/// reads its output. The command's stderr goes to ours.
pub async fn fetch(
    config: &Config,
    targets: &[Target],
    interrupts: &Interrupts,
) -> Result<Fetched, FetchError> {
    let mut config = config.clone();
    config.args = std::iter::once(COMMAND.to_owned())
        .chain(targets.iter().map(Target::to_string))
        .collect();
    let mut stdio = Stdio {
        stdin: tokio::io::empty(),
        stdout: Capped::default(),
        stderr: tokio::io::stderr(),
    };
    let code = crate::run(&config, &mut stdio, interrupts).await?;
    if code != 0 {
        return Ok(Fetched::Failed(code));
    }
    if stdio.stdout.over {
        return Err(HostKeysError::TooLong.into());
    }
    let text = String::from_utf8(stdio.stdout.bytes).map_err(|_| HostKeysError::NotText)?;
    Ok(Fetched::Keys(parse(&text)?))
}

/// A buffer for a command's stdout that keeps at most [`MAX_OUTPUT`] bytes and fails the
/// write past it, which ends the session.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

impl AsyncWrite for Capped {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.bytes.len() + data.len() > MAX_OUTPUT {
            this.over = true;
            return Poll::Ready(Err(std::io::Error::other(HostKeysError::TooLong)));
        }
        this.bytes.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An Ed25519 key made with `ssh-keygen -t ed25519`, and its fingerprint as
    /// `ssh-keygen -l` prints it.
    pub const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMruG0LBJs1RHtq52D91KpcX5NjOhDbE+vzrK9XXNDer";

    pub fn fingerprint() -> String {
        "SHA256:N5TxrQ7NE9ZEYqIiMayf89v1GJyHV+4kWhlj+YRXCwM".to_owned()
    }

    #[test]
    fn lines_name_the_target_its_node_and_the_key_or_that_it_is_unknown() {
        let output = format!(
            "linux-1\tlinux-1\t{KEY}\t{fp}\nweb#12\tlinux-1\t{KEY}\t{fp}\n\nmac\tmac\t-\t-\n",
            fp = fingerprint()
        );
        let known = Some(KnownKey {
            openssh: KEY.into(),
            fingerprint: fingerprint(),
        });
        assert_eq!(
            parse(&output).unwrap(),
            [
                HostKey {
                    target: Target::Node("linux-1".into()),
                    node: "linux-1".into(),
                    key: known.clone(),
                },
                HostKey {
                    target: Target::Build {
                        job: "web".into(),
                        number: 12
                    },
                    node: "linux-1".into(),
                    key: known,
                },
                HostKey {
                    target: Target::Node("mac".into()),
                    node: "mac".into(),
                    key: None,
                },
            ]
        );
        assert_eq!(parse(""), Ok(vec![]));
    }

    #[test]
    fn anything_else_is_refused_with_the_line_and_the_reason() {
        let fp = fingerprint();
        let reason = |output: &str| match parse(output) {
            Err(HostKeysError::Malformed { line, reason }) => (line, reason),
            other => panic!("{output:?} gave {other:?}"),
        };
        assert_eq!(
            reason("a\ta\t-\n"),
            (
                1,
                "expected TARGET, NODE, KEY and FINGERPRINT separated by tabs, got ‘a\\ta\\t-’"
                    .into()
            )
        );
        let (line, text) = reason(&format!("a\ta\t-\t-\nb\tb\t{KEY}\t-\n"));
        assert_eq!(line, 2);
        assert!(text.contains("without a fingerprint"), "{text}");
        let (_, text) = reason(&format!("a\ta\t{KEY}\tSHA256:AAAA\n"));
        assert!(text.contains("has the fingerprint SHA256:"), "{text}");
        let (_, text) = reason(&format!("a\ta\tssh-ed25519 AAAA\t{fp}\n"));
        assert!(text.starts_with("the host key of node ‘a’"), "{text}");
        // A comment after the key, or a line break smuggled into it, would end up in a
        // known_hosts file.
        let (_, text) = reason(&format!("a\ta\t{KEY} x\t{fp}\n"));
        assert!(text.contains("more than TYPE and BASE64"), "{text}");
        let (line, _) = reason(&format!("a\ta\t{KEY}\n@cert-authority * {KEY}\t{fp}\n"));
        assert_eq!(line, 1);
        let (_, text) = reason(&format!("a\t\t{KEY}\t{fp}\n"));
        assert!(text.contains("is not a node name"), "{text}");
        let (_, text) = reason(&format!("web#0\tn\t{KEY}\t{fp}\n"));
        assert!(text.contains("build number"), "{text}");
    }
}
