//! The client's command line (compat §7.1), parsed left to right by hand.
//!
//! Client options come first; the first word that is not an option is the command, and every
//! word after it belongs to the command and is sent verbatim as an `ARG` frame, even when it
//! starts with `-` (`cli build job -s -v` passes `-s -v` to `build`). A generic argument parser
//! would try to interpret those, hence the small loop here.
//!
//! The environment is read through [`Env`] so tests inject a map instead of mutating the
//! process environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::auth::Credentials;

/// Controller root URL when `-s` is not given.
pub const ENV_URL: &str = "JENKINS_URL";
/// User id for Basic auth when neither `-auth` nor `-bearer` is given.
pub const ENV_USER_ID: &str = "JENKINS_USER_ID";
/// API token going with [`ENV_USER_ID`].
pub const ENV_API_TOKEN: &str = "JENKINS_API_TOKEN";
/// The command run when the command line names none, like `jenkins-cli.jar`.
pub const DEFAULT_COMMAND: &str = "help";
/// Locale sent when the environment names none we can use; what a JVM reports by default.
pub const DEFAULT_LOCALE: &str = "en_US";

/// Printed to stderr on a usage error.
pub const USAGE: &str = "\
Usage: cli [-s URL] [-webSocket|-http] [-auth USER:TOKEN|@FILE] [-bearer TOKEN|@FILE]
           [-cert PEM|@FILE] [-noCertificateCheck] [-idleTimeout SECONDS] [-version]
           COMMAND [ARGS...]
Options:
  -s URL              controller root URL (default: $JENKINS_URL)
  -webSocket          talk to /cli/ws over WebSocket (default; falls back to -http
                      when the controller or a proxy does not offer it)
  -http               talk full-duplex HTTP to /cli?remoting=false
  -auth USER:TOKEN    HTTP Basic credentials; @FILE reads them from FILE
                      (default: $JENKINS_USER_ID and $JENKINS_API_TOKEN)
  -bearer TOKEN       bearer token; @FILE reads it from FILE
  -cert PEM           also trust this certificate: the server's own, or its CA;
                      @FILE reads it from FILE (also: $SSL_CERT_FILE, $SSL_CERT_DIR)
  -noCertificateCheck trust any TLS certificate (insecure)
  -idleTimeout SECONDS give up when nothing has come from the controller for this
                      long (default 60; 0 waits for ever); a quiet command is kept
                      alive by the controller's keepalives
  -version            print the client version and exit
Options take one or two dashes. Everything after COMMAND is passed to the command as is.
Run 'cli help' for the list of commands. The client runs these SSH commands itself
(TARGET: NODE or JOB#N):
  ssh [-l USER] TARGET [-- CMD...]   the system's ssh, with the node's host key pinned
  ssh-proxy TARGET                   ssh's ProxyCommand: stdin and stdout to the target
  ssh-tunnel TARGET [-p PORT]        a local port for SSH clients to the target
  ssh-config [-config|-known-hosts] [TARGET...]
                                     ~/.ssh/config blocks and known_hosts lines";

/// How to reach `/cli`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `GET /cli/ws` (compat §4), falling back to [`Mode::Http`] when refused with 404 etc.
    WebSocket,
    /// `POST /cli?remoting=false` (compat §5).
    Http,
}

/// Everything a CLI run needs, resolved from the command line and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Controller root URL, always ending in `/`.
    pub root: Url,
    pub mode: Mode,
    pub credentials: Option<Credentials>,
    /// `-cert`: PEM certificates to trust besides the platform's roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    pub no_certificate_check: bool,
    /// The command name followed by its arguments, each one `ARG` frame.
    pub args: Vec<String>,
    /// Sent in the `LOCALE` frame, e.g. `en_US`.
    pub locale: String,
    /// Silence from the controller after which the client gives up; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// How the options above were given, for the SSH commands, which hand them on to the
    /// `cli` they run as ssh's ProxyCommand.
    pub given: Given,
}

/// Where an option's value came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    Absent,
    /// `JENKINS_USER_ID` and `JENKINS_API_TOKEN`.
    Environment,
    /// On the command line itself (`-auth USER:TOKEN`, `-cert` with the PEM text).
    Inline,
    /// `@FILE`; the path made absolute, so it still names the file from another directory.
    File(PathBuf),
}

