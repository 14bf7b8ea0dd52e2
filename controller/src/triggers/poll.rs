//! SCM polling: `git ls-remote` of a job's repositories from the controller, and a build
//! when a branch head its branch specifiers select is new.
//!
//! New means: no build of the job checked it out, and no earlier poll started a build for
//! it (the store remembers, `store::polls`). So a notification and a timer arriving
//! together, or a hook repeated by its sender, start one build per new head.

use std::time::Duration;

use steward_protocol::job_xml::git::{BranchSpec, DEFAULT_TIMEOUT_MINUTES, GitRemote};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::builds;
use crate::state::AppState;
use crate::store::builds::CauseKind;
use crate::store::polls;

/// Largest `git ls-remote` answer read: a repository with tens of thousands of refs fits.
const MAX_LS_REMOTE_BYTES: u64 = 32 << 20;

/// What a poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// New heads: a build was queued (its queue id).
    Queued(u64),
    NoChanges,
    /// The job does not check out of Git, or is disabled.
    NotPolled,
}

/// Asks for a poll of `job` in the background, unless one is already waiting to begin
/// (which covers this request): at most one running and one waiting poll per job, however
/// many hooks arrive. False when covered.
pub fn spawn(state: &AppState, job: &str, cause: CauseKind, user: &str) -> bool {
    if !state.triggers.ask_poll(job) {
        return false;
    }
    let (for_task, job, user) = (state.clone(), job.to_owned(), user.to_owned());
    state.tasks.spawn(async move {
        if let Err(e) = poll(&for_task, &job, cause, &user).await {
            for_task.triggers.poll_begins(&job);
            tracing::warn!(job = ?job, error = ?e, "SCM polling failed");
        }
    });
    true
}

/// Polls `job`'s repositories and queues a build with `cause` (and `user`) when one of
/// the heads it builds is new. The poll's log, as Jenkins' "Git Polling Log" reads, is
/// kept for `/job/NAME/scmPollLog/pollingLog`.
pub async fn poll(
    state: &AppState,
    job: &str,
    cause: CauseKind,
    user: &str,
) -> Result<Polled, String> {
    let record = crate::jobs::get(state, job)
        .await
        .map_err(|e| e.to_string())?;
    if record.config.git().is_none() || record.config.disabled {
        return Ok(Polled::NotPolled);
    }
    let lock = state.triggers.poll_lock(&record.name);
    let _polling = lock.lock().await;
    state.triggers.poll_begins(&record.name);
    let started = std::time::Instant::now();
    let mut log = format!(
        "Started on {}\n",
        steward_protocol::duration::utc(crate::builds::now_ms())
    );
    let polled = poll_locked(state, &record, cause, user, &mut log).await;
    match &polled {
        Ok(Polled::Queued(_)) => log.push_str(&format!(
            "Done. Took {} ms\nChanges found\n",
            started.elapsed().as_millis()
        )),
        Ok(_) => log.push_str(&format!(
            "Done. Took {} ms\nNo changes\n",
            started.elapsed().as_millis()
        )),
        Err(e) => log.push_str(&format!("ERROR: {e}\n")),
    }
    state.triggers.set_poll_log(&record.name, log);
    polled
}

/// `build -c`: whether `job` has a head none of its builds checked out and no poll built
/// (its repositories polled as [`poll`] does, nothing queued); the poll's log. A job that
/// does not check out of Git has none, and its log says `No SCM`, as Jenkins' does.
pub async fn has_changes(
    state: &AppState,
    record: &crate::store::jobs::JobRecord,
) -> Result<(bool, String), String> {
    if record.config.git().is_none() {
        return Ok((false, "No SCM\n".into()));
    }
    let lock = state.triggers.poll_lock(&record.name);
    let _polling = lock.lock().await;
    let mut log = String::new();
    let new = new_heads(state, record, &mut log).await?;
    for commit in &new {
        log.push_str(&format!("[poll] New head revision {commit}\n"));
    }
    log.push_str(if new.is_empty() {
        "No changes\n"
    } else {
        "Changes found\n"
    });
    Ok((!new.is_empty(), log))
}

async fn poll_locked(
    state: &AppState,
    record: &crate::store::jobs::JobRecord,
    cause: CauseKind,
    user: &str,
    log: &mut String,
) -> Result<Polled, String> {
    let new = new_heads(state, record, log).await?;
    if new.is_empty() {
        tracing::debug!(job = ?record.name, "polling: no changes");
        return Ok(Polled::NoChanges);
    }
    for commit in &new {
        log.push_str(&format!("[poll] New head revision {commit}\n"));
    }
    let queued = builds::enqueue(
        state,
        &record.name,
        &[],
        cause,
        &crate::audit::Actor::new(user, None),
    )
    .await
    .map_err(|e| e.to_string())?;
    // After the build is queued: a controller stopping in between builds again rather
    // than never.
    let (name, commits) = (record.name.clone(), new.clone());
    if let Err(e) = state
        .store
        .call(move |c| polls::mark_seen(c, &name, &commits))
        .await
    {
        tracing::warn!(job = ?record.name, error = ?e.to_string(), "cannot record polled commits");
    }
    tracing::info!(job = ?record.name, new = ?new, cause = cause.as_str(), "polling found changes; build queued");
    Ok(Polled::Queued(queued.id))
}

