//! The `breakpoint` command run on an agent, relayed to the controller as an agent call:
//! checked against the build's node and key, then answered from the build's breakpoint
//! (a `wait` starts one, or joins the one it started before its agent reconnected).

use std::time::Duration;

use steward_protocol::breakpoint::{BreakpointCall, BreakpointCommand, BreakpointReply};
use steward_protocol::shown::Shown;

use super::{DEFAULT_EXTENSION, Settings, extend, hold, resume, stored};
use crate::audit::Actor;
use crate::state::AppState;

/// The `breakpoint` command, relayed from the agent of `node`.
pub async fn relayed(state: &AppState, node: &str, call: BreakpointCall) -> BreakpointReply {
    let refused = |message: String| BreakpointReply::Refused { message };
    let Some(build) = state
        .builds
        .running_build(&call.build.job, call.build.number)
    else {
        return refused(format!(
            "build {}#{} is not running",
            Shown(&call.build.job),
            call.build.number
        ));
    };
    if build.row.node != node {
        return refused(format!(
            "build {}#{} does not run on this node",
            Shown(&call.build.job),
            call.build.number
        ));
    }
    if !state.secret_key.is_build_key(build.row.id, &call.build_key) {
        return refused(format!(
            "this command does not run in build {}#{} (its STEWARD_BUILD_KEY is missing or wrong): only the build's steps and SSH sessions into it may act on its breakpoint",
            Shown(&call.build.job),
            call.build.number
        ));
    }
    let connection = call
        .connection
        .and_then(|id| state.ssh.get(id))
        .filter(|c| c.build == Some(build.row.id));
    let who = match &connection {
        Some(connection) => match &connection.login {
            Some(login) => format!(
                "{} (SSH user {})",
                Shown(&connection.user),
                Shown(&login.ssh_user)
            ),
            None => Shown(&connection.user).to_string(),
        },
        None => "a command in the build".to_owned(),
    };
    // The user whose SSH session ran the command, from where; else the build's steps.
    let actor = match &connection {
        Some(connection) => Actor::new(&connection.user, connection.ip()),
        None => Actor::system(),
    };
    let held = state.breakpoints.of_build(build.row.id);
    match (call.command, held) {
        (BreakpointCommand::Wait { for_ms, token }, held) => {
            let held = match held {
                Some(held) => held,
                None => {
                    let config = steward_protocol::job_xml::JobConfig::from_stored_xml(
                        &build.row.config_xml,
                    )
                    .ok();
                    let mut settings = Settings::of_job(
                        config.as_ref().and_then(|c| c.breakpoint()),
                        "a build step ran `breakpoint wait`",
                    );
                    if let Some(for_ms) = for_ms {
                        settings.duration =
                            Duration::from_millis(for_ms).min(settings.max_duration);
                    }
                    // The same wait asked again (its agent reconnected): it joins the
                    // breakpoint it started, or learns how that ended.
                    let mine = stored(state, build.row.id)
                        .await
                        .filter(|row| row.wait_token.as_deref() == Some(token.as_str()));
                    if let Some(how) = mine.as_ref().and_then(|row| row.ended.clone()) {
                        return BreakpointReply::Ended { how };
                    }
                    hold(state, &build, &settings, mine, Some(token)).await
                }
            };
            BreakpointReply::Ended {
                how: held.ended().await,
            }
        }
        (_, None) => refused(format!(
            "build {}#{} is not held at a breakpoint",
            Shown(&build.row.job),
            build.row.number
        )),
        (BreakpointCommand::Status, Some(held)) => BreakpointReply::Status(held.status(state)),
        (BreakpointCommand::Extend { by_ms }, Some(held)) => {
            let by = by_ms.map_or(DEFAULT_EXTENSION, Duration::from_millis);
            extend(state, &held, by, &who, &actor);
            BreakpointReply::Status(held.status(state))
        }
        (BreakpointCommand::Resume, Some(held)) => {
            resume(&held, &who, "breakpoint resume");
            BreakpointReply::Resumed
        }
    }
}
