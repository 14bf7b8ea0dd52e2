//! The steps a build runs, in order: the job's Git checkout when it has one
//! ([`super::checkout`]), then its shell steps. A build's step index counts in this list,
//! and the list depends only on the job's configuration as the build recorded it, so a
//! resumed build finds the same step at the same index.

use steward_protocol::job_xml::{Builder, GitScm, JobConfig, Shell};

/// One step of a build.
#[derive(Debug, Clone, Copy)]
pub enum Planned<'a> {
    Checkout(&'a GitScm),
    Shell(&'a Shell),
}

/// The build's steps.
pub fn plan(config: &JobConfig) -> Vec<Planned<'_>> {
    let checkout = config.git().map(Planned::Checkout);
    let shells = config.builders.iter().filter_map(|b| match b {
        Builder::Shell(shell) => Some(Planned::Shell(shell)),
        Builder::Other(_) => None,
    });
    checkout.into_iter().chain(shells).collect()
}

impl Planned<'_> {
    /// The exit code that makes the build UNSTABLE rather than FAILURE.
    pub fn unstable_return(&self) -> Option<i32> {
        match self {
            Planned::Checkout(_) => None,
            Planned::Shell(shell) => shell.unstable_return,
        }
    }

    /// The console line after the step failed, as Jenkins writes it; a checkout says why
    /// itself.
    pub fn failure_note(&self) -> Option<&'static str> {
        match self {
            Planned::Checkout(_) => None,
            Planned::Shell(_) => Some("Build step 'Execute shell' marked build as failure\n"),
        }
    }
}
