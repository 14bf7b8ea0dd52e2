//! What `cli ssh-config` prints: a `Host` block per target for `~/.ssh/config`, and a
//! `known_hosts` line per node, in two sections headed by comment lines.
//!
//! ```text
//! # ~/.ssh/config
//! Host steward-linux-1
//!   HostName steward-linux-1
//!   User alice
//!   ProxyCommand /usr/local/bin/cli -s https://ci.example.com/ ssh-proxy linux-1
//!   HostKeyAlias steward-linux-1
//!   StrictHostKeyChecking yes
//!
//! # ~/.ssh/known_hosts
//! steward-linux-1 ssh-ed25519 AAAA…
//! ```
//!
//! Every name written is one [`super::target::sanitize`] made safe for these files.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::args::Sections;
use super::handoff::Handoff;
use super::host_keys::HostKey;
use super::quote;
use super::target::host_key_alias;

/// The heading of the `ssh_config` section.
pub const CONFIG_HEADING: &str = "# ~/.ssh/config";
/// The heading of the `known_hosts` section.
pub const KNOWN_HOSTS_HEADING: &str = "# ~/.ssh/known_hosts";

/// What goes into every block besides the target.
pub struct Rendering<'a> {
    pub sections: Sections,
    /// The ProxyCommand before `ssh-proxy TARGET`, and the notes on what it leaves out.
    pub handoff: &'a Handoff,
    /// The SSH user for node targets.
    pub node_user: &'a str,
}

