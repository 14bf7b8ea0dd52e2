//! Helpers for the step tests: starting steps, tailing them, listing them.

use std::path::PathBuf;

use bytes::Bytes;
use steward_channel::{MuxStream, call};
use steward_protocol::services::{self, MAX_RESPONSE_LEN, Request, Response};
use steward_protocol::steps::{StepEvent, StepOutcome, StepSpec, StepState, StepStatus};

use super::{Agent, within};

/// Script lines that wait until `name` exists in the workspace, untraced so the log does
/// not grow while they wait: they add exactly `+ set +x` to it.
pub fn wait_for(name: &str) -> String {
    format!("set +x\nwhile [ ! -e {name} ]; do sleep 0.01; done\nset -x\n")
}

pub fn spec(script: &str) -> StepSpec {
    StepSpec {
        script: script.as_bytes().to_vec(),
        env: Vec::new(),
    }
}

/// `StartStep` with `spec` as the stream's data; the answer.
pub async fn start(agent: &Agent, id: &str, workspace: &str, spec: &StepSpec) -> Response {
    let request = Request::StartStep {
        id: id.into(),
        workspace: workspace.into(),
    };
    let mut stream = agent.open(&request).await;
    stream
        .send(Bytes::from(services::encode(spec)))
        .await
        .unwrap();
    stream.finish().await.unwrap();
    let body = within(stream.recv.read_to_end(MAX_RESPONSE_LEN))
        .await
        .unwrap();
    services::decode(&body).unwrap()
}

/// Starts a step that must start; its pgid.
pub async fn started(agent: &Agent, id: &str, script: &str) -> i32 {
    match start(agent, id, "ws", &spec(script)).await {
        Response::StepStarted { pgid, dir } => {
            assert_eq!(PathBuf::from(dir), step_path(agent, id));
            pgid
        }
        other => panic!("step {id} did not start: {other:?}"),
    }
}

pub fn step_path(agent: &Agent, id: &str) -> PathBuf {
    agent.work.path().join("steps").join(id)
}

pub fn log_file(agent: &Agent, id: &str) -> Vec<u8> {
    std::fs::read(step_path(agent, id).join("log")).unwrap()
}

pub fn release(agent: &Agent, name: &str) {
    std::fs::write(agent.work.path().join("ws").join(name), b"").unwrap();
}

/// Opens a tail; the stream and the log length the agent announced.
pub async fn open_tail(agent: &Agent, id: &str, offset: u64) -> (MuxStream, u64) {
    let request = Request::TailStep {
        id: id.into(),
        offset,
    };
    let mut stream = agent.open(&request).await;
    stream.finish().await.unwrap();
    match within(call::read_response(&mut stream)).await.unwrap() {
        Response::StepTail { log_len } => (stream, log_len),
        other => panic!("tail of {id} from {offset} refused: {other:?}"),
    }
}

/// The next event: exactly one per DATA frame.
pub async fn next_event(stream: &mut MuxStream) -> Option<StepEvent> {
    let frame = within(stream.recv())
        .await?
        .expect("the tail stays healthy");
    Some(services::decode(&frame).expect("one whole event per frame"))
}

/// What a tail delivered.
#[derive(Debug, Default)]
pub struct Tailed {
    pub log: Vec<u8>,
    pub end: Option<StepOutcome>,
}

/// Reads a tail to its EOF, checking that `Ended` comes last.
pub async fn read_tail(stream: &mut MuxStream) -> Tailed {
    let mut tailed = Tailed::default();
    while let Some(event) = next_event(stream).await {
        assert!(tailed.end.is_none(), "nothing after the end: {event:?}");
        match event {
            StepEvent::Log(data) => tailed.log.extend(data),
            StepEvent::Ended(outcome) => tailed.end = Some(outcome),
        }
    }
    tailed
}

/// Tails `id` from `offset` until the step ends.
pub async fn tail(agent: &Agent, id: &str, offset: u64) -> Tailed {
    let (mut stream, _) = open_tail(agent, id, offset).await;
    read_tail(&mut stream).await
}

/// Reads log events until the log so far contains `needle`.
pub async fn read_until(stream: &mut MuxStream, log: &mut Vec<u8>, needle: &str) {
    while !String::from_utf8_lossy(log).contains(needle) {
        match next_event(stream).await {
            Some(StepEvent::Log(data)) => log.extend(data),
            other => panic!("waiting for {needle:?}, got {other:?}"),
        }
    }
}

pub async fn list(agent: &Agent) -> Vec<StepStatus> {
    match agent.call(Request::ListSteps).await {
        Response::Steps(steps) => steps,
        other => panic!("ListSteps answered {other:?}"),
    }
}

pub async fn state(agent: &Agent, id: &str) -> StepState {
    list(agent)
        .await
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} listed"))
        .state
}

pub fn error(response: Response) -> String {
    match response {
        Response::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

pub fn exited(code: i32) -> Option<StepOutcome> {
    Some(StepOutcome::Exited { code })
}

/// The pids a script printed as `pid N` lines.
pub fn printed_pids(log: &[u8]) -> Vec<i32> {
    String::from_utf8_lossy(log)
        .lines()
        .filter_map(|l| l.strip_prefix("pid "))
        .map(|p| p.trim().parse().unwrap())
        .collect()
}
