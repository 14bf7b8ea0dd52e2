//! Node configuration as XML (compat §7.4): what `create-node` reads and `get-node` prints.
//!
//! Only inbound agents (`hudson.slaves.JNLPLauncher`) can connect to Steward, but other
//! launchers are stored as written so a config copied from Jenkins is not silently changed.
//! Elements Steward does not know are kept and written back in place.

use crate::names::{self, NameError, NameKind};
use crate::xml::{self, Element, Node, XmlError};

/// The launcher class of an inbound (agent-dials-in) node.
pub const INBOUND_LAUNCHER: &str = "hudson.slaves.JNLPLauncher";
/// Default retention strategy class.
pub const RETENTION_ALWAYS: &str = "hudson.slaves.RetentionStrategy$Always";
/// The XML declaration `get-node` prints before the node XML.
pub const XML_DECLARATION: &str = "<?xml version=\"1.1\" encoding=\"UTF-8\"?>";
/// Longest node name accepted.
pub const MAX_NODE_NAME_LEN: usize = names::MAX_NAME_LEN;
/// Most executors a node may declare.
pub const MAX_EXECUTORS: u32 = 1024;

/// Whether a node takes any job or only jobs whose label expression names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeMode {
    Normal,
    Exclusive,
}

impl NodeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeMode::Normal => "NORMAL",
            NodeMode::Exclusive => "EXCLUSIVE",
        }
    }
}

/// A node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: String,
    pub description: String,
    /// The agent's work directory (`remoteFS`).
    pub remote_fs: String,
    pub num_executors: u32,
    pub mode: NodeMode,
    /// Space-separated labels, as written.
    pub labels: String,
    /// Launcher class; [`INBOUND_LAUNCHER`] for nodes that dial in.
    pub launcher: String,
    /// Launcher children Steward does not interpret (all of them for other launchers, e.g.
    /// an SSH launcher's `host`), kept verbatim.
    pub launcher_elements: Vec<Element>,
    pub web_socket: bool,
    pub work_dir_disabled: bool,
    pub internal_dir: String,
    pub fail_if_work_dir_is_missing: bool,
    pub retention_strategy: String,
    /// Top-level elements Steward does not interpret (e.g. `nodeProperties`), kept verbatim.
    pub other_elements: Vec<Element>,
}

impl NodeConfig {
    /// A new inbound WebSocket node with Jenkins' defaults.
    pub fn inbound(name: impl Into<String>) -> Self {
        NodeConfig {
            name: name.into(),
            description: String::new(),
            remote_fs: String::new(),
            num_executors: 1,
            mode: NodeMode::Normal,
            labels: String::new(),
            launcher: INBOUND_LAUNCHER.into(),
            launcher_elements: Vec::new(),
            web_socket: true,
            work_dir_disabled: false,
            internal_dir: "remoting".into(),
            fail_if_work_dir_is_missing: false,
            retention_strategy: RETENTION_ALWAYS.into(),
            other_elements: vec![Element::new("nodeProperties")],
        }
    }

    pub fn is_inbound(&self) -> bool {
        self.launcher == INBOUND_LAUNCHER
    }

    /// Labels as a list, without duplicates, in the order written.
    pub fn label_list(&self) -> Vec<&str> {
        let mut seen = Vec::new();
        for l in self.labels.split_whitespace() {
            if !seen.contains(&l) {
                seen.push(l);
            }
        }
        seen
    }

