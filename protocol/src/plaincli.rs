//! Jenkins' PlainCLIProtocol (compat §6) in its two framings.
//!
//! - WebSocket (`/cli/ws`, §4): every binary message is one frame, an opcode byte then the
//!   payload, with no length.
//! - Full-duplex HTTP (`POST /cli?remoting=false`, §5): a 4-byte big-endian payload length,
//!   the opcode byte, then the payload.
//!
//! Strings travel as Java's `writeUTF`: a u16 byte length and modified UTF-8.
//!
//! Steward adds one frame of its own, [`Frame::Interrupt`] (opcode `0x40`), which our client
//! sends only to a controller that announced it understands it (the [`HEADER_STEWARD_CLI`]
//! exchange); other servers skip it as an unknown opcode.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest frame payload either side accepts. The real client sends stdin in chunks of at
/// most 60,000 bytes and we send output in much smaller ones; 1 MiB leaves room without
/// letting a peer make us buffer without bound.
pub const MAX_FRAME_PAYLOAD: usize = 1 << 20;
/// Size of the chunks the server cuts stdout/stderr into: one channel DATA frame's worth,
/// so output relayed from an agent goes out a frame per frame. Clients take any length (the
/// real one reads a length, then that many bytes).
pub const OUTPUT_CHUNK: usize = 64 * 1024;
/// Size of the length prefix in the HTTP framing.
pub const HTTP_LENGTH_PREFIX: usize = 4;

/// Header in which a client (on the WebSocket upgrade or the download side) lists the Steward
/// extensions it uses, and the controller's answer lists those it honours, space-separated.
pub const HEADER_STEWARD_CLI: &str = "X-Steward-CLI";
/// The extension `interrupt`: the client sends [`Frame::Interrupt`] when its user interrupts
/// it, so a connection it loses for any other reason is not taken for an interrupt.
pub const FEATURE_INTERRUPT: &str = "interrupt";

/// Whether the [`HEADER_STEWARD_CLI`] values (one header line each, space-separated names)
/// list `feature`, in any case.
pub fn lists_feature<'a>(values: impl IntoIterator<Item = &'a str>, feature: &str) -> bool {
    values
        .into_iter()
        .flat_map(str::split_ascii_whitespace)
        .any(|listed| listed.eq_ignore_ascii_case(feature))
}

/// PlainCLIProtocol opcodes.
pub mod op {
    pub const ARG: u8 = 0;
    pub const LOCALE: u8 = 1;
    pub const ENCODING: u8 = 2;
    pub const START: u8 = 3;
    pub const EXIT: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const END_STDIN: u8 = 6;
    pub const STDOUT: u8 = 7;
    pub const STDERR: u8 = 8;
    /// Steward's: the user interrupted the client (payload: writeUTF, the signal's name).
    pub const INTERRUPT: u8 = 0x40;
}

/// One PlainCLIProtocol frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Arg(String),
    Locale(String),
    Encoding(String),
    Start,
    Exit(i32),
    Stdin(Bytes),
    EndStdin,
    Stdout(Bytes),
    Stderr(Bytes),
    /// Steward's extension: the user interrupted the client; the text names how (`SIGINT`).
    Interrupt(String),
    /// An opcode below 0x80 this side does not know: to be skipped, per the protocol.
    Unknown {
        op: u8,
        payload: Bytes,
    },
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// Why bytes could not be read as a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty CLI frame: no opcode")]
    Empty,
    #[error("fatal CLI opcode 0x{0:02x} (opcodes from 0x80 end the session)")]
    FatalOpcode(u8),
    #[error("CLI frame payload of {len} bytes is over the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("negative CLI frame length {0}: corrupt stream")]
    NegativeLength(i32),
    #[error("{op} frame has a malformed payload: {reason}")]
    BadPayload { op: &'static str, reason: String },
}

