//! One line of a spec into a [`CronTab`]: Jenkins' `CrontabParser.g4` and `BaseParser`, by
//! hand, with the same values accepted and the same `H` draws in the same order.

use super::hash::JenkinsHash;
use super::{CronTab, Field, LineProblem, quoted};

/// Largest step accepted: Jenkins reads numbers as Java `int`s and refuses larger ones.
const MAX_STEP: u32 = i32::MAX as u32;

/// What each alias stands for, in Jenkins' words.
const ALIASES: [(&str, &str); 7] = [
    ("yearly", "H H H H *"),
    ("annually", "H H H H *"),
    ("monthly", "H H H * *"),
    ("weekly", "H H * * H"),
    ("daily", "H H * * *"),
    ("midnight", "H H(0-2) * * *"),
    ("hourly", "H * * * *"),
];

/// Reads a trimmed, non-blank line that is not a comment, drawing each `H` from `hash`.
pub(super) fn parse_line(line: &str, hash: &mut JenkinsHash) -> Result<CronTab, LineProblem> {
    let fields_text = match line.strip_prefix('@') {
        Some(alias) => expand(alias)?,
        None => line,
    };
    // Jenkins separates fields by runs of spaces and tabs, nothing else.
    let texts: Vec<&str> = fields_text
        .split([' ', '\t'])
        .filter(|text| !text.is_empty())
        .collect();
    if texts.len() != Field::ALL.len() {
        return Err(LineProblem::FieldCount { found: texts.len() });
    }
    let mut bits = [0u64; 5];
    for (field, text) in Field::ALL.into_iter().zip(texts) {
        bits[field.index()] = parse_field(field, text, hash)?;
    }
    // 0 and 7 are both Sunday; keep one bit for it.
    let dow = &mut bits[Field::DayOfWeek.index()];
    if *dow & (1 << 7) != 0 {
        *dow = (*dow | 1) & !(1 << 7);
    }
    Ok(CronTab {
        bits,
        spec: line.to_owned(),
    })
}

/// The fields an alias (`daily` for `@daily`) stands for.
fn expand(alias: &str) -> Result<&'static str, LineProblem> {
    let (name, after) = alias.split_once([' ', '\t']).unwrap_or((alias, ""));
    let expansion = ALIASES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, expansion)| *expansion);
    match expansion {
        // Jenkins' grammar may let text after an alias pass unread; refuse it rather than
        // guess what it meant.
        Some(_) if !after.is_empty() => Err(LineProblem::TextAfterAlias {
            alias: name.to_owned(),
            after: quoted(after.trim_start_matches([' ', '\t'])),
        }),
        Some(expansion) => Ok(expansion),
        None => Err(LineProblem::UnknownAlias {
            alias: quoted(alias),
        }),
    }
}

/// `term,term,…`, read left to right (the order of the `H` draws).
fn parse_field(field: Field, text: &str, hash: &mut JenkinsHash) -> Result<u64, LineProblem> {
    let mut bits = 0;
    for term in text.split(',') {
        bits |= parse_term(field, term, hash)?;
    }
    Ok(bits)
}

fn parse_term(field: Field, term: &str, hash: &mut JenkinsHash) -> Result<u64, LineProblem> {
    let syntax = || LineProblem::Syntax {
        field,
        term: quoted(term),
    };
    let (body, step) = match term.split_once('/') {
        Some((body, step_text)) => {
            let step = number(step_text).ok_or_else(syntax)?;
            if step > MAX_STEP {
                return Err(LineProblem::StepTooLarge {
                    field,
                    step: quoted(step_text),
                });
            }
            (body, Some(step))
        }
        None => (term, None),
    };
    // Jenkins' "no step" is a step of 1, so `H/1` is `H` and `*/1` is `*`.
    let step_or_one = step.unwrap_or(1);
    if body == "*" {
        return range(field, field.min(), field.max(), step_or_one);
    }
    if body == "H" {
        return hashed(field, field.min(), field.hash_max(), step_or_one, hash);
    }
    if let Some(inner) = body.strip_prefix("H(").and_then(|b| b.strip_suffix(')')) {
        let (start, end) = bounds(field, inner).ok_or_else(syntax)??;
        return hashed(field, start, end, step_or_one, hash);
    }
    if body.contains('-') {
        let (start, end) = bounds(field, body).ok_or_else(syntax)??;
        return range(field, start, end, step_or_one);
    }
    // A single value takes no step in Jenkins' grammar (`5/10` is refused).
    if step.is_some() {
        return Err(syntax());
    }
    let value = number(body).ok_or_else(syntax)?;
    in_range(field, value, body)?;
    Ok(1 << value)
}

/// `a-b` with both ends in the field's range; `None` when it is not two numbers.
fn bounds(field: Field, text: &str) -> Option<Result<(u32, u32), LineProblem>> {
    let (start_text, end_text) = text.split_once('-')?;
    let (start, end) = (number(start_text)?, number(end_text)?);
    Some(
        in_range(field, start, start_text)
            .and_then(|()| in_range(field, end, end_text))
            .map(|()| (start, end)),
    )
}

/// `start`, `start + step`, … up to `end`.
fn range(field: Field, start: u32, end: u32, step: u32) -> Result<u64, LineProblem> {
    if step == 0 {
        return Err(LineProblem::ZeroStep { field });
    }
    if start > end {
        return Err(LineProblem::Reversed { field, start, end });
    }
    let mut bits = 0;
    let mut value = Some(start);
    while let Some(v) = value.filter(|v| *v <= end) {
        bits |= 1 << v;
        value = v.checked_add(step);
    }
    Ok(bits)
}

/// `H(start-end)/step`: with a step above 1, every `step`th value from an offset the hash
/// picks below `step`; otherwise one value the hash picks in `start..=end`.
fn hashed(
    field: Field,
    start: u32,
    end: u32,
    step: u32,
    hash: &mut JenkinsHash,
) -> Result<u64, LineProblem> {
    if start > end {
        return Err(LineProblem::Reversed { field, start, end });
    }
    let values = end - start + 1;
    if step > values {
        return Err(LineProblem::HashStepTooLarge {
            field,
            step,
            start,
            end,
            values,
        });
    }
    match step {
        0 => Err(LineProblem::ZeroStep { field }),
        1 => Ok(1 << (start + hash.next(values))),
        _ => range(field, start + hash.next(step), end, step),
    }
}

fn in_range(field: Field, value: u32, text: &str) -> Result<(), LineProblem> {
    if (field.min()..=field.max()).contains(&value) {
        Ok(())
    } else {
        Err(LineProblem::OutOfRange {
            field,
            value: quoted(text),
        })
    }
}

/// A run of ASCII digits as a number, `u32::MAX` when larger (no field goes that far);
/// `None` when `text` is not digits only.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u32::MAX))
}
