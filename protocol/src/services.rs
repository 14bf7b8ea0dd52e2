//! The requests the controller makes of an agent over the channel, and their answers.
//!
//! A request travels as the OPEN header of a new stream: postcard of
//! `(SERVICES_VERSION, Request)`. The agent answers on the same stream. Simple calls answer
//! with one postcard [`Response`] and EOF; `Exec` streams [`ExecEvent`]s; `ReadFile` answers
//! with a [`Response`] then raw file bytes; `WriteFile` takes raw bytes then answers;
//! `StartStep` takes a [`StepSpec`] then answers; `TailStep` answers with a [`Response`]
//! then [`StepEvent`]s (the durable-step types live in [`crate::steps`]). An unknown
//! version or request is refused with a RESET naming it, never dropped.

use serde::{Deserialize, Serialize};

use crate::ssh::SshRequest;
use crate::steps::StepStatus;
#[cfg(doc)]
use crate::steps::{StepEvent, StepSpec};
use crate::terminals::{TerminalAnswer, TerminalOpen};

/// Version of the request and response layouts. A layout never changes within a version;
/// new requests and responses are added as new variants at the end of their enums, which
/// leaves every existing encoding as it was, so they need no new version (an older agent
/// refuses a request it does not know as [`RequestError::Unknown`]).
pub const SERVICES_VERSION: u16 = 1;
/// How many [`Request`] variants this side knows: a higher variant index is a request from
/// a newer controller, named as such rather than as garbage.
pub const KNOWN_REQUESTS: u32 = 25;
/// Largest encoded simple response (a directory listing is the biggest).
pub const MAX_RESPONSE_LEN: usize = 4 * 1024 * 1024;
/// Most entries a listing returns.
pub const MAX_LIST_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Agent facts: OS, arch, CPUs, memory, free disk, version, clock.
    Info,
    /// Run a process; stdin is the stream's data, output comes back as [`ExecEvent`]s.
    Exec(ExecRequest),
    Stat {
        path: String,
    },
    List {
        path: String,
    },
    /// Stream a file from `offset`: a [`Response::FileStart`] then raw bytes, then EOF.
    ReadFile {
        path: String,
        offset: u64,
    },
    /// Receive raw bytes until EOF, write them to a temp file, fsync and rename over `path`.
    WriteFile {
        path: String,
        mode: Option<u32>,
    },
    /// `mkdir -p`.
    MakeDirs {
        path: String,
    },
    /// Recursive remove; a missing path is not an error.
    Remove {
        path: String,
    },
    Sha256 {
        path: String,
    },
    /// Throughput test, no disk: receive raw bytes until EOF and drop them, answering
    /// [`Response::Discarded`].
    Discard,
    /// Throughput test, no disk: send `bytes` raw bytes (a fixed pattern), then EOF.
    Generate {
        bytes: u64,
    },
    /// Start a durable step `id` (see [`crate::steps`]) in `workspace` (created if missing;
    /// relative to the work dir): the stream's data is a postcard [`StepSpec`] until EOF;
    /// the answer is [`Response::StepStarted`].
    StartStep {
        id: String,
        workspace: String,
    },
    /// Follow a step's log from byte `offset`: [`Response::StepTail`], then [`StepEvent`]s
    /// as the log grows, ending with [`StepEvent::Ended`] and EOF. Resetting the stream
    /// stops the tail, never the step.
    TailStep {
        id: String,
        offset: u64,
    },
    /// SIGTERM to the step's process group, SIGKILL to what is left of it after `grace_ms`
    /// (the wrapper is spared, so it still writes the result). Answers [`Response::Done`]
    /// once SIGTERM is sent, or at once when the step has already ended.
    KillStep {
        id: String,
        grace_ms: u64,
    },
    /// Every step in the work dir: [`Response::Steps`].
    ListSteps,
    /// Delete an ended step's directory: [`Response::Done`]; a running step is refused.
    RemoveStep {
        id: String,
    },
    /// [`Request::Info`]'s facts and the size of the work dir's file system:
    /// [`Response::InfoV2`]. An agent older than it refuses it; callers then ask `Info`.
    InfoV2,
    /// One SSH client connection, forwarded: [`Response::SshStarted`] (or
    /// [`Response::Error`]), then the client's raw SSH bytes both ways until either side
    /// ends the stream. Ending it ends every session of the connection, and kills what they
    /// started.
    Ssh(SshRequest),
    /// The agent's SSH host key: [`Response::SshHostKey`].
    SshHostKey,
    /// Writes `text` into the terminals of the sessions of these connections (the
    /// breakpoint's warnings before it expires): [`Response::Done`], or
    /// [`Response::Error`] when none of them has a session yet.
    SshNotice {
        connections: Vec<u64>,
        text: String,
    },
    /// Attach to a terminal's holder, starting one if asked ([`crate::terminals`]):
    /// [`Response::Terminal`], then [`crate::terminals::TerminalEvent`]s from the agent and
    /// [`crate::terminals::TerminalInput`]s to it, one per DATA frame. Ending the stream
    /// detaches; the terminal runs on.
    Terminal(TerminalOpen),
    /// Ends a terminal's process and its holder: [`Response::Done`] (also when none runs).
    StopTerminal {
        name: String,
    },
    /// The terminals whose holders run on this agent: [`Response::Terminals`].
    ListTerminals,
    /// `TailStep` with the log masked: every occurrence of each secret reads `****`
    /// ([`crate::mask`]), also when split across writes; `offset` counts masked bytes, so a
    /// tail resumed after a lost connection continues where the masked stream stopped.
    TailStepMasked {
        id: String,
        offset: u64,
        secrets: Vec<crate::credentials::SecretBytes>,
    },
    /// The files under `dir` that Ant patterns select ([`crate::ant_glob`]), as the
    /// artifact archiver and the JUnit publisher look for them: [`Response::Files`], sorted
    /// by path; more than `max` is an error naming the limit. Symlinks to files count as
    /// files; directories are not entered through symlinks.
    FindFiles(FindFiles),
}

