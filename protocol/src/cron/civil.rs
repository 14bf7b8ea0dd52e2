//! Wall-clock minutes: a date and a time of day with no time zone, what a cron spec names.
//!
//! The controller turns an instant into a [`CivilMinute`] in the spec's zone (and back) with
//! a time-zone library; this module only does calendar arithmetic, in the proleptic
//! Gregorian calendar that Jenkins' `GregorianCalendar` also uses for modern dates.

use std::fmt;

/// Earliest year a [`CivilMinute`] holds: the range common date libraries share, so any
/// civil time they hold converts without a check.
pub const MIN_YEAR: i32 = -9999;
/// Latest year a [`CivilMinute`] holds, for the same reason as [`MIN_YEAR`].
pub const MAX_YEAR: i32 = 9999;

/// A minute on the wall clock: year, month (1–12), day (1–31), hour (0–23) and minute
/// (0–59), always a real date. Ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilMinute {
    // Field order is the chronological order the derived `Ord` compares in.
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
}

impl CivilMinute {
    /// The minute `year-month-day hour:minute`, or `None` when that is no date (February
    /// 30th, hour 24) or the year is outside [`MIN_YEAR`]..=[`MAX_YEAR`].
    pub fn new(year: i32, month: u8, day: u8, hour: u8, minute: u8) -> Option<Self> {
        let valid = (MIN_YEAR..=MAX_YEAR).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60;
        valid.then_some(CivilMinute {
            year,
            month,
            day,
            hour,
            minute,
        })
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    /// 1 (January) to 12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// 1 to 31.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// 0 to 23.
    pub fn hour(&self) -> u8 {
        self.hour
    }

    /// 0 to 59.
    pub fn minute(&self) -> u8 {
        self.minute
    }

    /// 0 (Sunday) to 6 (Saturday), as cron counts.
    pub fn day_of_week(&self) -> u8 {
        day_of_week(self.year, self.month, self.day)
    }

    /// The minute after this one, `None` past the end of [`MAX_YEAR`].
    pub fn next_minute(&self) -> Option<Self> {
        let mut t = *self;
        if t.minute < 59 {
            t.minute += 1;
            return Some(t);
        }
        t.minute = 0;
        if t.hour < 23 {
            t.hour += 1;
            return Some(t);
        }
        t.hour = 0;
        let (year, month, day) = next_day(t.year, t.month, t.day)?;
        Some(CivilMinute {
            year,
            month,
            day,
            ..t
        })
    }

    /// The minute before this one, `None` before the start of [`MIN_YEAR`].
    pub fn prev_minute(&self) -> Option<Self> {
        let mut t = *self;
        if t.minute > 0 {
            t.minute -= 1;
            return Some(t);
        }
        t.minute = 59;
        if t.hour > 0 {
            t.hour -= 1;
            return Some(t);
        }
        t.hour = 23;
        let (year, month, day) = prev_day(t.year, t.month, t.day)?;
        Some(CivilMinute {
            year,
            month,
            day,
            ..t
        })
    }
}

/// `2024-02-29 13:05`.
impl fmt::Display for CivilMinute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }
}

pub(super) fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1–12) of `year`; 0 for a month that does not exist.
pub(super) fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// 0 (Sunday) to 6 for a valid date, from its day number since 1970-01-01 (a Thursday).
pub(super) fn day_of_week(year: i32, month: u8, day: u8) -> u8 {
    // rem_euclid(7) is in 0..7, so the conversion cannot fail.
    u8::try_from((days_from_civil(year, month, day) + 4).rem_euclid(7)).unwrap_or(0)
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The day after `year-month-day`, `None` past [`MAX_YEAR`].
pub(super) fn next_day(year: i32, month: u8, day: u8) -> Option<(i32, u8, u8)> {
    if day < days_in_month(year, month) {
        Some((year, month, day + 1))
    } else if month < 12 {
        Some((year, month + 1, 1))
    } else if year < MAX_YEAR {
        Some((year + 1, 1, 1))
    } else {
        None
    }
}

/// The day before `year-month-day`, `None` before [`MIN_YEAR`].
pub(super) fn prev_day(year: i32, month: u8, day: u8) -> Option<(i32, u8, u8)> {
    if day > 1 {
        Some((year, month, day - 1))
    } else if month > 1 {
        Some((year, month - 1, days_in_month(year, month - 1)))
    } else if year > MIN_YEAR {
        Some((year - 1, 12, 31))
    } else {
        None
    }
}