impl Frame {
    pub fn opcode(&self) -> u8 {
        match self {
            Frame::Arg(_) => op::ARG,
            Frame::Locale(_) => op::LOCALE,
            Frame::Encoding(_) => op::ENCODING,
            Frame::Start => op::START,
            Frame::Exit(_) => op::EXIT,
            Frame::Stdin(_) => op::STDIN,
            Frame::EndStdin => op::END_STDIN,
            Frame::Stdout(_) => op::STDOUT,
            Frame::Stderr(_) => op::STDERR,
            Frame::Interrupt(_) => op::INTERRUPT,
            Frame::Unknown { op, .. } => *op,
        }
    }

    /// The direction the protocol allows for this frame; `None` for unknown opcodes.
    pub fn direction(&self) -> Option<Direction> {
        match self {
            Frame::Exit(_) | Frame::Stdout(_) | Frame::Stderr(_) => Some(Direction::ServerToClient),
            Frame::Unknown { .. } => None,
            _ => Some(Direction::ClientToServer),
        }
    }

    /// Appends the payload (without opcode or length) to `out`.
    fn put_payload(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            Frame::Arg(s) | Frame::Locale(s) | Frame::Encoding(s) | Frame::Interrupt(s) => {
                out.put_slice(&write_utf(s)?);
            }
            Frame::Start | Frame::EndStdin => {}
            Frame::Exit(code) => out.put_i32(*code),
            Frame::Stdin(b)
            | Frame::Stdout(b)
            | Frame::Stderr(b)
            | Frame::Unknown { payload: b, .. } => out.put_slice(b),
        }
        Ok(())
    }

    /// Builds a frame from an opcode and its payload, as received from a peer sending in
    /// direction `from`. A known opcode that travels the other way is kept as
    /// [`Frame::Unknown`] (to be skipped) without reading its payload.
    pub fn from_parts(opcode: u8, payload: Bytes, from: Direction) -> Result<Frame, FrameError> {
        if opcode >= 0x80 {
            return Err(FrameError::FatalOpcode(opcode));
        }
        let expected = match opcode {
            op::EXIT | op::STDOUT | op::STDERR => Some(Direction::ServerToClient),
            op::ARG..=op::END_STDIN | op::INTERRUPT => Some(Direction::ClientToServer),
            _ => None,
        };
        if expected.is_some_and(|d| d != from) {
            return Ok(Frame::Unknown {
                op: opcode,
                payload,
            });
        }
        let utf = |name: &'static str| {
            read_utf(&payload).map_err(|reason| FrameError::BadPayload { op: name, reason })
        };
        Ok(match opcode {
            op::ARG => Frame::Arg(utf("ARG")?),
            op::LOCALE => Frame::Locale(utf("LOCALE")?),
            op::ENCODING => Frame::Encoding(utf("ENCODING")?),
            op::START => Frame::Start,
            op::EXIT => {
                let bytes: [u8; 4] =
                    payload
                        .as_ref()
                        .try_into()
                        .map_err(|_| FrameError::BadPayload {
                            op: "EXIT",
                            reason: format!("expected 4 bytes, got {}", payload.len()),
                        })?;
                Frame::Exit(i32::from_be_bytes(bytes))
            }
            op::STDIN => Frame::Stdin(payload),
            op::END_STDIN => Frame::EndStdin,
            op::STDOUT => Frame::Stdout(payload),
            op::STDERR => Frame::Stderr(payload),
            op::INTERRUPT => Frame::Interrupt(utf("INTERRUPT")?),
            other => Frame::Unknown { op: other, payload },
        })
    }
}

/// Encodes one frame as one WebSocket binary message: opcode, then payload.
pub fn encode_ws(frame: &Frame) -> Result<Bytes, FrameError> {
    let mut out = BytesMut::with_capacity(1 + payload_hint(frame));
    out.put_u8(frame.opcode());
    frame.put_payload(&mut out)?;
    check_len(out.len() - 1)?;
    Ok(out.freeze())
}

