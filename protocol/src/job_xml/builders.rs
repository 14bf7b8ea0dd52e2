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

/// `hudson.tasks.Shell`: a script run with `/bin/sh -xe` in the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// The script, exactly as written.
    pub command: String,
    /// Other children (`configuredLocalRules`, `unstableReturn`…), kept in place.
    layout: Layout<ShellField>,
}

impl Shell {
    pub fn new(command: impl Into<String>) -> Self {
        Shell {
            command: command.into(),
            layout: Layout::new(&[ShellField::Command]),
        }
    }
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
pub(crate) fn read_builder(element: &Element) -> Result<Builder, XmlError> {
    if element.name != SHELL {
        return Ok(Builder::Other(element.clone()));
    }
    let mut command = String::new();
    let layout = Layout::read(element, &[ShellField::Command], SHELL_ORDER, |_, child| {
        command = child.text();
        Ok(())
    })?;
    Ok(Builder::Shell(Shell { command, layout }))
}

pub(crate) fn write_builder(builder: &Builder) -> Element {
    match builder {
        Builder::Shell(shell) => shell.layout.write(SHELL, |_, out| {
            out.push(Element::with_text("command", &shell.command));
        }),
        Builder::Other(element) => element.clone(),
    }
}
