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
//! Version 1 frames: `HELLO` and `GOAWAY` on stream 0, then the multiplexed streams of
//! [`crate::mux`] — `OPEN`, `DATA`, `EOF`, `RESET`, `WINDOW` on streams, `PING`/`PONG` on
//! stream 0. A side uses streams only when the peer's HELLO lists [`FEATURE_MUX`].

use serde::{Deserialize, Serialize};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 6;
/// Largest DATA payload. At loopback speeds (about 1 GB/s) a 64 KiB frame occupies the
/// socket for well under a millisecond, so a bulk stream delays an interactive one by far
/// less than the few milliseconds allowed; larger frames would not raise throughput.
pub const MAX_DATA_PAYLOAD: usize = 64 * 1024;
/// Largest OPEN header (a service request: argv, environment, a path).
pub const MAX_OPEN_HEADER: usize = 32 * 1024;
/// Largest message either side accepts on the agent socket; also the WebSocket limit.
pub const MAX_MESSAGE_LEN: usize = MAX_DATA_PAYLOAD + 1024;
/// Feature a HELLO lists when its sender runs the multiplexed channel.
pub const FEATURE_MUX: &str = "mux";
/// Longest string field accepted in a control payload (versions, names, reasons).
pub const MAX_TEXT_LEN: usize = 1024;
/// Most feature names a hello may carry.
pub const MAX_FEATURES: usize = 64;

/// Frame kinds.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const GOAWAY: u8 = 0x02;
    // The multiplexed channel:
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

/// Why a stream was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetCode {
    /// The opener or the reader gave up (e.g. the user pressed Ctrl-C).
    Cancelled,
    /// The receiver does not offer what the OPEN asked for (unknown service or request).
    Refused,
    /// The service failed; the reason says how.
    Failed,
    /// The peer sent more than the window allowed or broke the stream's state machine.
    ProtocolError,
    /// The peer has too many streams open already.
    TooManyStreams,
}