/// Decodes one WebSocket binary message sent in direction `from`.
pub fn decode_ws(message: Bytes, from: Direction) -> Result<Frame, FrameError> {
    let Some(&opcode) = message.first() else {
        return Err(FrameError::Empty);
    };
    check_len(message.len() - 1)?;
    Frame::from_parts(opcode, message.slice(1..), from)
}

/// Appends one frame in the HTTP framing: length (payload only), opcode, payload.
pub fn encode_http(frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(frame.opcode());
    if let Err(e) = frame.put_payload(out) {
        // `out` may hold earlier frames: leave no part of this one behind.
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - HTTP_LENGTH_PREFIX - 1;
    if let Err(e) = check_len(len) {
        out.truncate(start);
        return Err(e);
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Takes one frame in the HTTP framing, sent in direction `from`, off the front of `buf`;
/// `Ok(None)` means more bytes are needed. A length over [`MAX_FRAME_PAYLOAD`] or negative
/// is refused before buffering.
pub fn decode_http(buf: &mut BytesMut, from: Direction) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HTTP_LENGTH_PREFIX + 1 {
        return Ok(None);
    }
    let len = i32::from_be_bytes(buf[..4].try_into().expect("four bytes"));
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    let len = len as usize;
    check_len(len)?;
    if buf.len() < HTTP_LENGTH_PREFIX + 1 + len {
        return Ok(None);
    }
    buf.advance(HTTP_LENGTH_PREFIX);
    let opcode = buf.get_u8();
    let payload = buf.split_to(len).freeze();
    Frame::from_parts(opcode, payload, from).map(Some)
}

fn check_len(len: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: MAX_FRAME_PAYLOAD,
        });
    }
    Ok(())
}

fn payload_hint(frame: &Frame) -> usize {
    match frame {
        Frame::Stdin(b)
        | Frame::Stdout(b)
        | Frame::Stderr(b)
        | Frame::Unknown { payload: b, .. } => b.len(),
        Frame::Arg(s) | Frame::Locale(s) | Frame::Encoding(s) | Frame::Interrupt(s) => s.len() + 2,
        _ => 4,
    }
}

