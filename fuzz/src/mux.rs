//! `mux_frame`: one binary WebSocket message on the agent socket, as the channel driver hands
//! it to [`Frame::decode_bytes`].

use bytes::Bytes;
use steward_protocol::channel::Frame;
use steward_protocol::services::{self, ExecEvent, Response};
use steward_protocol::steps::{StepEvent, StepSpec};

pub fn mux_frame(data: &[u8]) {
    let decoded = Frame::decode_bytes(Bytes::copy_from_slice(data));
    assert_eq!(
        Frame::decode(data),
        decoded,
        "copying and zero-copy decoders disagree"
    );
    let Ok(Some(frame)) = decoded else { return };

    // What we decoded encodes to a message that decodes to the same frame. The encoding is
    // canonical (flags 0, shortest varints, no trailing bytes), so it is never longer than
    // what came in, and the size limits hold for it too.
    let again = frame.encode();
    assert!(
        again.len() <= data.len(),
        "{} re-encoded to {} bytes from {}",
        frame.name(),
        again.len(),
        data.len()
    );
    assert_eq!(Frame::decode(&again), Ok(Some(frame.clone())), "round trip");

    // What the receivers do next with the payloads: the agent reads an OPEN header as a
    // service request, the controller reads DATA as exec events, step events or a response,
    // and the agent reads a `StartStep`'s DATA as a step spec.
    match frame {
        Frame::Open { open, .. } => {
            let _ = services::decode_request(&open.header);
        }
        Frame::Data { payload, .. } => {
            let _ = services::decode::<ExecEvent>(&payload);
            let _ = services::decode::<Response>(&payload);
            let _ = services::decode::<StepEvent>(&payload);
            let _ = services::decode::<StepSpec>(&payload);
        }
        _ => {}
    }
}
