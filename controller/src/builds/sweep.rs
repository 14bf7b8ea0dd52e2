//! Steps that ended builds left on their agents. A build aborted while its agent was away,
//! or failed because the agent did not come back within the grace period, ends without its
//! step being killed or removed: nothing could reach the agent. Whenever an agent connects,
//! its steps are listed, and those of builds that have ended (or whose job was deleted) are
//! killed, as Jenkins kills what an ended build left running, and removed.

use std::collections::HashMap;

use steward_channel::Channel;
use steward_channel::steps::{self, Tail};
use steward_protocol::steps::{StepEvent, StepState};
use tokio::task::JoinSet;

use super::ABORT_KILL_GRACE;
use super::run::build_of_step;
use crate::state::AppState;
use crate::store::builds as records;

pub(super) async fn run(state: AppState) {
    let mut changes = state.agents.subscribe();
    // The connection whose steps were swept, by node.
    let mut swept: HashMap<String, u64> = HashMap::new();
    let mut sweeps = JoinSet::new();
    loop {
        changes.borrow_and_update();
        while sweeps.try_join_next().is_some() {}
        match crate::nodes::list(&state).await {
            Ok(nodes) => {
                let mut live = HashMap::new();
                for record in nodes.iter() {
                    let name = &record.config.name;
                    let (Some(agent), Some(channel)) =
                        (state.agents.live(name), state.agents.channel(name))
                    else {
                        continue;
                    };
                    if channel.is_closed() {
                        continue;
                    }
                    if swept.get(name) != Some(&agent.connection_id) {
                        sweeps.spawn(sweep(state.clone(), name.clone(), channel));
                    }
                    live.insert(name.clone(), agent.connection_id);
                }
                swept = live;
            }
            Err(e) => tracing::error!(error = %e, "cannot read the nodes to sweep their steps"),
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// Kills and removes the steps of ended builds on `node`.
async fn sweep(state: AppState, node: String, channel: Channel) {
    let listed = match steps::list(&channel).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::debug!(node = %node, error = %e, "cannot list the agent's steps");
            return;
        }
    };
    for step in listed {
        let Some(build_id) = build_of_step(&step.id) else {
            continue;
        };
        match state
            .store
            .call(move |c| records::has_ended(c, build_id))
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(node = %node, error = %e, "cannot read build records to sweep steps");
                return;
            }
        }
        if let StepState::Running { pgid } = step.state {
            tracing::info!(node = %node, step = %step.id, pgid, "killing the step of an ended build");
            if let Err(e) = steps::kill(&channel, &step.id, ABORT_KILL_GRACE).await {
                tracing::warn!(node = %node, step = %step.id, error = %e, "cannot kill the step of an ended build");
                continue;
            }
            if !ended(&channel, &step.id, step.log_len).await {
                continue;
            }
        }
        if let Err(e) = steps::remove(&channel, &step.id).await {
            tracing::debug!(node = %node, step = %step.id, error = %e, "cannot remove the step of an ended build");
        }
    }
}

/// Waits until step `id` has ended, reading past its log from `offset`; `false` when that
/// cannot be known (the connection went).
async fn ended(channel: &Channel, id: &str, offset: u64) -> bool {
    let Ok(mut tail) = Tail::open(channel, id, offset).await else {
        return false;
    };
    while let Some(event) = tail.next().await {
        match event {
            Ok(StepEvent::Ended(_)) => return true,
            Ok(StepEvent::Log(_)) => {}
            Err(_) => return false,
        }
    }
    false
}
