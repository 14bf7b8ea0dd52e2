//! The SSH server's answers for one connection (russh's `Handler`): authentication, and
//! what each channel asks for. Anything that runs for a while (a process, an SFTP session,
//! a forwarded connection) is a task of the connection, so the connection's loop never
//! waits on it; the tasks end when their channel closes or the connection ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty};
use steward_protocol::agent_calls::{AgentCall, AgentReply, SshLogin};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::auth::{Accepted, KeyPolicy};
use super::pty::WindowSize;
use super::recorder::Recorder;
use super::registry::{Registration, Terminal};
use super::session::{self, Program, PtyRequest, Setting};
use super::{sftp, tcpip};
use crate::services::Context;

/// Most channels (sessions, forwards) open at once on one connection; OpenSSH allows 10
/// sessions by default, this leaves room for a few terminals with forwards besides.
pub const MAX_CHANNELS: usize = 64;
/// Most environment variables a client may set on one channel.
pub const MAX_ENV: usize = 64;
/// Longest environment variable value accepted from a client.
pub const MAX_ENV_VALUE: usize = 4096;
/// How long the agent waits for a connection to the controller to report a login; the
/// report is best effort and never holds up the session.
pub const LOGIN_REPORT_PATIENCE: Duration = Duration::from_secs(10);

/// Variables a client may set (`SendEnv`): the terminal and locale, nothing that changes
/// what programs run (`PATH`, `LD_PRELOAD`…).
pub fn env_allowed(name: &str) -> bool {
    matches!(name, "TERM" | "LANG" | "TZ" | "COLUMNS" | "LINES") || name.starts_with("LC_")
}

/// What one connection shares with its tasks.
pub struct Shared {
    pub connection: u64,
    pub policy: KeyPolicy,
    pub setting: Setting,
    pub registration: Registration,
    pub tasks: TaskTracker,
    pub cancel: CancellationToken,
    pub context: Context,
}

/// A session channel waiting for its shell, command or subsystem.
struct Pending {
    channel: Channel<Msg>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    _slot: Arc<()>,
}

/// The handler of one connection.
pub struct Connection {
    shared: Arc<Shared>,
    pending: HashMap<ChannelId, Pending>,
    /// One clone per open channel: the count of channels in use.
    slots: Arc<()>,
    /// The SSH user and key accepted, reported once authentication succeeds.
    login: Option<(String, Accepted)>,
    /// Ends the connection's tasks (and so their processes) however the connection ends.
    _cancel: DropGuard,
}

impl Shared {
    /// Starts the recording of channel `id`'s session (the controller decides whether it
    /// is kept).
    fn recorder(&self, id: ChannelId, kind: &str, command: String, size: (u32, u32)) -> Recorder {
        let clamp = |v: u32| v.min(u32::from(u16::MAX)) as u16;
        Recorder::start(
            &self.context,
            steward_protocol::agent_calls::SshRecordingStart {
                connection: self.connection,
                channel: u32::from(id),
                kind: kind.to_owned(),
                command,
                width: clamp(size.0),
                height: clamp(size.1),
                started_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0),
            },
        )
    }
}

impl Connection {
    pub fn new(shared: Arc<Shared>) -> Self {
        let cancel = shared.cancel.clone().drop_guard();
        Connection {
            shared,
            pending: HashMap::new(),
            slots: Arc::new(()),
            login: None,
            _cancel: cancel,
        }
    }

    fn slot(&self) -> Option<Arc<()>> {
        // One reference is the connection's own.
        (Arc::strong_count(&self.slots) <= MAX_CHANNELS).then(|| self.slots.clone())
    }

    fn check(&self, user: &str, key: &PublicKey) -> Result<Accepted, String> {
        let blob = key.to_bytes().map_err(|e| e.to_string())?;
        self.shared.policy.check(user, &blob).map_err(|refusal| {
            info!(
                connection = self.shared.connection,
                user = ?user,
                fingerprint = %steward_protocol::ssh::fingerprint(&blob),
                reason = %refusal,
                "ssh login refused"
            );
            refusal.to_string()
        })
    }

    /// Starts the shell or command of a pending channel, as a task of the connection.
    fn start(&mut self, id: ChannelId, program: Program, session: &mut Session) {
        let Some(pending) = self.pending.remove(&id) else {
            let _ = session.channel_failure(id);
            return;
        };
        let Pending {
            channel,
            pty,
            env,
            _slot,
        } = pending;
        let started = session::start(&self.shared.setting, &program, pty.as_ref(), &env);
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                info!(connection = self.shared.connection, error = %e, "cannot start an ssh session");
                let _ = session.channel_failure(id);
                return;
            }
        };
        let _ = session.channel_success(id);
        let terminal = match (&pty, &program) {
            (Some(_), _) => Terminal::Pty,
            (None, _) => Terminal::Plain,
        };
        let terminal = self.shared.registration.add_terminal(id, terminal);
        let (kind, command) = match &program {
            Program::Shell => ("shell", "login shell".to_owned()),
            Program::Command(line) => ("exec", line.clone()),
        };
        let size = pty
            .as_ref()
            .map_or((80, 24), |p| (p.size.cols, p.size.rows));
        let recorder = self.shared.recorder(id, kind, command, size);
        let handle = session.handle();
        let cancel = self.shared.cancel.clone();
        let (reader, writer) = channel.split();
        self.shared.tasks.spawn(async move {
            let _slot = _slot;
            session::run(started, reader, writer, handle, cancel, terminal, recorder).await;
        });
    }
}