/// The whole output for `keys`, in the order given.
pub fn render(keys: &[HostKey], rendering: &Rendering<'_>) -> String {
    let mut out = String::new();
    if rendering.sections.config() {
        out.push_str(CONFIG_HEADING);
        out.push('\n');
        for note in &rendering.handoff.notes {
            let _ = writeln!(out, "# Note: {note}");
        }
        let mut hosts = BTreeSet::new();
        for key in keys {
            let host = key.target.host_alias();
            if !hosts.insert(host.clone()) {
                // `web-3` the node and `web#3` the build share a name; ssh would only ever
                // use the first block.
                let _ = writeln!(
                    out,
                    "# {}: Host {host} is already used above; reach it with `cli ssh {}`",
                    quote::sh(&key.target.to_string()),
                    quote::sh(&key.target.to_string()),
                );
                continue;
            }
            let user = key
                .target
                .build_user()
                .unwrap_or_else(|| rendering.node_user.to_owned());
            let mut argv = rendering.handoff.argv.clone();
            argv.extend([super::args::PROXY.to_owned(), key.target.to_string()]);
            let alias = host_key_alias(&key.node);
            let _ = write!(
                out,
                "Host {host}\n  HostName {alias}\n  User {user}\n  ProxyCommand {}\n  \
                 HostKeyAlias {alias}\n  StrictHostKeyChecking yes\n",
                quote::proxy_command(&argv),
            );
        }
    }
    if rendering.sections.known_hosts() {
        if rendering.sections.config() {
            out.push('\n');
        }
        out.push_str(KNOWN_HOSTS_HEADING);
        out.push('\n');
        let mut nodes = BTreeSet::new();
        for key in keys {
            if !nodes.insert(key.node.as_str()) {
                continue;
            }
            let alias = host_key_alias(&key.node);
            match &key.key {
                Some(known) => {
                    let _ = writeln!(out, "{alias} {}", known.openssh);
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# {alias}: host key not known yet (the node's agent has not reported \
                         one); run ssh-config again once it has connected"
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::host_keys::tests::{KEY, fingerprint};
    use crate::ssh::host_keys::{HostKey, KnownKey};
    use crate::ssh::target::Target;

    fn keys() -> Vec<HostKey> {
        let known = Some(KnownKey {
            openssh: KEY.into(),
            fingerprint: fingerprint(),
        });
        vec![
            HostKey {
                target: Target::Node("linux-1".into()),
                node: "linux-1".into(),
                key: known.clone(),
            },
            HostKey {
                target: Target::Build {
                    job: "web app".into(),
                    number: 12,
                },
                node: "linux-1".into(),
                key: known,
            },
            HostKey {
                target: Target::Node("mac".into()),
                node: "mac".into(),
                key: None,
            },
        ]
    }

    fn handoff(notes: &[&str]) -> Handoff {
        Handoff {
            argv: [
                "/opt/steward tools/cli",
                "-s",
                "https://ci.example.com/my%20ci/",
            ]
            .map(str::to_owned)
            .to_vec(),
            env: vec![],
            notes: notes.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn both_sections() {
        let handoff = handoff(&[]);
        let out = render(
            &keys(),
            &Rendering {
                sections: Sections::Both,
                handoff: &handoff,
                node_user: "alice",
            },
        );
        insta::assert_snapshot!(out, @r"
        # ~/.ssh/config
        Host steward-linux-1
          HostName steward-linux-1
          User alice
          ProxyCommand '/opt/steward tools/cli' -s https://ci.example.com/my%%20ci/ ssh-proxy linux-1
          HostKeyAlias steward-linux-1
          StrictHostKeyChecking yes
        Host steward-web_app-77ddbc1a-12
          HostName steward-linux-1
          User web_app-77ddbc1a-12
          ProxyCommand '/opt/steward tools/cli' -s https://ci.example.com/my%%20ci/ ssh-proxy 'web app#12'
          HostKeyAlias steward-linux-1
          StrictHostKeyChecking yes
        Host steward-mac
          HostName steward-mac
          User alice
          ProxyCommand '/opt/steward tools/cli' -s https://ci.example.com/my%%20ci/ ssh-proxy mac
          HostKeyAlias steward-mac
          StrictHostKeyChecking yes

        # ~/.ssh/known_hosts
        steward-linux-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMruG0LBJs1RHtq52D91KpcX5NjOhDbE+vzrK9XXNDer
        # steward-mac: host key not known yet (the node's agent has not reported one); run ssh-config again once it has connected
        ");
    }

    #[test]
    fn one_section_each_and_notes() {
        let handoff = handoff(&[
            "credentials come from JENKINS_USER_ID and JENKINS_API_TOKEN where ssh runs",
        ]);
        let keys = &keys()[..1];
        let config = render(
            keys,
            &Rendering {
                sections: Sections::Config,
                handoff: &handoff,
                node_user: "steward",
            },
        );
        insta::assert_snapshot!(config, @r"
        # ~/.ssh/config
        # Note: credentials come from JENKINS_USER_ID and JENKINS_API_TOKEN where ssh runs
        Host steward-linux-1
          HostName steward-linux-1
          User steward
          ProxyCommand '/opt/steward tools/cli' -s https://ci.example.com/my%%20ci/ ssh-proxy linux-1
          HostKeyAlias steward-linux-1
          StrictHostKeyChecking yes
        ");
        let known = render(
            keys,
            &Rendering {
                sections: Sections::KnownHosts,
                handoff: &handoff,
                node_user: "steward",
            },
        );
        assert_eq!(
            known,
            format!("{KNOWN_HOSTS_HEADING}\nsteward-linux-1 {KEY}\n")
        );
    }

    #[test]
    fn a_build_named_like_a_node_does_not_shadow_it() {
        let handoff = handoff(&[]);
        let keys = vec![
            HostKey {
                target: Target::Node("web-3".into()),
                node: "web-3".into(),
                key: None,
            },
            HostKey {
                target: Target::Build {
                    job: "web".into(),
                    number: 3,
                },
                node: "web-3".into(),
                key: None,
            },
        ];
        let out = render(
            &keys,
            &Rendering {
                sections: Sections::Config,
                handoff: &handoff,
                node_user: "steward",
            },
        );
        assert_eq!(out.matches("Host steward-web-3\n").count(), 1, "{out}");
        assert!(
            out.contains("# 'web#3': Host steward-web-3 is already used above; reach it with `cli ssh 'web#3'`"),
            "{out}"
        );
    }
}
