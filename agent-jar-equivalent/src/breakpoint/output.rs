//! What `breakpoint` prints: a breakpoint's status as lines for people, instants as
//! RFC 3339 UTC with how far off they are. Pure: the time "now" is an argument.

use std::fmt::Write;

use steward_protocol::breakpoint::{BreakpointClient, BreakpointStatus};

/// `breakpoint status`: what holds the build, until when, and who is connected.
pub fn status(status: &BreakpointStatus, now_ms: i64) -> String {
    let mut out = String::new();
    let at = |ms: i64| format!("{} ({})", rfc3339(ms), relative(ms, now_ms));
    let _ = writeln!(
        out,
        "Build {} #{} on {} is held at a breakpoint.",
        status.job, status.number, status.node
    );
    let _ = writeln!(out, "Reason:      {}", status.reason);
    let _ = writeln!(out, "Started:     {}", at(status.started_ms));
    let _ = writeln!(out, "Expires:     {}", at(status.expires_ms));
    let _ = writeln!(out, "Extendable:  until {}", at(status.max_expires_ms));
    if let Some(ms) = status.connect_by_ms {
        let _ = writeln!(out, "Connect by:  {} or it ends", at(ms));
    }
    if let Some(ms) = status.hold_until_ms {
        let _ = writeln!(out, "Held by:     .hold in the workspace until {}", at(ms));
    }
    if status.resume_on_logout {
        let _ = writeln!(
            out,
            "On logout:   the last client logging out resumes the build"
        );
    }
    if status.clients.is_empty() {
        let _ = writeln!(out, "Clients:     none");
    } else {
        let _ = writeln!(out, "Clients:");
        for c in &status.clients {
            let _ = writeln!(out, "  {}", client(c, now_ms));
        }
    }
    out
}

/// One client: `alice (ssh user web-7, key SHA256:…) from 10.0.0.5 since … (… ago)`.
fn client(client: &BreakpointClient, now_ms: i64) -> String {
    let mut line = client.user.clone();
    let ssh: Vec<String> = [
        client.ssh_user.as_ref().map(|u| format!("ssh user {u}")),
        client.key_fingerprint.as_ref().map(|k| format!("key {k}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !ssh.is_empty() {
        let _ = write!(line, " ({})", ssh.join(", "));
    }
    let _ = write!(
        line,
        " from {} since {} ({})",
        client.address,
        rfc3339(client.since_ms),
        relative(client.since_ms, now_ms)
    );
    line
}

/// `breakpoint extend`: the new expiry.
pub fn extended(status: &BreakpointStatus, now_ms: i64) -> String {
    format!(
        "Breakpoint extended: it now expires at {} ({}).\n",
        rfc3339(status.expires_ms),
        relative(status.expires_ms, now_ms)
    )
}

/// `2026-12-07T08:30:00Z`: whole seconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The date `days` after 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's
/// `civil_from_days`, exact for every i64 day count a millisecond i64 can produce).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `in 25 minutes`, `3 minutes ago`, in whole minutes (rounded down): to the minute is what
/// someone deciding whether to extend needs.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let minutes = (ms.saturating_sub(now_ms) / 60_000).unsigned_abs();
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    match (minutes, ms > now_ms) {
        (0, true) => "in less than a minute".to_owned(),
        (0, false) => "less than a minute ago".to_owned(),
        (n, true) => format!("in {n} {unit}"),
        (n, false) => format!("{n} {unit} ago"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T08:00:00Z.
    const NOW: i64 = 1_796_630_400_000;
    const MINUTE: i64 = 60_000;

    fn sample() -> BreakpointStatus {
        BreakpointStatus {
            job: "web".into(),
            number: 7,
            node: "linux-1".into(),
            reason: "the build failed".into(),
            started_ms: NOW - 5 * MINUTE,
            expires_ms: NOW + 25 * MINUTE + 59_999,
            max_expires_ms: NOW + 235 * MINUTE,
            connect_by_ms: None,
            resume_on_logout: false,
            hold_until_ms: None,
            clients: vec![],
        }
    }

    #[test]
    fn instants_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(NOW), "2026-12-07T08:00:00Z");
        assert_eq!(rfc3339(NOW + 999), "2026-12-07T08:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn distances_are_in_whole_minutes() {
        assert_eq!(relative(NOW + 59_999, NOW), "in less than a minute");
        assert_eq!(relative(NOW + MINUTE, NOW), "in 1 minute");
        assert_eq!(relative(NOW + 90 * MINUTE + 1, NOW), "in 90 minutes");
        assert_eq!(relative(NOW - 1, NOW), "less than a minute ago");
        assert_eq!(relative(NOW - 2 * MINUTE, NOW), "2 minutes ago");
    }

    #[test]
    fn a_status_without_clients() {
        assert_eq!(
            status(&sample(), NOW),
            "Build web #7 on linux-1 is held at a breakpoint.\n\
             Reason:      the build failed\n\
             Started:     2026-12-07T07:55:00Z (5 minutes ago)\n\
             Expires:     2026-12-07T08:25:59Z (in 25 minutes)\n\
             Extendable:  until 2026-12-07T11:55:00Z (in 235 minutes)\n\
             Clients:     none\n"
        );
    }

    #[test]
    fn a_status_with_everything() {
        let mut s = sample();
        s.connect_by_ms = Some(NOW + 10 * MINUTE);
        s.hold_until_ms = Some(NOW + 60 * MINUTE);
        s.resume_on_logout = true;
        s.clients = vec![
            BreakpointClient {
                user: "alice".into(),
                ssh_user: Some("web-7".into()),
                key_fingerprint: Some("SHA256:abc".into()),
                address: "10.0.0.5".into(),
                since_ms: NOW - 3 * MINUTE,
            },
            BreakpointClient {
                user: "bob".into(),
                ssh_user: None,
                key_fingerprint: None,
                address: "10.0.0.6".into(),
                since_ms: NOW,
            },
        ];
        let text = status(&s, NOW);
        let lines: Vec<&str> = text.lines().skip(5).collect();
        assert_eq!(
            lines,
            [
                "Connect by:  2026-12-07T08:10:00Z (in 10 minutes) or it ends",
                "Held by:     .hold in the workspace until 2026-12-07T09:00:00Z (in 60 minutes)",
                "On logout:   the last client logging out resumes the build",
                "Clients:",
                "  alice (ssh user web-7, key SHA256:abc) from 10.0.0.5 since 2026-12-07T07:57:00Z (3 minutes ago)",
                "  bob from 10.0.0.6 since 2026-12-07T08:00:00Z (less than a minute ago)",
            ]
        );
    }

    #[test]
    fn extend_names_the_new_expiry() {
        assert_eq!(
            extended(&sample(), NOW),
            "Breakpoint extended: it now expires at 2026-12-07T08:25:59Z (in 25 minutes).\n"
        );
    }
}
