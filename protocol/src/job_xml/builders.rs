//! Build steps (`<builders>`): the shell step Steward runs, and the others it keeps.

use super::layout::{Field, Layout};
use crate::xml::{Element, XmlError};

/// Element name of a shell step.
pub const SHELL: &str = "hudson.tasks.Shell";

/// One build step, in the order the job runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    Shell(Shell),
    /// A step Steward cannot run (e.g. `hudson.tasks.Maven`), kept verbatim. A job holding
    /// one is stored, but not built.
    Other(Element),
}

/// `hudson.tasks.Shell`: a script run in the workspace, by `/bin/sh -xe` or by the
/// interpreter its `#!` line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// The script, exactly as written.
    pub command: String,
    /// `<unstableReturn>`: the exit code that makes the build UNSTABLE rather than FAILURE
    /// (and lets the next steps run), as Jenkins' `Shell` does. 0 or absent: none.
    pub unstable_return: Option<i32>,
    /// Other children (`configuredLocalRules`, `unstableReturn`…), kept in place.
    layout: Layout<ShellField>,
}

/// The element naming a shell step's unstable exit code.
pub const UNSTABLE_RETURN: &str = "unstableReturn";

impl Shell {
    pub fn new(command: impl Into<String>) -> Self {
        Shell {
            command: command.into(),
            unstable_return: None,
            layout: Layout::new(&[ShellField::Command]),
        }
    }

    /// The program and arguments that run the script file, as Jenkins' `Shell` decides: the
    /// `#!` line's words when the script starts with one, else `/bin/sh -xe`.
    pub fn interpreter(&self) -> Vec<String> {
        match self.command.strip_prefix("#!") {
            Some(rest) => {
                let line = rest.lines().next().unwrap_or_default();
                let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
                if words.is_empty() {
                    default_interpreter()
                } else {
                    words
                }
            }
            None => default_interpreter(),
        }
    }
}

fn default_interpreter() -> Vec<String> {
    vec!["/bin/sh".into(), "-xe".into()]
}

impl Builder {
    /// The element name: the step's Java class.
    pub fn class(&self) -> &str {
        match self {
            Builder::Shell(_) => SHELL,
            Builder::Other(e) => &e.name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShellField {
    Command,
}

impl Field for ShellField {
    fn names(self) -> &'static [&'static str] {
        &["command"]
    }
}

/// The order Jenkins writes a shell step's children in.
const SHELL_ORDER: &[&str] = &["command", "configuredLocalRules", "unstableReturn"];

/// Reads one child of `<builders>`. A shell step without `<command>` runs an empty script.
/// A new configuration's `<unstableReturn>` must be an exit code (0 to 255); a stored one
/// that is not reads as none (`strict` false), so the job stays readable.
pub(crate) fn read_builder(element: &Element, strict: bool) -> Result<Builder, XmlError> {
    if element.name != SHELL {
        return Ok(Builder::Other(element.clone()));
    }
    let mut command = String::new();
    let layout = Layout::read(element, &[ShellField::Command], SHELL_ORDER, |_, child| {
        command = child.text();
        Ok(())
    })?;
    let unstable_return = match element.only_child(UNSTABLE_RETURN)? {
        None => None,
        Some(code) => {
            let text = code.text();
            match text.trim().parse::<i32>() {
                Ok(0) => None,
                Ok(code) if (1..=255).contains(&code) => Some(code),
                _ if !strict => None,
                _ => {
                    return Err(XmlError::bad_value(
                        UNSTABLE_RETURN,
                        text.trim(),
                        "not an exit code from 0 to 255",
                    ));
                }
            }
        }
    };
    Ok(Builder::Shell(Shell {
        command,
        unstable_return,
        layout,
    }))
}

pub(crate) fn write_builder(builder: &Builder) -> Element {
    match builder {
        Builder::Shell(shell) => shell.layout.write(SHELL, |_, out| {
            out.push(Element::with_text("command", &shell.command));
        }),
        Builder::Other(element) => element.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_document;

    fn shell(xml: &str, strict: bool) -> Result<Shell, XmlError> {
        match read_builder(&parse_document(xml).unwrap(), strict)? {
            Builder::Shell(shell) => Ok(shell),
            Builder::Other(e) => panic!("not a shell step: {}", e.name),
        }
    }

    #[test]
    fn unstable_return_is_an_exit_code_and_a_stored_bad_one_reads_as_none() {
        let step = |code: &str| {
            format!(
                "<hudson.tasks.Shell><command>x</command><unstableReturn>{code}</unstableReturn></hudson.tasks.Shell>"
            )
        };
        assert_eq!(shell(&step("3"), true).unwrap().unstable_return, Some(3));
        assert_eq!(shell(&step(" 0 "), true).unwrap().unstable_return, None);
        let e = shell(&step("300"), true).unwrap_err().to_string();
        assert!(
            e.contains("unstableReturn") && e.contains("not an exit code from 0 to 255"),
            "{e}"
        );
        assert_eq!(shell(&step("x"), false).unwrap().unstable_return, None);
        // Kept as written either way.
        let kept = write_builder(&Builder::Shell(shell(&step("3"), true).unwrap()));
        assert_eq!(kept.child_text(UNSTABLE_RETURN).as_deref(), Some("3"));
    }

    #[test]
    fn a_shebang_line_names_the_interpreter() {
        assert_eq!(Shell::new("echo hi").interpreter(), vec!["/bin/sh", "-xe"]);
        assert_eq!(
            Shell::new("#!/bin/bash -e\n[[ 1 ]]").interpreter(),
            vec!["/bin/bash", "-e"]
        );
        assert_eq!(
            Shell::new("#!/usr/bin/env python3\nprint(1)").interpreter(),
            vec!["/usr/bin/env", "python3"]
        );
        assert_eq!(Shell::new("#!\nx").interpreter(), vec!["/bin/sh", "-xe"]);
    }
}
