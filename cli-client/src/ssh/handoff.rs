//! Handing this client's options on to the `cli … ssh-proxy TARGET` that ssh runs as its
//! ProxyCommand, without a token ever appearing on a command line (where `ps` shows it to
//! every user of the machine) or in a file the user did not make.
//!
//! - For `cli ssh`, which starts ssh itself: Basic credentials go through the child's
//!   environment (`JENKINS_USER_ID`, `JENKINS_API_TOKEN`), which ssh passes on to its
//!   ProxyCommand; a bearer token or a certificate given as `@FILE` is named again, and one
//!   given inline is written to a private temporary directory and named from there.
//! - For `cli ssh-config`, whose output outlives the run: only `@FILE`s are named; what was
//!   given otherwise is left to the environment ssh runs in, and a comment says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::Credentials;
use crate::options::{Config, ENV_API_TOKEN, ENV_USER_ID, Source};

/// The part of the ProxyCommand before `ssh-proxy TARGET`, and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The client's path and its options.
    pub argv: Vec<String>,
    /// Variables to set in ssh's environment, which its ProxyCommand inherits.
    pub env: Vec<(String, String)>,
    /// What could not be handed on (for `ssh-config`'s comments).
    pub notes: Vec<String>,
}

/// The options of [`Config`] that `ssh-proxy` needs, as this client was given them.
fn common(config: &Config, exe: &Path) -> Vec<String> {
    let mut argv = vec![
        exe.to_string_lossy().into_owned(),
        "-s".to_owned(),
        config.root.to_string(),
    ];
    if config.no_certificate_check {
        argv.push("-noCertificateCheck".to_owned());
    }
    if config.idle_timeout != Some(crate::DEFAULT_IDLE_TIMEOUT) {
        let secs = config.idle_timeout.map_or(0, |t: Duration| t.as_secs());
        argv.extend(["-idleTimeout".to_owned(), secs.to_string()]);
    }
    argv
}

fn at(path: &Path) -> String {
    format!("@{}", path.display())
}

/// For `cli ssh`: everything handed on, inline secrets through files in `private_dir`
/// (which the caller removes when ssh has ended).
pub fn for_child(config: &Config, exe: &Path, private_dir: &Path) -> std::io::Result<Handoff> {
    let mut handoff = Handoff {
        argv: common(config, exe),
        env: Vec::new(),
        notes: Vec::new(),
    };
    match &config.credentials {
        Some(Credentials::Basic { user, token }) => {
            handoff.env.push((ENV_USER_ID.to_owned(), user.clone()));
            handoff.env.push((ENV_API_TOKEN.to_owned(), token.clone()));
        }
        Some(Credentials::Bearer(token)) => {
            let path = match &config.given.credentials {
                Source::File(path) => path.clone(),
                _ => write_private(private_dir, "bearer", token.as_bytes())?,
            };
            handoff.argv.extend(["-bearer".to_owned(), at(&path)]);
        }
        None => {}
    }
    if let Some(pem) = &config.extra_ca_pem {
        let path = match &config.given.cert {
            Source::File(path) => path.clone(),
            _ => write_private(private_dir, "cert.pem", pem)?,
        };
        handoff.argv.extend(["-cert".to_owned(), at(&path)]);
    }
    Ok(handoff)
}

/// For `cli ssh-config`: only what can be written into a file for later, with notes on the
/// rest.
pub fn for_config(config: &Config, exe: &Path) -> Handoff {
    let mut handoff = Handoff {
        argv: common(config, exe),
        env: Vec::new(),
        notes: Vec::new(),
    };
    let option = match config.credentials {
        Some(Credentials::Basic { .. }) => "-auth",
        _ => "-bearer",
    };
    match (&config.credentials, &config.given.credentials) {
        (None, _) => {}
        (Some(_), Source::File(path)) => handoff.argv.extend([option.to_owned(), at(path)]),
        (Some(_), Source::Environment) => handoff.notes.push(format!(
            "credentials come from {ENV_USER_ID} and {ENV_API_TOKEN} where ssh runs"
        )),
        (Some(_), _) => handoff.notes.push(format!(
            "{option} was given inline and is not written here: set {ENV_USER_ID} and \
             {ENV_API_TOKEN} where ssh runs, or run ssh-config with {option} @FILE"
        )),
    }
    match &config.given.cert {
        Source::File(path) => handoff.argv.extend(["-cert".to_owned(), at(path)]),
        Source::Absent => {}
        _ => handoff.notes.push(
            "-cert was given inline and is not written here: run ssh-config with -cert @FILE"
                .to_owned(),
        ),
    }
    handoff
}

