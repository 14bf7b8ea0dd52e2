//! Why a build was aborted, as [`super::RunningBuild::abort`] records it (`aborted_by`, kept
//! in the store so a restarted controller finishes the abort the same way): a user's name,
//! a build timeout's marker ([`super::run::TIMEOUT_ABORTED`]), or the deletion of the
//! build's node; the console line that says so after `Build was aborted`; and the abort of
//! every build of a node being deleted.

use std::time::Duration;

use super::run::{TIMEOUT_ABORTED, TIMEOUT_FAILED};
use super::{ABORT_KILL_GRACE, RunningBuild};
use crate::audit::Actor;
use crate::state::AppState;

/// Prefix of what a build is aborted as when its node is deleted under it; the user who
/// deleted the node, `:`, and the node's name follow. User names have no `:` (they are
/// letters, digits, `.`, `_`, `-` and `@`), so the first `:` after the prefix ends the user.
const NODE_DELETED: &str = "node-deleted:";

/// Longest a node's deletion waits for its running builds to end before it closes the
/// agent's connection: their steps are killed over that connection (SIGTERM, SIGKILL after
/// [`ABORT_KILL_GRACE`]), with a few seconds more for the build's end to be recorded and
/// its steps removed from the agent.
pub const NODE_DELETE_WAIT: Duration = Duration::from_secs(ABORT_KILL_GRACE.as_secs() + 5);

/// What a build is aborted as when `user` deletes its node `node`.
pub fn node_deleted(node: &str, user: &str) -> String {
    format!("{NODE_DELETED}{user}:{node}")
}

/// The node and the user, when `by` says the build's node was deleted.
fn deleted_node(by: &str) -> Option<(&str, &str)> {
    let (user, node) = by.strip_prefix(NODE_DELETED)?.split_once(':')?;
    Some((node, user))
}

/// The console line after `Build was aborted`: `Aborted by USER` as Jenkins writes it, or
/// `Node NODE was deleted by USER`; none for a build timeout, which said why itself.
pub fn console_line(by: &str) -> Option<String> {
    if by == TIMEOUT_ABORTED || by == TIMEOUT_FAILED {
        return None;
    }
    Some(match deleted_node(by) {
        Some((node, user)) => format!("Node {node} was deleted by {user}\n"),
        None => format!("Aborted by {by}\n"),
    })
}

/// Who aborted the build, in words that follow "aborted by": `admin`, or `admin, who
/// deleted node n3`.
pub fn who(by: &str) -> String {
    match deleted_node(by) {
        Some((node, user)) => format!("{user}, who deleted node {node}"),
        None => by.to_owned(),
    }
}

/// Asks `build` to stop on behalf of `by` (`stop-builds`, `POST …/stop`, an interrupted
/// `build -s`, a deleted job), and records it; only the first asker is named in the
/// console.
pub fn asked_by(state: &AppState, build: &RunningBuild, by: &Actor) {
    asked_as(state, build, by, &by.user, serde_json::Value::Null);
}

/// [`asked_by`] with `text` as the console's and the record's reason.
fn asked_as(
    state: &AppState,
    build: &RunningBuild,
    by: &Actor,
    text: &str,
    details: serde_json::Value,
) {
    let first = !build.abort_requested().is_cancelled();
    build.abort(text);
    if first {
        state.audit.record(
            by,
            crate::audit::Action::BuildAbort,
            &format!("{}#{}", build.row.job, build.row.number),
            details,
        );
    }
}

/// Aborts every build running on `node`, which `user` has just deleted, and waits for them
/// to end (at most [`NODE_DELETE_WAIT`]), so that their steps are killed and removed over
/// the agent's connection before the caller closes it. A build whose agent is not connected
/// ends at once; its step is killed if the agent comes back under a node of that name.
pub async fn for_deleted_node(state: &AppState, node: &str, by: &Actor) {
    let running = state.builds.running_on(node);
    if running.is_empty() {
        return;
    }
    let text = node_deleted(node, &by.user);
    for build in &running {
        tracing::info!(job = ?build.row.job, number = build.row.number, node = ?node, user = ?by.user, "aborting a build whose node was deleted");
        asked_as(
            state,
            build,
            by,
            &text,
            serde_json::json!({ "nodeDeleted": node }),
        );
    }
    let ended = async {
        for build in &running {
            build.ended().cancelled().await;
        }
    };
    if tokio::time::timeout(NODE_DELETE_WAIT, ended).await.is_err() {
        tracing::warn!(node = ?node, wait = ?NODE_DELETE_WAIT, "builds of a deleted node did not end in time; closing its agent's connection anyway");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_says_who_aborted_and_why() {
        assert_eq!(console_line("alice").as_deref(), Some("Aborted by alice\n"));
        assert_eq!(console_line(TIMEOUT_ABORTED), None);
        assert_eq!(console_line(TIMEOUT_FAILED), None);
        let by = node_deleted("n3", "admin");
        assert_eq!(
            console_line(&by).as_deref(),
            Some("Node n3 was deleted by admin\n")
        );
        assert_eq!(who(&by), "admin, who deleted node n3");
        assert_eq!(who("alice"), "alice");
    }

    #[test]
    fn a_node_name_with_colons_survives() {
        let by = node_deleted("a:b:c", "ops@example.com");
        assert_eq!(
            console_line(&by).as_deref(),
            Some("Node a:b:c was deleted by ops@example.com\n")
        );
    }
}