/// How the options a ProxyCommand needs were given: a file can be named again, a token
/// given inline must not be written where others read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    /// `-auth` or `-bearer` (which one, [`Config::credentials`] says), or the environment.
    pub credentials: Source,
    /// `-cert`.
    pub cert: Source,
}

/// The shortest `-idleTimeout`: the controller's full-duplex HTTP keepalive comes every
/// 15 s, and a timeout at or under it would end quiet commands.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `-version`: print the client version and exit 0.
    Version,
    /// Run a command on the controller.
    Run(Box<Config>),
}

/// A command line the client cannot run; `main` prints it with [`USAGE`] and exits with
/// [`UsageError::exit_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error("option -{0} needs a value")]
    MissingValue(&'static str),
    #[error("-webSocket and -http cannot be combined")]
    ModeClash,
    #[error("-auth and -bearer cannot be combined")]
    AuthAndBearer,
    #[error("-auth expects USER:TOKEN")]
    MalformedAuth,
    #[error("cannot read {}: {reason}", path.display())]
    ReadFile { path: PathBuf, reason: String },
    /// A `-cert` value without a usable certificate; the text says what was meant.
    #[error("{0}")]
    Certificate(String),
    #[error("no controller URL: give -s URL or set {ENV_URL}")]
    NoUrl,
    #[error("{url:?} is not an http:// or https:// URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{ENV_USER_ID} and {ENV_API_TOKEN} must be set together")]
    HalfEnvCredentials,
    #[error("command-line argument {0:?} is not valid UTF-8")]
    NotUnicode(String),
    #[error(
        "-idleTimeout {0:?}: give a number of seconds of at least {min} (or 0 to wait for ever)",
        min = MIN_IDLE_TIMEOUT.as_secs()
    )]
    BadIdleTimeout(String),
}

impl UsageError {
    /// An unknown option exits 2, as jenkins-cli.jar's option parser does; every other usage
    /// error is 255 (compat §7.1: "255 on connection and usage errors").
    pub fn exit_code(&self) -> i32 {
        match self {
            UsageError::UnknownOption(_) => crate::error::exit::USAGE,
            _ => crate::error::exit::CONNECTION,
        }
    }

    /// Whether the usage goes after the message: for a command line the client cannot
    /// read, not for a file or certificate it names that is missing or unusable, which the
    /// one line says all about.
    pub fn shows_usage(&self) -> bool {
        !matches!(
            self,
            UsageError::ReadFile { .. } | UsageError::Certificate(_)
        )
    }
}

/// Read access to environment variables.
pub trait Env {
    /// The variable's value; unset, empty or whitespace-only count as absent.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// Parses the words after the program name.
pub fn parse<I, S>(words: I, env: &dyn Env) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut words = words.into_iter().map(|w| {
        w.into()
            .into_string()
            .map_err(|w| UsageError::NotUnicode(w.to_string_lossy().into_owned()))
    });
    let mut url = None;
    let mut mode = None;
    let mut auth = None;
    let mut bearer = None;
    let mut cert = None;
    let mut no_certificate_check = false;
    let mut idle_timeout = Some(crate::DEFAULT_IDLE_TIMEOUT);
    let mut args = Vec::new();

    while let Some(word) = words.next() {
        let word = word?;
        let Some(name) = option_name(&word) else {
            args.push(word);
            break;
        };
        let mut value =
            |option: &'static str| words.next().ok_or(UsageError::MissingValue(option))?;
        match name {
            "s" => url = Some(value("s")?),
            "webSocket" => set_mode(&mut mode, Mode::WebSocket)?,
            "http" => set_mode(&mut mode, Mode::Http)?,
            "auth" => auth = Some(value("auth")?),
            "bearer" => bearer = Some(value("bearer")?),
            "cert" => cert = Some(value("cert")?),
            "noCertificateCheck" => no_certificate_check = true,
            "idleTimeout" => idle_timeout = parse_idle_timeout(&value("idleTimeout")?)?,
            // Like jenkins-cli.jar: answered at once, whatever else the line holds.
            "version" => return Ok(Invocation::Version),
            _ => return Err(UsageError::UnknownOption(word)),
        }
    }
    for word in words {
        args.push(word?);
    }
    if args.is_empty() {
        args.push(DEFAULT_COMMAND.to_owned());
    }

