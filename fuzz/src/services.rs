//! `services`: the OPEN header of a stream as the agent reads it (a service request), and the
//! DATA the controller reads back (a response or an exec event).

use steward_protocol::services::{self, ExecEvent, Response, decode_request, encode_request};

pub fn services(data: &[u8]) {
    if let Ok(request) = decode_request(data) {
        assert_eq!(decode_request(&encode_request(&request)), Ok(request));
    }
    if let Ok(response) = services::decode::<Response>(data) {
        assert_eq!(services::decode(&services::encode(&response)), Ok(response));
    }
    if let Ok(event) = services::decode::<ExecEvent>(data) {
        assert_eq!(services::decode(&services::encode(&event)), Ok(event));
    }
}
