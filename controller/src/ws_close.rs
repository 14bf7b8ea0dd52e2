//! The close code a server WebSocket answers a peer's broken WebSocket with (RFC 6455
//! §7.4.1), shared by the agent, CLI and echo sockets:
//!
//! | what the peer sent | close code |
//! | --- | --- |
//! | a message or frame over the socket's size limit | 1009 (message too big) |
//! | bytes that break the WebSocket framing: unknown opcodes, reserved bits, unmasked frames, bad fragmentation, garbage | 1002 (protocol error) |
//! | a text message with invalid UTF-8 | 1007 (invalid data) |
//! | a text message where only binary is spoken | 1003 (unsupported data), decided by each endpoint |
//!
//! The close frame is sent on a best-effort basis: the peer may already be gone.

use axum::extract::ws::close_code;
use tokio_tungstenite::tungstenite;

/// A close frame to send: code and a short reason.
pub type Close = (u16, &'static str);

/// The close frame that answers a receive error, or `None` when the connection itself failed
/// (reset, I/O error) and nothing more can reach the peer.
pub fn for_receive_error(error: &axum::Error) -> Option<Close> {
    let inner = std::error::Error::source(error)?.downcast_ref::<tungstenite::Error>()?;
    for_tungstenite_error(inner)
}

fn for_tungstenite_error(error: &tungstenite::Error) -> Option<Close> {
    use tungstenite::error::ProtocolError;
    match error {
        tungstenite::Error::Capacity(_) => Some((close_code::SIZE, "message too big")),
        tungstenite::Error::Utf8(_) => Some((close_code::INVALID, "text is not UTF-8")),
        // A peer that vanished without a close frame gets nothing: there is nobody to read it.
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Protocol(_) => Some((close_code::PROTOCOL, "WebSocket protocol error")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::{CapacityError, ProtocolError};

    #[test]
    fn peer_errors_map_to_rfc_close_codes() {
        let too_long = tungstenite::Error::Capacity(CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        });
        assert_eq!(
            for_receive_error(&axum::Error::new(too_long)).map(|c| c.0),
            Some(1009)
        );
        let bad_opcode = tungstenite::Error::Protocol(ProtocolError::UnknownDataFrameType(3));
        assert_eq!(
            for_receive_error(&axum::Error::new(bad_opcode)).map(|c| c.0),
            Some(1002)
        );
        let unmasked = tungstenite::Error::Protocol(ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(
            for_receive_error(&axum::Error::new(unmasked)).map(|c| c.0),
            Some(1002)
        );
    }

    #[test]
    fn a_vanished_peer_gets_no_close_frame() {
        let reset = tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(for_receive_error(&axum::Error::new(reset)), None);
        let io = tungstenite::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert_eq!(for_receive_error(&axum::Error::new(io)), None);
        // Not a WebSocket error at all.
        assert_eq!(for_receive_error(&axum::Error::new("other")), None);
    }
}
