//! The `ssh` driver's client: this binary started as [`SSH_CLIENT_NAME`] by a holder, in
//! the terminal's PTY. It reads its [`SshDriver`] from descriptor 3 (a pipe from the
//! holder: the key and password never touch a file or a command line), puts the PTY in raw
//! mode (the remote side has a terminal of its own, which echoes), connects with russh,
//! checks the host key, logs in with the key or the password, asks for a PTY of the local
//! one's size and a shell, and then copies bytes both ways, sending the window's size on
//! every SIGWINCH. It exits with the remote shell's status, or 255 (after saying why on the
//! terminal) when it cannot connect or log in.
//!
//! The host key: the one the driver names (its `SHA256:` fingerprint), else the first one
//! seen, which is kept in the terminal's directory (`known_host`) and required from then on.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::ChannelMsg;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use steward_protocol::terminals::{MAX_TERMINAL_MESSAGE, SshDriver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The name the binary answers to as the ssh driver's client.
pub const SSH_CLIENT_NAME: &str = "steward-ssh-client";
/// The file that keeps the host key trusted on first use.
pub const KNOWN_HOST_FILE: &str = "known_host";
/// How long connecting and logging in may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the client; its exit code. `args`: the terminal's directory.
pub fn main(args: &[OsString]) -> u8 {
    let dir = args.first().map(PathBuf::from).unwrap_or_default();
    let driver = match read_driver() {
        Ok(driver) => driver,
        Err(e) => return say(&format!("ssh: cannot read the terminal's settings: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return say(&format!("ssh: {e}")),
    };
    steward_transport::install_crypto_provider();
    runtime.block_on(async move {
        match session(&dir, &driver).await {
            Ok(code) => code,
            Err(e) => say(&format!(
                "ssh {}@{}:{}: {e}",
                driver.user, driver.host, driver.port
            )),
        }
    })
}

/// Says why on the terminal; 255.
fn say(why: &str) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = write!(out, "\r\n{why}\r\n");
    let _ = out.flush();
    255
}

fn read_driver() -> Result<SshDriver, String> {
    // SAFETY: the holder passes the settings on descriptor 3, which nothing else owns.
    let pipe = unsafe { std::fs::File::from_raw_fd(3) };
    let mut body = Vec::new();
    pipe.take(MAX_TERMINAL_MESSAGE as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    steward_protocol::services::decode(&body)
}

struct Client {
    expected: Option<String>,
    known_host: PathBuf,
    /// Why the key was refused, for the message.
    refused: Arc<std::sync::Mutex<Option<String>>>,
}

impl Client {
    fn refuse(&self, why: String) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            self.refuse(
                "the server offered a certificate; only plain host keys are checked".into(),
            );
            return Ok(false);
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let expected = match &self.expected {
            Some(expected) => Some(expected.clone()),
            None => std::fs::read_to_string(&self.known_host)
                .ok()
                .map(|s| s.trim().to_owned()),
        };
        match expected {
            Some(expected) if expected == fingerprint => Ok(true),
            Some(expected) => {
                self.refuse(format!(
                    "the host key is {fingerprint}, not the expected {expected}: refusing to connect"
                ));
                Ok(false)
            }
            None => {
                // Trusted on first use, and from then on required.
                let _ = std::fs::write(&self.known_host, format!("{fingerprint}\n"));
                Ok(true)
            }
        }
    }
}

async fn session(dir: &Path, driver: &SshDriver) -> Result<u8, String> {
    let raw = raw_mode();
    let config = Arc::new(russh::client::Config::default());
    let refused = Arc::new(std::sync::Mutex::new(None));
    let handler = Client {
        expected: driver.host_key.clone(),
        known_host: dir.join(KNOWN_HOST_FILE),
        refused: refused.clone(),
    };
    let connecting = russh::client::connect(config, (driver.host.as_str(), driver.port), handler);
    let mut handle = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) => {
            let why = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(why.unwrap_or_else(|| format!("cannot connect: {e}")));
        }
        Err(_) => return Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    };
    let logged_in = login(&mut handle, driver).await?;
    if !logged_in {
        return Err("the server refused the key and the password".into());
    }
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| format!("cannot open a session: {e}"))?;
    let (cols, rows) = window_size();
    channel
        .request_pty(false, "xterm-256color", cols, rows, 0, 0, &[])
        .await
        .map_err(|e| format!("cannot ask for a terminal: {e}"))?;
    channel
        .request_shell(false)
        .await
        .map_err(|e| format!("cannot start a shell: {e}"))?;
    let (mut read, write) = channel.split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut winch =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    let mut buf = vec![0u8; 16 * 1024];
    let mut status: Option<u8> = None;
    let mut stdin_open = true;
    loop {
        tokio::select! {
            message = read.wait() => match message {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    if stdout.write_all(&data).await.is_err() || stdout.flush().await.is_err() {
                        break;
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status.min(255) as u8),
                Some(ChannelMsg::ExitSignal { .. }) => status = Some(255),
                Some(ChannelMsg::Eof) => {}
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
            n = stdin.read(&mut buf), if stdin_open => match n {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if write.data(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            },
            Some(()) = async { match winch.as_mut() { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                let (cols, rows) = window_size();
                let _ = write.window_change(cols, rows, 0, 0).await;
            }
        }
    }
    drop(raw);
    Ok(status.unwrap_or(255))
}

/// Logs in with the key, then the password; whether one was taken.
async fn login(
    handle: &mut russh::client::Handle<Client>,
    driver: &SshDriver,
) -> Result<bool, String> {
    if let Some(text) = &driver.key {
        let key = russh::keys::decode_secret_key(text, None)
            .map_err(|e| format!("the key cannot be read: {e}"))?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        let result = handle
            .authenticate_publickey(&driver.user, key)
            .await
            .map_err(|e| e.to_string())?;
        if result.success() {
            return Ok(true);
        }
    }
    if let Some(password) = &driver.password {
        let result = handle
            .authenticate_password(&driver.user, password.trim_end_matches('\n'))
            .await
            .map_err(|e| e.to_string())?;
        if result.success() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The terminal's size (columns, rows), 80×24 when it cannot be read.
fn window_size() -> (u32, u32) {
    // SAFETY: TIOCGWINSZ fills one winsize.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut size) } == 0 && size.ws_col > 0 {
        (size.ws_col.into(), size.ws_row.into())
    } else {
        (80, 24)
    }
}

/// The local terminal in raw mode while the value lives.
struct Raw(Option<libc::termios>);

fn raw_mode() -> Raw {
    // SAFETY: tcgetattr and tcsetattr on descriptor 0 with structs we own.
    unsafe {
        let mut saved: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut saved) != 0 {
            return Raw(None);
        }
        let mut raw = saved;
        libc::cfmakeraw(&mut raw);
        libc::tcsetattr(0, libc::TCSANOW, &raw);
        Raw(Some(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores what was read.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}
