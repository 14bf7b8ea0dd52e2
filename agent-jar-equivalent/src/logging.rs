//! Logging: every line goes to stderr and, once the work directory is known, is appended to
//! `WORKDIR/INTERNAL/logs/agent.log` too.
//!
//! The log file is a [`LogFile`] handle that starts empty: with `-jnlpUrl` the work
//! directory is only known after the JNLP document was fetched, so [`crate::run`] opens the
//! file then. Lines before that reach stderr only.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines are appended once a work directory is set; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LogFile(Arc<Mutex<Option<File>>>);

impl LogFile {
    /// A handle with no file yet: lines are dropped until [`LogFile::open`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends from now on to the file at `path`, creating it if needed.
    pub fn open(&self, path: &Path) -> io::Result<()> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        *self.lock() = Some(file);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Option<File>> {
        // A panic while writing a log line leaves the file usable.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One log line's access to the file.
pub struct LogFileWriter<'a>(MutexGuard<'a, Option<File>>);

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.as_mut() {
            Some(file) => file.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.lock())
    }
}

/// Installs the process' subscriber: compact lines at INFO and above (`RUST_LOG` overrides)
/// on stderr and into `log_file`.
pub fn init(log_file: LogFile) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .compact()
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .with_writer(io::stderr);
    let file = tracing_subscriber::fmt::layer()
        .compact()
        .with_target(false)
        .with_ansi(false)
        .with_writer(log_file);
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_dropped_until_opened_then_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        std::fs::write(&path, "earlier run\n").unwrap();
        let log = LogFile::new();
        log.make_writer().write_all(b"before\n").unwrap();
        log.open(&path).unwrap();
        log.clone().make_writer().write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "earlier run\nafter\n"
        );
    }
}
