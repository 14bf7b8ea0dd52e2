//! Terminals: long-lived PTY sessions on nodes, which the controller shares among clients.
//!
//! On the agent a terminal's PTY and process are held by a *holder*, a process of its own
//! that outlives the agent. The controller reaches it with [`crate::services::Request::Terminal`]:
//! the agent attaches to the running holder (or starts one, when asked to), answers
//! [`crate::services::Response::Terminal`], and from then on relays messages both ways,
//! one per DATA frame:
//! - agent → controller: [`TerminalEvent`]s, postcard: output with its offset in the
//!   run's output, then, once the process has ended and every byte is delivered, its end;
//! - controller → agent: [`TerminalInput`]s, postcard: keystrokes, resizes, stop.
//!
//! The holder and the agent speak the same messages over the holder's Unix socket, each
//! framed by [`frame`] (a 4-byte big-endian length first), so the agent relays them without
//! decoding the output. The holder keeps the last [`HOLDER_BACKLOG`] bytes of output, so
//! an agent (or controller) that comes back resumes from the offset it had reached.

use serde::{Deserialize, Serialize};

/// Largest output chunk in one [`TerminalEvent::Output`]: well inside a channel message.
pub const MAX_OUTPUT_CHUNK: usize = 32 * 1024;
/// Largest encoded message either way (an output chunk and its header, or a launch spec).
pub const MAX_TERMINAL_MESSAGE: usize = 64 * 1024;
/// Output the holder keeps for a client that comes back: what a restarted agent or
/// controller can resume from.
pub const HOLDER_BACKLOG: usize = 1024 * 1024;
/// Largest window dimension taken from a client.
pub const MAX_DIMENSION: u16 = 1000;
/// The window size a terminal starts with before any client says.
pub const DEFAULT_SIZE: Size = Size { cols: 80, rows: 24 };

/// A window size, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub cols: u16,
    pub rows: u16,
}

impl Size {
    /// The size clamped to 1..=[`MAX_DIMENSION`] each way.
    pub fn clamped(self) -> Size {
        Size {
            cols: self.cols.clamp(1, MAX_DIMENSION),
            rows: self.rows.clamp(1, MAX_DIMENSION),
        }
    }
}

/// What runs in the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Driver {
    /// A command line run by `/bin/sh -c`; `None` is the agent user's login shell.
    Cmd { command: Option<String> },
    /// A shell on another machine, over SSH from the node ([`SshDriver`]).
    Ssh(SshDriver),
}

/// An SSH client session from the node to `host:port`, in the terminal: the console of a
/// machine only the node's network reaches. Its `Debug` leaves the secrets out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshDriver {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// A private key in OpenSSH or PEM form.
    pub key: Option<String>,
    pub password: Option<String>,
    /// The host key's `SHA256:` fingerprint; without it the first key seen is trusted and
    /// kept, and another one refused.
    pub host_key: Option<String>,
}

impl std::fmt::Debug for SshDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "****");
        f.debug_struct("SshDriver")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("key", &hidden(&self.key))
            .field("password", &hidden(&self.password))
            .field("host_key", &self.host_key)
            .finish()
    }
}

/// How to start a terminal's holder when none runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    pub driver: Driver,
    pub size: Size,
    /// Added to the agent's environment (after `TERM=xterm-256color`).
    pub env: Vec<(String, String)>,
}

/// What the controller asks of the agent for one terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalOpen {
    /// The terminal's name, as the controller stores it.
    pub name: String,
    /// Start a holder with this when none runs; `None` only attaches.
    pub launch: Option<Launch>,
    /// Where the controller's copy of the output ends, when it has one: output resumes
    /// there if the holder still has it (same run), else from the oldest byte it has.
    pub resume: Option<Resume>,
}

/// A place in one run's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub run: String,
    pub offset: u64,
}

/// The agent's answer to a [`TerminalOpen`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminalAnswer {
    /// Attached to a holder (started now, or running already); events follow.
    Attached(RunInfo),
    /// No holder runs, and none was to be started.
    NotRunning,
}

/// One run of a terminal: a holder and its process, from start to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Unique to the run: a restarted process is a new run.
    pub run: String,
    /// When the process started, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// The process in the terminal.
    pub pid: u32,
    /// The command line, as recordings name it.
    pub command: String,
    /// The terminal's size now.
    pub size: Size,
    /// The oldest output offset the holder still has; output follows from
    /// `max(resume offset, first_offset)`.
    pub first_offset: u64,
    /// Whether the holder was started by this request.
    pub started_now: bool,
}

/// From the holder (through the agent) to the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminalEvent {
    /// Output at `offset` in the run's output. A gap between one chunk's end and the next
    /// offset is output the holder no longer had.
    Output {
        offset: u64,
        #[serde(with = "crate::byte_buf")]
        data: Vec<u8>,
    },
    /// The process ended (after its last output).
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// From the controller (through the agent) to the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminalInput {
    /// Typed into the terminal.
    Input(#[serde(with = "crate::byte_buf")] Vec<u8>),
    /// The window's new size; the program gets SIGWINCH.
    Resize(Size),
    /// End the process (SIGHUP, SIGTERM, then SIGKILL); the holder exits after `Exited`.
    Stop,
}

