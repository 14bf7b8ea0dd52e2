//! `attach-terminal NAME [-read-only]`, which the client runs itself over the controller's
//! WebSocket (`ROOT/terminals/NAME/attach`) rather than as a CLI command: the socket
//! carries the window's size and its changes, which the CLI protocol cannot.
//!
//! In a terminal, stdin is put in raw mode (restored on the way out) and the window size is
//! sent at once and on every SIGWINCH. Without one, stdin and stdout are piped as they are,
//! so scripts and tests can drive a terminal; the end of stdin detaches. Either way `^Ec.`
//! detaches, `^Ec?` prints the escapes, `^Ecr` asks for the last 30 lines and `^Ecw` who is
//! attached. Exit codes: 0 when the user detached, 1 when the controller ended the session
//! (the terminal deleted, this client dropped for falling behind), else as `ssh-proxy`.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use steward_protocol::terminals::{ESCAPE_HELP, EscapeReader, Keys};
use steward_transport::TlsOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use crate::CliError;
use crate::options::Config;
use crate::ssh::SshError;
use crate::ssh::{dial, stdio};

/// The command's name.
pub const ATTACH: &str = "attach-terminal";
/// Its usage line.
pub const USAGE: &str = "Usage: cli [OPTIONS] attach-terminal NAME [-read-only]";
/// Largest message taken from the controller: its output messages are at most 64 KiB.
const MAX_MESSAGE: usize = 256 * 1024;
/// What is read from stdin at once.
const READ_CHUNK: usize = 16 * 1024;

/// `attach-terminal`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    pub name: String,
    pub read_only: bool,
}

impl Attach {
    /// `None` when `args` is another command.
    pub fn parse(args: &[String]) -> Option<Result<Attach, String>> {
        let (name, words) = args.split_first()?;
        if name != ATTACH {
            return None;
        }
        let mut terminal = None;
        let mut read_only = false;
        for word in words {
            match word.as_str() {
                "-read-only" | "--read-only" => read_only = true,
                w if w.starts_with('-') && w.len() > 1 => {
                    return Some(Err(format!("\"{w}\" is not a valid option\n{USAGE}")));
                }
                w if terminal.is_none() => terminal = Some(w.to_owned()),
                w => return Some(Err(format!("Too many arguments: {w}\n{USAGE}"))),
            }
        }
        Some(match terminal {
            Some(name) => Ok(Attach { name, read_only }),
            None => Err(format!("Argument \"NAME\" is required\n{USAGE}")),
        })
    }

    /// `ROOT/terminals/NAME/attach[?readOnly=true]`, as a WebSocket URL.
    pub fn route(&self, root: &Url) -> Result<Url, steward_transport::TransportError> {
        let mut url = steward_transport::ws_url(root, "")?;
        url.set_fragment(None);
        url.set_query(self.read_only.then_some("readOnly=true"));
        url.path_segments_mut()
            .map_err(|()| steward_transport::TransportError::BadUrl {
                url: root.to_string(),
                reason: "the URL cannot have a path".into(),
            })?
            .pop_if_empty()
            .extend(["terminals", &self.name, "attach"]);
        Ok(url)
    }
}

/// The parameters whose value `@FILE` names a file this client reads: `create-terminal`
/// and `update-terminal`'s `-param key=@FILE` and `-param password=@FILE`. The secret then
/// travels as the argument, inside the CLI connection, never on a command line.
const FILE_PARAMS: &[&str] = &["key", "password"];

/// Replaces `-param key=@FILE` (and `password=@FILE`) with the file's contents in the
/// arguments of `create-terminal` and `update-terminal`; why not, naming the file.
pub fn read_param_files(args: &mut [String]) -> Result<(), String> {
    if !matches!(
        args.first().map(String::as_str),
        Some("create-terminal" | "update-terminal")
    ) {
        return Ok(());
    }
    let mut after_param = false;
    for arg in args.iter_mut().skip(1) {
        let is_value = std::mem::replace(
            &mut after_param,
            matches!(arg.as_str(), "-param" | "--param"),
        );
        if !is_value {
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            continue;
        };
        let Some(path) = value.strip_prefix('@') else {
            continue;
        };
        if !FILE_PARAMS.contains(&key) {
            continue;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("ERROR: -param {key}=@{path}: cannot read {path}: {e}"))?;
        let text = if key == "password" {
            text.trim_end_matches(['\n', '\r']).to_owned()
        } else {
            text
        };
        *arg = format!("{key}={text}");
    }
    Ok(())
}

