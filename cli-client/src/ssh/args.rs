//! The command lines of the four SSH commands, which the client runs itself instead of
//! sending them to the controller: `ssh-proxy`, `ssh-tunnel`, `ssh` and `ssh-config`.
//!
//! Options take one or two dashes, as the client's own do. `ssh` reads its options up to
//! `TARGET`, then the remote command: everything after `--`, or from the first word that
//! is not an option.

use super::target::{Target, TargetError};

/// What an SSH command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshCommand {
    /// `ssh-proxy TARGET`: ssh's ProxyCommand, stdin and stdout relayed to the target.
    Proxy { target: Target },
    /// `ssh-tunnel TARGET [-p PORT]`: a local port, each connection relayed to the target.
    Tunnel { target: Target, port: u16 },
    /// `ssh [-l USER] TARGET [-- CMD…]`: the system's ssh, reaching the target through
    /// `ssh-proxy`.
    Ssh {
        target: Target,
        user: Option<String>,
        command: Vec<String>,
    },
    /// `ssh-config [-config|-known-hosts] [TARGET…]`: `ssh_config` blocks and
    /// `known_hosts` lines; every node when no target is named.
    Config {
        sections: Sections,
        targets: Vec<Target>,
    },
}

/// Which parts `ssh-config` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sections {
    Both,
    /// `-config`: only the `Host` blocks.
    Config,
    /// `-known-hosts`: only the `known_hosts` lines.
    KnownHosts,
}

impl Sections {
    pub fn config(self) -> bool {
        self != Sections::KnownHosts
    }

    pub fn known_hosts(self) -> bool {
        self != Sections::Config
    }
}

/// A malformed SSH command line; `main` prints it with the command's [`usage`] and exits 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("{command}: unknown option {option:?}")]
    UnknownOption {
        command: &'static str,
        option: String,
    },
    #[error("{command}: option -{option} needs a value")]
    MissingValue {
        command: &'static str,
        option: &'static str,
    },
    #[error("{command}: no TARGET: give a node name, or JOB#N for build N of a job")]
    NoTarget { command: &'static str },
    #[error("{command}: unexpected argument {word:?} after TARGET")]
    Extra { command: &'static str, word: String },
    #[error("{command}: -p {value:?} is not a port number (0 to 65535; 0 lets the system choose)")]
    BadPort {
        command: &'static str,
        value: String,
    },
    #[error("{command}: {source}")]
    Target {
        command: &'static str,
        source: TargetError,
    },
}

impl ArgsError {
    /// The command the error is about.
    pub fn command(&self) -> &'static str {
        match self {
            ArgsError::UnknownOption { command, .. }
            | ArgsError::MissingValue { command, .. }
            | ArgsError::NoTarget { command }
            | ArgsError::Extra { command, .. }
            | ArgsError::BadPort { command, .. }
            | ArgsError::Target { command, .. } => command,
        }
    }
}

pub const PROXY: &str = "ssh-proxy";
pub const TUNNEL: &str = "ssh-tunnel";
pub const SSH: &str = "ssh";
pub const CONFIG: &str = "ssh-config";

/// The usage line of one SSH command.
pub fn usage(command: &str) -> &'static str {
    match command {
        PROXY => "Usage: cli [OPTIONS] ssh-proxy TARGET    (TARGET: NODE or JOB#N)",
        TUNNEL => "Usage: cli [OPTIONS] ssh-tunnel TARGET [-p PORT]",
        SSH => "Usage: cli [OPTIONS] ssh [-l USER] TARGET [-- COMMAND [ARGS...]]",
        _ => "Usage: cli [OPTIONS] ssh-config [-config|-known-hosts] [TARGET...]",
    }
}

impl SshCommand {
    /// Reads `args` (the command name and its words) when the command is one of the SSH
    /// commands; `None` for any other, which goes to the controller.
    pub fn parse(args: &[String]) -> Option<Result<SshCommand, ArgsError>> {
        let (name, words) = args.split_first()?;
        let parsed = match name.as_str() {
            PROXY => proxy(words),
            TUNNEL => tunnel(words),
            SSH => ssh(words),
            CONFIG => config(words),
            _ => return None,
        };
        Some(parsed)
    }
}

