//! The task that keeps one terminal running: while it should run (`enabled`, and for an
//! `ondemand` terminal, while someone is attached or was within [`ONDEMAND_IDLE`]) and its
//! node is connected, it holds a stream to the node's agent with `Request::Terminal`. The
//! agent attaches to the terminal's holder, or starts one; the output that comes back goes
//! to the screen and clients ([`super::hub`]) and to the run's recording; clients' input
//! and the size their windows make go the other way.
//!
//! When the stream ends (the agent went away, or this controller is stopping) the program
//! runs on in its holder; the next stream resumes from the offset this controller had
//! reached, so nothing is missed or shown twice. When the program exits, it is started
//! again after [`RESTART_DELAY`]. A stopped (`off`) or deleted terminal's program is
//! stopped on its node as soon as the node is connected.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use steward_channel::call;
use steward_protocol::services::{Request, Response, decode, encode};
use steward_protocol::terminals::{
    Resume, RunInfo, TerminalAnswer, TerminalEvent, TerminalInput, TerminalOpen,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::logs::{Chunk, Kind, LineSplitter, now_rfc3339};
use super::recording::{Header, Recording};
use super::{Control, Status, Terminal, settings};
use crate::state::AppState;
use crate::store::terminals::{self as rows, RecordingRow};

/// How long after its program exits a terminal starts again.
pub const RESTART_DELAY: Duration = Duration::from_secs(10);
/// How long an `ondemand` terminal runs on after its last client detached, by default
/// (`--terminal-ondemand-idle`).
pub const ONDEMAND_IDLE: Duration = Duration::from_secs(300);
/// How long the agent may take to answer a `Terminal` request (it may start a holder).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait before trying again after the agent refused.
const RETRY_DELAY: Duration = Duration::from_secs(10);
/// How often the recording's buffer goes to disk when output trickles.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Output asked again, before where the recording ends, after a controller restart: it
/// redraws the screen model without being recorded twice.
const SCREEN_CONTEXT: u64 = 64 * 1024;

/// What this controller has of the current run: where its output ends, and its recording.
struct Copy {
    run: String,
    offset: u64,
    recording: Option<Recording>,
    row: Option<RecordingRow>,
}

/// How a session with the agent ended.
enum Ended {
    /// The program exited: the run is over.
    Exited(String),
    /// The stream ended: the program runs on, unseen.
    Lost(String),
    /// The agent refused or failed to start it.
    Failed(String),
    /// The controller is stopping, or the terminal was deleted.
    Gone,
}

pub async fn run(state: AppState, terminal: Arc<Terminal>, mut control: mpsc::Receiver<Control>) {
    let mut settings_rx = terminal.settings.subscribe();
    let mut clients_rx = terminal.clients.subscribe();
    let mut agents_rx = state.agents.subscribe();
    let mut copy: Option<Copy> = None;
    // The connection on which the program was last stopped, so it is asked once each.
    let mut stopped_on: Option<u64> = None;
    // Not before (a restart's delay, a retry's).
    let mut not_before: Option<Instant> = None;
    let mut idle_since: Option<Instant> = None;
    let mut lines = LineSplitter::default();
    loop {
        if terminal.deleted.is_cancelled() {
            if let Some((_, channel)) = state.agents.connection(&terminal.settings().node) {
                stop_on_node(&channel, &terminal.name).await;
            }
            end_recording(&state, &terminal, &mut copy).await;
            return;
        }
        if state.shutdown.is_cancelled() {
            finish_recording(&mut copy).await;
            return;
        }
        let row = settings_rx.borrow_and_update().clone();
        let attached = *clients_rx.borrow_and_update();
        if attached > 0 {
            idle_since = None;
        } else if idle_since.is_none() {
            idle_since = Some(Instant::now());
        }
        let idle = state.config.terminal_ondemand_idle;
        let idle_over = idle_since.is_some_and(|at| at.elapsed() >= idle);
        let wanted =
            row.enabled && (!row.ondemand || attached > 0 || (copy.is_some() && !idle_over));
        let connection = state.agents.connection(&row.node);
        let mut wake_at = not_before;
        match (&connection, wanted) {
            (None, _) => {
                let status = if row.enabled {
                    Status::Waiting {
                        reason: format!("node {} is offline", row.node),
                    }
                } else {
                    Status::Off
                };
                terminal.status.send_replace(status);
            }
            (Some((id, channel)), false) => {
                if stopped_on != Some(*id) {
                    stop_on_node(channel, &terminal.name).await;
                    stopped_on = Some(*id);
                    end_recording(&state, &terminal, &mut copy).await;
                }
                let status = if row.enabled {
                    Status::Idle
                } else {
                    Status::Off
                };
                terminal.status.send_replace(status);
                if row.ondemand && row.enabled && attached == 0 {
                    wake_at = None;
                }
            }
            (Some((id, channel)), true) => {
                if not_before.is_none_or(|at| at <= Instant::now()) {
                    not_before = None;
                    stopped_on = None;
                    let ended = session(
                        &state,
                        &terminal,
                        channel,
                        &mut copy,
                        &mut control,
                        &mut settings_rx,
                        &mut clients_rx,
                        &mut lines,
                    )
                    .await;
                    if let Some(rest) = lines.rest() {
                        log(&state, &terminal, Kind::Console, rest);
                    }
                    if !matches!(ended, Ended::Failed(_)) {
                        log(
                            &state,
                            &terminal,
                            Kind::Event,
                            Bytes::from_static(b"disconnected"),
                        );
                    }
                    match ended {
                        Ended::Gone => continue,
                        Ended::Exited(how) => {
                            end_recording(&state, &terminal, &mut copy).await;
                            let at = crate::builds::now_ms() + RESTART_DELAY.as_millis() as i64;
                            terminal.status.send_replace(Status::Restarting {
                                at_ms: at,
                                exit: how.clone(),
                            });
                            terminal.message(&format!(
                                "=== The program {how}; it starts again in {} s ===",
                                RESTART_DELAY.as_secs()
                            ));
                            not_before = Some(Instant::now() + RESTART_DELAY);
                            // Stopped on purpose: no restart until wanted again.
                            if !terminal.settings().enabled {
                                not_before = None;
                            }
                            stopped_on = Some(*id);
                        }
                        Ended::Lost(why) => {
                            info!(
                                terminal = terminal.name,
                                why, "terminal stream ended; the program runs on"
                            );
                            terminal.message(&format!(
                                "=== Lost touch with node {} ({why}); the terminal runs on there, and this session goes on when the node is back ===",
                                row.node
                            ));
                        }
                        Ended::Failed(why) => {
                            warn!(terminal = terminal.name, why, "terminal not started");
                            terminal.status.send_replace(Status::Waiting {
                                reason: why.clone(),
                            });
                            terminal.message(&format!("=== {why} ==="));
                            not_before = Some(Instant::now() + RETRY_DELAY);
                        }
                    }
                    continue;
                }
            }
        }
        // Wait for something to change.
        if row.ondemand && copy.is_some() && attached == 0 && row.enabled {
            let idle_end = idle_since.unwrap_or_else(Instant::now) + idle;
            wake_at = Some(wake_at.map_or(idle_end, |w| w.min(idle_end)));
        }
        tokio::select! {
            _ = settings_rx.changed() => {}
            _ = clients_rx.changed() => {}
            _ = agents_rx.changed() => {}
            () = terminal.deleted.cancelled() => {}
            () = state.shutdown.cancelled() => {}
            () = sleep_until(wake_at) => {}
            Some(control) = control.recv() => {
                if let Control::Input { client, .. } = control {
                    terminal.hub().tell(client, "=== The terminal is not running: input dropped ===");
                }
            }
        }
    }
}

/// Lines (or an event) for the terminal logs.
fn log(state: &AppState, terminal: &Terminal, kind: Kind, text: Bytes) {
    state.terminals.logs().send(Chunk {
        kind,
        text,
        node: terminal.settings().node.into(),
        terminal: terminal.name.as_str().into(),
        date: now_rfc3339(),
    });
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Stops the terminals running on `node`'s agent that are not this controller's terminals
/// on that node: deleted, or moved to another node, while the node was away. Their runners
/// cannot do it (a deleted terminal has none). Called as the agent connects.
pub async fn reconcile(state: &AppState, node: &str, channel: &steward_channel::Channel) {
    let listed =
        tokio::time::timeout(ANSWER_TIMEOUT, call::call(channel, &Request::ListTerminals)).await;
    let Ok(Ok(Response::Terminals(names))) = listed else {
        // An agent that does not know the request has no terminals.
        return;
    };
    for name in names {
        let ours = state
            .terminals
            .get(&name)
            .is_some_and(|t| t.settings().node == node);
        if !ours {
            info!(
                node,
                terminal = name,
                "stopping a terminal this node should not run"
            );
            stop_on_node(channel, &name).await;
        }
    }
}

/// Asks the agent to end the terminal's program (no holder left running).
async fn stop_on_node(channel: &steward_channel::Channel, name: &str) {
    let request = Request::StopTerminal {
        name: name.to_owned(),
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, call::call(channel, &request)).await {
        Ok(Ok(Response::Done)) => debug!(terminal = name, "terminal stopped on its node"),
        other => {
            warn!(terminal = name, answer = ?other.map(|r| r.map(|_| ())), "cannot stop the terminal on its node")
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn session(
    state: &AppState,
    terminal: &Arc<Terminal>,
    channel: &steward_channel::Channel,
    copy: &mut Option<Copy>,
    control: &mut mpsc::Receiver<Control>,
    settings_rx: &mut tokio::sync::watch::Receiver<crate::store::terminals::TerminalRow>,
    clients_rx: &mut tokio::sync::watch::Receiver<usize>,
    lines: &mut LineSplitter,
) -> Ended {
    let row = terminal.settings();
    let launched_with = (row.node.clone(), settings::launch(&row));
    let mut resume = copy.as_ref().map(|c| Resume {
        run: c.run.clone(),
        offset: c.offset,
    });
    // After a restart: the recording left unfinished tells which run and how far.
    let unfinished = if copy.is_none() {
        unfinished_recording(state, terminal).await
    } else {
        None
    };
    if let Some((row, recording)) = &unfinished {
        resume = Some(Resume {
            run: row.run.clone(),
            offset: recording.recorded_to.saturating_sub(SCREEN_CONTEXT),
        });
    }
    let open = TerminalOpen {
        name: terminal.name.clone(),
        launch: Some(settings::launch(&row)),
        resume: resume.clone(),
    };
    let mut stream = match call::open(channel, &Request::Terminal(open)).await {
        Ok(stream) => stream,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let info = match tokio::time::timeout(ANSWER_TIMEOUT, call::read_response(&mut stream)).await {
        Ok(Ok(Response::Terminal(TerminalAnswer::Attached(info)))) => info,
        Ok(Ok(Response::Terminal(TerminalAnswer::NotRunning))) => {
            return Ended::Failed(format!(
                "node {} did not start terminal {}",
                row.node, terminal.name
            ));
        }
        Ok(Ok(Response::Error { message })) => return Ended::Failed(message),
        Ok(Ok(other)) => return Ended::Failed(format!("node {} answered {other:?}", row.node)),
        Ok(Err(e)) => return Ended::Lost(e.to_string()),
        Err(_) => return Ended::Lost(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())),
    };
    // Where the holder's output starts: the offset asked for, if it is that run's and the
    // holder still has it.
    let start = match &resume {
        Some(r) if r.run == info.run => r.offset.max(info.first_offset),
        _ => info.first_offset,
    };
    adopt(state, terminal, copy, &info, start, unfinished).await;
    let Some(current) = copy.as_mut() else {
        return Ended::Failed("no copy of the run".into());
    };
    terminal.status.send_replace(Status::Running {
        run: info.run.clone(),
        since_ms: info.started_ms,
        pid: info.pid,
    });
    log(
        state,
        terminal,
        Kind::Event,
        Bytes::from_static(b"connected"),
    );
    if info.started_now {
        info!(
            terminal = terminal.name,
            node = row.node,
            run = info.run,
            pid = info.pid,
            "terminal started"
        );
    }
    // The size the clients' windows make, if it is not the terminal's.
    let resize = {
        let mut hub = terminal.hub();
        hub.set_size(info.size);
        terminal.size_change(&mut hub)
    };
    terminal.screen.resize(info.size);
    let (mut send, mut recv) = stream.into_split();
    if let Some(size) = resize
        && send
            .send(Bytes::from(encode(&TerminalInput::Resize(size))))
            .await
            .is_ok()
    {
        terminal.screen.resize(size);
        if let Some(recording) = current.recording.as_mut() {
            recording.resize(size).await;
        }
    }
    let record_input = settings::record_input(&row);
    // When the recording's buffer goes to disk and a deferred screen is looked at: set by
    // output and input, so an idle terminal has no timer at all.
    let mut flush_at: Option<Instant> = None;
    let mut stopping = false;
    let mut idle_deadline: Option<Instant> = (row.ondemand && *clients_rx.borrow() == 0)
        .then(|| Instant::now() + state.config.terminal_ondemand_idle);
    loop {
        tokio::select! {
            message = recv.recv() => {
                let data = match message {
                    Some(Ok(data)) => data,
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    None => return Ended::Lost("the agent closed the stream".into()),
                };
                match decode::<TerminalEvent>(&data) {
                    Ok(TerminalEvent::Output { offset, data }) => {
                        output(state, terminal, current, offset, data, lines).await;
                        flush_at.get_or_insert_with(|| Instant::now() + FLUSH_INTERVAL);
                    }
                    Ok(TerminalEvent::Exited { code, signal }) => {
                        let how = match (code, signal) {
                            (Some(code), _) => format!("exited with status {code}"),
                            (None, Some(signal)) => format!("was killed by signal {signal}"),
                            (None, None) => "ended".to_owned(),
                        };
                        info!(terminal = terminal.name, run = current.run, how, "terminal program ended");
                        return Ended::Exited(how);
                    }
                    Err(e) => return Ended::Lost(format!("the agent sent garbage: {e}")),
                }
            }
            Some(message) = control.recv() => match message {
                Control::Input { data, .. } => {
                    if record_input && let Some(recording) = current.recording.as_mut() {
                        recording.input(&data).await;
                        flush_at.get_or_insert_with(|| Instant::now() + FLUSH_INTERVAL);
                    }
                    if send.send(Bytes::from(encode(&TerminalInput::Input(data)))).await.is_err() {
                        return Ended::Lost("the stream to the agent closed".into());
                    }
                }
                Control::Resize(size) => {
                    terminal.screen.resize(size);
                    if let Some(recording) = current.recording.as_mut() {
                        recording.resize(size).await;
                    }
                    if send.send(Bytes::from(encode(&TerminalInput::Resize(size)))).await.is_err() {
                        return Ended::Lost("the stream to the agent closed".into());
                    }
                }
            },
            changed = settings_rx.changed(), if !stopping => {
                let row = settings_rx.borrow_and_update().clone();
                let now_with = (row.node.clone(), settings::launch(&row));
                let relaunch = now_with != launched_with;
                if changed.is_err() || !row.enabled || relaunch {
                    stopping = true;
                    let why = if !row.enabled { "stopped" } else { "changed; it starts again with its new settings" };
                    terminal.message(&format!("=== Terminal {} was {why} ===", terminal.name));
                    if send.send(Bytes::from(encode(&TerminalInput::Stop))).await.is_err() {
                        return Ended::Lost("the stream to the agent closed".into());
                    }
                }
            }
            _ = clients_rx.changed() => {
                let attached = *clients_rx.borrow_and_update();
                idle_deadline = (row.ondemand && attached == 0)
                    .then(|| Instant::now() + state.config.terminal_ondemand_idle);
            }
            () = sleep_until(idle_deadline), if !stopping => {
                stopping = true;
                info!(terminal = terminal.name, "on-demand terminal idle: stopping it");
                if send.send(Bytes::from(encode(&TerminalInput::Stop))).await.is_err() {
                    return Ended::Lost("the stream to the agent closed".into());
                }
            }
            () = terminal.deleted.cancelled(), if !stopping => {
                stopping = true;
                if send.send(Bytes::from(encode(&TerminalInput::Stop))).await.is_err() {
                    return Ended::Gone;
                }
            }
            () = state.shutdown.cancelled() => return Ended::Gone,
            () = sleep_until(flush_at) => {
                terminal.screen.catch_up();
                if let Some(recording) = current.recording.as_mut() {
                    recording.flush().await;
                }
                flush_at = terminal.screen.deferred().then(|| Instant::now() + FLUSH_INTERVAL);
            }
        }
    }
}

/// Output at `offset` of the run: what this controller has not seen goes to the screen and
/// clients; what the recording does not have goes to it.
async fn output(
    state: &AppState,
    terminal: &Terminal,
    current: &mut Copy,
    offset: u64,
    data: Vec<u8>,
    lines: &mut LineSplitter,
) {
    let end = offset + data.len() as u64;
    if end <= current.offset
        && current
            .recording
            .as_ref()
            .is_none_or(|r| end <= r.recorded_to)
    {
        return;
    }
    if offset > current.offset
        && let Some(recording) = current.recording.as_mut()
    {
        let lost = offset - current.offset;
        recording
            .marker(&format!(
                "{lost} bytes of output were lost while the node was unreachable"
            ))
            .await;
        recording.recorded_to = offset;
    }
    let data = Bytes::from(data);
    terminal.output(data.clone());
    // The logs, like the recording, take what they have not had (after a restart, the
    // output asked again for the screen is not logged twice).
    let logged_to = current
        .recording
        .as_ref()
        .map_or(current.offset, |r| r.recorded_to)
        .max(offset);
    let new = data.slice(((logged_to - offset) as usize).min(data.len())..);
    if let Some(complete) = lines.feed(&new) {
        log(state, terminal, Kind::Console, complete);
    }
    current.offset = end;
    if let Some(recording) = current.recording.as_mut() {
        let from = recording.recorded_to.max(offset);
        if from < end {
            let skip = (from - offset) as usize;
            recording.output(&data[skip..]).await;
        }
    }
}

/// The recording of this terminal left open by an earlier controller process, reopened.
async fn unfinished_recording(
    state: &AppState,
    terminal: &Terminal,
) -> Option<(RecordingRow, Recording)> {
    let name = terminal.name.clone();
    let rows = state
        .store
        .call(move |c| rows::recordings(c, Some(&name)))
        .await
        .ok()?;
    let row = rows.into_iter().rev().find(|r| r.ended_ms.is_none())?;
    let dir = terminal.recordings_dir();
    let id = row.id.clone();
    let reopened = tokio::task::spawn_blocking(move || Recording::reopen(&dir, &id))
        .await
        .ok()?;
    match reopened {
        Ok(recording) => Some((row, recording)),
        Err(e) => {
            warn!(terminal = terminal.name, recording = row.id, error = %e, "cannot reopen the recording");
            None
        }
    }
}

/// Makes `copy` the copy of run `info`: the same one goes on; another run (or none yet)
/// gets its recording, the one left unfinished if it is that run's.
async fn adopt(
    state: &AppState,
    terminal: &Terminal,
    copy: &mut Option<Copy>,
    info: &RunInfo,
    start: u64,
    unfinished: Option<(RecordingRow, Recording)>,
) {
    if copy.as_ref().is_some_and(|c| c.run == info.run) {
        return;
    }
    end_recording(state, terminal, copy).await;
    if let Some((row, recording)) = unfinished {
        if row.run == info.run {
            *copy = Some(Copy {
                run: info.run.clone(),
                offset: start,
                recording: Some(recording),
                row: Some(row),
            });
            return;
        }
        // That run is over: its recording ends.
        let (id, bytes) = (row.id.clone(), recording.output_bytes);
        let ended = crate::builds::now_ms();
        let _ = state
            .store
            .call(move |c| rows::end_recording(c, &id, ended, bytes))
            .await;
    }
    let now = crate::builds::now_ms();
    let id = format!("{now}-{}", &info.run[..info.run.len().min(8)]);
    let header = Header {
        size: info.size,
        timestamp: now / 1000,
        command: &info.command,
        title: &terminal.name,
    };
    let dir = terminal.recordings_dir();
    let recording = match Recording::create(&dir, &id, &header) {
        Ok(mut recording) => {
            recording.recorded_to = start;
            Some(recording)
        }
        Err(e) => {
            warn!(terminal = terminal.name, error = %e, "cannot create the recording; the terminal runs unrecorded");
            None
        }
    };
    let row = RecordingRow {
        id,
        terminal: terminal.name.clone(),
        run: info.run.clone(),
        started_ms: now,
        ended_ms: None,
        output_bytes: 0,
        width: info.size.cols,
        height: info.size.rows,
    };
    if recording.is_some() {
        let stored = row.clone();
        if let Err(e) = state
            .store
            .call(move |c| rows::insert_recording(c, &stored))
            .await
        {
            warn!(terminal = terminal.name, error = %e, "cannot record the recording");
        }
    }
    *copy = Some(Copy {
        run: info.run.clone(),
        offset: start,
        recording,
        row: Some(row),
    });
}

/// Writes out the recording, without ending it (this controller stops; the run goes on).
async fn finish_recording(copy: &mut Option<Copy>) {
    if let Some(recording) = copy.as_mut().and_then(|c| c.recording.take()) {
        recording.finish().await;
    }
}

/// Ends the run's recording (the program ended, or the terminal stopped): written out,
/// its end stored, and the terminal's old recordings pruned.
async fn end_recording(state: &AppState, terminal: &Terminal, copy: &mut Option<Copy>) {
    let Some(mut ended) = copy.take() else {
        return;
    };
    let Some(recording) = ended.recording.take() else {
        return;
    };
    let bytes = recording.output_bytes;
    recording.finish().await;
    if let Some(row) = ended.row {
        let now = crate::builds::now_ms();
        let id = row.id.clone();
        let _ = state
            .store
            .call(move |c| rows::end_recording(c, &id, now, bytes))
            .await;
    }
    prune(state, terminal).await;
}

/// Applies the terminal's retention: at most `keep` recordings, none older than
/// `keep-days` (ended ones only).
async fn prune(state: &AppState, terminal: &Terminal) {
    let (keep, days) = settings::retention(&terminal.settings());
    let name = terminal.name.clone();
    let Ok(rows) = state
        .store
        .call(move |c| rows::recordings(c, Some(&name)))
        .await
    else {
        return;
    };
    let now = crate::builds::now_ms();
    let ended: Vec<&RecordingRow> = rows.iter().filter(|r| r.ended_ms.is_some()).collect();
    let excess = rows.len().saturating_sub(keep as usize);
    let mut doomed: Vec<String> = Vec::new();
    for (i, row) in ended.iter().enumerate() {
        let too_old =
            days.is_some_and(|d| now - row.ended_ms.unwrap_or(now) > d as i64 * 86_400_000);
        if i < excess || too_old {
            doomed.push(row.id.clone());
        }
    }
    if doomed.is_empty() {
        return;
    }
    let dir = terminal.recordings_dir();
    let ids = doomed.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for id in ids {
            let _ = std::fs::remove_file(dir.join(format!("{id}.cast")));
            let _ = std::fs::remove_file(dir.join(format!("{id}.offset")));
        }
    })
    .await;
    let _ = state
        .store
        .call(move |c| rows::delete_recordings(c, &doomed))
        .await;
}