/// The heads `record`'s branch specifiers select that are new (see the module
/// documentation); `git ls-remote` of each remote, logged in `log`.
async fn new_heads(
    state: &AppState,
    record: &crate::store::jobs::JobRecord,
    log: &mut String,
) -> Result<Vec<String>, String> {
    let Some(git) = record.config.git() else {
        return Ok(Vec::new());
    };
    let remotes: Vec<String> = git.remotes.iter().map(|r| r.name.clone()).collect();
    let timeout = git.clone.timeout_minutes.unwrap_or(DEFAULT_TIMEOUT_MINUTES);
    let mut heads = Vec::new();
    for remote in &git.remotes {
        log.push_str(&format!(
            " > git ls-remote -- {} # timeout={timeout}\n",
            remote.url
        ));
        let refs = ls_remote(state, remote, timeout).await?;
        log.push_str(&format!(
            "Found {} remote refs on {}\n",
            refs.len(),
            remote.url
        ));
        for (commit, refname) in refs {
            let selected = git.branches.iter().any(|spec| {
                BranchSpec::new(spec).is_ok_and(|spec| spec.matches(&refname, &remotes))
            });
            if selected && !heads.contains(&commit) {
                heads.push(commit);
            }
        }
    }
    let name = record.name.clone();
    let known = state
        .store
        .call(move |c| polls::known_commits(c, &name))
        .await
        .map_err(|e| e.to_string())?;
    Ok(heads.into_iter().filter(|h| !known.contains(h)).collect())
}

/// The remote's refs, as `refs/remotes/REMOTE/BRANCH` for branches (as a fetch with the
/// default refspec names them) and `refs/tags/TAG` (peeled) for tags.
async fn ls_remote(
    state: &AppState,
    remote: &GitRemote,
    timeout_minutes: u32,
) -> Result<Vec<(String, String)>, String> {
    let mut command = Command::new("git");
    command
        .args(["ls-remote", "--", &remote.url])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let _askpass = match &remote.credentials_id {
        Some(id) => Some(crate::credentials::git_command_env(state, id, &mut command).await?),
        None => None,
    };
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "git is not installed on the controller (no `git` on PATH): polling needs it".into()
        } else {
            format!("cannot run git ls-remote: {e}")
        }
    })?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut limited_out = (&mut stdout).take(MAX_LS_REMOTE_BYTES);
        let mut limited_err = (&mut stderr).take(64 << 10);
        let (read_out, read_err) = tokio::join!(
            limited_out.read_to_end(&mut out),
            limited_err.read_to_end(&mut err)
        );
        read_out.map_err(|e| e.to_string())?;
        read_err.map_err(|e| e.to_string())?;
        let status = child.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, out, err))
    };
    let limit = Duration::from_secs(u64::from(timeout_minutes) * 60);
    let (status, out, err) = tokio::time::timeout(limit, run).await.map_err(|_| {
        format!(
            "git ls-remote {} timed out after {timeout_minutes} minutes",
            remote.url
        )
    })??;
    if !status.success() {
        return Err(format!(
            "git ls-remote {} failed: {}",
            remote.url,
            String::from_utf8_lossy(&err).trim()
        ));
    }
    Ok(parse_ls_remote(
        &String::from_utf8_lossy(&out),
        &remote.name,
    ))
}

/// Reads `git ls-remote`'s `SHA<TAB>REF` lines; an annotated tag's peeled line
/// (`refs/tags/v1^{}`) replaces the tag object's.
fn parse_ls_remote(text: &str, remote: &str) -> Vec<(String, String)> {
    let mut refs: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let Some((commit, name)) = line.split_once('\t') else {
            continue;
        };
        let name = if let Some(branch) = name.strip_prefix("refs/heads/") {
            format!("refs/remotes/{remote}/{branch}")
        } else if let Some(peeled) = name.strip_suffix("^{}") {
            refs.retain(|(_, n)| n != peeled);
            peeled.to_owned()
        } else if name.starts_with("refs/tags/") {
            name.to_owned()
        } else {
            continue;
        };
        refs.push((commit.to_owned(), name));
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_remote_is_read_with_tags_peeled() {
        let text = "aaa\tHEAD\nbbb\trefs/heads/main\nccc\trefs/tags/v1\nddd\trefs/tags/v1^{}\neee\trefs/pull/1/head\n";
        assert_eq!(
            parse_ls_remote(text, "origin"),
            [
                ("bbb".to_owned(), "refs/remotes/origin/main".to_owned()),
                ("ddd".to_owned(), "refs/tags/v1".to_owned()),
            ]
        );
    }
}