/// `-p` → `p`, `--known-hosts` → `known-hosts`; `None` for a word that is not an option
/// (`-` alone, `--` and anything without a leading dash).
fn option_name(word: &str) -> Option<&str> {
    let name = word.strip_prefix("--").or_else(|| word.strip_prefix('-'))?;
    (!name.is_empty()).then_some(name)
}

fn target(command: &'static str, word: &str) -> Result<Target, ArgsError> {
    Target::parse(word).map_err(|source| ArgsError::Target { command, source })
}

fn unknown(command: &'static str, word: &str) -> ArgsError {
    ArgsError::UnknownOption {
        command,
        option: word.to_owned(),
    }
}

fn proxy(words: &[String]) -> Result<SshCommand, ArgsError> {
    let mut found = None;
    for word in words {
        if option_name(word).is_some() {
            return Err(unknown(PROXY, word));
        }
        if found.is_some() {
            return Err(ArgsError::Extra {
                command: PROXY,
                word: word.clone(),
            });
        }
        found = Some(target(PROXY, word)?);
    }
    let target = found.ok_or(ArgsError::NoTarget { command: PROXY })?;
    Ok(SshCommand::Proxy { target })
}

fn tunnel(words: &[String]) -> Result<SshCommand, ArgsError> {
    let mut found = None;
    let mut port = 0;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        match option_name(word) {
            Some("p") => {
                let value = words.next().ok_or(ArgsError::MissingValue {
                    command: TUNNEL,
                    option: "p",
                })?;
                port = value.parse().map_err(|_| ArgsError::BadPort {
                    command: TUNNEL,
                    value: value.clone(),
                })?;
            }
            Some(_) => return Err(unknown(TUNNEL, word)),
            None if found.is_some() => {
                return Err(ArgsError::Extra {
                    command: TUNNEL,
                    word: word.clone(),
                });
            }
            None => found = Some(target(TUNNEL, word)?),
        }
    }
    let target = found.ok_or(ArgsError::NoTarget { command: TUNNEL })?;
    Ok(SshCommand::Tunnel { target, port })
}

fn ssh(words: &[String]) -> Result<SshCommand, ArgsError> {
    let mut found = None;
    let mut user = None;
    let mut command = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            command.extend(words.by_ref().cloned());
            break;
        }
        match option_name(word) {
            Some("l") => {
                let value = words.next().ok_or(ArgsError::MissingValue {
                    command: SSH,
                    option: "l",
                })?;
                user = Some(value.clone());
            }
            Some(_) => return Err(unknown(SSH, word)),
            None if found.is_some() => {
                command.push(word.clone());
                command.extend(words.by_ref().cloned());
                break;
            }
            None => found = Some(target(SSH, word)?),
        }
    }
    let target = found.ok_or(ArgsError::NoTarget { command: SSH })?;
    Ok(SshCommand::Ssh {
        target,
        user,
        command,
    })
}

