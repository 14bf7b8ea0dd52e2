//! A terminal's settings as users give them (`create-terminal`, `update-terminal`, the REST
//! API), checked before anything is stored: the name, the driver, `ondemand`, and the
//! parameters (`-param K=V`), each against the driver's list.

use std::collections::BTreeMap;

use steward_protocol::names::{self, NameKind};
use steward_protocol::shown::Shown;
use steward_protocol::terminals::{DEFAULT_SIZE, Driver, Launch, SshDriver};

use crate::store::terminals::TerminalRow;

/// Parameters of the `cmd` driver.
pub const CMD_PARAMS: &[&str] = &["cmd", "record-input", "keep", "keep-days"];
/// Parameters of the `ssh` driver.
pub const SSH_PARAMS: &[&str] = &[
    "host",
    "port",
    "user",
    "key",
    "password",
    "host-key",
    "record-input",
    "keep",
    "keep-days",
];
/// Parameters kept as secrets: stored apart and never shown back.
pub const SECRET_PARAMS: &[&str] = &["key", "password"];
/// The drivers, as `-driver` names them.
pub const DRIVERS: &[&str] = &["cmd", "ssh"];
/// Most recordings `keep` may ask to keep, and days `keep-days`.
pub const MAX_KEEP: u64 = 100_000;
pub const MAX_KEEP_DAYS: u64 = 36_500;
/// Recordings kept per terminal when `keep` is not set.
pub const DEFAULT_KEEP: u64 = 100;
/// Longest parameter value (a command line).
pub const MAX_PARAM_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Name(#[from] names::NameError),
    #[error("unknown driver ‘{}’: use one of {}", Shown(.0), DRIVERS.join(", "))]
    UnknownDriver(String),
    #[error("the ssh driver needs {0}")]
    Missing(&'static str),
    #[error("-param ‘{}’ is not KEY=VALUE", Shown(.0))]
    NotKeyValue(String),
    #[error("unknown parameter ‘{}’ for driver {driver}: use {}", Shown(.key), .known.join(", "))]
    UnknownParam {
        key: String,
        driver: &'static str,
        known: &'static [&'static str],
    },
    #[error("parameter {key}: {why}")]
    BadValue { key: String, why: String },
    #[error("-ondemand ‘{}’ is not true or false", Shown(.0))]
    BadBoolean(String),
}

/// Checks a terminal name and gives it back as it is stored (NFC).
pub fn check_name(name: &str) -> Result<String, SettingsError> {
    Ok(names::check(NameKind::Terminal, name)?)
}

/// `true` or `false`.
pub fn parse_bool(text: &str) -> Result<bool, SettingsError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(SettingsError::BadBoolean(other.to_owned())),
    }
}

/// Checks the driver's name.
pub fn check_driver(driver: &str) -> Result<&'static str, SettingsError> {
    match driver {
        "cmd" => Ok("cmd"),
        "ssh" => Ok("ssh"),
        other => Err(SettingsError::UnknownDriver(other.to_owned())),
    }
}

