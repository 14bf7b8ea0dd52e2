//! Frames of the Steward channel: what agent and controller exchange in binary WebSocket
//! messages after the `/wsagents/` upgrade. One frame is exactly one binary message.
//!
//! ```text
//! +--------+--------+-------------------+-----------------+
//! | kind   | flags  | stream id (u32 BE)| payload ...     |
//! +--------+--------+-------------------+-----------------+
//!   1 byte   1 byte   4 bytes             rest of the message
//! ```
//!
//! Room to grow without a version break:
//! - kinds `0x01..=0x3f` are core frames; an unknown core kind is a protocol error;
//! - kinds `0x40..=0x7f` are extension frames; a receiver that does not know one skips it;
//! - kinds `0x00` and `0x80..=0xff` are invalid;
//! - flag bits a receiver does not know are ignored;
//! - structured payloads are postcard-encoded structs whose layout is fixed per negotiated
//!   channel version (see [`crate::handshake`]); optional behaviour is announced in
//!   [`Hello::features`] instead of changing a struct.
//!
//! Version 1 defines `HELLO` and `GOAWAY` on stream 0. The stream kinds of the multiplexed
//! channel are reserved here so the numbering never changes.

use serde::{Deserialize, Serialize};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 6;
/// Largest message either side accepts on the agent socket. Stream data frames will carry
/// at most 16 KiB; control payloads are far smaller. Also the WebSocket message limit.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Longest string field accepted in a control payload (versions, names, reasons).
pub const MAX_TEXT_LEN: usize = 1024;
/// Most feature names a hello may carry.
pub const MAX_FEATURES: usize = 64;

/// Frame kinds.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const GOAWAY: u8 = 0x02;
    // Reserved for the multiplexed channel (next channel version):
    pub const OPEN: u8 = 0x10;
    pub const DATA: u8 = 0x11;
    pub const EOF: u8 = 0x12;
    pub const RESET: u8 = 0x13;
    pub const WINDOW: u8 = 0x14;
    pub const PING: u8 = 0x15;
    pub const PONG: u8 = 0x16;
    /// First kind a receiver may skip when it does not know it.
    pub const FIRST_EXTENSION: u8 = 0x40;
    pub const LAST_EXTENSION: u8 = 0x7f;
}

/// Which end of the channel sent a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Controller,
    Agent,
}

/// First frame each side sends after the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub role: Role,
    /// The sender's channel version (the negotiated one, echoed for checking).
    pub channel_version: u16,
    /// The sender's software version.
    pub software_version: String,
    /// The node this connection serves.
    pub node_name: String,
    /// Optional behaviours the sender offers.
    pub features: Vec<String>,
    /// The controller's WebSocket ping interval, in seconds (0 from agents).
    pub ping_interval_secs: u32,
    /// After this many silent seconds the sender treats the connection as dead.
    pub idle_timeout_secs: u32,
}

