//! Durations as users write them: a whole number and a unit, like `30s`, `5m`, `1h`, `2d`
//! or `500ms`, and the same short form back. The agent's `-noReconnectAfter`, a job's
//! breakpoint (`<duration>30m</duration>`), and `breakpoint extend --for 1h` all read them.
//!
//! Jenkins reads a bare number as milliseconds; we refuse it instead, because a script that
//! meant seconds would otherwise give up after a blink. Everything else Jenkins accepts in
//! its simple form is accepted here.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected a number and a unit, e.g. 30s, 5m or 1h")]
    Empty,
    #[error("duration {0:?} has no unit: write e.g. 30s, 5m or 1h")]
    NoUnit(String),
    #[error("duration {0:?} has unknown unit {1:?}: use ms, s, m, h or d")]
    UnknownUnit(String, String),
    #[error("duration {0:?} is not a whole number followed by a unit")]
    NotANumber(String),
    #[error("duration {0:?} is too long")]
    TooLong(String),
}

/// Units in the order [`format_duration`] prefers them, largest first.
const UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Reads `30s`, `5m`, `1h`, `2d` or `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(DurationError::NotANumber(text.to_owned()));
    }
    if unit.is_empty() {
        return Err(DurationError::NoUnit(text.to_owned()));
    }
    let millis_per_unit = UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|(_, ms)| *ms)
        .ok_or_else(|| DurationError::UnknownUnit(text.to_owned(), unit.to_owned()))?;
    let count: u64 = number
        .parse()
        .map_err(|_| DurationError::TooLong(text.to_owned()))?;
    let millis = count
        .checked_mul(millis_per_unit)
        .ok_or_else(|| DurationError::TooLong(text.to_owned()))?;
    Ok(Duration::from_millis(millis))
}

/// The shortest exact form of `duration` in the units [`parse_duration`] reads (`90s`, `5m`).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    // `is_multiple_of` needs Rust 1.87; the workspace's rust-version is 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    let (name, per) = UNITS
        .iter()
        .find(|(_, per)| millis % u128::from(*per) == 0)
        .copied()
        .unwrap_or(("ms", 1));
    format!("{}{name}", millis / u128::from(per))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for milliseconds since the Unix epoch.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_216_645_000), "2026-12-02T13:04:05Z");
    }

    #[test]
    fn reads_each_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 10S "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("30"),
            Err(DurationError::NoUnit("30".into()))
        );
        assert_eq!(
            parse_duration("3w"),
            Err(DurationError::UnknownUnit("3w".into(), "w".into()))
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::NotANumber("s".into()))
        );
        assert_eq!(
            parse_duration("-5s"),
            Err(DurationError::NotANumber("-5s".into()))
        );
        assert_eq!(
            parse_duration("1.5h"),
            Err(DurationError::UnknownUnit("1.5h".into(), ".5h".into()))
        );
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse_duration("999999999999999d"),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for text in ["30s", "5m", "1h", "2d", "250ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
