//! What a build's console says of its breakpoint: how to connect when it starts (and every
//! five minutes after), and how it ended.
//!
//! Each command sits alone on its line, with nothing around it, so a user can copy it from
//! the console as it is.

use steward_protocol::duration::utc;

use super::Held;
use crate::state::AppState;

/// The lines saying until when the build is held and how to connect.
pub async fn how_to_connect(state: &AppState, held: &Held, now_ms: i64) -> String {
    let row = &held.build.row;
    let url = state.config.root_url.as_str().trim_end_matches('/');
    let target = quoted(&format!("{}#{}", row.job, row.number));
    let user = quoted(&format!("{}-{}", row.job, row.number));
    let expires = held.effective_expiry();
    let host_key = match crate::ssh::host_keys::get(state, &row.node)
        .await
        .and_then(|k| k.key)
    {
        Some(key) => format!(
            "Host key: {key} ({})",
            crate::ssh::host_keys::key_fingerprint(&key)
        ),
        None => format!(
            "Host key: not known yet (the agent of {} has not reported one; `cli ssh` fetches it once it has)",
            row.node
        ),
    };
    format!(
        "Breakpoint: running until {} ({} from now).\n\
         Connect with: cli -s {url} ssh {target}\n\
         Or: ssh -o ProxyCommand=\"cli -s {url} ssh-proxy {target}\" {user}@steward\n\
         {host_key}\n",
        utc(expires),
        from_now(expires - now_ms),
    )
}

/// `30 minutes`, `1 hour 5 minutes`, `less than a minute`.
pub fn from_now(ms: i64) -> String {
    let minutes = (ms.max(0) + 30_000) / 60_000;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (minutes / 60, minutes % 60) {
        (0, 0) => "less than a minute".to_owned(),
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
    }
}

/// A word as a POSIX shell reads it: as it is when it holds only characters no shell
/// treats specially, else in single quotes.
pub fn quoted(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "#-_.,+@%/=:".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(from_now(30 * 60_000), "30 minutes");
        assert_eq!(from_now(60_000), "1 minute");
        assert_eq!(from_now(10_000), "less than a minute");
        assert_eq!(from_now(3_600_000), "1 hour");
        assert_eq!(from_now(6 * 3_600_000 + 5 * 60_000), "6 hours 5 minutes");
        assert_eq!(from_now(-5), "less than a minute");
    }

    #[test]
    fn words_are_quoted_only_when_a_shell_would_misread_them() {
        assert_eq!(quoted("web#7"), "web#7");
        assert_eq!(quoted("my job#7"), "'my job#7'");
        assert_eq!(quoted("it's#2"), r"'it'\''s#2'");
        assert_eq!(quoted("a$b"), "'a$b'");
    }
}