    let credentials_source = match (&auth, &bearer) {
        (Some(value), _) | (_, Some(value)) => source_of(value),
        (None, None) => Source::Environment,
    };
    let credentials = match (auth, bearer) {
        (Some(_), Some(_)) => return Err(UsageError::AuthAndBearer),
        (Some(auth), None) => Some(
            Credentials::basic_from_pair(&value_or_file(&auth)?)
                .ok_or(UsageError::MalformedAuth)?,
        ),
        (None, Some(bearer)) => Some(Credentials::Bearer(value_or_file(&bearer)?)),
        (None, None) => match (env.var(ENV_USER_ID), env.var(ENV_API_TOKEN)) {
            (Some(user), Some(token)) => Some(Credentials::Basic { user, token }),
            (None, None) => None,
            _ => return Err(UsageError::HalfEnvCredentials),
        },
    };
    let given = Given {
        credentials: if credentials.is_some() {
            credentials_source
        } else {
            Source::Absent
        },
        cert: cert.as_deref().map_or(Source::Absent, source_of),
    };
    // Read like the agent's -cert: the whole @FILE, not its first line.
    let extra_ca_pem = cert
        .map(|value| steward_transport::read_cert_option(&value))
        .transpose()
        .map_err(|e| UsageError::Certificate(e.to_string()))?;
    let url = url.or_else(|| env.var(ENV_URL)).ok_or(UsageError::NoUrl)?;

    Ok(Invocation::Run(Box::new(Config {
        root: root_url(&url)?,
        mode: mode.unwrap_or(Mode::WebSocket),
        credentials,
        extra_ca_pem,
        no_certificate_check,
        args,
        locale: locale_from_env(env),
        idle_timeout,
        given,
    })))
}

/// `-idleTimeout SECONDS`: 0 turns it off; otherwise at least [`MIN_IDLE_TIMEOUT`].
fn parse_idle_timeout(text: &str) -> Result<Option<Duration>, UsageError> {
    match text.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(secs) if secs >= MIN_IDLE_TIMEOUT.as_secs() => Ok(Some(Duration::from_secs(secs))),
        _ => Err(UsageError::BadIdleTimeout(text.to_owned())),
    }
}

/// `-s` → `s`, `--http` → `http`; `None` for a word that is not an option.
fn option_name(word: &str) -> Option<&str> {
    word.strip_prefix("--").or_else(|| word.strip_prefix('-'))
}

fn set_mode(current: &mut Option<Mode>, wanted: Mode) -> Result<(), UsageError> {
    match current {
        Some(mode) if *mode != wanted => Err(UsageError::ModeClash),
        _ => {
            *current = Some(wanted);
            Ok(())
        }
    }
}

/// Where a value that may be `@FILE` came from.
fn source_of(value: &str) -> Source {
    match value.strip_prefix('@') {
        Some(path) => Source::File(std::path::absolute(path).unwrap_or_else(|_| path.into())),
        None => Source::Inline,
    }
}

/// `@FILE` → the file's contents without the trailing newline; anything else as given.
fn value_or_file(value: &str) -> Result<String, UsageError> {
    let Some(path) = value.strip_prefix('@') else {
        return Ok(value.to_owned());
    };
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path).map_err(|e| UsageError::ReadFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Parses the root URL and makes sure it ends in `/`, so that `cli/ws` and
/// `cli?remoting=false` resolve under a path prefix such as `/jenkins/`.
fn root_url(text: &str) -> Result<Url, UsageError> {
    let bad = |reason: String| UsageError::BadUrl {
        url: text.to_owned(),
        reason,
    };
    let mut url = Url::parse(text).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("unsupported scheme {:?}", url.scheme())));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The POSIX locale (`LC_ALL`, `LC_MESSAGES`, `LANG`) as Java writes it: `de_DE.UTF-8@euro`
