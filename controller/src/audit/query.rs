//! Reading the audit log back: `-since` (a time or a duration back from now) and `-user`
//! as a [`Filter`], and an entry as `audit-log` prints it (one line, tab-separated) or as
//! JSON (`audit-log -json`, `GET /audit-log/api/json`).

use serde_json::{Value, json};
use steward_protocol::shown::shown;

use crate::store::audit::{AuditRow, Filter};

/// Entries read from the store at a time while a listing is written out: the listing
/// never holds more than this many in memory, however long the log.
pub const PAGE: usize = 500;

/// The filter `-since` and `-user` give; `now_ms` is what a duration counts back from.
pub fn filter(since: Option<&str>, user: Option<&str>, now_ms: i64) -> Result<Filter, String> {
    Ok(Filter {
        since_ms: since.map(|s| parse_since(s, now_ms)).transpose()?,
        user: user.map(str::to_owned),
    })
}

/// `-since`: an ISO-8601 time (`2026-12-02T13:04:05Z`, with an offset, or without one as
/// UTC; a date alone is its midnight UTC), or a duration back from `now_ms` (`30m`, `1h`,
/// `2d`).
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(duration) = steward_protocol::duration::parse_duration(text) {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ms));
    }
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at.as_millisecond());
    }
    let utc = |dt: jiff::civil::DateTime| {
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_millisecond())
    };
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>()
        && let Ok(ms) = utc(dt)
    {
        return Ok(ms);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && let Ok(ms) = utc(date.to_datetime(jiff::civil::Time::midnight()))
    {
        return Ok(ms);
    }
    Err(format!(
        "‘{}’ is neither a time (ISO 8601, e.g. 2026-12-02T13:04:05Z) nor a duration back from now (e.g. 30m, 1h, 2d)",
        shown(text)
    ))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// One line: time, user, action, target, remote address (`-` when none), details (JSON),
/// separated by tabs, each value escaped so that neither a tab nor a line break of its
/// own, nor a control character, can reach the terminal.
pub fn line(row: &AuditRow) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\n",
        time(row.time_ms),
        shown(&row.user),
        shown(&row.action),
        shown(&row.target),
        shown(row.remote.as_deref().unwrap_or("-")),
        shown(&row.details)
    )
}

/// The entry as JSON.
pub fn json(row: &AuditRow) -> Value {
    json!({
        "id": row.id,
        "time": time(row.time_ms),
        "timestamp": row.time_ms,
        "user": row.user,
        "action": row.action,
        "target": row.target,
        "remoteAddress": row.remote,
        "details": serde_json::from_str::<Value>(&row.details).unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_216_645_000; // 2026-12-02T13:04:05Z

    #[test]
    fn since_reads_durations_and_times() {
        assert_eq!(parse_since("30m", NOW), Ok(NOW - 30 * 60_000));
        assert_eq!(parse_since("2d", NOW), Ok(NOW - 2 * 86_400_000));
        assert_eq!(parse_since("2026-12-02T13:04:05Z", NOW), Ok(NOW));
        assert_eq!(parse_since("2026-12-02T14:04:05+01:00", NOW), Ok(NOW));
        assert_eq!(parse_since("2026-12-02T13:04:05", NOW), Ok(NOW));
        assert_eq!(
            parse_since("2026-12-02", NOW),
            Ok(NOW - 13 * 3_600_000 - 4 * 60_000 - 5_000)
        );
        let bad = parse_since("yesterday\u{1b}", NOW).unwrap_err();
        assert!(bad.contains("‘yesterday\\u{1b}’ is neither"), "{bad}");
        assert!(parse_since("5", NOW).is_err());
    }

    #[test]
    fn a_line_is_one_line_whatever_the_values() {
        let row = AuditRow {
            id: 1,
            time_ms: NOW + 7,
            user: "al\tice".into(),
            action: "job.create".into(),
            target: "evil\nname\u{1b}[2J".into(),
            remote: None,
            details: r#"{"why":"a\nb"}"#.into(),
        };
        assert_eq!(
            line(&row),
            "2026-12-02T13:04:05.007Z\tal\\tice\tjob.create\tevil\\nname\\u{1b}[2J\t-\t{\"why\":\"a\\nb\"}\n"
        );
        let value = json(&row);
        assert_eq!(value["remoteAddress"], Value::Null);
        assert_eq!(value["details"]["why"], "a\nb");
        assert_eq!(value["time"], "2026-12-02T13:04:05.007Z");
    }
}
