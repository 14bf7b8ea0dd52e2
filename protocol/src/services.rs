//! The requests the controller makes of an agent over the channel, and their answers.
//!
//! A request travels as the OPEN header of a new stream: postcard of
//! `(SERVICES_VERSION, Request)`. The agent answers on the same stream. Simple calls answer
//! with one postcard [`Response`] and EOF; `Exec` streams [`ExecEvent`]s; `ReadFile` answers
//! with a [`Response`] then raw file bytes; `WriteFile` takes raw bytes then answers. An
//! unknown version or request is refused with a RESET naming it, never dropped.

use serde::{Deserialize, Serialize};

/// Version of the request and response layouts. A new version may add requests; a layout
/// never changes within a version.
pub const SERVICES_VERSION: u16 = 1;
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
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
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
        ];
        for r in requests {
            assert_eq!(decode_request(&encode_request(&r)), Ok(r));
        }
    }

    #[test]
    fn unknown_versions_and_requests_are_named() {
        let other_version = postcard::to_allocvec(&(2u16, Request::Info)).unwrap();
        assert_eq!(
            decode_request(&other_version),
            Err(RequestError::Version { found: 2 })
        );
        let unknown_variant = postcard::to_allocvec(&(SERVICES_VERSION, 200u8)).unwrap();
        assert!(matches!(
            decode_request(&unknown_variant),
            Err(RequestError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&data);
            let _ = decode::<Response>(&data);
            let _ = decode::<ExecEvent>(&data);
        }
    }
}
