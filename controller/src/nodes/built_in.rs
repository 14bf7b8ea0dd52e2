//! The built-in node: the controller itself, which runs no builds. Jenkins' node commands
//! name it by the empty name (or `(built-in)`, or the older `(master)`), and `offline-node ""`
//! marks it offline; the mark is kept here, in memory (it has no effect on builds, which
//! never run on it), and shows on `/computer/(built-in)/api/json`.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::nodes::OfflineMark;

/// Names that mean the built-in node on the CLI and the REST API.
pub const NAMES: &[&str] = &["", "(built-in)", "(master)", "Built-In Node"];

/// Whether `name` means the built-in node.
pub fn is_built_in(name: &str) -> bool {
    NAMES.contains(&name)
}

/// The built-in node's offline mark.
#[derive(Debug)]
pub struct BuiltIn {
    mark: watch::Sender<Option<OfflineMark>>,
}

impl Default for BuiltIn {
    fn default() -> Self {
        BuiltIn {
            mark: watch::Sender::new(None),
        }
    }
}

impl BuiltIn {
    /// `offline-node ""` (a mark) and `online-node ""` (none).
    pub fn set_offline(&self, mark: Option<OfflineMark>) {
        self.mark.send_replace(mark);
    }

    pub fn offline(&self) -> Option<OfflineMark> {
        self.mark.borrow().clone()
    }

    /// Waits until the built-in node is online (`want_online`) or offline; `false` when
    /// `cancel` comes first.
    pub async fn wait(&self, want_online: bool, cancel: &CancellationToken) -> bool {
        let mut changes = self.mark.subscribe();
        tokio::select! {
            r = changes.wait_for(|mark| mark.is_none() == want_online) => r.is_ok(),
            () = cancel.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marks_and_waits() {
        let built_in = BuiltIn::default();
        let cancel = CancellationToken::new();
        assert!(built_in.wait(true, &cancel).await, "online at first");
        let mark = OfflineMark {
            message: "maintenance".into(),
            by: "admin".into(),
        };
        let waiting = built_in.wait(false, &cancel);
        built_in.set_offline(Some(mark.clone()));
        assert!(waiting.await);
        assert_eq!(built_in.offline(), Some(mark));
        cancel.cancel();
        assert!(
            !built_in.wait(true, &cancel).await,
            "cancelled while offline"
        );
        assert!(is_built_in("") && is_built_in("(master)") && !is_built_in("n1"));
    }
}