/// A `FindFiles` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindFiles {
    pub dir: String,
    pub includes: String,
    pub excludes: String,
    pub case_sensitive: bool,
    pub default_excludes: bool,
    pub max: u32,
}

/// A file `FindFiles` found: its path relative to the directory, with `/`, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundFile {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    /// Added to (and overriding) the agent's environment.
    pub env: Vec<(String, String)>,
    /// Working directory; relative paths resolve against the agent's work dir.
    pub cwd: Option<String>,
    /// Whether the stream's data is the process's stdin (else stdin is empty).
    pub stdin: bool,
    /// Kill the process group after this many milliseconds.
    pub timeout_ms: Option<u64>,
}

/// What an exec stream carries from the agent, one per DATA frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecEvent {
    Started {
        pid: u32,
    },
    Stdout(#[serde(with = "crate::byte_buf")] Vec<u8>),
    Stderr(#[serde(with = "crate::byte_buf")] Vec<u8>),
    /// The process ended: an exit code, or the signal that killed it.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    },
    /// The process could not be started or waited for.
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    /// Modification time, milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub stat: FileStat,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub os: String,
    pub arch: String,
    pub cpus: u32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub work_dir: String,
    pub work_dir_free_bytes: u64,
    pub agent_version: String,
    /// The agent's clock, milliseconds since the Unix epoch.
    pub clock_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Info(AgentInfo),
    Stat(FileStat),
    List(Vec<DirEntry>),
    /// A `ReadFile` is starting: the file's size; the bytes follow.
    FileStart {
        size: u64,
    },
    /// A `WriteFile` finished: bytes written.
    Written {
        bytes: u64,
    },
    Done,
    Sha256 {
        hex: String,
    },
    /// The request failed; the message names the path and the OS reason.
    Error {
        message: String,
    },
    /// A `Discard` finished: bytes received.
    Discarded {
        bytes: u64,
    },
    /// A `StartStep` is running: its process group and its directory on the agent.
    StepStarted {
        pgid: i32,
        dir: String,
    },
    /// A `TailStep` is starting: the log's length now; [`StepEvent`]s follow.
    StepTail {
        log_len: u64,
    },
    /// The answer to `ListSteps`, sorted by id.
    Steps(Vec<StepStatus>),
    /// The answer to `InfoV2`.
    InfoV2 {
        info: AgentInfo,
        /// Size of the file system that holds the work dir, in bytes.
        work_dir_total_bytes: u64,
    },
    /// An `Ssh` request was accepted: the SSH server's bytes follow.
    SshStarted,
    /// The answer to `SshHostKey`: `ssh-ed25519 BASE64`.
    SshHostKey {
        public_key: String,
    },
    /// The answer to `Terminal`.
    Terminal(TerminalAnswer),
    /// The answer to `ListTerminals`: names, sorted.
    Terminals(Vec<String>),
    /// The answer to `FindFiles`.
    Files(Vec<FoundFile>),
}

/// Encodes a request as an OPEN header.
pub fn encode_request(request: &Request) -> Vec<u8> {
    postcard::to_allocvec(&(SERVICES_VERSION, request)).expect("requests serialize")
}

/// Why an OPEN header is not a request this side understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("services version {found} is not supported (this agent speaks {SERVICES_VERSION})")]
    Version { found: u16 },
    #[error(
        "unknown request #{index}: this agent knows requests #0 to #{}; it may be older than the controller",
        KNOWN_REQUESTS - 1
    )]
    Unknown { index: u32 },
    #[error("unknown or malformed request: {0}")]
    Malformed(String),
}