/// Payload of OPEN: the opener's receive window and the service request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// How many DATA bytes the opener is ready to receive before a WINDOW update.
    pub window: u32,
    /// The request, encoded by the service layer.
    pub header: bytes::Bytes,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    GoAway(GoAway),
    Open {
        stream: u32,
        open: Open,
    },
    Data {
        stream: u32,
        payload: bytes::Bytes,
    },
    Eof {
        stream: u32,
    },
    Reset {
        stream: u32,
        code: ResetCode,
        reason: String,
    },
    Window {
        stream: u32,
        increment: u32,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
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
    #[error("channel frame kind 0x{kind:02x} needs a stream id other than 0")]
    NeedsStream { kind: u8 },
    #[error("{what} of {len} bytes is over the limit of {max}")]
    PayloadTooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// Writes a DATA header for `stream` into the first [`HEADER_LEN`] bytes of `message`, whose
/// rest is the payload: lets a sender read data straight into a message buffer instead of
/// copying it into one (`Frame::Data(..).encode()` copies the payload).
pub fn write_data_header(message: &mut [u8], stream: u32) {
    message[0] = kind::DATA;
    message[1] = 0;
    message[2..HEADER_LEN].copy_from_slice(&stream.to_be_bytes());
}

impl Frame {
    /// The frame's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "HELLO",
            Frame::GoAway(_) => "GOAWAY",
            Frame::Open { .. } => "OPEN",
            Frame::Data { .. } => "DATA",
            Frame::Eof { .. } => "EOF",
            Frame::Reset { .. } => "RESET",
            Frame::Window { .. } => "WINDOW",
            Frame::Ping { .. } => "PING",
            Frame::Pong { .. } => "PONG",
        }
    }

    /// Encodes the frame as one message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload_len_hint());
        let mut header = |kind: u8, stream: u32| {
            out.push(kind);
            out.push(0);
            out.extend_from_slice(&stream.to_be_bytes());
        };
        match self {
            Frame::Hello(h) => {
                header(kind::HELLO, 0);
                out.extend_from_slice(&postcard::to_allocvec(h).expect("hello serializes"));
            }
            Frame::GoAway(g) => {
                header(kind::GOAWAY, 0);
                out.extend_from_slice(&postcard::to_allocvec(g).expect("goaway serializes"));
            }
            Frame::Open { stream, open } => {
                header(kind::OPEN, *stream);
                out.extend_from_slice(&open.window.to_be_bytes());
                out.extend_from_slice(&open.header);
            }
            Frame::Data { stream, payload } => {
                header(kind::DATA, *stream);
                out.extend_from_slice(payload);
            }
            Frame::Eof { stream } => header(kind::EOF, *stream),
            Frame::Reset {
                stream,
                code,
                reason,
            } => {
                header(kind::RESET, *stream);
                let body = (code, reason);
                out.extend_from_slice(&postcard::to_allocvec(&body).expect("reset serializes"));
            }
            Frame::Window { stream, increment } => {
                header(kind::WINDOW, *stream);
                out.extend_from_slice(&increment.to_be_bytes());
            }
            Frame::Ping { nonce } => {
                header(kind::PING, 0);
                out.extend_from_slice(&nonce.to_be_bytes());
            }
            Frame::Pong { nonce } => {
                header(kind::PONG, 0);
                out.extend_from_slice(&nonce.to_be_bytes());
            }
        }
        out
    }

    fn payload_len_hint(&self) -> usize {
        match self {
            Frame::Data { payload, .. } => payload.len(),
            Frame::Open { open, .. } => open.header.len() + 4,
            _ => 64,
        }
    }

    /// Decodes one message; `Ok(None)` for an extension kind to skip.
    pub fn decode(message: &[u8]) -> Result<Option<Frame>, ChannelError> {
        Frame::decode_bytes(bytes::Bytes::copy_from_slice(message))
    }

    /// Decodes one message without copying DATA payloads.
    pub fn decode_bytes(message: bytes::Bytes) -> Result<Option<Frame>, ChannelError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(ChannelError::TooLarge(message.len()));
        }
        if message.len() < HEADER_LEN {
            return Err(ChannelError::Short(message.len()));
        }
        let kind = message[0];
        let stream = u32::from_be_bytes(message[2..6].try_into().expect("four bytes"));
        let payload = message.slice(HEADER_LEN..);
        let on_stream_zero = || {
            if stream == 0 {
                Ok(())
            } else {
                Err(ChannelError::WrongStream { kind, stream })
            }
        };
        let on_a_stream = || {
            if stream != 0 {
                Ok(())
            } else {
                Err(ChannelError::NeedsStream { kind })
            }
        };
        let fixed = |what: &'static str, len: usize| -> Result<(), ChannelError> {
            if payload.len() == len {
                Ok(())
            } else {
                Err(ChannelError::BadPayload {
                    what,
                    reason: format!("expected {len} bytes, got {}", payload.len()),
                })
            }
        };
        let frame = match kind {
            kind::HELLO => {
                on_stream_zero()?;
                let hello: Hello = decode_payload("HELLO", &payload)?;
                check_text("software_version", &hello.software_version)?;
                check_text("node_name", &hello.node_name)?;
                if hello.features.len() > MAX_FEATURES {
                    return Err(ChannelError::FieldTooLong { what: "features" });
                }
                for f in &hello.features {
                    check_text("feature", f)?;
                }
                Frame::Hello(hello)
            }
            kind::GOAWAY => {
                on_stream_zero()?;
                let goaway: GoAway = decode_payload("GOAWAY", &payload)?;
                check_text("reason", &goaway.reason)?;
                Frame::GoAway(goaway)
            }
            kind::OPEN => {
                on_a_stream()?;
                if payload.len() < 4 {
                    return Err(ChannelError::BadPayload {
                        what: "OPEN",
                        reason: "no window".into(),
                    });
                }
                if payload.len() - 4 > MAX_OPEN_HEADER {
                    return Err(ChannelError::PayloadTooLarge {
                        what: "OPEN header",
                        len: payload.len() - 4,
                        max: MAX_OPEN_HEADER,
                    });
                }
                let window = u32::from_be_bytes(payload[..4].try_into().expect("four bytes"));
                Frame::Open {
                    stream,
                    open: Open {
                        window,
                        header: payload.slice(4..),
                    },
                }
            }
            kind::DATA => {
                on_a_stream()?;
                if payload.len() > MAX_DATA_PAYLOAD {
                    return Err(ChannelError::PayloadTooLarge {
                        what: "DATA payload",
                        len: payload.len(),
                        max: MAX_DATA_PAYLOAD,
                    });
                }
                Frame::Data { stream, payload }
            }
            kind::EOF => {
                on_a_stream()?;
                fixed("EOF", 0)?;
                Frame::Eof { stream }
            }
            kind::RESET => {
                on_a_stream()?;
                let (code, reason): (ResetCode, String) = decode_payload("RESET", &payload)?;
                check_text("reason", &reason)?;
                Frame::Reset {
                    stream,
                    code,
                    reason,
                }
            }
            kind::WINDOW => {
                on_a_stream()?;
                fixed("WINDOW", 4)?;
                Frame::Window {
                    stream,
                    increment: u32::from_be_bytes(payload[..4].try_into().expect("four bytes")),
                }
            }
            kind::PING | kind::PONG => {
                on_stream_zero()?;
                fixed(if kind == kind::PING { "PING" } else { "PONG" }, 8)?;
                let nonce = u64::from_be_bytes(payload[..8].try_into().expect("eight bytes"));
                if kind == kind::PING {
                    Frame::Ping { nonce }
                } else {
                    Frame::Pong { nonce }
                }
            }
            kind::FIRST_EXTENSION..=kind::LAST_EXTENSION => return Ok(None),
            other => return Err(ChannelError::UnknownKind(other)),
        };
        Ok(Some(frame))
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
    fn a_data_header_written_in_place_decodes_like_an_encoded_frame() {
        let mut message = vec![0u8; HEADER_LEN];
        message.extend_from_slice(b"payload");
        write_data_header(&mut message, 9);
        let expected = Frame::Data {
            stream: 9,
            payload: bytes::Bytes::from_static(b"payload"),
        };
        assert_eq!(message, expected.encode());
    }

    #[test]
    fn stream_frames_round_trip() {
        let frames = [
            Frame::Open {
                stream: 1,
                open: Open {
                    window: 1 << 20,
                    header: bytes::Bytes::from_static(b"exec"),
                },
            },
            Frame::Data {
                stream: 7,
                payload: bytes::Bytes::from(vec![9u8; MAX_DATA_PAYLOAD]),
            },
            Frame::Eof { stream: 2 },
            Frame::Reset {
                stream: 3,
                code: ResetCode::Cancelled,
                reason: "ctrl-c".into(),
            },
            Frame::Window {
                stream: 4,
                increment: 65536,
            },
            Frame::Ping { nonce: 42 },
            Frame::Pong { nonce: u64::MAX },
        ];
        for f in frames {
            assert_eq!(Frame::decode(&f.encode()), Ok(Some(f.clone())), "{f:?}");
        }
    }

    #[test]
    fn stream_frames_need_a_stream_and_bounded_payloads() {
        assert_eq!(
            Frame::decode(&[kind::DATA, 0, 0, 0, 0, 0, 1]),
            Err(ChannelError::NeedsStream { kind: kind::DATA })
        );
        let mut big = vec![kind::DATA, 0, 0, 0, 0, 1];
        big.extend(vec![0u8; MAX_DATA_PAYLOAD + 1]);
        assert!(matches!(
            Frame::decode(&big),
            Err(ChannelError::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            Frame::decode(&[kind::WINDOW, 0, 0, 0, 0, 1, 1]),
            Err(ChannelError::BadPayload { .. })
        ));
        assert!(matches!(
            Frame::decode(&[kind::PING, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(ChannelError::WrongStream { .. })
        ));
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
        fn decoder_never_panics_on_valid_headers(kind in 0u8..0x20, stream in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut message = vec![kind, 0];
            message.extend_from_slice(&stream.to_be_bytes());
            message.extend_from_slice(&payload);
            let _ = Frame::decode(&message);
        }

        #[test]
        fn data_round_trips(stream in 1u32.., payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let f = Frame::Data { stream, payload: bytes::Bytes::from(payload) };
            prop_assert_eq!(Frame::decode(&f.encode()), Ok(Some(f)));
        }

        #[test]
        fn hello_fields_round_trip(name in ".{0,40}", features in proptest::collection::vec("[a-z]{1,10}", 0..5), idle in any::<u32>()) {
            let h = Hello { node_name: name, features, idle_timeout_secs: idle, ..hello() };
            let f = Frame::Hello(h);
            prop_assert_eq!(Frame::decode(&f.encode()), Ok(Some(f)));
        }
    }
}