fn config(words: &[String]) -> Result<SshCommand, ArgsError> {
    let (mut config, mut known_hosts) = (false, false);
    let mut targets = Vec::new();
    for word in words {
        match option_name(word) {
            Some("config") => config = true,
            Some("known-hosts") => known_hosts = true,
            Some(_) => return Err(unknown(CONFIG, word)),
            None => targets.push(target(CONFIG, word)?),
        }
    }
    let sections = match (config, known_hosts) {
        (true, false) => Sections::Config,
        (false, true) => Sections::KnownHosts,
        _ => Sections::Both,
    };
    Ok(SshCommand::Config { sections, targets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Option<Result<SshCommand, ArgsError>> {
        let args: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        SshCommand::parse(&args)
    }

    fn ok(words: &[&str]) -> SshCommand {
        parse(words).expect("an SSH command").expect("valid")
    }

    fn err(words: &[&str]) -> ArgsError {
        parse(words).expect("an SSH command").expect_err("invalid")
    }

    fn node(name: &str) -> Target {
        Target::Node(name.into())
    }

    #[test]
    fn other_commands_go_to_the_controller() {
        assert_eq!(parse(&["who-am-i"]), None);
        assert_eq!(parse(&["ssh-host-keys", "linux-1"]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn proxy_takes_one_target() {
        assert_eq!(
            ok(&["ssh-proxy", "web#3"]),
            SshCommand::Proxy {
                target: Target::Build {
                    job: "web".into(),
                    number: 3
                }
            }
        );
        assert_eq!(err(&["ssh-proxy"]), ArgsError::NoTarget { command: PROXY });
        assert_eq!(
            err(&["ssh-proxy", "a", "b"]),
            ArgsError::Extra {
                command: PROXY,
                word: "b".into()
            }
        );
        assert!(matches!(
            err(&["ssh-proxy", "web#0"]),
            ArgsError::Target { .. }
        ));
        assert_eq!(
            err(&["ssh-proxy", "-x", "a"]).to_string(),
            "ssh-proxy: unknown option \"-x\""
        );
    }

    #[test]
    fn tunnel_port_defaults_to_the_systems_choice() {
        assert_eq!(
            ok(&["ssh-tunnel", "linux-1", "-p", "2222"]),
            SshCommand::Tunnel {
                target: node("linux-1"),
                port: 2222
            }
        );
        assert_eq!(
            ok(&["ssh-tunnel", "--p", "0", "linux-1"]),
            SshCommand::Tunnel {
                target: node("linux-1"),
                port: 0
            }
        );
        assert_eq!(
            ok(&["ssh-tunnel", "linux-1"]),
            SshCommand::Tunnel {
                target: node("linux-1"),
                port: 0
            }
        );
        for bad in ["65536", "-1", "x", ""] {
            assert_eq!(
                err(&["ssh-tunnel", "n", "-p", bad]),
                ArgsError::BadPort {
                    command: TUNNEL,
                    value: bad.into()
                }
            );
        }
        assert_eq!(
            err(&["ssh-tunnel", "n", "-p"]),
            ArgsError::MissingValue {
                command: TUNNEL,
                option: "p"
            }
        );
    }

    #[test]
    fn ssh_reads_options_then_the_target_then_the_remote_command() {
        assert_eq!(
            ok(&["ssh", "linux-1"]),
            SshCommand::Ssh {
                target: node("linux-1"),
                user: None,
                command: vec![]
            }
        );
        let expected = SshCommand::Ssh {
            target: node("linux-1"),
            user: Some("ci".into()),
            command: vec!["sh".into(), "-c".into(), "exit 7".into()],
        };
        assert_eq!(
            ok(&["ssh", "-l", "ci", "linux-1", "--", "sh", "-c", "exit 7"]),
            expected
        );
        assert_eq!(
            ok(&["ssh", "linux-1", "--l", "ci", "sh", "-c", "exit 7"]),
            expected
        );
        // Once the command has started, its options are its own.
        assert_eq!(
            ok(&["ssh", "linux-1", "ls", "-l"]),
            SshCommand::Ssh {
                target: node("linux-1"),
                user: None,
                command: vec!["ls".into(), "-l".into()]
            }
        );
        assert_eq!(
            ok(&["ssh", "linux-1", "--", "-l"]),
            SshCommand::Ssh {
                target: node("linux-1"),
                user: None,
                command: vec!["-l".into()]
            }
        );
        assert_eq!(
            err(&["ssh", "--", "x"]),
            ArgsError::NoTarget { command: SSH }
        );
        assert_eq!(
            err(&["ssh", "-t", "n"]),
            ArgsError::UnknownOption {
                command: SSH,
                option: "-t".into()
            }
        );
    }

    #[test]
    fn config_sections_and_targets() {
        assert_eq!(
            ok(&["ssh-config"]),
            SshCommand::Config {
                sections: Sections::Both,
                targets: vec![]
            }
        );
        assert_eq!(
            ok(&["ssh-config", "-config", "a", "b#2"]),
            SshCommand::Config {
                sections: Sections::Config,
                targets: vec![
                    node("a"),
                    Target::Build {
                        job: "b".into(),
                        number: 2
                    }
                ]
            }
        );
        assert_eq!(
            ok(&["ssh-config", "--known-hosts"]),
            SshCommand::Config {
                sections: Sections::KnownHosts,
                targets: vec![]
            }
        );
        assert_eq!(
            ok(&["ssh-config", "-config", "-known-hosts"]),
            SshCommand::Config {
                sections: Sections::Both,
                targets: vec![]
            }
        );
        assert_eq!(err(&["ssh-config", "-x"]).command(), CONFIG);
    }
}
