//! Jenkins' cron syntax: the `<spec>` of a job's build timer (`TimerTrigger`) and of its SCM
//! polling (`SCMTrigger`), read into a [`CronTabList`] that says which minutes fire.
//!
//! A spec is lines. Blank lines and lines starting with `#` are skipped; the first line may
//! be `TZ=Area/City`, the time zone the other lines are read in. Every other line is five
//! fields, `minute hour day-of-month month day-of-week`, or an alias:
//!
//! ```text
//! field := term (',' term)*
//! term  := '*' ('/' step)?  |  n  |  n '-' m ('/' step)?
//!        | 'H' ('/' step)?  |  'H(' n '-' m ')' ('/' step)?
//! alias := @yearly | @annually = H H H H *     @monthly = H H H * *
//!        | @weekly = H H * * H    @daily = H H * * *    @midnight = H H(0-2) * * *
//!        | @hourly = H * * * *
//! ```
//!
//! Fields range over 0–59, 0–23, 1–31, 1–12 and 0–7 (0 and 7 are Sunday). A minute fires
//! when one line matches it, and a line matches when all five of its fields do: unlike
//! Vixie cron, a restricted day of month and day of week must *both* match.
//!
//! `H` is a value the job's name picks (`cron/hash.rs`): `H` one value in the field's range,
//! `H(a-b)` one in `a..=b`, `H/n` every `n`th from an offset below `n`. Day-of-month `H`
//! picks within 1–28 and day-of-week `H` within 0–6, so every month and week has it.
//! `H/1` is `H`, one value, as in Jenkins.
//!
//! What a [`CronTabList`] matches is wall-clock time, [`CivilMinute`]: the controller reads
//! the clock in [`CronTabList::time_zone`] (its own zone when `None`) with a time-zone
//! library, since this crate does no I/O and so reads no zone database, and asks
//! [`CronTabList::matches`] once a minute. (Jenkins reads each real minute's wall-clock time,
//! so there a minute skipped by a daylight-saving change never fires and a repeated one fires
//! twice.) [`CronTabList::next_after`] and
//! [`CronTabList::prev_before`] say when it would next, or last, have fired.
//!
//! Where Jenkins accepts a spec, so does this module, and fires at the same minutes for the
//! same job name, with three exceptions: a zone name must look like a zone ID (letters,
//! digits, `/_+-`), since only the controller can tell which zones exist; text after an
//! alias (`@daily 5`) is refused; and an alias line is read in the `TZ=` zone, where Jenkins
//! (re-reading the alias as five fields) loses the zone and uses its own. Where Jenkins
//! refuses a spec, so does this module, with a message naming the line and field.

mod civil;
mod hash;
mod parse;
mod sanity;
mod search;
#[cfg(test)]
mod tests;

use std::fmt;

pub use civil::{CivilMinute, MAX_YEAR, MIN_YEAR};

use crate::shown::Shown;

/// Largest spec accepted, in bytes: a timer is a few lines, and a thousand lines of
/// comments and fields still fit.
pub const MAX_SPEC_LEN: usize = 64 * 1024;
/// Most lines in a spec, comments included: bounds the work of parsing and of each search.
pub const MAX_SPEC_LINES: usize = 1_000;
/// Longest `TZ=` zone name: the longest IANA name is 32 bytes
/// (`America/Argentina/ComodRivadavia`).
pub const MAX_TIME_ZONE_LEN: usize = 64;
/// How much of a term or a zone name an error quotes, in characters: enough to recognise
/// it, without repeating a 64 KiB line.
const MAX_QUOTED_CHARS: usize = 40;

/// A parsed spec: its lines ORed together, and the time zone they are read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronTabList {
    tabs: Vec<CronTab>,
    time_zone: Option<String>,
}

/// One line of a spec: the values each field allows, one bit per value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CronTab {
    /// Indexed by [`Field::index`]; bit `n` set when value `n` matches. Day of week keeps
    /// Sunday as bit 0 only (a written 7 is moved there).
    bits: [u64; 5],
    /// The line as written, trimmed, for [`CronTabList::check_sanity`].
    spec: String,
}

/// One of the five fields of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    /// The fields in the order a line writes them.
    pub const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    /// Position of the field in a line, 0 to 4.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Smallest value the field accepts.
    pub fn min(self) -> u32 {
        match self {
            Field::DayOfMonth | Field::Month => 1,
            _ => 0,
        }
    }

    /// Largest value the field accepts (7 for day of week, Sunday again).
    pub fn max(self) -> u32 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }

    /// Largest value a bare `H` or `H/n` picks: 28 for the day of month, so that every
    /// month has the day, and 6 for the day of week, so that Sunday is not twice as likely.
    fn hash_max(self) -> u32 {
        match self {
            Field::DayOfMonth => 28,
            Field::DayOfWeek => 6,
            other => other.max(),
        }
    }
}

/// `minute`, `hour`, `day of month`, `month`, `day of week`.
impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        })
    }
}

/// Why a spec could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("cron spec is {len} bytes long; at most {MAX_SPEC_LEN} are allowed")]
    TooLong { len: usize },
    #[error("cron spec has more than {MAX_SPEC_LINES} lines")]
    TooManyLines,
    /// A line (counted from 1, blank lines and comments included) is wrong.
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: LineProblem },
}