/// Last frame before a side closes on purpose, saying why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoAway {
    pub code: GoAwayCode,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoAwayCode {
    /// An administrator disconnected the node; the agent reconnects.
    Disconnected,
    /// The node was deleted; reconnecting will fail.
    NodeDeleted,
    /// Another connection with this node's cookie took over.
    Replaced,
    /// The controller is shutting down.
    Shutdown,
    /// The peer broke the protocol.
    ProtocolError,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    GoAway(GoAway),
    /// A reserved stream kind this version does not implement yet.
    Reserved {
        kind: u8,
        stream: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel frame of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("channel frame of {0} bytes is over the limit of {MAX_MESSAGE_LEN}")]
    TooLarge(usize),
    #[error("unknown channel frame kind 0x{0:02x}")]
    UnknownKind(u8),
    #[error("channel frame kind 0x{kind:02x} must be on stream 0, not {stream}")]
    WrongStream { kind: u8, stream: u32 },
    #[error("malformed {what} payload: {reason}")]
    BadPayload { what: &'static str, reason: String },
    #[error("{what} field over {MAX_TEXT_LEN} bytes")]
    FieldTooLong { what: &'static str },
}

impl Frame {
    /// Encodes the frame as one message.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, stream, payload) = match self {
            Frame::Hello(h) => (
                kind::HELLO,
                0,
                postcard::to_allocvec(h).expect("hello serializes"),
            ),
            Frame::GoAway(g) => (
                kind::GOAWAY,
                0,
                postcard::to_allocvec(g).expect("goaway serializes"),
            ),
            Frame::Reserved { kind, stream } => (*kind, *stream, Vec::new()),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.push(kind);
        out.push(0);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Decodes one message; `Ok(None)` for an extension kind to skip.
    pub fn decode(message: &[u8]) -> Result<Option<Frame>, ChannelError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(ChannelError::TooLarge(message.len()));
        }
        if message.len() < HEADER_LEN {
            return Err(ChannelError::Short(message.len()));
        }
        let kind = message[0];
        let stream = u32::from_be_bytes(message[2..6].try_into().expect("four bytes"));
        let payload = &message[HEADER_LEN..];
        let on_stream_zero = || {
            if stream == 0 {
                Ok(())
            } else {
                Err(ChannelError::WrongStream { kind, stream })
            }
        };
        match kind {
            kind::HELLO => {
                on_stream_zero()?;
                let hello: Hello = decode_payload("HELLO", payload)?;
                check_text("software_version", &hello.software_version)?;
                check_text("node_name", &hello.node_name)?;
                if hello.features.len() > MAX_FEATURES {
                    return Err(ChannelError::FieldTooLong { what: "features" });
                }
                for f in &hello.features {
                    check_text("feature", f)?;
                }
                Ok(Some(Frame::Hello(hello)))
            }
            kind::GOAWAY => {
                on_stream_zero()?;
                let goaway: GoAway = decode_payload("GOAWAY", payload)?;
                check_text("reason", &goaway.reason)?;
                Ok(Some(Frame::GoAway(goaway)))
            }
            kind::OPEN..=kind::PONG => Ok(Some(Frame::Reserved { kind, stream })),
            kind::FIRST_EXTENSION..=kind::LAST_EXTENSION => Ok(None),
            other => Err(ChannelError::UnknownKind(other)),
        }
    }
}

fn decode_payload<'a, T: Deserialize<'a>>(
    what: &'static str,
    payload: &'a [u8],
) -> Result<T, ChannelError> {
    postcard::from_bytes(payload).map_err(|e| ChannelError::BadPayload {
        what,
        reason: e.to_string(),
    })
}

fn check_text(what: &'static str, text: &str) -> Result<(), ChannelError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(ChannelError::FieldTooLong { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello() -> Hello {
        Hello {
            role: Role::Agent,
            channel_version: 1,
            software_version: "0.1.0".into(),
            node_name: "linux-1".into(),
            features: vec!["exec".into()],
            ping_interval_secs: 0,
            idle_timeout_secs: 60,
        }
    }

    #[test]
    fn hello_round_trips() {
        let f = Frame::Hello(hello());
        assert_eq!(Frame::decode(&f.encode()), Ok(Some(f)));
    }

    #[test]
    fn header_layout() {
        let bytes = Frame::GoAway(GoAway {
            code: GoAwayCode::Shutdown,
            reason: "bye".into(),
        })
        .encode();
        assert_eq!(&bytes[..6], [kind::GOAWAY, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn extension_kinds_are_skipped_and_unknown_core_kinds_refused() {
        assert_eq!(Frame::decode(&[0x55, 0, 0, 0, 0, 0, 1, 2]), Ok(None));
        assert_eq!(
            Frame::decode(&[0x30, 0, 0, 0, 0, 0]),
            Err(ChannelError::UnknownKind(0x30))
        );
        assert_eq!(
            Frame::decode(&[0x00, 0, 0, 0, 0, 0]),
            Err(ChannelError::UnknownKind(0))
        );
        assert_eq!(Frame::decode(&[0x01, 0]), Err(ChannelError::Short(2)));
    }

    #[test]
    fn hello_on_a_stream_is_refused() {
        let mut bytes = Frame::Hello(hello()).encode();
        bytes[5] = 1;
        assert_eq!(
            Frame::decode(&bytes),
            Err(ChannelError::WrongStream {
                kind: kind::HELLO,
                stream: 1
            })
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Frame::decode(&data);
        }

        #[test]
        fn hello_fields_round_trip(name in ".{0,40}", features in proptest::collection::vec("[a-z]{1,10}", 0..5), idle in any::<u32>()) {
            let h = Hello { node_name: name, features, idle_timeout_secs: idle, ..hello() };
            let f = Frame::Hello(h);
            prop_assert_eq!(Frame::decode(&f.encode()), Ok(Some(f)));
        }
    }
}
