//! The command line as Jenkins users type it, turned into what clap reads.
//!
//! `agent.jar` takes long options with one dash (`-webSocket`, `-jnlpUrl URL`); clap wants
//! two. Before clap sees the arguments, [`normalize`] rewrites every single-dash word longer
//! than one letter into its double-dash form, attaches each option's value with `=` (so a
//! value that starts with `-` is still a value), and replaces an `@FILE` value by the first
//! line of FILE (compat §3.1). Options in [`WHOLE_FILE_OPTIONS`] read their file themselves.

use std::ffi::OsString;
use std::path::PathBuf;

/// Options whose `@FILE` means the whole file (a PEM bundle has more than one line), so the
/// option's own parser reads it.
pub const WHOLE_FILE_OPTIONS: &[&str] = &["cert"];

/// Whether `@FILE` values are read. Arguments that came from a JNLP document are not: a
/// controller must not make the agent read its local files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtFiles {
    Expand,
    Keep,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgvError {
    #[error("argument {0:?} is not valid UTF-8")]
    NotUtf8(String),
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A long option clap knows, by any of its names.
struct LongOption {
    name: String,
    takes_value: bool,
}

fn long_options(cmd: &clap::Command) -> Vec<LongOption> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let takes_value = arg.get_action().takes_values();
        let names = arg
            .get_long()
            .into_iter()
            .chain(arg.get_all_aliases().unwrap_or_default());
        for name in names {
            out.push(LongOption {
                name: name.to_owned(),
                takes_value,
            });
        }
    }
    out
}

/// Rewrites `args` (program name first) for clap; see the module doc.
pub fn normalize<I, T>(
    cmd: &clap::Command,
    args: I,
    at_files: AtFiles,
) -> Result<Vec<String>, ArgvError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let options = long_options(cmd);
    let mut args = args.into_iter().map(|a| {
        let a: OsString = a.into();
        a.into_string()
            .map_err(|bad| ArgvError::NotUtf8(bad.to_string_lossy().into_owned()))
    });
    let mut out = Vec::new();
    if let Some(program) = args.next() {
        out.push(program?);
    }
    let mut only_positionals = false;
    while let Some(arg) = args.next() {
        let arg = arg?;
        if only_positionals || arg == "-" || !arg.starts_with('-') {
            out.push(expand(&arg, at_files)?);
            continue;
        }
        if arg == "--" {
            only_positionals = true;
            out.push(arg);
            continue;
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        // A lone letter (`-h`, `-V`) is a short option: leave it to clap.
        if arg.len() == 2 {
            out.push(arg);
            continue;
        }
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (body, None),
        };
        let known = options.iter().find(|o| o.name == name);
        match known {
            Some(option) if option.takes_value => {
                let value = match inline_value {
                    Some(v) => Some(v),
                    None => args.next().transpose()?,
                };
                match value {
                    Some(value) => {
                        let value = if WHOLE_FILE_OPTIONS.contains(&option.name.as_str()) {
                            value
                        } else {
                            expand(&value, at_files)?
                        };
                        out.push(format!("--{name}={value}"));
                    }
                    // Let clap report the missing value.
                    None => out.push(format!("--{name}")),
                }
            }
            // Flags, and unknown options (clap names them and suggests the closest).
            _ => out.push(format!("--{body}")),
        }
    }
    Ok(out)
}

/// `@FILE` → the first line of FILE, without its line ending.
fn expand(value: &str, at_files: AtFiles) -> Result<String, ArgvError> {
    match value.strip_prefix('@') {
        Some(path) if at_files == AtFiles::Expand => first_line(path),
        _ => Ok(value.to_owned()),
    }
}

/// The first line of the file at `path`.
pub fn first_line(path: &str) -> Result<String, ArgvError> {
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path).map_err(|source| ArgvError::ReadFile {
        path: path.clone(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("agent")
            .arg(Arg::new("url").long("url"))
            .arg(Arg::new("secret").long("secret"))
            .arg(Arg::new("cert").long("cert"))
            .arg(Arg::new("ws").long("webSocket").action(ArgAction::SetTrue))
            .arg(
                Arg::new("nocheck")
                    .long("noCertificateCheck")
                    .alias("disableHttpsCertValidation")
                    .action(ArgAction::SetTrue),
            )
            .arg(Arg::new("rest").num_args(0..))
    }

    fn run(args: &[&str], at: AtFiles) -> Vec<String> {
        let mut all = vec!["agent"];
        all.extend_from_slice(args);
        normalize(&cmd(), all, at).unwrap()
    }

    #[test]
    fn single_dash_long_options_become_double_dash() {
        assert_eq!(
            run(
                &["-webSocket", "-url", "http://x/", "--secret", "abc"],
                AtFiles::Expand
            ),
            ["agent", "--webSocket", "--url=http://x/", "--secret=abc"]
        );
        assert_eq!(
            run(&["-disableHttpsCertValidation"], AtFiles::Expand),
            ["agent", "--disableHttpsCertValidation"]
        );
        assert_eq!(
            run(&["-url=http://y/"], AtFiles::Expand),
            ["agent", "--url=http://y/"]
        );
    }

    #[test]
    fn values_starting_with_a_dash_stay_values() {
        assert_eq!(
            run(&["-secret", "-abc"], AtFiles::Expand),
            ["agent", "--secret=-abc"]
        );
    }

    #[test]
    fn short_options_unknown_options_and_positionals() {
        assert_eq!(
            run(&["-h", "-bogus", "pos", "-", "--", "-url"], AtFiles::Expand),
            ["agent", "-h", "--bogus", "pos", "-", "--", "-url"]
        );
        // A value-taking option at the end is left for clap to complain about.
        assert_eq!(run(&["-url"], AtFiles::Expand), ["agent", "--url"]);
    }

    #[test]
    fn at_file_is_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\r\nsecond line\n").unwrap();
        let at = format!("@{}", path.display());
        assert_eq!(
            run(&["-secret", &at, &at], AtFiles::Expand),
            ["agent", "--secret=s3cr3t", "s3cr3t"]
        );
        assert_eq!(
            run(&[&format!("-secret={at}")], AtFiles::Expand),
            ["agent", "--secret=s3cr3t"]
        );
        // -cert reads its file itself, whole.
        assert_eq!(
            run(&["-cert", &at], AtFiles::Expand),
            ["agent".to_owned(), format!("--cert={at}")]
        );
        // Document arguments never read files.
        assert_eq!(
            run(&["-secret", &at], AtFiles::Keep),
            ["agent".to_owned(), format!("--secret={at}")]
        );
    }

    #[test]
    fn unreadable_at_file_is_an_error() {
        let err = normalize(
            &cmd(),
            ["agent", "-secret", "@/nonexistent/steward/secret"],
            AtFiles::Expand,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/steward/secret"),
            "{err}"
        );
    }
}