/// Only public keys: the methods offered again after a refusal.
fn publickey_only() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
        partial_success: false,
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(publickey_only())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        info!(connection = self.shared.connection, user = ?user, "ssh password login refused: keys only");
        Ok(publickey_only())
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        _user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        Ok(publickey_only())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.check(user, offer.public_key) {
            Ok(_) => Auth::Accept,
            Err(_) => publickey_only(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.check(user, key.public_key) {
            Ok(accepted) => {
                self.login = Some((user.to_owned(), accepted));
                Auth::Accept
            }
            Err(_) => publickey_only(),
        })
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.shared.registration.set_handle(session.handle());
        let Some((ssh_user, accepted)) = self.login.clone() else {
            return Ok(());
        };
        info!(
            connection = self.shared.connection,
            user = ?ssh_user,
            fingerprint = %accepted.fingerprint,
            owner = ?accepted.owner,
            "ssh login"
        );
        let call = AgentCall::SshLogin(SshLogin {
            connection: self.shared.connection,
            ssh_user,
            key_fingerprint: accepted.fingerprint,
            key_owner: accepted.owner,
        });
        let context = self.shared.context.clone();
        let cancel = self.shared.cancel.clone();
        self.shared.tasks.spawn(async move {
            let report = async {
                let channel = context.controller(LOGIN_REPORT_PATIENCE).await?;
                let reply = tokio::time::timeout(
                    LOGIN_REPORT_PATIENCE,
                    steward_channel::call::agent_call(&channel, &call),
                )
                .await;
                Some(reply)
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                reported = report => match reported {
                    Some(Ok(Ok(AgentReply::Done))) => {}
                    other => debug!(?other, "the controller did not take the ssh login report"),
                },
            }
        });
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(slot) = self.slot() else {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        };
        self.pending.insert(
            channel.id(),
            Pending {
                channel,
                pty: None,
                env: Vec::new(),
                _slot: slot,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(slot) = self.slot() else {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        };
        let host = host_to_connect.to_owned();
        let cancel = self.shared.cancel.clone();
        // Forwarded traffic is recorded as markers only.
        let target = format!("{host}:{port_to_connect}");
        let recorder = self
            .shared
            .recorder(channel.id(), "direct-tcpip", target.clone(), (80, 24));
        self.shared.tasks.spawn(async move {
            let _slot = slot;
            recorder.marker(&format!("forwarding to {target}"));
            let ended = tcpip::forward(channel, reply, host, port_to_connect, cancel).await;
            recorder.marker(&ended);
        });
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.pending.get_mut(&channel) {
            Some(pending) if pending.pty.is_none() => {
                pending.pty = Some(PtyRequest {
                    term: term.chars().take(MAX_ENV_VALUE).collect(),
                    size: WindowSize {
                        cols: col_width,
                        rows: row_height,
                        pix_width,
                        pix_height,
                    },
                });
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let accepted = env_allowed(name) && value.len() <= MAX_ENV_VALUE && !value.contains('\0');
        match self.pending.get_mut(&channel) {
            Some(pending) if accepted && pending.env.len() < MAX_ENV => {
                pending.env.push((name.to_owned(), value.to_owned()));
                session.channel_success(channel)
            }
            _ => {
                debug!(name = ?name, "refusing an environment variable");
                session.channel_failure(channel)
            }
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Program::Shell, session);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match std::str::from_utf8(data) {
            Ok(line) if !line.contains('\0') => {
                self.start(channel, Program::Command(line.to_owned()), session)
            }
            _ => {
                self.pending.remove(&channel);
                session.channel_failure(channel)?;
            }
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != "sftp" {
            debug!(name = ?name, "refusing an unknown subsystem");
            return session.channel_failure(channel);
        }
        let Some(pending) = self.pending.remove(&channel) else {
            return session.channel_failure(channel);
        };
        session.channel_success(channel)?;
        let cwd = self.shared.setting.cwd.clone();
        let cancel = self.shared.cancel.clone();
        let connection = self.shared.connection;
        let handle = session.handle();
        // SFTP is recorded as markers only: that it happened, and how it ended.
        let recorder = self
            .shared
            .recorder(channel, "sftp", "sftp".into(), (80, 24));
        recorder.marker("sftp session started");
        self.shared.tasks.spawn(async move {
            let _slot = pending._slot;
            let mut stream = pending.channel.into_stream();
            let status = tokio::select! {
                () = cancel.cancelled() => return,
                served = sftp::serve(&mut stream, cwd) => match served {
                    Ok(()) => 0,
                    Err(e) => {
                        debug!(connection, error = %e, "sftp session failed");
                        1
                    }
                },
            };
            recorder.marker(&format!("sftp session ended (status {status})"));
            // As sshd reports its sftp-server's exit: clients (scp) check it. The stream
            // closes the channel when dropped, after these.
            let _ = handle.exit_status_request(channel, status).await;
            let _ = handle.eof(channel).await;
            drop(stream);
        });
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending.remove(&channel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_terminal_and_locale_variables_pass() {
        for name in [
            "TERM", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "COLUMNS", "LINES",
        ] {
            assert!(env_allowed(name), "{name}");
        }
        for name in ["PATH", "LD_PRELOAD", "HOME", "BASH_ENV", "lc_all", "SHELL"] {
            assert!(!env_allowed(name), "{name}");
        }
    }
}
