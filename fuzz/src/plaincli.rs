//! `plaincli_ws` and `plaincli_http`: PlainCLIProtocol frames in the WebSocket framing (one
//! message, one frame) and in the full-duplex HTTP framing (a byte stream, read in whatever
//! pieces the body arrives in).
//!
//! The first input byte picks the direction (bit 0: 0 from the client, 1 from the server),
//! since the decoders read the same opcode differently in each.

use bytes::{Bytes, BytesMut};
use steward_protocol::plaincli::{
    Direction, Frame, FrameError, HTTP_LENGTH_PREFIX, decode_http, decode_ws, encode_http,
    encode_ws,
};

fn direction(flags: u8) -> Direction {
    if flags & 1 == 0 {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    }
}

/// Input: direction byte, then one WebSocket message.
pub fn plaincli_ws(data: &[u8]) {
    let Some((&flags, message)) = data.split_first() else {
        return;
    };
    let from = direction(flags);
    let Ok(frame) = decode_ws(Bytes::copy_from_slice(message), from) else {
        return;
    };
    match encode_ws(&frame) {
        Ok(again) => assert_eq!(decode_ws(again, from), Ok(frame), "round trip"),
        Err(e) => assert_unwritable_string(&frame, &e),
    }
}

/// Input: direction byte, piece-size byte, then the body. The body is decoded twice, whole
/// and cut into pieces of that size; both readings must give the same frames and the same
/// error, as the controller's and the client's readers see bodies cut anywhere.
pub fn plaincli_http(data: &[u8]) {
    let [flags, piece, body @ ..] = data else {
        return;
    };
    let from = direction(*flags);
    let whole = read_body(body, body.len().max(1), from);
    let in_pieces = read_body(body, usize::from(*piece).max(1), from);
    assert_eq!(
        whole, in_pieces,
        "the decoder depends on how the body is cut"
    );

    for frame in whole.frames {
        let mut buf = BytesMut::new();
        match encode_http(&frame, &mut buf) {
            Ok(()) => {
                assert_eq!(decode_http(&mut buf, from), Ok(Some(frame)), "round trip");
                assert!(buf.is_empty(), "round trip left bytes behind");
            }
            Err(e) => {
                assert!(buf.is_empty(), "a failed encode left a partial frame");
                assert_unwritable_string(&frame, &e);
            }
        }
    }
}

/// What a reader of a body gets: the frames in order, then the error that ended the session
/// or the bytes left waiting for the rest of a frame.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    frames: Vec<Frame>,
    end: Result<usize, FrameError>,
}

fn read_body(body: &[u8], piece: usize, from: Direction) -> Reading {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in body.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.clone();
            match decode_http(&mut buf, from) {
                Ok(Some(frame)) => {
                    let len = u32::from_be_bytes(before[..4].try_into().unwrap()) as usize;
                    assert_eq!(
                        buf.len(),
                        before.len() - HTTP_LENGTH_PREFIX - 1 - len,
                        "a frame took other than its own bytes"
                    );
                    frames.push(frame);
                }
                Ok(None) => {
                    assert_eq!(buf, before, "waiting for more bytes consumed some");
                    break;
                }
                Err(e) => {
                    return Reading {
                        frames,
                        end: Err(e),
                    };
                }
            }
        }
    }
    Reading {
        frames,
        end: Ok(buf.len()),
    }
}

/// Java's `readUTF` takes a raw NUL byte, which `writeUTF` writes as two bytes: a string of
/// many NULs can be read but not written back within the u16 length. That is the only frame
/// the encoders may refuse.
fn assert_unwritable_string(frame: &Frame, e: &FrameError) {
    assert!(
        matches!(
            (frame, e),
            (
                Frame::Arg(_) | Frame::Locale(_) | Frame::Encoding(_) | Frame::Interrupt(_),
                FrameError::BadPayload { .. }
            )
        ),
        "decoded {frame:?} but cannot encode it: {e}"
    );
}
