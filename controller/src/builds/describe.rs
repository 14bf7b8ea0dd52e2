//! What people write on a build after the fact: its description (`set-build-description`,
//! `POST /job/J/N/submitDescription`) and its display name (`set-build-display-name`),
//! which Jenkins shows in place of `#N`. Both live in the build's record.

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::builds as records;

/// Longest description kept: Jenkins' descriptions are a few lines of text or HTML; this
/// leaves room for a release note while keeping every build listing small.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// Longest display name kept: a name is shown on one line in place of `#N`.
pub const MAX_DISPLAY_NAME_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("No such build #{0}")]
    NoSuchBuild(u64),
    #[error("The {what} is {len} bytes, over the limit of {limit}")]
    TooLong {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check_len(what: &'static str, text: &str, limit: usize) -> Result<(), DescribeError> {
    if text.len() > limit {
        return Err(DescribeError::TooLong {
            what,
            len: text.len(),
            limit,
        });
    }
    Ok(())
}

/// Sets build `number` of `job` (its stored name)'s description, as given (an empty one
/// too, as Jenkins keeps it).
pub async fn set_description(
    state: &AppState,
    job: &str,
    number: u64,
    description: &str,
) -> Result<(), DescribeError> {
    check_len("description", description, MAX_DESCRIPTION_BYTES)?;
    let (job, text) = (job.to_owned(), description.to_owned());
    let found = state
        .store
        .call(move |c| records::set_description(c, &job, number, Some(&text)))
        .await?;
    if !found {
        return Err(DescribeError::NoSuchBuild(number));
    }
    Ok(())
}

/// The display name as kept: one line, so a line end that closes it (`echo NAME |`) is not
/// part of it; empty means none (`#N` again), as Jenkins' build settings page takes it.
pub fn display_name(given: &str) -> Option<&str> {
    let name = given
        .strip_suffix('\n')
        .map(|n| n.strip_suffix('\r').unwrap_or(n))
        .unwrap_or(given);
    (!name.is_empty()).then_some(name)
}

/// Sets (or clears, see [`display_name`]) build `number` of `job`'s display name.
pub async fn set_display_name(
    state: &AppState,
    job: &str,
    number: u64,
    given: &str,
) -> Result<(), DescribeError> {
    let name = display_name(given).map(str::to_owned);
    if let Some(name) = &name {
        check_len("display name", name, MAX_DISPLAY_NAME_BYTES)?;
    }
    let job = job.to_owned();
    let found = state
        .store
        .call(move |c| records::set_display_name(c, &job, number, name.as_deref()))
        .await?;
    if !found {
        return Err(DescribeError::NoSuchBuild(number));
    }
    Ok(())
}

/// How Jenkins names a build: its display name, else `#N`.
pub fn shown_name(row: &records::BuildRow) -> String {
    row.display_name
        .clone()
        .unwrap_or_else(|| format!("#{}", row.number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_name_is_one_line_and_empty_means_none() {
        assert_eq!(display_name("release-1"), Some("release-1"));
        assert_eq!(display_name("release-1\n"), Some("release-1"));
        assert_eq!(display_name("release-1\r\n"), Some("release-1"));
        assert_eq!(display_name("a\nb\n"), Some("a\nb"));
        assert_eq!(display_name(""), None);
        assert_eq!(display_name("\n"), None);
    }
}
