//! Jenkins' advice on specs that parse but are likely not what was meant (`CronTab.checkSanity`),
//! with Jenkins' messages, so the form or CLI that shows it reads as Jenkins does.

use super::{CronTab, Field};

impl CronTab {
    /// Jenkins' first advice for this line, if any: every minute, then short day-of-month
    /// cycles, then a fixed minute that `H` would spread.
    pub(super) fn check_sanity(&self) -> Option<String> {
        // Jenkins walks the fields for the first one not full and warns unless it is the
        // minute; the day of week is never full there (it keeps Sunday as 0 only, so 7 is
        // missing), so that is: warn when every minute is allowed.
        let every_minute = (1u64 << 60) - 1;
        if self.bits[Field::Minute.index()] & every_minute == every_minute {
            let rest = self
                .spec
                .split_once([' ', '\t'])
                .map_or(self.spec.as_str(), |(_, rest)| rest);
            return Some(format!(
                "Do you really mean \"every minute\" when you say \"{}\"? Perhaps you meant \
                 \"H {rest}\" to poll once per hour",
                self.spec
            ));
        }
        // Days 1 to 30, as Jenkins counts them.
        let days = (self.bits[Field::DayOfMonth.index()] & (((1u64 << 31) - 1) & !1)).count_ones();
        if days > 5 && days < 28 {
            return Some(
                "Short cycles in the day-of-month field will behave oddly near the end of a month"
                    .to_owned(),
            );
        }
        hashify(&self.spec).map(|better| {
            format!(
                "Spread load evenly by using ‘{better}’ rather than ‘{}’",
                self.spec
            )
        })
    }
}

/// Jenkins' `CronTab.hashify`: the same spec with its fixed minute, or its `*/n` or
/// `0,n,2n,…` minutes, written with `H`; `None` when it already uses `H` or has no such form.
fn hashify(spec: &str) -> Option<String> {
    if spec.contains('H') {
        return None;
    }
    if let Some(rest) = spec.strip_prefix("*/") {
        return Some(format!("H/{rest}"));
    }
    // `\d+ .+`: a number, a space, something.
    let digits = spec.bytes().take_while(u8::is_ascii_digit).count();
    if let Some(rest) = spec[digits..].strip_prefix(' ')
        && digits > 0
        && !rest.is_empty()
    {
        return Some(format!("H {rest}"));
    }
    // `0(,(\d+)(,\d+)*)( .+)`: 0, n, 2n, … below 60, then the other fields.
    let (minutes, rest) = spec.strip_prefix("0,")?.split_once(' ')?;
    if rest.is_empty() {
        return None;
    }
    let values = minutes
        .split(',')
        .map(|v| (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then_some(v))
        .collect::<Option<Vec<_>>>()?;
    let period: u32 = values.first()?.parse().ok()?;
    if period == 0 {
        return None;
    }
    let expected: Vec<String> = (1..)
        .map(|k| k * period)
        .take_while(|v| *v < 60)
        .map(|v| v.to_string())
        .collect();
    (values == expected).then(|| format!("H/{period} {rest}"))
}