/// The first frame on the holder's socket: the agent says where to resume, the holder
/// answers with its [`RunInfo`], then events follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderHello {
    pub resume: Option<Resume>,
}

/// What the agent gives a new holder on its stdin: the terminal's name and how to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderSpec {
    pub name: String,
    pub launch: Launch,
}

/// A message framed for the holder's socket: its length (4 bytes, big-endian), then it.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(4 + message.len());
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// Why a frame on the holder's socket cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {len}-byte message on the terminal socket is over {MAX_TERMINAL_MESSAGE} bytes")]
pub struct FrameTooLarge {
    pub len: usize,
}

/// The length a frame header announces, checked against [`MAX_TERMINAL_MESSAGE`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, FrameTooLarge> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_TERMINAL_MESSAGE {
        return Err(FrameTooLarge { len });
    }
    Ok(len)
}

/// The escape character of an attached client, `^E` (as in goconserver), followed by `c`
/// and a command letter.
pub const ESCAPE: u8 = 0x05;

/// What a client's keystrokes mean once escapes are taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// Bytes for the terminal.
    Data(Vec<u8>),
    /// `^Ec.`: detach.
    Detach,
    /// `^Ec?`: the escapes.
    Help,
    /// `^Ecr`: replay the last lines.
    Replay,
    /// `^Ecw`: who is attached.
    Who,
}

/// The help `^Ec?` prints.
pub const ESCAPE_HELP: &str =
    "Escapes: ^Ec. detach, ^Ec? this help, ^Ecr replay the last 30 lines, ^Ecw who is attached";

/// Finds `^Ec` escapes in a client's keystrokes, across reads.
#[derive(Debug, Default)]
pub struct EscapeReader {
    /// 0: nothing pending; 1: `^E` read; 2: `^Ec` read.
    state: u8,
}

impl EscapeReader {
    pub fn feed(&mut self, input: &[u8]) -> Vec<Keys> {
        let mut out = Vec::new();
        let mut data = Vec::new();
        for &b in input {
            match (self.state, b) {
                (0, ESCAPE) => self.state = 1,
                (0, _) => data.push(b),
                (1, b'c') => self.state = 2,
                (1, _) => {
                    // Not an escape: both keys go through (a second ^E starts over).
                    data.push(ESCAPE);
                    if b == ESCAPE {
                        continue;
                    }
                    data.push(b);
                    self.state = 0;
                }
                (_, command) => {
                    self.state = 0;
                    let keys = match command {
                        b'.' => Keys::Detach,
                        b'?' => Keys::Help,
                        b'r' => Keys::Replay,
                        b'w' => Keys::Who,
                        other => {
                            data.extend_from_slice(&[ESCAPE, b'c', other]);
                            continue;
                        }
                    };
                    if !data.is_empty() {
                        out.push(Keys::Data(std::mem::take(&mut data)));
                    }
                    out.push(keys);
                }
            }
        }
        if !data.is_empty() {
            out.push(Keys::Data(data));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_and_refuse_oversized_ones() {
        let framed = frame(b"abc");
        assert_eq!(framed, b"\0\0\0\x03abc");
        assert_eq!(frame_len([0, 0, 0, 3]), Ok(3));
        assert_eq!(
            frame_len([0, 1, 0, 1]),
            Err(FrameTooLarge { len: 65537 }),
            "one byte over the limit"
        );
    }

    #[test]
    fn sizes_are_clamped_into_range() {
        assert_eq!(
            Size {
                cols: 0,
                rows: 5000
            }
            .clamped(),
            Size {
                cols: 1,
                rows: MAX_DIMENSION
            }
        );
    }

    #[test]
    fn escapes_are_found_across_reads_and_other_keys_pass() {
        let mut reader = EscapeReader::default();
        assert_eq!(reader.feed(b"ls\r\x05"), vec![Keys::Data(b"ls\r".to_vec())]);
        assert_eq!(reader.feed(b"cw"), vec![Keys::Who]);
        assert_eq!(
            reader.feed(b"a\x05c.b"),
            vec![
                Keys::Data(b"a".to_vec()),
                Keys::Detach,
                Keys::Data(b"b".to_vec())
            ]
        );
        assert_eq!(reader.feed(b"\x05x"), vec![Keys::Data(b"\x05x".to_vec())]);
        assert_eq!(reader.feed(b"\x05cz"), vec![Keys::Data(b"\x05cz".to_vec())]);
        assert_eq!(reader.feed(b"\x05c?\x05cr"), vec![Keys::Help, Keys::Replay]);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let driver = SshDriver {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            key: Some("-----BEGIN OPENSSH PRIVATE KEY-----".into()),
            password: Some("hunter2".into()),
            host_key: None,
        };
        let shown = format!("{:?}", Driver::Ssh(driver));
        assert!(
            !shown.contains("hunter2") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        assert!(shown.contains("password: Some(\"****\")"), "{shown}");
    }

    #[test]
    fn events_round_trip() {
        let event = TerminalEvent::Output {
            offset: 7,
            data: b"hi\r\n".to_vec(),
        };
        let bytes = crate::services::encode(&event);
        assert_eq!(
            crate::services::decode::<TerminalEvent>(&bytes).unwrap(),
            event
        );
    }
}
