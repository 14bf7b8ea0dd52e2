//! A build's change log: the commits between the previous build's revision and this one,
//! with their authors and the paths they touched, as the Git plugin records them.

use steward_protocol::job_xml::git::{Change, MAX_CHANGE_PATHS, MAX_CHANGES};

use super::command::{Git, GitError};

/// Separates commits in the log's output.
const RECORD: char = '\u{1e}';
/// Separates a commit's fields.
const FIELD: char = '\u{1f}';

/// The commits in `previous..commit`, newest first; none (and a line saying why) on a first
/// build or when the previous revision is not in the repository (a shallow clone).
pub fn since(git: &Git, previous: Option<&str>, commit: &str) -> Result<Vec<Change>, GitError> {
    let Some(previous) = previous else {
        println!("First time build. Skipping changelog.");
        return Ok(Vec::new());
    };
    if git.output(&["rev-list", "--no-walk", previous]).is_err() {
        println!(
            "Could not determine the changes since {previous}: it is not in this repository \
             (a shallow clone, or history rewritten)"
        );
        return Ok(Vec::new());
    }
    // git's own escapes for the separators: the command line echoed stays printable.
    let format = "--format=%x1e%H%x1f%an%x1f%ae%x1f%at%x1f%B%x1f";
    let limit = format!("--max-count={MAX_CHANGES}");
    let range = format!("{previous}..{commit}");
    let log = git.output(&[
        "log",
        &limit,
        "--no-renames",
        "--name-status",
        format,
        &range,
    ])?;
    Ok(parse_log(&log))
}

/// Reads `git log --name-status` in the format [`since`] asks for.
fn parse_log(log: &str) -> Vec<Change> {
    log.split(RECORD)
        .filter(|r| !r.trim().is_empty())
        .filter_map(|record| {
            let mut fields = record.splitn(6, FIELD);
            let commit = fields.next()?.trim().to_owned();
            let author = fields.next()?.to_owned();
            let author_email = fields.next()?.to_owned();
            let timestamp = fields.next()?.trim().parse().unwrap_or(0);
            let message = fields.next()?.trim_end().to_owned();
            let paths = fields
                .next()
                .unwrap_or_default()
                .lines()
                .filter_map(|line| {
                    let (status, path) = line.split_once('\t')?;
                    let kind = match status.chars().next()? {
                        'A' => "add",
                        'D' => "delete",
                        _ => "edit",
                    };
                    Some((kind.to_owned(), path.to_owned()))
                })
                .take(MAX_CHANGE_PATHS)
                .collect();
            Some(Change {
                commit,
                author,
                author_email,
                timestamp,
                message,
                paths,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_read_with_its_paths() {
        let log = format!(
            "{RECORD}aaa{FIELD}Ann{FIELD}ann@example.com{FIELD}1700000000{FIELD}Fix it\n\nBody\n{FIELD}\n\nM\tsrc/a.rs\nA\tnew.txt\nD\told.txt\n\
             {RECORD}bbb{FIELD}Bob{FIELD}bob@example.com{FIELD}1600000000{FIELD}First{FIELD}\n"
        );
        let changes = parse_log(&log);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].commit, "aaa");
        assert_eq!(changes[0].message, "Fix it\n\nBody");
        assert_eq!(changes[0].title(), "Fix it");
        assert_eq!(
            changes[0].paths,
            [
                ("edit".to_owned(), "src/a.rs".to_owned()),
                ("add".to_owned(), "new.txt".to_owned()),
                ("delete".to_owned(), "old.txt".to_owned())
            ]
        );
        assert_eq!(changes[1].author, "Bob");
        assert_eq!(changes[1].timestamp, 1_600_000_000);
        assert!(changes[1].paths.is_empty());
    }
}