/// → `de_DE`; `C`, `POSIX` or nothing usable → [`DEFAULT_LOCALE`].
fn locale_from_env(env: &dyn Env) -> String {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|name| env.var(name))
        .map(|value| {
            value
                .split(['.', '@'])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|locale| {
            !matches!(locale.as_str(), "" | "C" | "POSIX")
                && locale
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .unwrap_or_else(|| DEFAULT_LOCALE.to_owned())
}

#[cfg(test)]
mod tests {

    #[test]
    fn unknown_options_exit_2_other_usage_errors_255() {
        assert_eq!(UsageError::UnknownOption("-x".into()).exit_code(), 2);
        assert_eq!(UsageError::NoUrl.exit_code(), 255);
        assert_eq!(UsageError::HalfEnvCredentials.exit_code(), 255);
        assert!(UsageError::NoUrl.shows_usage());
        assert!(UsageError::UnknownOption("-x".into()).shows_usage());
        let unreadable = UsageError::ReadFile {
            path: "nofile".into(),
            reason: "No such file or directory (os error 2)".into(),
        };
        assert!(!unreadable.shows_usage());
        assert!(!UsageError::Certificate("no certificate".into()).shows_usage());
    }
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(words: &[&str], env: &HashMap<String, String>) -> Result<Config, UsageError> {
        match parse(words.iter().copied(), env)? {
            Invocation::Run(config) => Ok(*config),
            Invocation::Version => panic!("unexpected -version"),
        }
    }

    /// A self-signed certificate made with `openssl req -x509`; only its form matters here.
    const CERT_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBhjCCAS2gAwIBAgIUf4wxXj9lMb6bSqJL+jIxXiO0x48wCgYIKoZIzj0EAwIw\n\
GTEXMBUGA1UEAwwOY2kuZXhhbXBsZS5jb20wHhcNMjYxMjA3MDUyODMxWhcNMjYx\n\
MjA4MDUyODMxWjAZMRcwFQYDVQQDDA5jaS5leGFtcGxlLmNvbTBZMBMGByqGSM49\n\
AgEGCCqGSM49AwEHA0IABNQOtdK1ThP/64ia20uCqPP8tVQZTZDKJeskmGif1yTJ\n\
hgXCSkrq6hlvvTjbkJDQiUiSaFpJmIq1v7o4eoCad2ijUzBRMB0GA1UdDgQWBBR0\n\
0+LvJqMTAvC/C5M3iHauHE2SRzAfBgNVHSMEGDAWgBR00+LvJqMTAvC/C5M3iHau\n\
HE2SRzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIA5I+GIXfe78\n\
bw26rDsk8mq+SnyUs68db3+eHCbV6REwAiAx40TeOjJtkm6ap0+XGxzGhhAM2Sv/\n\
YGt70o+2M8Bs0g==\n\
-----END CERTIFICATE-----\n";

    fn with_url() -> HashMap<String, String> {
        env(&[(ENV_URL, "http://ci.example:8080/jenkins")])
    }

    #[test]
    fn idle_timeout_defaults_to_a_minute_and_refuses_what_would_end_quiet_commands() {
        assert_eq!(
            run(&["who-am-i"], &with_url()).unwrap().idle_timeout,
            Some(Duration::from_secs(60))
        );
        let given = run(&["-idleTimeout", "300", "who-am-i"], &with_url()).unwrap();
        assert_eq!(given.idle_timeout, Some(Duration::from_secs(300)));
        let off = run(&["-idleTimeout", "0", "who-am-i"], &with_url()).unwrap();
        assert_eq!(off.idle_timeout, None);
        for bad in ["5", "-1", "soon", ""] {
            let err = run(&["-idleTimeout", bad, "who-am-i"], &with_url()).unwrap_err();
            assert_eq!(err, UsageError::BadIdleTimeout(bad.into()));
            assert!(err.to_string().contains("at least 20"), "{err}");
        }
    }

    #[test]
    fn options_then_command_then_verbatim_args() {
        let config = run(
            &[
                "-s",
                "http://h:1/",
                "--http",
                "-noCertificateCheck",
                "build",
                "job",
                "-s",
                "-v",
                "--http",
                "-p",
                "K=V",
            ],
            &env(&[]),
        )
        .unwrap();
        assert_eq!(config.root.as_str(), "http://h:1/");
        assert_eq!(config.mode, Mode::Http);
        assert!(config.no_certificate_check);
        assert_eq!(
            config.args,
            ["build", "job", "-s", "-v", "--http", "-p", "K=V"]
        );
        assert_eq!(config.credentials, None);
    }

    #[test]
    fn defaults_websocket_help_and_env_url_with_trailing_slash() {
        let config = run(&[], &with_url()).unwrap();
        assert_eq!(config.root.as_str(), "http://ci.example:8080/jenkins/");
        assert_eq!(config.mode, Mode::WebSocket);
        assert_eq!(config.args, [DEFAULT_COMMAND]);
        assert!(!config.no_certificate_check);
        assert_eq!(config.locale, DEFAULT_LOCALE);
    }

    #[test]
    fn flag_s_wins_over_env() {
        let config = run(&["--s", "https://other/", "who-am-i"], &with_url()).unwrap();
        assert_eq!(config.root.as_str(), "https://other/");
    }

    #[test]
    fn auth_pair_bearer_and_at_file() {
        let config = run(&["-auth", "alice:t0k", "who-am-i"], &with_url()).unwrap();
        assert_eq!(
            config.credentials,
            Credentials::basic_from_pair("alice:t0k")
        );

        let dir = tempfile::tempdir().unwrap();
        let auth_file = dir.path().join("auth");
        std::fs::write(&auth_file, "bob:secret\n").unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "abc\r\n").unwrap();

        let at_auth = format!("@{}", auth_file.display());
        let config = run(&["-auth", &at_auth, "who-am-i"], &with_url()).unwrap();
        assert_eq!(
            config.credentials,
            Some(Credentials::Basic {
                user: "bob".into(),
                token: "secret".into()
            })
        );
        let at_token = format!("@{}", token_file.display());
        let config = run(&["--bearer", &at_token], &with_url()).unwrap();
        assert_eq!(config.credentials, Some(Credentials::Bearer("abc".into())));

        let missing = format!("@{}", dir.path().join("nope").display());
        assert!(matches!(
            run(&["-bearer", &missing], &with_url()),
            Err(UsageError::ReadFile { .. })
        ));
    }

    #[test]
    fn env_credentials_both_or_neither() {
        let mut vars = with_url();
        vars.insert(ENV_USER_ID.into(), "carol".into());
        assert_eq!(run(&[], &vars), Err(UsageError::HalfEnvCredentials));
        vars.insert(ENV_API_TOKEN.into(), "tok".into());
        assert_eq!(
            run(&[], &vars).unwrap().credentials,
            Some(Credentials::Basic {
                user: "carol".into(),
                token: "tok".into()
            })
        );
        // An explicit option wins over the environment.
        assert_eq!(
            run(&["-bearer", "b"], &vars).unwrap().credentials,
            Some(Credentials::Bearer("b".into()))
        );
        // Empty counts as unset.
        vars.insert(ENV_USER_ID.into(), "".into());
        assert_eq!(run(&[], &vars), Err(UsageError::HalfEnvCredentials));
    }

    #[test]
    fn usage_errors() {
        let vars = with_url();
        assert_eq!(
            run(&["-x", "help"], &vars),
            Err(UsageError::UnknownOption("-x".into()))
        );
        assert_eq!(
            run(&["--", "help"], &vars),
            Err(UsageError::UnknownOption("--".into()))
        );
        assert_eq!(run(&["-s"], &vars), Err(UsageError::MissingValue("s")));
        assert_eq!(
            run(&["-http", "-webSocket"], &vars),
            Err(UsageError::ModeClash)
        );
        assert_eq!(
            run(&["-auth", "a:b", "-bearer", "c"], &vars),
            Err(UsageError::AuthAndBearer)
        );
        assert_eq!(
            run(&["-auth", "nocolon"], &vars),
            Err(UsageError::MalformedAuth)
        );
        assert_eq!(run(&["help"], &env(&[])), Err(UsageError::NoUrl));
        assert!(matches!(
            run(&["-s", "ftp://x/"], &vars),
            Err(UsageError::BadUrl { .. })
        ));
        assert!(matches!(
            run(&["-s", "not a url"], &vars),
            Err(UsageError::BadUrl { .. })
        ));
    }

    #[test]
    fn cert_takes_pem_text_or_the_whole_at_file() {
        let pem = CERT_PEM;
        let config = run(&["-cert", pem, "who-am-i"], &with_url()).unwrap();
        assert_eq!(config.extra_ca_pem.as_deref(), Some(pem.as_bytes()));
        assert_eq!(run(&[], &with_url()).unwrap().extra_ca_pem, None);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ci.pem");
        let bundle = format!("{pem}{pem}");
        std::fs::write(&file, &bundle).unwrap();
        let at_file = format!("@{}", file.display());
        let config = run(&["--cert", &at_file, "who-am-i"], &with_url()).unwrap();
        assert_eq!(config.extra_ca_pem.as_deref(), Some(bundle.as_bytes()));

        let path = file.display().to_string();
        let error = run(&["-cert", &path, "who-am-i"], &with_url()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "invalid CA certificate: no PEM certificate found in the -cert value; did you mean @{path}?"
            )
        );
        assert_eq!(error.exit_code(), 255);
        assert_eq!(
            run(&["-cert"], &with_url()),
            Err(UsageError::MissingValue("cert"))
        );
    }

    #[test]
    fn version_is_answered_where_it_appears() {
        assert_eq!(
            parse(["-version", "-bogus"], &env(&[])),
            Ok(Invocation::Version)
        );
        assert_eq!(parse(["--version"], &env(&[])), Ok(Invocation::Version));
        // After the command it is the command's argument.
        assert!(matches!(
            parse(["version", "-version"], &with_url()),
            Ok(Invocation::Run(config)) if config.args == ["version", "-version"]
        ));
    }

    #[test]
    fn where_credentials_and_certificates_came_from_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth");
        std::fs::write(&file, "bob:secret\n").unwrap();
        let at_file = format!("@{}", file.display());
        let given =
            |words: &[&str], vars: &HashMap<String, String>| run(words, vars).unwrap().given;

        assert_eq!(given(&[], &with_url()), Given::default());
        assert_eq!(
            given(&["-auth", &at_file], &with_url()).credentials,
            Source::File(file.clone())
        );
        assert_eq!(
            given(&["-bearer", "b"], &with_url()).credentials,
            Source::Inline
        );
        let mut vars = with_url();
        vars.insert(ENV_USER_ID.into(), "carol".into());
        vars.insert(ENV_API_TOKEN.into(), "tok".into());
        assert_eq!(given(&[], &vars).credentials, Source::Environment);
        assert_eq!(
            given(&["-cert", CERT_PEM], &with_url()).cert,
            Source::Inline
        );

        // A relative @FILE is kept absolute, so it names the file from anywhere.
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(&file, &cwd);
        let config = run(&["-auth", &format!("@{relative}")], &with_url()).unwrap();
        let Source::File(kept) = config.given.credentials else {
            panic!("{:?}", config.given);
        };
        assert!(kept.is_absolute(), "{kept:?}");
        assert_eq!(kept.canonicalize().unwrap(), file.canonicalize().unwrap());
    }

    /// `path` written relative to `base` with `..` steps.
    fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> String {
        let ups = base.components().count() - 1;
        let rest = path.strip_prefix("/").unwrap();
        format!("{}{}", "../".repeat(ups), rest.display())
    }

    #[test]
    fn locale_follows_posix_variables() {
        let mut vars = with_url();
        vars.insert("LANG".into(), "de_DE.UTF-8".into());
        assert_eq!(run(&[], &vars).unwrap().locale, "de_DE");
        vars.insert("LC_ALL".into(), "fr_FR@euro".into());
        assert_eq!(run(&[], &vars).unwrap().locale, "fr_FR");
        vars.insert("LC_ALL".into(), "C.UTF-8".into());
        assert_eq!(run(&[], &vars).unwrap().locale, DEFAULT_LOCALE);
    }
}
