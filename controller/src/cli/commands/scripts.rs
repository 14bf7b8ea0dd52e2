//! `groovy` and `groovysh`: Jenkins' script console on the command line. Steward has no
//! JVM to run Groovy in, so both are refused, with one line that says what to use instead;
//! they are listed so that `help` and a script that calls them learn why.

use futures_util::FutureExt;

use super::{Command, CommandError, CommandResult, Context};

pub const COMMANDS: &[&Command] = &[&GROOVY, &GROOVYSH];

const GROOVY: Command = Command {
    name: "groovy",
    summary: "Executes the specified Groovy script: refused, Steward has no Groovy.\n\
              Run commands on agents with exec-on-node, script the controller with its REST API.",
    usage: "SCRIPT [ARGUMENTS...]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| refuse(ctx, "groovy").boxed(),
};

const GROOVYSH: Command = Command {
    name: "groovysh",
    summary: "Runs an interactive groovy shell: refused, Steward has no Groovy.\n\
              Run commands on agents with exec-on-node, script the controller with its REST API.",
    usage: "[COMMANDS...]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| refuse(ctx, "groovysh").boxed(),
};

/// The exit code of the refusal: Jenkins' code for a command that failed (1).
pub const REFUSED: i32 = 1;

/// Why, in one line: the same for every caller, since no permission would change it.
pub fn refusal(command: &str) -> String {
    format!(
        "{command} is not available: Steward has no JVM and no script console to run Groovy \
         in. Run commands on an agent with `exec-on-node NODE -- CMD`, and script the \
         controller with the CLI or its REST API (docs/api.md)."
    )
}

async fn refuse(_ctx: &mut Context, command: &str) -> CommandResult {
    Err(CommandError::Exit(REFUSED, refusal(command)))
}