/// What is wrong with one line of a spec. Quoted text is shortened and shown escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week) or an alias such as \
         @daily, found {found}"
    )]
    FieldCount { found: usize },
    #[error(
        "unknown alias \"@{}\": use @yearly, @annually, @monthly, @weekly, @daily, @midnight \
         or @hourly",
        Shown(.alias)
    )]
    UnknownAlias { alias: String },
    #[error("@{alias} stands for all five fields, yet \"{}\" follows it", Shown(.after))]
    TextAfterAlias { alias: String, after: String },
    #[error(
        "{field} \"{}\" is not understood: expected *, a number, a range a-b, H or H(a-b), \
         each with an optional /step, separated by commas",
        Shown(.term)
    )]
    Syntax { field: Field, term: String },
    #[error("{field} {value} is out of range {}-{}", .field.min(), .field.max())]
    OutOfRange { field: Field, value: String },
    #[error("{field} range {start}-{end} is reversed: did you mean {end}-{start}?")]
    Reversed { field: Field, start: u32, end: u32 },
    #[error("{field} step must be positive, found 0")]
    ZeroStep { field: Field },
    #[error("{field} step {step} is too large")]
    StepTooLarge { field: Field, step: String },
    #[error("{field} step {step} is larger than H({start}-{end}), which has {values} values")]
    HashStepTooLarge {
        field: Field,
        step: u32,
        start: u32,
        end: u32,
        values: u32,
    },
    #[error("invalid time zone \"{}\": expected a zone ID such as Europe/London or UTC", Shown(.name))]
    TimeZone { name: String },
    #[error("a TZ= line must be the first line of the spec")]
    TimeZoneNotFirst,
}

impl CronTabList {
    /// Reads `spec`, picking each `H` with `seed`: the job's full name (`folder/job`), as
    /// Jenkins does, so that a job keeps the minutes it had there.
    pub fn parse(spec: &str, seed: &str) -> Result<Self, CronError> {
        if spec.len() > MAX_SPEC_LEN {
            return Err(CronError::TooLong { len: spec.len() });
        }
        // One sequence for the whole spec: two `H * * * *` lines pick two minutes.
        let mut hash = hash::JenkinsHash::from_seed(seed);
        let mut tabs = Vec::new();
        let mut time_zone = None;
        // Jenkins splits on `\r?\n`, drops the empty lines at the end, and trims each line
        // of everything up to U+0020.
        let spec = spec.trim_end_matches(['\n', '\r']);
        for (index, raw) in spec.split('\n').enumerate() {
            let line_number = index + 1;
            if line_number > MAX_SPEC_LINES {
                return Err(CronError::TooManyLines);
            }
            let fail = |problem| CronError::Line {
                line: line_number,
                problem,
            };
            let line = raw.trim_matches(|c: char| c <= ' ');
            if let Some(name) = line.strip_prefix("TZ=") {
                if line_number != 1 {
                    return Err(fail(LineProblem::TimeZoneNotFirst));
                }
                if !is_zone_name(name) {
                    return Err(fail(LineProblem::TimeZone { name: quoted(name) }));
                }
                time_zone = Some(name.to_owned());
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            tabs.push(parse::parse_line(line, &mut hash).map_err(fail)?);
        }
        Ok(CronTabList { tabs, time_zone })
    }

    /// The zone of the spec's `TZ=` line, unresolved: the controller looks it up and refuses
    /// a zone it does not know. `None` means the controller's own zone.
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_deref()
    }

    /// Whether the spec has no line that fires: blank, comments only, or only `TZ=`.
    pub fn is_empty(&self) -> bool {
        self.tabs.is_empty()
    }

    /// Whether some line of the spec fires at wall-clock minute `t`.
    pub fn matches(&self, t: &CivilMinute) -> bool {
        self.tabs.iter().any(|tab| tab.matches(t))
    }

    /// The first minute strictly after `t` at which the spec fires; `None` when it never
    /// does (an empty spec, `0 0 30 2 *`) or not before the end of [`MAX_YEAR`].
    pub fn next_after(&self, t: &CivilMinute) -> Option<CivilMinute> {
        let from = t.next_minute()?;
        self.tabs.iter().filter_map(|tab| tab.ceil(from)).min()
    }

    /// The last minute strictly before `t` at which the spec fired; `None` when it never
    /// does or not since the start of [`MIN_YEAR`].
    pub fn prev_before(&self, t: &CivilMinute) -> Option<CivilMinute> {
        let from = t.prev_minute()?;
        self.tabs.iter().filter_map(|tab| tab.floor(from)).max()
    }

    /// Jenkins' advice on a spec that parses but is likely not what was meant (every
    /// minute, short day-of-month cycles, fixed minutes that `H` would spread out), in
    /// Jenkins' words; `None` when the spec looks fine. The first line with advice gives it.
    pub fn check_sanity(&self) -> Option<String> {
        self.tabs.iter().find_map(CronTab::check_sanity)
    }
}

impl CronTab {
    fn allows(&self, field: Field, value: u8) -> bool {
        value < 64 && self.bits[field.index()] & (1 << value) != 0
    }

    fn matches(&self, t: &CivilMinute) -> bool {
        self.allows(Field::Minute, t.minute())
            && self.allows(Field::Hour, t.hour())
            && self.allows(Field::DayOfMonth, t.day())
            && self.allows(Field::Month, t.month())
            && self.allows(Field::DayOfWeek, t.day_of_week())
    }
}

/// Whether `name` looks like a time-zone ID (`Europe/London`, `UTC`, `Etc/GMT+5`,
/// `America/Port-au-Prince`): components of letters, digits, `_`, `+` and `-` joined by `/`.
/// No dot and no empty component, so it can never name a path outside a zone database.
fn is_zone_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TIME_ZONE_LEN
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
        })
}

/// `text` cut to [`MAX_QUOTED_CHARS`] characters (with `…` when cut), for an error.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
