//! What an audit entry holds: who ([`Actor`]), what ([`Action`]), on what (a target's name)
//! and the details, each bounded in size.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// The user the controller itself acts as (timers, polls, agents connecting), as Jenkins
/// names it.
pub const SYSTEM: &str = "SYSTEM";

/// Longest user, target or remote address kept, in bytes; longer ones are cut.
pub const MAX_FIELD: usize = 512;
/// Longest string kept inside the details, in bytes.
pub const MAX_DETAIL_STRING: usize = 1024;
/// Longest details kept, as JSON, in bytes: with [`MAX_FIELD`] it bounds an entry (about
/// 6 KiB), and so the queue's memory and the table's size.
pub const MAX_DETAILS: usize = 4096;

/// Who acts: a user, from an address when the action came over the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub remote: Option<IpAddr>,
}

impl Actor {
    pub fn new(user: &str, remote: Option<IpAddr>) -> Actor {
        Actor {
            user: user.to_owned(),
            // An IPv4 client of a dual-stack socket shows as `::ffff:a.b.c.d`: say `a.b.c.d`.
            remote: remote.map(|ip| ip.to_canonical()),
        }
    }

    /// The controller itself.
    pub fn system() -> Actor {
        Actor::new(SYSTEM, None)
    }
}

/// What was done. The names are the `action` column's values, `thing.verb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    JobCreate,
    JobUpdate,
    JobDelete,
    JobCopy,
    JobRename,
    /// The number a job's next build gets, set by hand.
    JobNextBuildNumber,
    JobEnable,
    JobDisable,
    /// A build asked for (queued), by whom, with its cause.
    BuildQueue,
    /// A build started on a node.
    BuildStart,
    BuildAbort,
    /// Build records deleted (`delete-builds`, a build's `doDelete`).
    BuildDelete,
    /// A build kept forever, or no longer.
    BuildKeep,
    /// A waiting build taken out of the queue by someone.
    QueueCancel,
    QuietDown,
    QuietDownCancel,
    AgentConnect,
    AgentDisconnect,
    NodeCreate,
    NodeUpdate,
    NodeDelete,
    NodeOffline,
    NodeOnline,
    NodeConnect,
    NodeDisconnect,
    /// An SSH connection forwarded to a node or build (before any key is offered).
    SshConnect,
    /// The agent's SSH server accepted a key: the session starts.
    SshStart,
    SshEnd,
    TerminalCreate,
    TerminalUpdate,
    TerminalDelete,
    TerminalEnable,
    TerminalDisable,
    /// A client attached to a terminal: its session starts.
    TerminalStart,
    TerminalEnd,
    BreakpointStart,
    BreakpointExtend,
    BreakpointEnd,
    PermissionGrant,
    PermissionRevoke,
    UserCreate,
    UserDelete,
    UserSetPassword,
    TokenCreate,
    TokenRevoke,
    SshKeyAdd,
    SshKeyRemove,
    CredentialCreate,
    CredentialUpdate,
    CredentialDelete,
    /// Entries the log could not take (its queue was full), counted.
    AuditDropped,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::JobCreate => "job.create",
            Action::JobUpdate => "job.update",
            Action::JobDelete => "job.delete",
            Action::JobCopy => "job.copy",
            Action::JobRename => "job.rename",
            Action::JobNextBuildNumber => "job.next-build-number",
            Action::JobEnable => "job.enable",
            Action::JobDisable => "job.disable",
            Action::BuildQueue => "build.queue",
            Action::BuildStart => "build.start",
            Action::BuildAbort => "build.abort",
            Action::BuildDelete => "build.delete",
            Action::BuildKeep => "build.keep",
            Action::QueueCancel => "queue.cancel",
            Action::QuietDown => "quiet-down",
            Action::QuietDownCancel => "quiet-down.cancel",
            Action::AgentConnect => "agent.connect",
            Action::AgentDisconnect => "agent.disconnect",
            Action::NodeCreate => "node.create",
            Action::NodeUpdate => "node.update",
            Action::NodeDelete => "node.delete",
            Action::NodeOffline => "node.offline",
            Action::NodeOnline => "node.online",
            Action::NodeConnect => "node.connect",
            Action::NodeDisconnect => "node.disconnect",
            Action::SshConnect => "ssh.connect",
            Action::SshStart => "ssh.start",
            Action::SshEnd => "ssh.end",
            Action::TerminalCreate => "terminal.create",
            Action::TerminalUpdate => "terminal.update",
            Action::TerminalDelete => "terminal.delete",
            Action::TerminalEnable => "terminal.enable",
            Action::TerminalDisable => "terminal.disable",
            Action::TerminalStart => "terminal.start",
            Action::TerminalEnd => "terminal.end",
            Action::BreakpointStart => "breakpoint.start",
            Action::BreakpointExtend => "breakpoint.extend",
            Action::BreakpointEnd => "breakpoint.end",
            Action::PermissionGrant => "permission.grant",
            Action::PermissionRevoke => "permission.revoke",
            Action::UserCreate => "user.create",
            Action::UserDelete => "user.delete",
            Action::UserSetPassword => "user.set-password",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::SshKeyAdd => "ssh-key.add",
            Action::SshKeyRemove => "ssh-key.remove",
            Action::CredentialCreate => "credential.create",
            Action::CredentialUpdate => "credential.update",
            Action::CredentialDelete => "credential.delete",
            Action::AuditDropped => "audit.dropped",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry on its way to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub time_ms: i64,
    pub user: String,
    pub action: &'static str,
    pub target: String,
    pub remote: Option<String>,
    /// A JSON object, at most [`MAX_DETAILS`] bytes.
    pub details: String,
}

