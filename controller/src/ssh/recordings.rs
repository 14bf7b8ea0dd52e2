//! SSH sessions' recordings (`AgentCall::SshRecording`): the agent records what its SSH
//! server's sessions show and are typed (SFTP and forwards as markers only) and sends it
//! here, to an asciicast file: a build's in `BUILD_DIR/ssh-recordings/`, a node's in
//! `HOME/ssh/NODE/recordings/`, each `STARTED-CONNECTION-CHANNEL.cast`.
//!
//! A node whose XML carries the `steward.NoSshRecording` node property is not recorded:
//! its agent is told so at the first event, and sends nothing more.

use std::path::PathBuf;

use bytes::Bytes;
use steward_channel::MuxStream;
use steward_protocol::agent_calls::{self, AgentReply, RecordEvent, SshRecordingStart};
use steward_protocol::terminals::Size;

use crate::state::AppState;
use crate::terminals::recording::{Header, Recording};

/// The node property that turns recording off.
pub const NO_RECORDING_PROPERTY: &str = "steward.NoSshRecording";

/// Whether node `node`'s SSH sessions are recorded.
pub async fn records(state: &AppState, node: &str) -> bool {
    let Ok(record) = crate::nodes::get(state, node).await else {
        return false;
    };
    !record
        .config
        .other_elements
        .iter()
        .filter(|e| e.name == "nodeProperties")
        .flat_map(|e| e.child_elements())
        .any(|p| p.name == NO_RECORDING_PROPERTY)
}

/// Serves one recording stream from the agent of `node`.
pub async fn serve(state: &AppState, node: &str, start: SshRecordingStart, mut stream: MuxStream) {
    let refuse = |message: String| AgentReply::Error { message };
    let place = match place(state, node, &start).await {
        Ok(place) => place,
        Err(why) => {
            tracing::info!(
                node,
                connection = start.connection,
                why,
                "not recording an SSH session"
            );
            let _ = stream
                .send(Bytes::from(agent_calls::encode_reply(&refuse(why))))
                .await;
            let _ = stream.finish().await;
            return;
        }
    };
    let (dir, title) = place;
    let id = format!(
        "{}-{}-{}",
        start.started_ms, start.connection, start.channel
    );
    let header = Header {
        size: Size {
            cols: start.width.max(1),
            rows: start.height.max(1),
        },
        timestamp: start.started_ms / 1000,
        command: &start.command,
        title: &title,
    };
    // One small file created and its header written: quick enough in place.
    let mut recording = match Recording::create(&dir, &id, &header) {
        Ok(recording) => recording,
        Err(e) => {
            tracing::warn!(node, dir = %dir.display(), error = %e, "cannot record an SSH session");
            let reply = refuse(format!("the controller cannot write the recording: {e}"));
            let _ = stream
                .send(Bytes::from(agent_calls::encode_reply(&reply)))
                .await;
            let _ = stream.finish().await;
            return;
        }
    };
    if stream
        .send(Bytes::from(agent_calls::encode_reply(&AgentReply::Done)))
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(node, connection = start.connection, kind = start.kind, recording = %recording.path.display(), "recording an SSH session");
    while let Some(Ok(frame)) = stream.recv().await {
        let Ok(events) = steward_protocol::services::decode::<Vec<RecordEvent>>(&frame) else {
            tracing::warn!(node, "a malformed SSH recording frame; the recording ends");
            break;
        };
        for event in events {
            recording.set_time(event.micros as f64 / 1e6);
            match event.code {
                b'o' => recording.output(&event.data).await,
                b'i' => recording.input(&event.data).await,
                b'r' => {
                    let text = String::from_utf8_lossy(&event.data);
                    if let Some((cols, rows)) = text.split_once('x')
                        && let (Ok(cols), Ok(rows)) = (cols.parse(), rows.parse())
                    {
                        recording.resize(Size { cols, rows }).await;
                    }
                }
                b'm' => {
                    recording
                        .marker(&String::from_utf8_lossy(&event.data))
                        .await
                }
                _ => {}
            }
        }
    }
    recording.finish().await;
    let _ = stream.finish().await;
}

/// Where a session's recording goes and its title; why not, when it is not recorded.
async fn place(
    state: &AppState,
    node: &str,
    start: &SshRecordingStart,
) -> Result<(PathBuf, String), String> {
    let Some(info) = state.ssh.get(start.connection).filter(|i| i.node == node) else {
        return Err(format!(
            "connection {} is not one of node {node}'s",
            start.connection
        ));
    };
    if !records(state, node).await {
        return Err(format!(
            "node {node} does not record SSH sessions ({NO_RECORDING_PROPERTY})"
        ));
    }
    let title = format!("{} by {} on {}", start.kind, info.user, node);
    if let Some(build) = info
        .build
        .and_then(|id| state.builds.running().into_iter().find(|b| b.row.id == id))
    {
        let dir = state
            .builds
            .build_dir(&build.row.job, build.row.number)
            .join("ssh-recordings");
        let title = format!(
            "{} by {} in {}#{}",
            start.kind, info.user, build.row.job, build.row.number
        );
        return Ok((dir, title));
    }
    if info.build.is_some() {
        return Err("the build has ended".into());
    }
    Ok((
        state.config.home.join("ssh").join(node).join("recordings"),
        title,
    ))
}