/// Splits `K=V`.
pub fn split_param(text: &str) -> Result<(String, String), SettingsError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| SettingsError::NotKeyValue(text.to_owned()))?;
    if key.is_empty() {
        return Err(SettingsError::NotKeyValue(text.to_owned()));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The parameters driver `driver` takes.
pub fn known_params(driver: &str) -> (&'static str, &'static [&'static str]) {
    match driver {
        "ssh" => ("ssh", SSH_PARAMS),
        _ => ("cmd", CMD_PARAMS),
    }
}

/// Applies parameters to `row` (a value left empty removes the parameter), then checks
/// every parameter against the row's driver, and what the driver needs. Nothing is changed
/// when one is refused.
pub fn apply_params(
    row: &mut TerminalRow,
    params: &[(String, String)],
) -> Result<(), SettingsError> {
    let (driver, known) = known_params(&row.driver);
    let mut plain = row.params.clone();
    let mut secrets = row.secrets.clone();
    for (key, value) in params {
        if !known.contains(&key.as_str()) {
            return Err(SettingsError::UnknownParam {
                key: key.clone(),
                driver,
                known,
            });
        }
        let into = if SECRET_PARAMS.contains(&key.as_str()) {
            &mut secrets
        } else {
            &mut plain
        };
        if value.is_empty() {
            into.remove(key);
            continue;
        }
        check_value(key, value)?;
        into.insert(key.clone(), value.clone());
    }
    // Left from another driver (an update that changed it).
    for key in plain.keys().chain(secrets.keys()) {
        if !known.contains(&key.as_str()) {
            return Err(SettingsError::UnknownParam {
                key: key.clone(),
                driver,
                known,
            });
        }
    }
    if driver == "ssh" {
        for needed in ["host", "user"] {
            if !plain.contains_key(needed) {
                return Err(SettingsError::Missing(if needed == "host" {
                    "-param host=HOST"
                } else {
                    "-param user=USER"
                }));
            }
        }
        if secrets.is_empty() {
            return Err(SettingsError::Missing(
                "-param key=@FILE or -param password=@FILE",
            ));
        }
    }
    row.params = plain;
    row.secrets = secrets;
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), SettingsError> {
    let bad = |why: String| SettingsError::BadValue {
        key: key.to_owned(),
        why,
    };
    if value.len() > MAX_PARAM_LEN {
        return Err(bad(format!("longer than {MAX_PARAM_LEN} bytes")));
    }
    match key {
        "cmd" if value.contains('\0') => {
            return Err(bad("a NUL character cannot be in a command line".into()));
        }
        "key" | "password" if value.starts_with('@') => {
            return Err(bad(format!(
                "‘{}’ names a file: our cli reads it and sends what it holds; other clients send the value itself",
                Shown(value)
            )));
        }
        "key" if !value.contains("PRIVATE KEY") => {
            return Err(bad("not a private key (OpenSSH or PEM)".into()));
        }
        "port" => match value.parse::<u16>() {
            Ok(port) if port > 0 => {}
            _ => {
                return Err(bad(format!(
                    "‘{}’ is not a port from 1 to 65535",
                    Shown(value)
                )));
            }
        },
        "host" | "user" if value.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(bad(format!(
                "‘{}’ has blanks or control characters",
                Shown(value)
            )));
        }
        "host-key" if !value.starts_with("SHA256:") => {
            return Err(bad(format!(
                "‘{}’ is not a SHA256: fingerprint (as ssh-keygen -lf prints it)",
                Shown(value)
            )));
        }
        "record-input" => {
            parse_bool(value)
                .map_err(|_| bad(format!("‘{}’ is not true or false", Shown(value))))?;
        }
        "keep" | "keep-days" => {
            let max = if key == "keep" {
                MAX_KEEP
            } else {
                MAX_KEEP_DAYS
            };
            match value.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => {}
                _ => {
                    return Err(bad(format!(
                        "‘{}’ is not a whole number from 1 to {max}",
                        Shown(value)
                    )));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// What the holder is started with.
pub fn launch(row: &TerminalRow) -> Launch {
    let driver = match row.driver.as_str() {
        "ssh" => Driver::Ssh(SshDriver {
            host: row.params.get("host").cloned().unwrap_or_default(),
            port: row
                .params
                .get("port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(22),
            user: row.params.get("user").cloned().unwrap_or_default(),
            key: row.secrets.get("key").cloned(),
            password: row.secrets.get("password").cloned(),
            host_key: row.params.get("host-key").cloned(),
        }),
        _ => Driver::Cmd {
            command: row.params.get("cmd").cloned(),
        },
    };
    Launch {
        driver,
        size: DEFAULT_SIZE,
        env: Vec::new(),
    }
}

/// Whether keystrokes are recorded (the default).
pub fn record_input(row: &TerminalRow) -> bool {
    row.params.get("record-input").map(String::as_str) != Some("false")
}

/// Recordings kept: at most this many, and none older than so many days.
pub fn retention(row: &TerminalRow) -> (u64, Option<u64>) {
    let keep = row
        .params
        .get("keep")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_KEEP);
    let days = row.params.get("keep-days").and_then(|v| v.parse().ok());
    (keep, days)
}

/// The parameters as shown: secrets as `****`.
pub fn shown_params(row: &TerminalRow) -> BTreeMap<String, String> {
    let mut shown = row.params.clone();
    for key in row.secrets.keys() {
        shown.insert(key.clone(), "****".into());
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TerminalRow {
        TerminalRow {
            name: "t".into(),
            node: "n".into(),
            driver: "cmd".into(),
            ondemand: false,
            enabled: true,
            params: BTreeMap::new(),
            secrets: BTreeMap::new(),
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn parameters_are_checked_all_or_nothing() {
        let mut r = row();
        let good = [
            ("cmd".to_owned(), "bash -l".to_owned()),
            ("keep".into(), "5".into()),
        ];
        apply_params(&mut r, &good).unwrap();
        assert_eq!(r.params.get("cmd").map(String::as_str), Some("bash -l"));
        let bad = [
            ("keep".to_owned(), "9".to_owned()),
            ("colour".into(), "red".into()),
        ];
        let e = apply_params(&mut r, &bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown parameter ‘colour’ for driver cmd: use cmd, record-input, keep, keep-days"
        );
        assert_eq!(
            r.params.get("keep").map(String::as_str),
            Some("5"),
            "nothing changed"
        );
        let e = apply_params(&mut r, &[("keep".into(), "0".into())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter keep: ‘0’ is not a whole number from 1 to 100000"
        );
        apply_params(&mut r, &[("cmd".into(), String::new())]).unwrap();
        assert!(!r.params.contains_key("cmd"), "an empty value removes it");
    }

    #[test]
    fn the_ssh_driver_keeps_its_secrets_apart_and_needs_a_host_a_user_and_a_credential() {
        let mut r = row();
        r.driver = "ssh".into();
        let e = apply_params(&mut r, &[("host".into(), "10.0.0.5".into())]).unwrap_err();
        assert_eq!(e.to_string(), "the ssh driver needs -param user=USER");
        let e = apply_params(
            &mut r,
            &[("host".into(), "h".into()), ("user".into(), "u".into())],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the ssh driver needs -param key=@FILE or -param password=@FILE"
        );
        let e = apply_params(&mut r, &[("password".into(), "@/tmp/pw".into())]).unwrap_err();
        assert!(e.to_string().contains("names a file"), "{e}");
        let good = [
            ("host".to_owned(), "h".to_owned()),
            ("user".into(), "u".into()),
            ("password".into(), "hunter2".into()),
            ("port".into(), "2222".into()),
        ];
        apply_params(&mut r, &good).unwrap();
        assert_eq!(
            r.secrets.get("password").map(String::as_str),
            Some("hunter2")
        );
        assert!(!r.params.contains_key("password"));
        assert_eq!(
            shown_params(&r).get("password").map(String::as_str),
            Some("****")
        );
        let Driver::Ssh(ssh) = launch(&r).driver else {
            panic!("an ssh launch")
        };
        assert_eq!((ssh.port, ssh.password.as_deref()), (2222, Some("hunter2")));
        // Back to cmd: the ssh parameters must go first.
        r.driver = "cmd".into();
        let e = apply_params(&mut r, &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unknown parameter ‘host’ for driver cmd"),
            "{e}"
        );
    }

    #[test]
    fn names_drivers_and_pairs_are_refused_with_their_reason() {
        assert_eq!(
            check_name("a/b").unwrap_err().to_string(),
            "‘/’ is an unsafe character in terminal name ‘a/b’"
        );
        assert_eq!(
            check_driver("telnet").unwrap_err().to_string(),
            "unknown driver ‘telnet’: use one of cmd, ssh"
        );
        assert_eq!(check_driver("ssh"), Ok("ssh"));
        assert_eq!(
            split_param("novalue").unwrap_err().to_string(),
            "-param ‘novalue’ is not KEY=VALUE"
        );
        assert_eq!(split_param("k=v=w").unwrap(), ("k".into(), "v=w".into()));
    }
}
