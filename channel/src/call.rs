//! Typed request/response calls on top of streams: the request is the OPEN header, the
//! response one postcard message followed by EOF.

use bytes::Bytes;
use steward_protocol::services::{self, MAX_RESPONSE_LEN, Request, Response};

use crate::{Channel, ChannelError, MuxStream, StreamError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("malformed response: {0}")]
    BadResponse(String),
}

/// Opens a stream for `request` (nothing more will be sent on it).
pub async fn open(channel: &Channel, request: &Request) -> Result<MuxStream, CallError> {
    Ok(channel
        .open(Bytes::from(services::encode_request(request)))
        .await?)
}

/// Makes a simple call: request, then one response.
pub async fn call(channel: &Channel, request: &Request) -> Result<Response, CallError> {
    let mut stream = open(channel, request).await?;
    stream.finish().await?;
    let body = stream.recv.read_to_end(MAX_RESPONSE_LEN).await?;
    services::decode(&body).map_err(CallError::BadResponse)
}

/// Reads one response message from a stream (the first DATA frame).
pub async fn read_response(stream: &mut MuxStream) -> Result<Response, CallError> {
    match stream.recv().await {
        Some(Ok(bytes)) => services::decode(&bytes).map_err(CallError::BadResponse),
        Some(Err(e)) => Err(e.into()),
        None => Err(CallError::BadResponse(
            "stream ended before the response".into(),
        )),
    }
}

/// Sends one response message and EOF.
pub async fn reply(stream: &mut MuxStream, response: &Response) -> Result<(), StreamError> {
    stream.send(Bytes::from(services::encode(response))).await?;
    stream.finish().await
}

/// Makes a call of the controller from the agent side (`steward_protocol::agent_calls`):
/// the call as the OPEN header, EOF, then one reply. `Wait` calls answer only when their
/// breakpoint ends, so callers bound this by their own deadline if they need one.
pub async fn agent_call(
    channel: &Channel,
    call: &steward_protocol::agent_calls::AgentCall,
) -> Result<steward_protocol::agent_calls::AgentReply, CallError> {
    use steward_protocol::agent_calls;
    let mut stream = channel
        .open(Bytes::from(agent_calls::encode_call(call)))
        .await?;
    stream.finish().await?;
    let body = stream
        .recv
        .read_to_end(agent_calls::MAX_AGENT_REPLY)
        .await?;
    agent_calls::decode_reply(&body).map_err(CallError::BadResponse)
}
