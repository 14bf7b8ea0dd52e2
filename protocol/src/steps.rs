//! Durable build steps: the payloads of the `StartStep`, `TailStep`, `KillStep`,
//! `ListSteps` and `RemoveStep` service requests, their limits, and the step-id rule.
//!
//! A step is a shell script the agent runs detached from itself, in its own session, with
//! its output appended to a log file and its exit status written to a result file in the
//! step's directory (`WORKDIR/steps/ID/`). The files are the state: a restarted agent, or a
//! controller that lost the connection, finds the step and reads on from where it stopped.
//! The request and response variants live in [`crate::services`]; this module holds what
//! only steps use.

use serde::{Deserialize, Serialize};

/// Longest step id: a file name in every file system, with room for a temp-name prefix.
pub const MAX_STEP_ID_LEN: usize = 128;
/// Largest encoded [`StepSpec`] (script and environment), sent as the stream's data because
/// an OPEN header holds at most 32 KiB. Build scripts are kilobytes; a megabyte is generous
/// and still bounds what the agent buffers before writing `script.sh`.
pub const MAX_STEP_SPEC_LEN: usize = 1024 * 1024;
/// Most environment entries a step gets (Jenkins builds carry a few hundred at most).
pub const MAX_STEP_ENV_ENTRIES: usize = 4096;
/// Longest grace between SIGTERM and SIGKILL a `KillStep` may ask for: a step that needs
/// more than ten minutes to stop is not stopping.
pub const MAX_STEP_KILL_GRACE_MS: u64 = 10 * 60 * 1000;

/// What a `StartStep` runs: the stream's data, postcard-encoded, until EOF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// The script text, run as `/bin/sh -xe script.sh`; bytes, as a shell reads them.
    #[serde(with = "crate::byte_buf")]
    pub script: Vec<u8>,
    /// Added to (and overriding) the agent's environment. Not written to disk.
    pub env: Vec<(String, String)>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepOutcome {
    /// The step's `result` file: the script's exit status as the shell reports it (`$?`),
    /// so 128+N when signal N killed it (143 after `KillStep`'s SIGTERM, 137 after its
    /// SIGKILL), which a script that calls `exit 143` cannot be told from. Jenkins'
    /// durable tasks record the same number.
    Exited { code: i32 },
    /// No process of the step is left and it wrote no result: its wrapper was killed
    /// (SIGKILL to the whole group, the OOM killer) or the machine rebooted.
    Lost,
}

/// Whether a step is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepState {
    /// The step's wrapper runs as the leader of process group `pgid`.
    Running {
        pgid: i32,
    },
    Ended(StepOutcome),
}

/// One step as `ListSteps` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    pub id: String,
    pub state: StepState,
    /// Bytes in the step's log now: the offset a `TailStep` that has seen all of it passes.
    pub log_len: u64,
}

/// What a `TailStep` stream carries after its first [`crate::services::Response`], one per
/// DATA frame: the log as it grows, then how the step ended, then EOF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepEvent {
    /// The next bytes of the log, contiguous with the last.
    Log(#[serde(with = "crate::byte_buf")] Vec<u8>),
    /// The step has ended and every byte of its log has been sent.
    Ended(StepOutcome),
}

/// Checks a step id: 1 to [`MAX_STEP_ID_LEN`] ASCII letters, digits, `.`, `_` or `-`, not
/// starting with `.`. It names a directory on the agent, so it can never be `.`, `..`, a
/// path, or one of the agent's hidden temp names.
pub fn check_step_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("a step id must not be empty".into());
    }
    if id.len() > MAX_STEP_ID_LEN {
        return Err(format!(
            "step id of {} bytes is over the limit of {MAX_STEP_ID_LEN}",
            id.len()
        ));
    }
    if id.starts_with('.') {
        return Err(format!("step id {id:?} must not start with '.'"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "step id {id:?} contains {bad:?}: only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// Checks a step's environment: at most [`MAX_STEP_ENV_ENTRIES`] entries, names that are
/// non-empty without `=` or NUL, values without NUL (the kernel could not pass them).
pub fn check_step_env(env: &[(String, String)]) -> Result<(), String> {
    if env.len() > MAX_STEP_ENV_ENTRIES {
        return Err(format!(
            "{} environment entries are over the limit of {MAX_STEP_ENV_ENTRIES}",
            env.len()
        ));
    }
    for (name, value) in env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        if value.contains('\0') {
            return Err(format!("the value of {name} contains a NUL byte"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids() {
        for good in ["build-42", "a", "A.b_c-1", &"x".repeat(MAX_STEP_ID_LEN)] {
            assert_eq!(check_step_id(good), Ok(()), "{good}");
        }
        let too_long = "x".repeat(MAX_STEP_ID_LEN + 1);
        for (bad, why) in [
            ("", "must not be empty"),
            (".", "must not start with '.'"),
            ("..", "must not start with '.'"),
            (".hidden", "must not start with '.'"),
            ("../x", "must not start with '.'"),
            ("a/b", "contains '/'"),
            ("a b", "contains ' '"),
            ("a\0b", "contains '\\0'"),
            ("é", "contains 'é'"),
            (too_long.as_str(), "over the limit of 128"),
        ] {
            let err = check_step_id(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn step_env() {
        assert_eq!(check_step_env(&[("A".into(), "x=y".into())]), Ok(()));
        for bad in [("", "v"), ("A=B", "v"), ("A\0", "v"), ("A", "v\0")] {
            let env = [(bad.0.to_owned(), bad.1.to_owned())];
            assert!(check_step_env(&env).is_err(), "{bad:?}");
        }
        let many = vec![("A".to_owned(), String::new()); MAX_STEP_ENV_ENTRIES + 1];
        assert!(
            check_step_env(&many)
                .unwrap_err()
                .contains("over the limit")
        );
    }
}
