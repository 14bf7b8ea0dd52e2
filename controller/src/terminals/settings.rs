//! A terminal's settings as users give them (`create-terminal`, `update-terminal`, the REST
//! API), checked before anything is stored: the name, the driver, `ondemand`, and the
//! parameters (`-param K=V`), each against the driver's list.

use std::collections::BTreeMap;

use steward_protocol::names::{self, NameKind};
use steward_protocol::shown::Shown;
use steward_protocol::terminals::{DEFAULT_SIZE, Driver, Launch};

use crate::store::terminals::TerminalRow;

/// Parameters of the `cmd` driver.
pub const CMD_PARAMS: &[&str] = &["cmd", "record-input", "keep", "keep-days"];
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
    #[error(
        "the ssh driver is not available in this version of Steward: use -driver cmd, with -param cmd='ssh USER@HOST' to reach a machine through the node"
    )]
    SshDriver,
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
        "ssh" => Err(SettingsError::SshDriver),
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

/// Applies parameters to `row` (a value left empty removes the parameter), checking each
/// against the row's driver. Nothing is changed when one is refused.
pub fn apply_params(
    row: &mut TerminalRow,
    params: &[(String, String)],
) -> Result<(), SettingsError> {
    let mut changed = row.params.clone();
    for (key, value) in params {
        if !CMD_PARAMS.contains(&key.as_str()) {
            return Err(SettingsError::UnknownParam {
                key: key.clone(),
                driver: "cmd",
                known: CMD_PARAMS,
            });
        }
        if value.is_empty() {
            changed.remove(key);
            continue;
        }
        check_value(key, value)?;
        changed.insert(key.clone(), value.clone());
    }
    row.params = changed;
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
    Launch {
        driver: Driver::Cmd {
            command: row.params.get("cmd").cloned(),
        },
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
    fn names_drivers_and_pairs_are_refused_with_their_reason() {
        assert_eq!(
            check_name("a/b").unwrap_err().to_string(),
            "‘/’ is an unsafe character in terminal name ‘a/b’"
        );
        assert_eq!(
            check_driver("telnet").unwrap_err().to_string(),
            "unknown driver ‘telnet’: use one of cmd, ssh"
        );
        assert!(matches!(check_driver("ssh"), Err(SettingsError::SshDriver)));
        assert_eq!(
            split_param("novalue").unwrap_err().to_string(),
            "-param ‘novalue’ is not KEY=VALUE"
        );
        assert_eq!(split_param("k=v=w").unwrap(), ("k".into(), "v=w".into()));
    }
}
