//! `cli ssh [-l USER] TARGET [-- CMD…]`: the system's `ssh`, reaching the target through
//! this client as its ProxyCommand, with the node's host key pinned.
//!
//! The key comes from the controller (`ssh-host-keys`), is written to a temporary
//! `known_hosts` under the node's alias, and ssh is told to accept that key and no other.
//! ssh inherits the terminal, so an interactive session gets a PTY, and its exit status
//! (the remote command's) is ours.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitStatus;

use super::error::SshError;
use super::handoff::{self, Handoff};
use super::host_keys::{self, Fetched};
use super::quote;
use super::target::{Target, host_key_alias};
use crate::options::Config;
use crate::{Interrupts, exit};

/// The program run, found on `PATH`.
pub const SSH_PROGRAM: &str = "ssh";

/// What `cli ssh` runs: `ssh`'s arguments and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

/// The arguments of `ssh` for `target` on `node`, its key pinned in `known_hosts`.
pub fn invocation(
    target: &Target,
    node: &str,
    user: &str,
    command: &[String],
    handoff: &Handoff,
    known_hosts: &Path,
) -> Invocation {
    let mut proxy = handoff.argv.clone();
    proxy.extend([super::args::PROXY.to_owned(), target.to_string()]);
    // UserKnownHostsFile is a list of files split at blanks, with `%` tokens and `~`
    // expanded; double quotes keep a path with blanks one file.
    let known_hosts = quote::ssh_tokens(&known_hosts.to_string_lossy()).into_owned();
    let options = [
        format!("ProxyCommand={}", quote::proxy_command(&proxy)),
        format!("HostKeyAlias={}", host_key_alias(node)),
        "StrictHostKeyChecking=yes".to_owned(),
        format!("UserKnownHostsFile=\"{known_hosts}\""),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        // The pinned key is the controller's to change; ssh must not add others.
        "UpdateHostKeys=no".to_owned(),
    ];
    let mut args: Vec<OsString> = Vec::new();
    for option in options {
        args.push("-o".into());
        args.push(option.into());
    }
    args.extend(["-l".into(), user.into()]);
    // `--` ends ssh's options: nothing after it, host or command, is read as one.
    args.push("--".into());
    args.push(target.host_alias().into());
    if !command.is_empty() {
        // ssh joins its command words with blanks for the remote shell; quoting each word
        // keeps them the words they were here, as exec-on-node does.
        args.push(quote::sh_join(command).into());
    }
    Invocation {
        args,
        env: handoff.env.clone(),
    }
}

/// The user a node session logs in as when `-l` is not given: ours, when it is a plain
/// name, else `steward`.
pub fn default_user(env: &dyn crate::options::Env) -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| env.var(name))
        .filter(|user| {
            !user.starts_with('-')
                && user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
        .unwrap_or_else(|| "steward".to_owned())
}

/// Runs ssh to `target`; its exit status.
pub async fn run(
    config: &Config,
    target: &Target,
    user: Option<&str>,
    command: &[String],
    interrupts: &Interrupts,
) -> Result<i32, SshError> {
    let keys = match host_keys::fetch(config, std::slice::from_ref(target), interrupts).await? {
        Fetched::Keys(keys) => keys,
        Fetched::Failed(code) => return Ok(code),
    };
    let [found] = &keys[..] else {
        return Err(SshError::NoHostKey(target.to_string()));
    };
    let Some(key) = &found.key else {
        return Err(SshError::UnknownHostKey(found.node.clone()));
    };

    // Removed when dropped, after ssh has ended.
    let private = tempfile::Builder::new()
        .prefix("steward-ssh-")
        .tempdir()
        .map_err(SshError::TempFile)?;
    let known_hosts = private.path().join("known_hosts");
    let line = format!("{} {}\n", host_key_alias(&found.node), key.openssh);
    std::fs::write(&known_hosts, line).map_err(SshError::TempFile)?;
    let exe = std::env::current_exe().map_err(SshError::Spawn)?;
    let handoff = handoff::for_child(config, &exe, private.path()).map_err(SshError::TempFile)?;

    let user = match (user, target.build_user()) {
        (Some(user), _) => user.to_owned(),
        (None, Some(build)) => build,
        (None, None) => default_user(&crate::options::ProcessEnv),
    };
    let invocation = invocation(target, &found.node, &user, command, &handoff, &known_hosts);
    // ssh stays in our process group: in a terminal it must be in the foreground group to
    // read it, and a Ctrl-C there is for ssh (and the remote side) to act on. We only wait.
    let mut child = tokio::process::Command::new(SSH_PROGRAM)
        .args(&invocation.args)
        .envs(invocation.env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .spawn()
        .map_err(SshError::Spawn)?;
    let mut interrupts = interrupts.clone();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(SshError::Spawn)?,
            // The terminal sent it to ssh as well; ssh decides what it means.
            _ = interrupts.next() => {}
        }
    };
    drop(private);
    Ok(exit_code(status))
}

/// ssh's exit code, or 128 + the signal that ended it, as a shell reports it.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(exit::CONNECTION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn handoff() -> Handoff {
        Handoff {
            argv: ["/opt/cli", "-s", "http://ci/a%20b/"]
                .map(str::to_owned)
                .to_vec(),
            env: vec![("JENKINS_USER_ID".into(), "alice".into())],
            notes: vec![],
        }
    }

    fn strings(invocation: &Invocation) -> Vec<String> {
        invocation
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn ssh_gets_the_proxy_the_pinned_key_and_the_quoted_command() {
        let target = Target::Build {
            job: "web".into(),
            number: 12,
        };
        let invocation = invocation(
            &target,
            "linux-1",
            "web-12",
            &["sh".into(), "-c".into(), "exit 7".into()],
            &handoff(),
            Path::new("/tmp/s 1/known_hosts"),
        );
        assert_eq!(
            strings(&invocation),
            [
                "-o",
                "ProxyCommand=/opt/cli -s http://ci/a%%20b/ ssh-proxy 'web#12'",
                "-o",
                "HostKeyAlias=steward-linux-1",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "UserKnownHostsFile=\"/tmp/s 1/known_hosts\"",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "UpdateHostKeys=no",
                "-l",
                "web-12",
                "--",
                "steward-web-12",
                "sh -c 'exit 7'",
            ]
        );
        assert_eq!(invocation.env, handoff().env);
    }

    #[test]
    fn without_a_command_ssh_opens_a_shell() {
        let invocation = invocation(
            &Target::Node("linux-1".into()),
            "linux-1",
            "alice",
            &[],
            &handoff(),
            Path::new("/tmp/k"),
        );
        assert_eq!(
            strings(&invocation).last().map(String::as_str),
            Some("steward-linux-1")
        );
    }

    #[test]
    fn the_default_user_is_ours_when_plain() {
        let env = |user: &str| HashMap::from([("USER".to_owned(), user.to_owned())]);
        assert_eq!(default_user(&env("alice")), "alice");
        assert_eq!(default_user(&env("-oProxyCommand=x")), "steward");
        assert_eq!(default_user(&env("a b")), "steward");
        assert_eq!(default_user(&HashMap::new()), "steward");
    }
}