    /// Parses node XML (`<slave>`, or any root such as `<hudson.slaves.DumbSlave>`).
    pub fn from_xml(document: &str) -> Result<NodeConfig, XmlError> {
        let root = xml::parse_document(document)?;
        let mut node = NodeConfig::inbound(String::new());
        node.other_elements.clear();
        let mut saw_name = false;
        for child in root.child_elements() {
            let text = || child.text().trim().to_owned();
            match child.name.as_str() {
                "name" => {
                    node.name = text();
                    saw_name = true;
                }
                "description" => node.description = text(),
                "remoteFS" => node.remote_fs = text(),
                "numExecutors" => node.num_executors = parse_executors(&text())?,
                "mode" => {
                    node.mode = match text().as_str() {
                        "NORMAL" => NodeMode::Normal,
                        "EXCLUSIVE" => NodeMode::Exclusive,
                        other => return Err(bad("mode", other, "expected NORMAL or EXCLUSIVE")),
                    }
                }
                "label" => node.labels = text(),
                "retentionStrategy" => {
                    node.retention_strategy = child
                        .attribute("class")
                        .unwrap_or(RETENTION_ALWAYS)
                        .to_owned()
                }
                "launcher" => read_launcher(child, &mut node)?,
                _ => node.other_elements.push(child.clone()),
            }
        }
        if !saw_name {
            // `create-node NAME` may supply it; callers check for an empty name.
            node.name.clear();
        }
        Ok(node)
    }

    /// Writes the node XML without the declaration.
    pub fn to_xml(&self) -> String {
        let mut slave = Element::new("slave");
        let mut push = |e: Element| slave.children.push(Node::Element(e));
        push(Element::with_text("name", &self.name));
        push(Element::with_text("description", &self.description));
        push(Element::with_text("remoteFS", &self.remote_fs));
        push(Element::with_text(
            "numExecutors",
            self.num_executors.to_string(),
        ));
        push(Element::with_text("mode", self.mode.as_str()));
        let mut retention = Element::new("retentionStrategy");
        retention
            .attributes
            .push(("class".into(), self.retention_strategy.clone()));
        push(retention);
        let mut launcher = Element::new("launcher");
        launcher
            .attributes
            .push(("class".into(), self.launcher.clone()));
        if self.is_inbound() {
            let mut wd = Element::new("workDirSettings");
            wd.children = vec![
                Node::Element(Element::with_text(
                    "disabled",
                    self.work_dir_disabled.to_string(),
                )),
                Node::Element(Element::with_text("internalDir", &self.internal_dir)),
                Node::Element(Element::with_text(
                    "failIfWorkDirIsMissing",
                    self.fail_if_work_dir_is_missing.to_string(),
                )),
            ];
            launcher.children.push(Node::Element(wd));
            launcher.children.push(Node::Element(Element::with_text(
                "webSocket",
                self.web_socket.to_string(),
            )));
        }
        for other in &self.launcher_elements {
            launcher.children.push(Node::Element(other.clone()));
        }
        push(launcher);
        push(Element::with_text("label", &self.labels));
        for other in &self.other_elements {
            push(other.clone());
        }
        let mut out = String::new();
        slave.write(&mut out, 0);
        out
    }
}

fn read_launcher(launcher: &Element, node: &mut NodeConfig) -> Result<(), XmlError> {
    node.launcher = launcher
        .attribute("class")
        .unwrap_or(INBOUND_LAUNCHER)
        .to_owned();
    if let Some(ws) = launcher.child_text("webSocket") {
        node.web_socket = parse_bool("webSocket", &ws)?;
    } else if node.is_inbound() {
        // Jenkins' JNLPLauncher defaults to TCP; Steward only speaks WebSocket, so an inbound
        // node without the element is a WebSocket node.
        node.web_socket = true;
    }
    if let Some(wd) = launcher.child("workDirSettings") {
        if let Some(v) = wd.child_text("disabled") {
            node.work_dir_disabled = parse_bool("disabled", &v)?;
        }
        if let Some(v) = wd.child_text("internalDir") {
            node.internal_dir = v;
        }
        if let Some(v) = wd.child_text("failIfWorkDirIsMissing") {
            node.fail_if_work_dir_is_missing = parse_bool("failIfWorkDirIsMissing", &v)?;
        }
    }
    // `to_xml` writes the two settings above for inbound nodes only; everything else is
    // written back as it came.
    node.launcher_elements = launcher
        .child_elements()
        .filter(|e| {
            !(node.is_inbound() && matches!(e.name.as_str(), "workDirSettings" | "webSocket"))
        })
        .cloned()
        .collect();
    Ok(())
}

fn parse_executors(text: &str) -> Result<u32, XmlError> {
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_EXECUTORS).contains(&n) => Ok(n),
        _ => Err(bad(
            "numExecutors",
            text,
            &format!("expected a whole number from 1 to {MAX_EXECUTORS}"),
        )),
    }
}

