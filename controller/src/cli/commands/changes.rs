//! `list-changes`: the change log of builds, as Jenkins' command prints it, from what each
//! build's Git checkout recorded.

use futures_util::FutureExt;
use steward_protocol::job_xml::git::CheckoutResult;

use super::args::Args;
use super::builds::parse_ranges;
use super::{Command, CommandError, CommandResult, Context};
use crate::auth::Permission;

pub const COMMANDS: &[&Command] = &[&LIST_CHANGES];

const LIST_CHANGES: Command = Command {
    name: "list-changes",
    summary: "Dumps the changelog for the specified build(s).\n\
              RANGE: build numbers: N, N-M, or a comma-separated list of them (1-5,8)\n\
              -format PLAIN|CSV: PLAIN (the default) prints `AUTHOR<TAB>TITLE` and the paths \
              below it; CSV prints `\"AUTHOR\",\"TITLE\"`",
    usage: "JOB RANGE [-format PLAIN|CSV]",
    needs_overall_read: true,
    reads_stdin: false,
    run: |ctx| list_changes(ctx).boxed(),
};

async fn list_changes(ctx: &mut Context) -> CommandResult {
    let args = Args::parse(&ctx.args, &[], &["-format"])?;
    let (job, range) = args.two("JOB", "RANGE")?;
    let format = match args.value("-format").unwrap_or("PLAIN") {
        "PLAIN" => Format::Plain,
        "CSV" => Format::Csv,
        "XML" => {
            return Err(CommandError::IllegalArgument(
                "-format XML is not supported by Steward: use PLAIN, CSV, or the build's \
                 changeSets on REST (/job/JOB/N/api/json)"
                    .into(),
            ));
        }
        other => {
            return Err(CommandError::BadArgs(format!(
                "\"{}\" is not a valid value for \"-format\"",
                steward_protocol::shown::Shown(other)
            )));
        }
    };
    let (job, range) = (job.to_owned(), range.to_owned());
    let job = ctx.job(&job, Permission::JobRead).await?.name.clone();
    let ranges = parse_ranges(&range)?;
    let builds = ctx
        .state
        .store
        .call(move |c| crate::store::scm::in_ranges(c, &job, &ranges))
        .await
        .map_err(|e| CommandError::unexpected("list-changes", e))?;
    let mut text = String::new();
    for (_, checkout) in &builds {
        if let Some(checkout) = checkout {
            write_changes(&mut text, checkout, format);
        }
    }
    ctx.out.stdout(text).await;
    Ok(0)
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Plain,
    Csv,
}

/// One build's changes, oldest first as the Git plugin lists them.
fn write_changes(out: &mut String, checkout: &CheckoutResult, format: Format) {
    for change in checkout.changes.iter().rev() {
        match format {
            Format::Plain => {
                out.push_str(&format!("{}\t{}\n", change.author, change.title()));
                for (_, path) in &change.paths {
                    out.push_str(&format!("  {path}\n"));
                }
            }
            Format::Csv => {
                out.push_str(&format!(
                    "{},{}\n",
                    quote(&change.author),
                    quote(change.title())
                ));
            }
        }
    }
}

/// Jenkins' `QuotedStringTokenizer.quote`: in double quotes, with backslash escapes.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\u{8}' => out.push_str("\\b"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_protocol::job_xml::git::Change;

    #[test]
    fn plain_and_csv_as_jenkins_prints_them() {
        let change = |commit: &str, author: &str, message: &str, paths: &[&str]| Change {
            commit: commit.into(),
            author: author.into(),
            message: message.into(),
            paths: paths
                .iter()
                .map(|p| ("edit".to_owned(), (*p).to_owned()))
                .collect(),
            ..Default::default()
        };
        let checkout = CheckoutResult {
            // Newest first, as recorded.
            changes: vec![
                change("b", "Bob", "Second \"quoted\"\n\nbody", &[]),
                change("a", "Ann Lee", "First", &["src/a.rs", "b.txt"]),
            ],
            ..Default::default()
        };
        let mut plain = String::new();
        write_changes(&mut plain, &checkout, Format::Plain);
        assert_eq!(
            plain,
            "Ann Lee\tFirst\n  src/a.rs\n  b.txt\nBob\tSecond \"quoted\"\n"
        );
        let mut csv = String::new();
        write_changes(&mut csv, &checkout, Format::Csv);
        assert_eq!(
            csv,
            "\"Ann Lee\",\"First\"\n\"Bob\",\"Second \\\"quoted\\\"\"\n"
        );
    }
}
