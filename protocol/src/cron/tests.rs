use super::*;
use proptest::prelude::*;

mod hash;
mod timing;

fn parse(spec: &str) -> CronTabList {
    parse_seeded(spec, "job")
}

fn parse_seeded(spec: &str, seed: &str) -> CronTabList {
    match CronTabList::parse(spec, seed) {
        Ok(list) => list,
        Err(e) => panic!("{spec:?} refused: {e}"),
    }
}

/// The message of the error a spec the test expects to be refused gives.
fn error(spec: &str) -> String {
    match CronTabList::parse(spec, "job") {
        Err(e) => e.to_string(),
        Ok(list) => panic!("{spec:?} parsed as {list:?}"),
    }
}

fn at(year: i32, month: u8, day: u8, hour: u8, minute: u8) -> CivilMinute {
    CivilMinute::new(year, month, day, hour, minute).expect("a valid date")
}

/// Each line as five fields of the values it allows: `*` for a full field, else a list.
fn render(list: &CronTabList) -> Vec<String> {
    list.tabs
        .iter()
        .map(|tab| {
            Field::ALL
                .iter()
                .map(|&field| {
                    let max = if field == Field::DayOfWeek {
                        6
                    } else {
                        field.max()
                    };
                    let values: Vec<u32> = (field.min()..=max)
                        .filter(|v| tab.bits[field.index()] & (1 << v) != 0)
                        .collect();
                    if values.len() == (field.min()..=max).count() {
                        "*".to_owned()
                    } else {
                        values
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn plain_fields() {
    assert_eq!(render(&parse("* * * * *")), ["* * * * *"]);
    assert_eq!(render(&parse("*/1 * * * *")), ["* * * * *"]);
    assert_eq!(render(&parse("0,30 * * * *")), ["0,30 * * * *"]);
    assert_eq!(
        render(&parse("45 9-16/2 * * 1-5")),
        ["45 9,11,13,15 * * 1,2,3,4,5"]
    );
    assert_eq!(render(&parse("0 0 * 1-10/3 *")), ["0 0 * 1,4,7,10 *"]);
    assert_eq!(
        render(&parse("00 022 1,15 1-11 *")),
        ["0 22 1,15 1,2,3,4,5,6,7,8,9,10,11 *"]
    );
    assert_eq!(
        render(&parse("*/20 */6 */10 */5 */3")),
        ["0,20,40 0,6,12,18 1,11,21,31 1,6,11 0,3,6"]
    );
    // A step past the range keeps the first value, as in Jenkins.
    assert_eq!(render(&parse("*/90 1-5/10 * * *")), ["0 1 * * *"]);
    assert_eq!(render(&parse("5-5 * * * *")), ["5 * * * *"]);
    // Tabs and runs of spaces separate fields.
    assert_eq!(render(&parse("5\t4  3 \t 2 1")), ["5 4 3 2 1"]);
}

#[test]
fn day_of_week_seven_is_sunday() {
    assert_eq!(render(&parse("0 0 * * 7")), ["0 0 * * 0"]);
    assert_eq!(render(&parse("0 0 * * 0")), ["0 0 * * 0"]);
    assert_eq!(render(&parse("0 0 * * 5-7")), ["0 0 * * 0,5,6"]);
    assert_eq!(render(&parse("0 0 * * 0-7")), ["0 0 * * *"]);
    assert_eq!(render(&parse("0 0 * * */7")), ["0 0 * * 0"]);
    // 2024-03-03 was a Sunday.
    assert!(parse("0 0 * * 7").matches(&at(2024, 3, 3, 0, 0)));
    assert!(!parse("0 0 * * 7").matches(&at(2024, 3, 4, 0, 0)));
    // H(0-7) may pick 7, which is Sunday too; it parses either way.
    parse("H(0-59) H(0-23) H(1-31) H(1-12) H(0-7)");
}

#[test]
fn an_empty_spec_never_fires() {
    for spec in [
        "",
        "\n\n",
        "# nothing yet",
        "TZ=UTC",
        "TZ=UTC\n# off for now\n",
    ] {
        let list = parse(spec);
        assert!(list.is_empty(), "{spec:?}");
        assert!(!list.matches(&at(2025, 1, 1, 0, 0)));
        assert_eq!(list.next_after(&at(2025, 1, 1, 0, 0)), None);
        assert_eq!(list.prev_before(&at(2025, 1, 1, 0, 0)), None);
        assert_eq!(list.check_sanity(), None);
    }
    assert!(!parse("H * * * *").is_empty());
    assert_eq!(parse("H * * * *").time_zone(), None);
}

#[test]
fn time_zone_lines() {
    for zone in [
        "UTC",
        "Europe/London",
        "America/Argentina/Buenos_Aires",
        "America/Port-au-Prince",
        "Etc/GMT+5",
        "Etc/GMT-14",
        "EST5EDT",
    ] {
        let list = parse(&format!("TZ={zone}\nH 8 * * *"));
        assert_eq!(list.time_zone(), Some(zone));
    }
    // Leading and trailing blanks are trimmed from the line, as Jenkins trims it.
    assert_eq!(
        parse("  TZ=Asia/Tokyo \r\n@daily").time_zone(),
        Some("Asia/Tokyo")
    );
    assert_eq!(
        error("TZ=Europe/London # the office"),
        "line 1: invalid time zone \"Europe/London # the office\": expected a zone ID such as \
         Europe/London or UTC"
    );
    for bad in [
        "TZ=",
        "TZ=/etc/passwd",
        "TZ=../../x",
        "TZ=Europe//London",
        "TZ=Europe/",
        "TZ=TZ=UTC",
    ] {
        assert!(error(bad).starts_with("line 1: invalid time zone"), "{bad}");
    }
    let long = format!("TZ={}", "A".repeat(MAX_TIME_ZONE_LEN + 1));
    assert!(error(&long).starts_with("line 1: invalid time zone \"AAAA"));
    assert!(error(&long).contains('…'));
    // Only the first line may name a zone, not even after a comment: Jenkins reads a later
    // TZ= as a cron line and refuses it.
    assert_eq!(
        error("# London time\nTZ=Europe/London\nH 8 * * *"),
        "line 2: a TZ= line must be the first line of the spec"
    );
    assert_eq!(
        error("TZ=UTC\nTZ=Europe/London"),
        "line 2: a TZ= line must be the first line of the spec"
    );
}

#[test]
fn every_error_names_line_field_and_problem() {
    let cases = [
        ("61 * * * *", "line 1: minute 61 is out of range 0-59"),
        ("# c\n\n0 24 * * *", "line 3: hour 24 is out of range 0-23"),
        ("0 0 0 * *", "line 1: day of month 0 is out of range 1-31"),
        ("0 0 32 * *", "line 1: day of month 32 is out of range 1-31"),
        ("0 0 * 13 *", "line 1: month 13 is out of range 1-12"),
        ("0 0 * * 8", "line 1: day of week 8 is out of range 0-7"),
        (
            "99999999999999999999 * * * *",
            "line 1: minute 99999999999999999999 is out of range 0-59",
        ),
        ("H H(12-24) * * *", "line 1: hour 24 is out of range 0-23"),
        ("H(33-66) * * * *", "line 1: minute 66 is out of range 0-59"),
        (
            "* * * *",
            "line 1: expected 5 fields (minute hour day-of-month month day-of-week) or an alias such as @daily, found 4",
        ),
        (
            "* * * * * *",
            "line 1: expected 5 fields (minute hour day-of-month month day-of-week) or an alias such as @daily, found 6",
        ),
        (
            "30-10 * * * *",
            "line 1: minute range 30-10 is reversed: did you mean 10-30?",
        ),
        (
            "H(30-10) * * * *",
            "line 1: minute range 30-10 is reversed: did you mean 10-30?",
        ),
        (
            "*/0 * * * *",
            "line 1: minute step must be positive, found 0",
        ),
        (
            "1-5/0 * * * *",
            "line 1: minute step must be positive, found 0",
        ),
        (
            "H/0 * * * *",
            "line 1: minute step must be positive, found 0",
        ),
        (
            "H(0-3)/15 * * * *",
            "line 1: minute step 15 is larger than H(0-3), which has 4 values",
        ),
        (
            "0 0 H/29 * *",
            "line 1: day of month step 29 is larger than H(1-28), which has 28 values",
        ),
        (
            "0 0 * * H/8",
            "line 1: day of week step 8 is larger than H(0-6), which has 7 values",
        ),
        (
            "*/2147483648 * * * *",
            "line 1: minute step 2147483648 is too large",
        ),
        (
            "@dayly",
            "line 1: unknown alias \"@dayly\": use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly",
        ),
        (
            "@daily 5",
            "line 1: @daily stands for all five fields, yet \"5\" follows it",
        ),
        (
            "@hourly\t # top of the hour",
            "line 1: @hourly stands for all five fields, yet \"# top of the hour\" follows it",
        ),
        (
            "@DAILY",
            "line 1: unknown alias \"@DAILY\": use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly",
        ),
    ];
    for (spec, message) in cases {
        assert_eq!(error(spec), message, "{spec:?}");
    }
    for (spec, term) in [
        ("5/10 * * * *", "5/10"),
        ("h * * * *", "h"),
        ("HH * * * *", "HH"),
        ("H(1-5 * * * *", "H(1-5"),
        ("H(1-5)x * * * *", "H(1-5)x"),
        ("1,,2 * * * *", ""),
        ("1, * * * *", ""),
        ("-5 * * * *", "-5"),
        ("1-2-3 * * * *", "1-2-3"),
        ("*/5/2 * * * *", "*/5/2"),
        ("*/ * * * *", "*/"),
        ("MON * * * *", "MON"),
        ("L * * * *", "L"),
        ("? * * * *", "?"),
        ("٣ * * * *", "٣"),
        ("5\u{1b}[2J * * * *", "5\\u{1b}[2J"),
    ] {
        let message = error(spec);
        assert!(
            message.contains(&format!("\"{term}\" is not understood")),
            "{spec:?}: {message}"
        );
    }
    assert_eq!(
        error("H H * JAN *"),
        "line 1: month \"JAN\" is not understood: expected *, a number, a range a-b, H or H(a-b), \
         each with an optional /step, separated by commas"
    );
    // No comments after fields.
    assert!(error("H * * * * # daily").ends_with("found 7"));
    // Long terms are cut in the message.
    let message = error(&format!("{} * * * *", "9".repeat(500)));
    assert!(message.len() < 120, "{message}");
}

#[test]
fn the_spec_is_bounded() {
    let long = "#".repeat(MAX_SPEC_LEN + 1);
    assert_eq!(
        CronTabList::parse(&long, "job"),
        Err(CronError::TooLong {
            len: MAX_SPEC_LEN + 1
        })
    );
    let at_limit = "#\n".repeat(MAX_SPEC_LINES);
    assert!(parse(&at_limit).is_empty());
    // Blank lines at the end do not count, as Java's split drops them.
    assert!(parse(&format!("{at_limit}\n\r\n\n")).is_empty());
    let too_many = format!("{at_limit}#");
    assert_eq!(
        CronTabList::parse(&too_many, "job"),
        Err(CronError::TooManyLines)
    );
    let many: String = (0..MAX_SPEC_LINES).map(|_| "H H * * *\n").collect();
    assert_eq!(parse(&many).tabs.len(), MAX_SPEC_LINES);
}

#[test]
fn sanity_advice_as_jenkins_gives_it() {
    // Jenkins' CronTabTest.checkSanity, with the English messages.
    let every = |spec: &str, better: &str| {
        format!(
            "Do you really mean \"every minute\" when you say \"{spec}\"? Perhaps you meant \
             \"{better}\" to poll once per hour"
        )
    };
    let spread = |better: &str, spec: &str| {
        format!("Spread load evenly by using ‘{better}’ rather than ‘{spec}’")
    };
    let short = "Short cycles in the day-of-month field will behave oddly near the end of a month";
    let sanity = |spec: &str| parse_seeded(spec, "stuff").check_sanity();
    assert_eq!(sanity("@hourly"), None);
    assert_eq!(sanity("* * * * *"), Some(every("* * * * *", "H * * * *")));
    assert_eq!(
        sanity("*/1 * * * *"),
        Some(every("*/1 * * * *", "H * * * *"))
    );
    assert_eq!(sanity("H H(0-2) * * *"), None);
    assert_eq!(sanity("* 0 * * *"), Some(every("* 0 * * *", "H 0 * * *")));
    assert_eq!(
        sanity("* 6,18 * * *"),
        Some(every("* 6,18 * * *", "H 6,18 * * *"))
    );
    assert_eq!(sanity("* * 3 * *"), Some(every("* * 3 * *", "H * 3 * *")));
    assert_eq!(
        sanity("*/15 * * * *"),
        Some(spread("H/15 * * * *", "*/15 * * * *"))
    );
    assert_eq!(
        sanity("0,15,30,45 * * * *"),
        Some(spread("H/15 * * * *", "0,15,30,45 * * * *"))
    );
    assert_eq!(sanity("0 * * * *"), Some(spread("H * * * *", "0 * * * *")));
    assert_eq!(sanity("5 * * * *"), Some(spread("H * * * *", "5 * * * *")));
    assert_eq!(sanity("0 3 * * *"), Some(spread("H 3 * * *", "0 3 * * *")));
    assert_eq!(
        sanity("00 22 * * 6"),
        Some(spread("H 22 * * 6", "00 22 * * 6"))
    );
    assert_eq!(sanity("H/15 * 1 1 *"), None);
    assert_eq!(sanity("0 3 H/15 * *"), None);
    assert_eq!(sanity("0 3 H/3 * *"), Some(short.to_owned()));
    assert_eq!(sanity("0 3 */5 * *"), Some(short.to_owned()));
    // Ours: the first line with advice speaks; a comma list that is not 0, n, 2n… is left.
    assert_eq!(
        sanity("H H * * *\n0 3 * * *"),
        Some(spread("H 3 * * *", "0 3 * * *"))
    );
    assert_eq!(sanity("0,20,30 * * * *"), None);
    assert_eq!(sanity("1-5 * * * *"), None);
}

/// Cron-like text: the pieces of specs, well-formed or not, run together.
fn arb_spec_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("*"),
        Just("H"),
        Just("H("),
        Just(")"),
        Just("/"),
        Just("-"),
        Just(","),
        Just(" "),
        Just("\t"),
        Just("\n"),
        Just("\r\n"),
        Just("#"),
        Just("@"),
        Just("daily"),
        Just("midnight"),
        Just("TZ="),
        Just("Europe/London"),
        Just("0"),
        Just("7"),
        Just("29"),
        Just("31"),
        Just("59"),
        Just("60"),
        Just("4294967296"),
        Just("é"),
        Just("\u{0}"),
    ];
    prop_oneof![
        proptest::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat()),
        any::<String>(),
    ]
}

fn arb_minute() -> impl Strategy<Value = CivilMinute> {
    (1990..2100i32, 1..=12u8, 1..=31u8, 0..24u8, 0..60u8).prop_map(|(y, m, d, h, min)| {
        let d = d.min(super::civil::days_in_month(y, m));
        at(y, m, d, h, min)
    })
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in arb_spec_text(), seed in ".{0,20}", t in arb_minute()) {
        if let Ok(list) = CronTabList::parse(&text, &seed) {
            let _ = list.matches(&t);
            let _ = list.next_after(&t);
            let _ = list.prev_before(&t);
            let _ = list.check_sanity();
        }
    }
}