/// Decodes an OPEN header.
pub fn decode_request(header: &[u8]) -> Result<Request, RequestError> {
    let (version, rest): (u16, &[u8]) =
        postcard::take_from_bytes(header).map_err(|e| RequestError::Malformed(e.to_string()))?;
    if version != SERVICES_VERSION {
        return Err(RequestError::Version { found: version });
    }
    // A request starts with its variant index, a varint like any u32.
    if let Ok((index, _)) = postcard::take_from_bytes::<u32>(rest)
        && index >= KNOWN_REQUESTS
    {
        return Err(RequestError::Unknown { index });
    }
    postcard::from_bytes(rest).map_err(|e| RequestError::Malformed(e.to_string()))
}

/// Encodes a response or exec event.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("responses serialize")
}

/// Decodes a response or exec event.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Info,
            Request::Exec(ExecRequest {
                argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
                env: vec![("A".into(), "1".into())],
                cwd: Some("/tmp".into()),
                stdin: true,
                timeout_ms: Some(1000),
            }),
            Request::ReadFile {
                path: "/x".into(),
                offset: 7,
            },
            Request::WriteFile {
                path: "/y".into(),
                mode: Some(0o644),
            },
            Request::Discard,
            Request::Generate { bytes: 1 << 30 },
            Request::StartStep {
                id: "build-1".into(),
                workspace: "ws".into(),
            },
            Request::TailStep {
                id: "build-1".into(),
                offset: 9,
            },
            Request::KillStep {
                id: "build-1".into(),
                grace_ms: 5000,
            },
            Request::ListSteps,
            Request::RemoveStep {
                id: "build-1".into(),
            },
            Request::InfoV2,
            Request::Ssh(SshRequest {
                connection: 4,
                target: crate::ssh::SshTarget::Build(crate::ssh::BuildSession {
                    job: "web".into(),
                    number: 7,
                    workspace: "/w/workspace/web".into(),
                    env: vec![("BUILD_NUMBER".into(), "7".into())],
                    allowed_users: vec!["web-7".into()],
                }),
                allowed_keys: vec![crate::ssh::AllowedKey {
                    user: "alice".into(),
                    public_key: "ssh-ed25519 AAAA".into(),
                }],
                client_address: "127.0.0.1:5000".into(),
                steward_user: "alice".into(),
            }),
            Request::SshHostKey,
            Request::SshNotice {
                connections: vec![4],
                text: "expiring".into(),
            },
        ];
        for r in requests {
            assert_eq!(decode_request(&encode_request(&r)), Ok(r));
        }
    }

    #[test]
    fn a_masked_tail_carries_its_secrets_and_never_prints_them() {
        let request = Request::TailStepMasked {
            id: "build-1-0".into(),
            offset: 7,
            secrets: vec![crate::credentials::SecretBytes::new(b"hunter2".to_vec())],
        };
        assert_eq!(
            decode_request(&encode_request(&request)),
            Ok(request.clone())
        );
        assert!(!format!("{request:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_versions_and_requests_are_named() {
        let other_version = postcard::to_allocvec(&(2u16, Request::Info)).unwrap();
        assert_eq!(
            decode_request(&other_version),
            Err(RequestError::Version { found: 2 })
        );
        let unknown_variant = postcard::to_allocvec(&(SERVICES_VERSION, 200u32)).unwrap();
        let refused = decode_request(&unknown_variant).unwrap_err();
        assert_eq!(refused, RequestError::Unknown { index: 200 });
        assert_eq!(
            refused.to_string(),
            "unknown request #200: this agent knows requests #0 to #24; it may be older than the controller"
        );
        let truncated = postcard::to_allocvec(&(SERVICES_VERSION, 3u8)).unwrap();
        assert!(matches!(
            decode_request(&truncated),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn known_requests_counts_every_variant() {
        // The last variant's index is KNOWN_REQUESTS - 1: a new variant must raise it.
        let last = encode_request(&Request::FindFiles(FindFiles {
            dir: "d".into(),
            includes: "*".into(),
            excludes: String::new(),
            case_sensitive: true,
            default_excludes: true,
            max: 1,
        }));
        let (_, rest): (u16, &[u8]) = postcard::take_from_bytes(&last).unwrap();
        let (index, _): (u32, _) = postcard::take_from_bytes(rest).unwrap();
        assert_eq!(index, KNOWN_REQUESTS - 1);
    }

    #[test]
    fn step_payloads_round_trip() {
        use crate::steps::{StepEvent, StepOutcome, StepSpec, StepState};
        let spec = StepSpec {
            script: b"echo hi\n".to_vec(),
            env: vec![("A".into(), "1".into())],
        };
        assert_eq!(decode(&encode(&spec)), Ok(spec));
        for event in [
            StepEvent::Log(b"x".to_vec()),
            StepEvent::Ended(StepOutcome::Exited { code: 143 }),
            StepEvent::Ended(StepOutcome::Lost),
        ] {
            assert_eq!(decode(&encode(&event)), Ok(event));
        }
        let steps = Response::Steps(vec![StepStatus {
            id: "a".into(),
            state: StepState::Running { pgid: 77 },
            log_len: 5,
        }]);
        assert_eq!(decode(&encode(&steps)), Ok(steps));
    }

    #[test]
    fn info_v2_answers_round_trip() {
        let answer = Response::InfoV2 {
            info: AgentInfo {
                os: "linux".into(),
                arch: "x86_64".into(),
                cpus: 2,
                memory_total_bytes: 8 << 30,
                memory_available_bytes: 4 << 30,
                work_dir: "/w".into(),
                work_dir_free_bytes: 16 << 10,
                agent_version: "0.1.0".into(),
                clock_ms: 1,
            },
            work_dir_total_bytes: 20 << 20,
        };
        assert_eq!(decode(&encode(&answer)), Ok(answer));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&data);
            let _ = decode::<Response>(&data);
            let _ = decode::<ExecEvent>(&data);
            let _ = decode::<crate::steps::StepSpec>(&data);
            let _ = decode::<crate::steps::StepEvent>(&data);
        }
    }
}