/// Java `DataOutput.writeUTF`: u16 big-endian byte length, then modified UTF-8 (NUL as
/// `C0 80`, characters outside the BMP as two 3-byte surrogates).
pub fn write_utf(s: &str) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::with_capacity(s.len());
    let mut units = [0u16; 2];
    for ch in s.chars() {
        for &unit in ch.encode_utf16(&mut units).iter() {
            match unit {
                0x0001..=0x007f => body.push(unit as u8),
                0x0000 | 0x0080..=0x07ff => {
                    body.push(0xc0 | (unit >> 6) as u8);
                    body.push(0x80 | (unit & 0x3f) as u8);
                }
                _ => {
                    body.push(0xe0 | (unit >> 12) as u8);
                    body.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                    body.push(0x80 | (unit & 0x3f) as u8);
                }
            }
        }
    }
    let len = u16::try_from(body.len()).map_err(|_| FrameError::BadPayload {
        op: "string",
        reason: format!(
            "{} bytes of modified UTF-8 exceed writeUTF's 65535",
            body.len()
        ),
    })?;
    let mut out = Vec::with_capacity(body.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Java `DataInput.readUTF`, requiring the payload to hold exactly one string.
pub fn read_utf(payload: &[u8]) -> Result<String, String> {
    if payload.len() < 2 {
        return Err(format!(
            "{} bytes is too short for a string length",
            payload.len()
        ));
    }
    let len = u16::from_be_bytes([payload[0], payload[1]]) as usize;
    let body = &payload[2..];
    if body.len() != len {
        return Err(format!(
            "string length says {len} bytes but {} follow",
            body.len()
        ));
    }
    let mut units = Vec::with_capacity(len);
    let mut i = 0;
    let cont = |at: usize| match body.get(at) {
        Some(&b) if b & 0xc0 == 0x80 => Ok((b & 0x3f) as u16),
        _ => Err(format!(
            "bad continuation byte in modified UTF-8 at offset {at}"
        )),
    };
    while i < body.len() {
        let b = body[i];
        match b {
            // Java's readUTF also takes a raw 0 byte as U+0000 (writeUTF never writes one).
            0x00..=0x7f => {
                units.push(b as u16);
                i += 1;
            }
            0xc0..=0xdf => {
                units.push(((b & 0x1f) as u16) << 6 | cont(i + 1)?);
                i += 2;
            }
            0xe0..=0xef => {
                units.push(((b & 0x0f) as u16) << 12 | cont(i + 1)? << 6 | cont(i + 2)?);
                i += 3;
            }
            _ => {
                return Err(format!(
                    "byte 0x{b:02x} at offset {i} is not modified UTF-8"
                ));
            }
        }
    }
    String::from_utf16(&units).map_err(|_| "unpaired surrogate in modified UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn write_utf_matches_java() {
        // Bytes produced by java.io.DataOutputStream.writeUTF.
        assert_eq!(write_utf("who-am-i").unwrap(), b"\x00\x08who-am-i");
        assert_eq!(write_utf("\0").unwrap(), [0, 2, 0xc0, 0x80]);
        assert_eq!(write_utf("é").unwrap(), [0, 2, 0xc3, 0xa9]);
        assert_eq!(
            write_utf("😀").unwrap(),
            [0, 6, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]
        );
    }

    #[test]
    fn ws_frames_are_opcode_then_payload() {
        assert_eq!(encode_ws(&Frame::Start).unwrap().as_ref(), [3]);
        assert_eq!(
            encode_ws(&Frame::Exit(6)).unwrap().as_ref(),
            [4, 0, 0, 0, 6]
        );
        assert_eq!(
            encode_ws(&Frame::Stdout(Bytes::from_static(b"hi")))
                .unwrap()
                .as_ref(),
            [7, b'h', b'i']
        );
    }

    #[test]
    fn http_frames_carry_length_without_opcode() {
        let mut buf = BytesMut::new();
        encode_http(&Frame::Arg("help".into()), &mut buf).unwrap();
        assert_eq!(buf.as_ref(), [0, 0, 0, 6, 0, 0, 4, b'h', b'e', b'l', b'p']);
        assert_eq!(
            decode_http(&mut buf, Direction::ClientToServer).unwrap(),
            Some(Frame::Arg("help".into()))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_that_cannot_be_encoded_leaves_earlier_frames_intact() {
        let mut out = BytesMut::new();
        encode_http(&Frame::Start, &mut out).unwrap();
        let before = out.clone();
        // writeUTF cannot carry more than 65,535 bytes.
        let too_long = Frame::Arg("x".repeat(70_000));
        assert!(encode_http(&too_long, &mut out).is_err());
        assert_eq!(out, before);
        assert_eq!(
            decode_http(&mut out, Direction::ClientToServer).unwrap(),
            Some(Frame::Start)
        );
    }

    #[test]
    fn http_decoder_waits_for_whole_frame() {
        let mut buf = BytesMut::new();
        encode_http(&Frame::Stdin(Bytes::from_static(b"abcdef")), &mut buf).unwrap();
        let whole = buf.split();
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(
                decode_http(&mut part, Direction::ClientToServer).unwrap(),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn hostile_lengths_are_refused() {
        let mut neg = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe, 5][..]);
        assert_eq!(
            decode_http(&mut neg, Direction::ClientToServer),
            Err(FrameError::NegativeLength(-2))
        );
        let mut huge = BytesMut::from(&[0x10, 0, 0, 0, 5][..]);
        assert!(matches!(
            decode_http(&mut huge, Direction::ClientToServer),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn opcodes_from_0x80_are_fatal_and_lower_unknowns_are_kept() {
        assert_eq!(
            decode_ws(Bytes::from_static(&[0x80]), Direction::ClientToServer),
            Err(FrameError::FatalOpcode(0x80))
        );
        assert_eq!(
            decode_ws(Bytes::from_static(&[0x42, 1]), Direction::ClientToServer),
            Ok(Frame::Unknown {
                op: 0x42,
                payload: Bytes::from_static(&[1])
            })
        );
        assert_eq!(
            decode_ws(Bytes::new(), Direction::ClientToServer),
            Err(FrameError::Empty)
        );
    }

    /// The direction a frame is sent in (unknown opcodes: either).
    fn sent_by(frame: &Frame) -> Direction {
        frame.direction().unwrap_or(Direction::ClientToServer)
    }

    #[test]
    fn frames_in_the_wrong_direction_are_kept_unknown_not_fatal() {
        // A client that sends EXIT with a short payload must not end the session.
        let bogus = Bytes::from_static(&[op::EXIT, 1]);
        assert_eq!(
            decode_ws(bogus, Direction::ClientToServer),
            Ok(Frame::Unknown {
                op: op::EXIT,
                payload: Bytes::from_static(&[1])
            })
        );
        assert!(matches!(
            decode_ws(Bytes::from_static(&[op::ARG, 0]), Direction::ServerToClient),
            Ok(Frame::Unknown { .. })
        ));
    }

    #[test]
    fn features_are_found_in_any_header_line_and_case() {
        assert!(lists_feature(["interrupt"], FEATURE_INTERRUPT));
        assert!(lists_feature(["other", "x Interrupt"], FEATURE_INTERRUPT));
        assert!(!lists_feature(["interrupted", ""], FEATURE_INTERRUPT));
        assert!(!lists_feature([], FEATURE_INTERRUPT));
    }

    #[test]
    fn interrupt_is_a_client_frame_with_a_string() {
        let frame = Frame::Interrupt("SIGINT".into());
        let bytes = encode_ws(&frame).unwrap();
        assert_eq!(bytes.as_ref(), b"\x40\x00\x06SIGINT");
        assert_eq!(
            decode_ws(bytes.clone(), Direction::ClientToServer).unwrap(),
            frame
        );
        // Sent the wrong way it is skipped, as any frame travelling the wrong way.
        assert!(matches!(
            decode_ws(bytes, Direction::ServerToClient),
            Ok(Frame::Unknown {
                op: op::INTERRUPT,
                ..
            })
        ));
    }

    #[test]
    fn read_utf_takes_a_raw_nul_like_java() {
        assert_eq!(read_utf(&[0, 1, 0]).unwrap(), "\0");
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
        prop_oneof![
            any::<String>().prop_map(Frame::Arg),
            any::<String>().prop_map(Frame::Locale),
            any::<String>().prop_map(Frame::Encoding),
            Just(Frame::Start),
            any::<i32>().prop_map(Frame::Exit),
            bytes().prop_map(Frame::Stdin),
            Just(Frame::EndStdin),
            bytes().prop_map(Frame::Stdout),
            bytes().prop_map(Frame::Stderr),
            any::<String>().prop_map(Frame::Interrupt),
            (9u8..0x80, bytes())
                .prop_filter("not a known opcode", |(op, _)| *op != op::INTERRUPT)
                .prop_map(|(op, payload)| Frame::Unknown { op, payload }),
        ]
    }

    proptest! {
        #[test]
        fn ws_round_trip(frame in any_frame()) {
            prop_assert_eq!(decode_ws(encode_ws(&frame).unwrap(), sent_by(&frame)).unwrap(), frame);
        }

        #[test]
        fn http_round_trip(frames in proptest::collection::vec(any_frame(), 0..8)) {
            let mut buf = BytesMut::new();
            for f in &frames { encode_http(f, &mut buf).unwrap(); }
            let mut back = Vec::new();
            for f in &frames { back.extend(decode_http(&mut buf, sent_by(f)).unwrap()); }
            prop_assert_eq!(back, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_ws(Bytes::from(data.clone()), Direction::ClientToServer);
            let _ = decode_ws(Bytes::from(data.clone()), Direction::ServerToClient);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = decode_http(&mut buf, Direction::ClientToServer) {}
            let _ = read_utf(&data);
        }
    }
}
