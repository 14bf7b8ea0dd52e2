//! `services`: the OPEN header of a stream as the agent reads it (a service request), the
//! DATA the controller reads back (a response, an exec event or a step event), and the DATA
//! the agent reads after a `StartStep` (a step spec).

use steward_protocol::services::{self, ExecEvent, Response, decode_request, encode_request};
use steward_protocol::steps::{StepEvent, StepSpec};

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
    if let Ok(event) = services::decode::<StepEvent>(data) {
        assert_eq!(services::decode(&services::encode(&event)), Ok(event));
    }
    if let Ok(spec) = services::decode::<StepSpec>(data) {
        assert_eq!(services::decode(&services::encode(&spec)), Ok(spec));
    }
}