/// Writes `contents` to `dir/name`, readable by the owner only.
fn write_private(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(contents)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Invocation, parse};
    use std::collections::HashMap;

    fn config(words: &[&str], env: &[(&str, &str)]) -> Config {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match parse(words.iter().copied(), &env).unwrap() {
            Invocation::Run(config) => *config,
            Invocation::Version => unreachable!(),
        }
    }

    const EXE: &str = "/opt/steward/cli";

    #[test]
    fn basic_credentials_go_through_the_environment_never_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        for config in [
            config(
                &["-s", "http://ci/", "-auth", "alice:t0k3n", "ssh", "n"],
                &[],
            ),
            config(
                &["-s", "http://ci/", "ssh", "n"],
                &[(ENV_USER_ID, "alice"), (ENV_API_TOKEN, "t0k3n")],
            ),
        ] {
            let handoff = for_child(&config, Path::new(EXE), dir.path()).unwrap();
            assert_eq!(handoff.argv, [EXE, "-s", "http://ci/"]);
            assert_eq!(
                handoff.env,
                [
                    (ENV_USER_ID.to_owned(), "alice".to_owned()),
                    (ENV_API_TOKEN.to_owned(), "t0k3n".to_owned())
                ]
            );
        }
    }

    #[test]
    fn an_inline_bearer_token_and_certificate_are_passed_as_private_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(
            &[
                "-s",
                "https://ci/",
                "-bearer",
                "s3cr3t",
                "-noCertificateCheck",
                "ssh",
                "n",
            ],
            &[],
        );
        config.extra_ca_pem = Some(b"PEM".to_vec());
        config.given.cert = Source::Inline;
        config.idle_timeout = None;
        let handoff = for_child(&config, Path::new(EXE), dir.path()).unwrap();
        let bearer = dir.path().join("bearer");
        let cert = dir.path().join("cert.pem");
        assert_eq!(
            handoff.argv,
            [
                EXE.to_owned(),
                "-s".into(),
                "https://ci/".into(),
                "-noCertificateCheck".into(),
                "-idleTimeout".into(),
                "0".into(),
                "-bearer".into(),
                at(&bearer),
                "-cert".into(),
                at(&cert),
            ]
        );
        assert!(handoff.env.is_empty());
        assert_eq!(std::fs::read_to_string(&bearer).unwrap(), "s3cr3t");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&bearer).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!handoff.argv.iter().any(|a| a.contains("s3cr3t")));
    }

    #[test]
    fn files_are_named_again_with_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "alice:t0k3n\n").unwrap();
        let config = config(
            &["-s", "http://ci/", "-auth", &at(&token), "ssh-config"],
            &[],
        );
        let handoff = for_config(&config, Path::new(EXE));
        assert_eq!(
            handoff.argv,
            [EXE, "-s", "http://ci/", "-auth", &at(&token)]
        );
        assert!(handoff.notes.is_empty());
    }

    #[test]
    fn ssh_config_writes_no_inline_secret_and_says_so() {
        let config = config(
            &[
                "-s",
                "http://ci/",
                "-auth",
                "alice:t0k3n",
                "-idleTimeout",
                "300",
                "ssh-config",
            ],
            &[],
        );
        let handoff = for_config(&config, Path::new(EXE));
        assert_eq!(
            handoff.argv,
            [EXE, "-s", "http://ci/", "-idleTimeout", "300"]
        );
        assert_eq!(handoff.notes.len(), 1);
        assert!(
            handoff.notes[0].starts_with("-auth was given inline"),
            "{:?}",
            handoff.notes
        );
        assert!(!format!("{handoff:?}").contains("t0k3n"));
    }
}