/// Runs `attach-terminal`; its exit code. Failures are reported on stderr.
pub async fn run(config: &Config, attach: &Attach) -> i32 {
    match attached(config, attach).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

async fn attached(config: &Config, attach: &Attach) -> Result<i32, SshError> {
    let tls: Arc<rustls::ClientConfig> = steward_transport::tls_config(&TlsOptions {
        extra_ca_pem: config.extra_ca_pem.clone(),
        no_certificate_check: config.no_certificate_check,
    })
    .map_err(CliError::from)?;
    let url = attach.route(&config.root).map_err(CliError::from)?;
    let socket = dial::open_url(config, &tls, &url, MAX_MESSAGE).await?;
    let (mut tx, mut rx) = socket.split();
    let raw = RawMode::enter();
    let mut stdout = stdio::stdout();
    let mut stdin = stdio::stdin();
    let newline = "\r\n";
    write_out(
        &mut stdout,
        format!("[Enter '^Ec?' for help]{newline}").as_bytes(),
    )
    .await?;
    let mut winch = window_changes();
    if raw.is_some()
        && let Some(size) = window_size()
    {
        let _ = tx.send(resize(size)).await;
    }
    let mut escapes = EscapeReader::default();
    let mut buf = vec![0u8; READ_CHUNK];
    let code = loop {
        tokio::select! {
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Binary(data))) => write_out(&mut stdout, &data).await?,
                Some(Ok(Message::Text(text))) => {
                    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    match value["type"].as_str() {
                        Some("message") => {
                            let line = value["text"].as_str().unwrap_or_default();
                            write_out(&mut stdout, format!("{newline}{line}{newline}").as_bytes()).await?;
                        }
                        Some("closed") => {
                            let why = value["reason"].as_str().unwrap_or("closed by the controller");
                            write_out(&mut stdout, format!("{newline}{why}{newline}").as_bytes()).await?;
                            break 1;
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return Err(SshError::Closed(format!("the controller closed the session{}", if why.is_empty() { String::new() } else { format!(": {why}") })));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(SshError::Closed(format!("the connection to the controller broke: {e}")));
                }
                None => {
                    return Err(SshError::Closed("the connection to the controller ended".into()));
                }
            },
            read = stdin.read(&mut buf) => match read {
                // Piped input ended: detach, as ^Ec. would.
                Ok(0) | Err(_) => break 0,
                Ok(n) => {
                    let mut detach = false;
                    for keys in escapes.feed(&buf[..n]) {
                        let message = match keys {
                            Keys::Data(data) => Message::Binary(data.into()),
                            Keys::Detach => {
                                detach = true;
                                break;
                            }
                            Keys::Help => {
                                write_out(&mut stdout, format!("{newline}{ESCAPE_HELP}{newline}").as_bytes()).await?;
                                continue;
                            }
                            Keys::Replay => Message::Text(r#"{"type":"replay"}"#.into()),
                            Keys::Who => Message::Text(r#"{"type":"who"}"#.into()),
                        };
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                    if detach {
                        write_out(&mut stdout, format!("{newline}[detached]{newline}").as_bytes()).await?;
                        break 0;
                    }
                }
            },
            Some(()) = next_change(&mut winch) => {
                if let Some(size) = window_size() {
                    let _ = tx.send(resize(size)).await;
                }
            }
        }
    };
    let _ = tx.send(Message::Close(None)).await;
    // Raw mode ends as `raw` drops.
    Ok(code)
}

async fn write_out(
    stdout: &mut Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    data: &[u8],
) -> Result<(), SshError> {
    let written = async {
        stdout.write_all(data).await?;
        stdout.flush().await
    };
    written.await.map_err(|source| {
        SshError::Cli(CliError::Session(crate::session::SessionError::Output {
            stream: "stdout",
            source,
        }))
    })
}

fn resize((cols, rows): (u16, u16)) -> Message {
    Message::Text(format!(r#"{{"type":"resize","cols":{cols},"rows":{rows}}}"#).into())
}

/// The window's size (columns, rows), when stdout or stdin is a terminal.
fn window_size() -> Option<(u16, u16)> {
    for fd in [1, 0] {
        // SAFETY: TIOCGWINSZ fills one winsize.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0 && size.ws_col > 0 {
            return Some((size.ws_col, size.ws_row));
        }
    }
    None
}

fn window_changes() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
}

async fn next_change(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Stdin in raw mode while it lives, when stdin is a terminal.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        // SAFETY: isatty, tcgetattr and tcsetattr on descriptor 0 with structs we own.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read on entry.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn secret_parameters_are_read_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        let mut line = args(&[
            "create-terminal",
            "t",
            "-param",
            &format!("password=@{}", pw.display()),
            "-param",
            "cmd=@x",
        ]);
        read_param_files(&mut line).unwrap();
        assert_eq!(line[3], "password=hunter2");
        assert_eq!(line[5], "cmd=@x", "only key and password name files");
        let mut missing = args(&["update-terminal", "t", "-param", "key=@/nonexistent/k"]);
        let e = read_param_files(&mut missing).unwrap_err();
        assert!(e.contains("cannot read /nonexistent/k"), "{e}");
        let mut other = args(&["get-terminal", "-param", "key=@/nonexistent/k"]);
        read_param_files(&mut other).unwrap();
    }

    #[test]
    fn arguments_and_route() {
        assert_eq!(Attach::parse(&args(&["who-am-i"])), None);
        let attach = Attach::parse(&args(&["attach-terminal", "web 1", "-read-only"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            attach,
            Attach {
                name: "web 1".into(),
                read_only: true
            }
        );
        let root = Url::parse("https://ci.example/jenkins/").unwrap();
        assert_eq!(
            attach.route(&root).unwrap().as_str(),
            "wss://ci.example/jenkins/terminals/web%201/attach?readOnly=true"
        );
        assert!(Attach::parse(&args(&["attach-terminal"])).unwrap().is_err());
        assert!(
            Attach::parse(&args(&["attach-terminal", "a", "-x"]))
                .unwrap()
                .is_err()
        );
    }
}