fn parse_bool(element: &str, text: &str) -> Result<bool, XmlError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(bad(element, other, "expected true or false")),
    }
}

fn bad(element: &str, value: &str, reason: &str) -> XmlError {
    XmlError::bad_value(element, value, reason)
}

/// Why a node name is refused.
pub type NodeNameError = NameError;

/// Checks a node name, in the form it is stored in ([`names::canonical`]); see [`names`].
pub fn validate_node_name(name: &str) -> Result<(), NodeNameError> {
    names::validate(NameKind::Node, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JENKINS_NODE: &str = r#"<slave>
  <name>linux-1</name>
  <description>build box</description>
  <remoteFS>/home/ci/agent</remoteFS>
  <numExecutors>2</numExecutors>
  <mode>EXCLUSIVE</mode>
  <retentionStrategy class="hudson.slaves.RetentionStrategy$Always"/>
  <launcher class="hudson.slaves.JNLPLauncher">
    <workDirSettings><disabled>false</disabled><internalDir>remoting</internalDir>
      <failIfWorkDirIsMissing>false</failIfWorkDirIsMissing></workDirSettings>
    <webSocket>true</webSocket>
  </launcher>
  <label>linux x86_64</label>
  <nodeProperties><hudson.slaves.EnvironmentVariablesNodeProperty/></nodeProperties>
</slave>"#;

    #[test]
    fn reads_jenkins_node_xml() {
        let node = NodeConfig::from_xml(JENKINS_NODE).unwrap();
        assert_eq!(node.name, "linux-1");
        assert_eq!(node.description, "build box");
        assert_eq!(node.remote_fs, "/home/ci/agent");
        assert_eq!(node.num_executors, 2);
        assert_eq!(node.mode, NodeMode::Exclusive);
        assert_eq!(node.label_list(), ["linux", "x86_64"]);
        assert!(node.is_inbound() && node.web_socket);
        assert_eq!(node.other_elements.len(), 1);
    }

    #[test]
    fn xml_round_trips() {
        let node = NodeConfig::from_xml(JENKINS_NODE).unwrap();
        let again = NodeConfig::from_xml(&node.to_xml()).unwrap();
        assert_eq!(again, node);
        assert!(
            node.to_xml()
                .contains("<hudson.slaves.EnvironmentVariablesNodeProperty/>")
        );
    }

    #[test]
    fn other_launchers_keep_their_settings() {
        let xml = r#"<slave><name>ssh-1</name>
  <launcher class="hudson.plugins.sshslaves.SSHLauncher"><host>build.example.com</host><port>22</port></launcher>
</slave>"#;
        let node = NodeConfig::from_xml(xml).unwrap();
        let written = node.to_xml();
        assert!(
            written.contains("<host>build.example.com</host>"),
            "{written}"
        );
        assert_eq!(NodeConfig::from_xml(&written).unwrap(), node);
    }

    #[test]
    fn bad_values_are_named() {
        let xml = JENKINS_NODE.replace("<numExecutors>2", "<numExecutors>0");
        assert_eq!(
            NodeConfig::from_xml(&xml).unwrap_err().to_string(),
            "invalid value \"0\" in <numExecutors>: expected a whole number from 1 to 1024"
        );
    }

    #[test]
    fn node_names_follow_jenkins_rules() {
        for ok in ["linux-1", "build box", "ünï", "a.b"] {
            assert_eq!(validate_node_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a?b", "a:b", "x;y", "a\nb", " lead"] {
            assert!(validate_node_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn node_name_messages_are_jenkins_wording() {
        let message = |name: &str| validate_node_name(name).unwrap_err().to_string();
        assert_eq!(message(" "), "Node name is empty");
        assert_eq!(message(".."), "‘..’ is not allowed as a node name");
        assert_eq!(
            message("a/b"),
            "‘/’ is an unsafe character in node name ‘a/b’"
        );
        assert_eq!(
            message(&"x".repeat(256)),
            "Node name is longer than 255 characters"
        );
    }
}
