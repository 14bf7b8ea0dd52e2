//! When a line next fires, or last fired: a walk over months, then over the days the line
//! allows in each, then over its hours and minutes, in wall-clock time.

use super::civil::{CivilMinute, MAX_YEAR, MIN_YEAR, day_of_week, days_in_month};
use super::{CronTab, Field};

/// Most months a search walks before giving up: the Gregorian calendar repeats every 400
/// years, weekdays included, so a line that fires at all fires within that span. In practice
/// a search stops within a few years (February 29th on a given weekday is the rarest date,
/// about once in 28 years); a line with no possible date is caught before the walk.
const MAX_SEARCH_MONTHS: u32 = 400 * 12 + 1;

impl CronTab {
    /// The first minute at or after `from` at which this line fires.
    pub(super) fn ceil(&self, from: CivilMinute) -> Option<CivilMinute> {
        if !self.has_some_date() {
            return None;
        }
        let days = self.bits[Field::DayOfMonth.index()];
        let (mut year, mut month) = (from.year(), from.month());
        // Within the month, the first day and time still allowed.
        let (mut day, mut hour, mut minute) = (from.day(), from.hour(), from.minute());
        for _ in 0..MAX_SEARCH_MONTHS {
            if self.allows(Field::Month, month) {
                let last = days_in_month(year, month);
                let mut candidate = ceil_bit(days, day);
                while let Some(d) = candidate.filter(|d| *d <= last) {
                    if self.allows(Field::DayOfWeek, day_of_week(year, month, d)) {
                        let time = if d == day {
                            self.first_time_from(hour, minute)
                        } else {
                            self.first_time_from(0, 0)
                        };
                        if let Some((h, m)) = time {
                            return CivilMinute::new(year, month, d, h, m);
                        }
                    }
                    candidate = ceil_bit(days, d + 1);
                }
            }
            (day, hour, minute) = (1, 0, 0);
            (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            if year > MAX_YEAR {
                return None;
            }
        }
        None
    }

    /// The last minute at or before `from` at which this line fires.
    pub(super) fn floor(&self, from: CivilMinute) -> Option<CivilMinute> {
        if !self.has_some_date() {
            return None;
        }
        let days = self.bits[Field::DayOfMonth.index()];
        let (mut year, mut month) = (from.year(), from.month());
        let (mut day, mut hour, mut minute) = (from.day(), from.hour(), from.minute());
        for _ in 0..MAX_SEARCH_MONTHS {
            if self.allows(Field::Month, month) {
                let last = days_in_month(year, month);
                let mut candidate = floor_bit(days, day.min(last));
                while let Some(d) = candidate.filter(|d| *d >= 1) {
                    if self.allows(Field::DayOfWeek, day_of_week(year, month, d)) {
                        let time = if d == day {
                            self.last_time_upto(hour, minute)
                        } else {
                            self.last_time_upto(23, 59)
                        };
                        if let Some((h, m)) = time {
                            return CivilMinute::new(year, month, d, h, m);
                        }
                    }
                    candidate = d.checked_sub(1).and_then(|below| floor_bit(days, below));
                }
            }
            (day, hour, minute) = (31, 23, 59);
            (year, month) = if month == 1 {
                (year - 1, 12)
            } else {
                (year, month - 1)
            };
            if year < MIN_YEAR {
                return None;
            }
        }
        None
    }

    /// Whether some month the line allows has a day the line allows (February counting its
    /// 29th). Hours, minutes and weekdays are never empty, and every date falls on every
    /// weekday within 400 years, so this is whether the line ever fires.
    fn has_some_date(&self) -> bool {
        let first_day = ceil_bit(self.bits[Field::DayOfMonth.index()], 1);
        (1..=12u8).any(|month| {
            let longest = if month == 2 {
                29
            } else {
                days_in_month(1, month)
            };
            self.allows(Field::Month, month) && first_day.is_some_and(|d| d <= longest)
        })
    }

    /// The first allowed time of day at or after `hour:minute`.
    fn first_time_from(&self, hour: u8, minute: u8) -> Option<(u8, u8)> {
        let hours = self.bits[Field::Hour.index()];
        let minutes = self.bits[Field::Minute.index()];
        let mut h = ceil_bit(hours, hour).filter(|h| *h < 24)?;
        let mut from_minute = if h == hour { minute } else { 0 };
        loop {
            if let Some(m) = ceil_bit(minutes, from_minute).filter(|m| *m < 60) {
                return Some((h, m));
            }
            h = ceil_bit(hours, h + 1).filter(|h| *h < 24)?;
            from_minute = 0;
        }
    }

    /// The last allowed time of day at or before `hour:minute`.
    fn last_time_upto(&self, hour: u8, minute: u8) -> Option<(u8, u8)> {
        let hours = self.bits[Field::Hour.index()];
        let minutes = self.bits[Field::Minute.index()];
        let mut h = floor_bit(hours, hour)?;
        let mut upto_minute = if h == hour { minute } else { 59 };
        loop {
            if let Some(m) = floor_bit(minutes, upto_minute) {
                return Some((h, m));
            }
            h = floor_bit(hours, h.checked_sub(1)?)?;
            upto_minute = 59;
        }
    }
}

/// The lowest set bit of `bits` at or above `n`.
fn ceil_bit(bits: u64, n: u8) -> Option<u8> {
    let above = bits.checked_shr(u32::from(n)).unwrap_or(0) << n.min(63);
    // trailing_zeros of a non-zero u64 is below 64, so it fits a u8.
    (above != 0).then(|| above.trailing_zeros() as u8)
}

/// The highest set bit of `bits` at or below `n`.
fn floor_bit(bits: u64, n: u8) -> Option<u8> {
    let below = match 1u64.checked_shl(u32::from(n) + 1) {
        Some(limit) => bits & (limit - 1),
        None => bits,
    };
    (below != 0).then(|| (63 - below.leading_zeros()) as u8)
}