impl NewEntry {
    /// The entry for `by` doing `action` on `target`, with `details` (a JSON object; any
    /// other value is kept under `"value"`), each part cut to its bound.
    pub fn new(time_ms: i64, by: &Actor, action: Action, target: &str, details: Value) -> Self {
        NewEntry {
            time_ms,
            user: clip(&by.user, MAX_FIELD).to_owned(),
            action: action.as_str(),
            target: clip(target, MAX_FIELD).to_owned(),
            remote: by.remote.map(|ip| ip.to_string()),
            details: details_text(details),
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn details_text(details: Value) -> String {
    let object = match details {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => Map::from_iter([("value".to_owned(), other)]),
    };
    let clipped = Value::Object(
        object
            .into_iter()
            .map(|(k, v)| (clip(&k, MAX_FIELD).to_owned(), clip_strings(v)))
            .collect(),
    );
    let text = clipped.to_string();
    if text.len() <= MAX_DETAILS {
        return text;
    }
    serde_json::json!({ "omitted": format!("details of {} bytes, longer than {MAX_DETAILS}", text.len()) })
        .to_string()
}

fn clip_strings(value: Value) -> Value {
    match value {
        Value::String(s) if s.len() > MAX_DETAIL_STRING => {
            Value::String(clip(&s, MAX_DETAIL_STRING).to_owned())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(clip_strings).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, clip_strings(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_bounded_and_addresses_canonical() {
        let long = "é".repeat(MAX_FIELD);
        let by = Actor::new(&long, Some("::ffff:10.1.2.3".parse().unwrap()));
        let entry = NewEntry::new(
            1,
            &by,
            Action::JobCreate,
            &long,
            json!({"a": "x".repeat(5000), "list": ["y".repeat(5000)]}),
        );
        assert!(entry.user.len() <= MAX_FIELD && entry.user.ends_with('é'));
        assert!(entry.target.len() <= MAX_FIELD);
        assert_eq!(entry.remote.as_deref(), Some("10.1.2.3"));
        assert!(
            entry.details.len() <= MAX_DETAILS,
            "{}",
            entry.details.len()
        );
        let many: Map<String, Value> = (0..100)
            .map(|i| (format!("k{i}"), json!("z".repeat(500))))
            .collect();
        let entry = NewEntry::new(1, &by, Action::JobCreate, "t", Value::Object(many));
        assert!(entry.details.len() <= MAX_DETAILS);
        assert!(entry.details.contains("omitted"), "{}", entry.details);
        assert_eq!(
            NewEntry::new(1, &by, Action::JobCreate, "t", Value::Null).details,
            "{}"
        );
    }
}
