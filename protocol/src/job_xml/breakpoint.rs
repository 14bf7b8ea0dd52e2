//! "Hold a failed build": the job's breakpoint, as Steward writes it.
//!
//! ```xml
//! <properties>
//!   <steward.BreakpointProperty>
//!     <when>onFailure</when>
//!     <duration>30m</duration>
//!     <maxDuration>6h</maxDuration>
//!     <connectTimeout>10m</connectTimeout>
//!     <resumeOnLogout>false</resumeOnLogout>
//!     <allowedSshUsers><string>web-ci</string></allowedSshUsers>
//!   </steward.BreakpointProperty>
//! </properties>
//! ```
//!
//! Every child is optional: `when` defaults to `onFailure`, `duration` to 30 minutes,
//! `maxDuration` to 6 hours, no `connectTimeout` means the breakpoint waits for its first
//! client as long as it lasts, `resumeOnLogout` defaults to false, and no `allowedSshUsers`
//! means any SSH user name. Durations are written as `90s`, `30m`, `6h`, `1d`. Like the
//! discarder, the element stays in the document as it was written; this is a reading of it.

use std::time::Duration;

use crate::duration::{format_duration, parse_duration};
use crate::xml::{Element, XmlError};

/// The property holding the breakpoint.
pub const BREAKPOINT_PROPERTY: &str = "steward.BreakpointProperty";
/// How long a breakpoint lasts unless the job says.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30 * 60);
/// How far extensions may push it unless the job says.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(6 * 3600);
/// The longest a job may hold its executor at a breakpoint: a week covers a long weekend
/// of debugging; more is an executor lost.
pub const LONGEST_MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);
/// Most SSH user names a job may list.
pub const MAX_SSH_USERS: usize = 64;

/// When a build stops at its breakpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakpointWhen {
    /// When it fails (not when it is aborted).
    OnFailure,
    /// When it ends, whatever the result, unless aborted.
    Always,
    Never,
}

impl BreakpointWhen {
    /// Reads `onFailure`, `always` or `never` (any case).
    pub fn parse(text: &str) -> Option<BreakpointWhen> {
        match text.trim().to_ascii_lowercase().as_str() {
            "onfailure" => Some(BreakpointWhen::OnFailure),
            "always" => Some(BreakpointWhen::Always),
            "never" => Some(BreakpointWhen::Never),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakpointWhen::OnFailure => "onFailure",
            BreakpointWhen::Always => "always",
            BreakpointWhen::Never => "never",
        }
    }
}

/// A job's breakpoint settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakpoint {
    pub when: BreakpointWhen,
    pub duration: Duration,
    pub max_duration: Duration,
    pub connect_timeout: Option<Duration>,
    pub resume_on_logout: bool,
    /// SSH user names a session into the build may use; empty means any.
    pub allowed_ssh_users: Vec<String>,
}

impl Default for Breakpoint {
    fn default() -> Self {
        Breakpoint {
            when: BreakpointWhen::OnFailure,
            duration: DEFAULT_DURATION,
            max_duration: DEFAULT_MAX_DURATION,
            connect_timeout: None,
            resume_on_logout: false,
            allowed_ssh_users: Vec::new(),
        }
    }
}

/// Reads the property.
pub(super) fn read_property(property: &Element) -> Result<Breakpoint, XmlError> {
    let mut breakpoint = Breakpoint::default();
    if let Some(when) = child_text(property, "when")? {
        breakpoint.when = BreakpointWhen::parse(&when).ok_or_else(|| {
            XmlError::bad_value("when", &when, "expected onFailure, always or never")
        })?;
    }
    if let Some(duration) = duration(property, "duration")? {
        breakpoint.duration = duration;
    }
    if let Some(max) = duration(property, "maxDuration")? {
        breakpoint.max_duration = max;
    }
    breakpoint.connect_timeout = duration(property, "connectTimeout")?;
    if let Some(flag) = child_text(property, "resumeOnLogout")? {
        breakpoint.resume_on_logout = super::parse_bool("resumeOnLogout", &flag)?;
    }
    if breakpoint.max_duration > LONGEST_MAX_DURATION {
        return Err(XmlError::bad_value(
            "maxDuration",
            &format_duration(breakpoint.max_duration),
            format!(
                "a breakpoint holds its executor; at most {}",
                format_duration(LONGEST_MAX_DURATION)
            ),
        ));
    }
    if breakpoint.duration > breakpoint.max_duration {
        return Err(XmlError::bad_value(
            "duration",
            &format_duration(breakpoint.duration),
            format!(
                "longer than maxDuration ({})",
                format_duration(breakpoint.max_duration)
            ),
        ));
    }
    breakpoint.allowed_ssh_users = ssh_users(property)?;
    Ok(breakpoint)
}

/// The text of the one child `name`, trimmed; `None` when absent or empty.
fn child_text(parent: &Element, name: &str) -> Result<Option<String>, XmlError> {
    let text = parent.only_child(name)?.map(|e| e.text().trim().to_owned());
    Ok(text.filter(|t| !t.is_empty()))
}

fn duration(parent: &Element, name: &str) -> Result<Option<Duration>, XmlError> {
    let Some(text) = child_text(parent, name)? else {
        return Ok(None);
    };
    let value =
        parse_duration(&text).map_err(|e| XmlError::bad_value(name, &text, e.to_string()))?;
    if value.is_zero() {
        return Err(XmlError::bad_value(name, &text, "must be longer than 0s"));
    }
    Ok(Some(value))
}

/// `<allowedSshUsers>`: `<string>` children, as XStream writes a list.
fn ssh_users(parent: &Element) -> Result<Vec<String>, XmlError> {
    let Some(list) = parent.only_child("allowedSshUsers")? else {
        return Ok(Vec::new());
    };
    let mut users = Vec::new();
    for entry in list.child_elements() {
        let user = entry.text().trim().to_owned();
        if entry.name != "string" || user.is_empty() {
            return Err(XmlError::bad_value(
                "allowedSshUsers",
                &user,
                "expected <string>NAME</string> entries",
            ));
        }
        if user.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(XmlError::bad_value(
                "allowedSshUsers",
                &user,
                "an SSH user name has no blanks or control characters",
            ));
        }
        if users.len() == MAX_SSH_USERS {
            return Err(XmlError::bad_value(
                "allowedSshUsers",
                &user,
                format!("at most {MAX_SSH_USERS} names"),
            ));
        }
        users.push(user);
    }
    Ok(users)
}
