//! Matching, and the next and previous minutes a spec fires: checked against Jenkins' own
//! tests, and against one another on generated specs.

use super::*;

#[test]
fn day_of_month_and_day_of_week_must_both_match() {
    // Vixie cron would fire on every 13th and every Friday; Jenkins only on Friday the 13th.
    let list = parse("0 12 13 * 5");
    assert!(list.matches(&at(2024, 9, 13, 12, 0)));
    assert!(!list.matches(&at(2024, 8, 13, 12, 0)), "a Tuesday");
    assert!(!list.matches(&at(2024, 9, 20, 12, 0)), "a Friday, the 20th");
    assert_eq!(
        list.next_after(&at(2024, 9, 14, 0, 0)),
        Some(at(2024, 12, 13, 12, 0))
    );
}

#[test]
fn matches_checks_every_field() {
    let list = parse("30 8 1 6 *\n15 * * * 1");
    assert!(list.matches(&at(2025, 6, 1, 8, 30)));
    assert!(!list.matches(&at(2025, 6, 1, 8, 31)));
    assert!(!list.matches(&at(2025, 6, 1, 9, 30)));
    assert!(!list.matches(&at(2025, 6, 2, 8, 30)));
    assert!(!list.matches(&at(2025, 7, 1, 8, 30)));
    // The second line: any Monday at a quarter past.
    assert!(list.matches(&at(2025, 6, 2, 23, 15)));
    assert!(!list.matches(&at(2025, 6, 3, 23, 15)));
}

#[test]
fn next_and_previous_from_jenkins_tests() {
    // Jenkins' CronTabTest (testCeil*, testFloor*, hashedMinute, hashSkips), where the next
    // minute is inclusive; the starting minutes here never match, so strict is the same.
    let ceil =
        |spec: &str, seed: &str, from: CivilMinute| parse_seeded(spec, seed).next_after(&from);
    let floor = |spec: &str, from: CivilMinute| parse(spec).prev_before(&from);
    assert_eq!(
        ceil("0,30 * * * *", "", at(2000, 3, 1, 1, 10)),
        Some(at(2000, 3, 1, 1, 30))
    );
    assert_eq!(
        ceil("0,30 * * * *", "", at(2000, 3, 1, 1, 40)),
        Some(at(2000, 3, 1, 2, 0))
    );
    assert_eq!(
        ceil("15,45 3 * * *", "", at(2000, 3, 1, 2, 30)),
        Some(at(2000, 3, 1, 3, 15))
    );
    assert_eq!(
        ceil("0 0 1 * 0", "", at(2010, 1, 1, 15, 55)),
        Some(at(2010, 8, 1, 0, 0))
    );
    assert_eq!(
        ceil("0 0 1 * 7", "", at(2010, 1, 1, 15, 55)),
        Some(at(2010, 8, 1, 0, 0))
    );
    assert_eq!(
        ceil("0 23 * * 1-5", "", at(2011, 1, 16, 0, 0)),
        Some(at(2011, 1, 17, 23, 0))
    );
    assert_eq!(
        floor("30 * * * *", at(2000, 3, 1, 1, 40)),
        Some(at(2000, 3, 1, 1, 30))
    );
    assert_eq!(
        floor("30 * * * *", at(2000, 3, 1, 1, 10)),
        Some(at(2000, 3, 1, 0, 30))
    );
    assert_eq!(
        floor("15,45 3 * * *", at(2000, 3, 1, 4, 30)),
        Some(at(2000, 3, 1, 3, 45))
    );
    assert_eq!(
        floor("0 0 1 * 0", at(2011, 1, 1, 15, 55)),
        Some(at(2010, 8, 1, 0, 0))
    );

    let t = at(2013, 3, 21, 16, 21);
    assert_eq!(
        ceil("H 17 * * *", "stuff", t),
        Some(at(2013, 3, 21, 17, 56))
    );
    assert_eq!(ceil("H * * * *", "stuff", t), Some(at(2013, 3, 21, 16, 56)));
    assert_eq!(ceil("@hourly", "stuff", t), Some(at(2013, 3, 21, 16, 56)));
    assert_eq!(ceil("@hourly", "junk", t), Some(at(2013, 3, 21, 17, 20)));
    assert_eq!(
        ceil("H H(12-13) * * *", "stuff", t),
        Some(at(2013, 3, 22, 13, 56))
    );
    let h15 = |from| ceil("H/15 * * * *", "stuff", from);
    assert_eq!(h15(at(2013, 3, 21, 16, 21)), Some(at(2013, 3, 21, 16, 26)));
    assert_eq!(h15(at(2013, 3, 21, 16, 31)), Some(at(2013, 3, 21, 16, 41)));
    assert_eq!(h15(at(2013, 3, 21, 16, 42)), Some(at(2013, 3, 21, 16, 56)));
    assert_eq!(h15(at(2013, 3, 21, 16, 59)), Some(at(2013, 3, 21, 17, 11)));
    let midnight = at(2013, 3, 21, 0, 0);
    assert_eq!(
        ceil("H(0-15)/3 * * * *", "junk", midnight),
        Some(at(2013, 3, 21, 0, 2))
    );
    assert_eq!(
        ceil("H(0-3)/4 * * * *", "junk", midnight),
        Some(at(2013, 3, 21, 0, 2))
    );
    assert_eq!(
        ceil("H(0-3)/4 * * * *", "junk", at(2013, 3, 21, 0, 5)),
        Some(at(2013, 3, 21, 1, 2))
    );

    // Jenkins' repeatedHash: over one hour, two `H` lines fire at their two minutes.
    let list = parse_seeded("H * * * *\nH * * * *", "seed");
    let minutes: Vec<u8> = (0..60)
        .filter(|m| list.matches(&at(2013, 4, 3, 11, *m)))
        .collect();
    assert_eq!(minutes, [35, 56]);
}

#[test]
fn next_after_is_strictly_after() {
    let list = parse("0,30 * * * *");
    assert_eq!(
        list.next_after(&at(2024, 5, 5, 10, 0)),
        Some(at(2024, 5, 5, 10, 30))
    );
    assert_eq!(
        list.prev_before(&at(2024, 5, 5, 10, 30)),
        Some(at(2024, 5, 5, 10, 0))
    );
    assert_eq!(
        list.prev_before(&at(2024, 5, 5, 10, 0)),
        Some(at(2024, 5, 4 + 1, 9, 30))
    );
    let every = parse("* * * * *");
    assert_eq!(
        every.next_after(&at(2024, 12, 31, 23, 59)),
        Some(at(2025, 1, 1, 0, 0))
    );
    assert_eq!(
        every.prev_before(&at(2025, 1, 1, 0, 0)),
        Some(at(2024, 12, 31, 23, 59))
    );
}

#[test]
fn next_after_crosses_month_and_year_ends() {
    let list = parse("0 0 1 1 *");
    assert_eq!(
        list.next_after(&at(2024, 12, 31, 23, 59)),
        Some(at(2025, 1, 1, 0, 0))
    );
    assert_eq!(
        list.next_after(&at(2025, 1, 1, 0, 0)),
        Some(at(2026, 1, 1, 0, 0))
    );
    assert_eq!(
        list.prev_before(&at(2025, 1, 1, 0, 0)),
        Some(at(2024, 1, 1, 0, 0))
    );

    let last_days = parse("59 23 31 * *");
    assert_eq!(
        last_days.next_after(&at(2024, 4, 1, 0, 0)),
        Some(at(2024, 5, 31, 23, 59))
    );
    assert_eq!(
        last_days.next_after(&at(2024, 7, 31, 23, 59)),
        Some(at(2024, 8, 31, 23, 59))
    );
    assert_eq!(
        last_days.next_after(&at(2024, 8, 31, 23, 59)),
        Some(at(2024, 10, 31, 23, 59))
    );
    assert_eq!(
        last_days.prev_before(&at(2024, 10, 1, 0, 0)),
        Some(at(2024, 8, 31, 23, 59))
    );

    // Months with 30 days, from the middle of one.
    let thirtieth = parse("15 6 30 * *");
    assert_eq!(
        thirtieth.next_after(&at(2025, 1, 30, 6, 15)),
        Some(at(2025, 3, 30, 6, 15))
    );
    assert_eq!(
        thirtieth.prev_before(&at(2025, 3, 30, 6, 15)),
        Some(at(2025, 1, 30, 6, 15))
    );

    // Hours and minutes roll over inside a day.
    let list = parse("10,50 9,17 * * 1-5");
    assert_eq!(
        list.next_after(&at(2025, 3, 7, 17, 50)),
        Some(at(2025, 3, 10, 9, 10)),
        "Friday to Monday"
    );
    assert_eq!(
        list.next_after(&at(2025, 3, 10, 9, 30)),
        Some(at(2025, 3, 10, 9, 50))
    );
    assert_eq!(
        list.next_after(&at(2025, 3, 10, 9, 50)),
        Some(at(2025, 3, 10, 17, 10))
    );
    assert_eq!(
        list.prev_before(&at(2025, 3, 10, 9, 10)),
        Some(at(2025, 3, 7, 17, 50))
    );
    assert_eq!(
        list.prev_before(&at(2025, 3, 10, 17, 0)),
        Some(at(2025, 3, 10, 9, 50))
    );
}

#[test]
fn february_29th() {
    let leap = parse("0 12 29 2 *");
    assert_eq!(
        leap.next_after(&at(2025, 3, 1, 0, 0)),
        Some(at(2028, 2, 29, 12, 0))
    );
    assert_eq!(
        leap.next_after(&at(2096, 3, 1, 0, 0)),
        Some(at(2104, 2, 29, 12, 0)),
        "2100 is no leap year"
    );
    assert_eq!(
        leap.prev_before(&at(2025, 3, 1, 0, 0)),
        Some(at(2024, 2, 29, 12, 0))
    );
    assert_eq!(
        leap.prev_before(&at(2104, 1, 1, 0, 0)),
        Some(at(2096, 2, 29, 12, 0))
    );
    // On a Monday: 2016, then 2044.
    let monday = parse("0 0 29 2 1");
    assert_eq!(
        monday.next_after(&at(2016, 3, 1, 0, 0)),
        Some(at(2044, 2, 29, 0, 0))
    );
    assert_eq!(
        monday.prev_before(&at(2044, 2, 29, 0, 0)),
        Some(at(2016, 2, 29, 0, 0))
    );
    assert!(monday.matches(&at(2016, 2, 29, 0, 0)));
}

#[test]
fn impossible_dates_never_fire() {
    for spec in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 2 1-5"] {
        let list = parse(spec);
        assert_eq!(list.next_after(&at(2025, 1, 1, 0, 0)), None, "{spec}");
        assert_eq!(list.prev_before(&at(2025, 1, 1, 0, 0)), None, "{spec}");
    }
    // One impossible line does not hide a possible one.
    let list = parse("0 0 30 2 *\n0 0 1 3 *");
    assert_eq!(
        list.next_after(&at(2025, 1, 1, 0, 0)),
        Some(at(2025, 3, 1, 0, 0))
    );
}

#[test]
fn the_search_stops_at_the_end_of_the_calendar() {
    let list = parse("0 0 1 1 *");
    assert_eq!(list.next_after(&at(MAX_YEAR, 1, 1, 0, 0)), None);
    assert_eq!(
        list.next_after(&at(MAX_YEAR - 1, 6, 1, 0, 0)),
        Some(at(MAX_YEAR, 1, 1, 0, 0))
    );
    assert_eq!(list.prev_before(&at(MIN_YEAR, 1, 1, 0, 0)), None);
    assert_eq!(
        list.prev_before(&at(MIN_YEAR, 6, 1, 0, 0)),
        Some(at(MIN_YEAR, 1, 1, 0, 0))
    );
    let every = parse("* * * * *");
    assert_eq!(every.next_after(&at(MAX_YEAR, 12, 31, 23, 59)), None);
    assert_eq!(every.prev_before(&at(MIN_YEAR, 1, 1, 0, 0)), None);
}

#[test]
fn civil_minutes() {
    assert_eq!(
        CivilMinute::new(2024, 2, 29, 0, 0).map(|t| t.to_string()),
        Some("2024-02-29 00:00".into())
    );
    for (y, m, d, h, min) in [
        (2025, 2, 29, 0, 0),
        (2100, 2, 29, 0, 0),
        (2024, 4, 31, 0, 0),
        (2024, 0, 1, 0, 0),
        (2024, 13, 1, 0, 0),
        (2024, 1, 0, 0, 0),
        (2024, 1, 1, 24, 0),
        (2024, 1, 1, 0, 60),
        (MAX_YEAR + 1, 1, 1, 0, 0),
        (MIN_YEAR - 1, 1, 1, 0, 0),
    ] {
        assert_eq!(
            CivilMinute::new(y, m, d, h, min),
            None,
            "{y}-{m}-{d} {h}:{min}"
        );
    }
    assert!(CivilMinute::new(2000, 2, 29, 23, 59).is_some());
    // Known weekdays, Sunday = 0.
    assert_eq!(at(1970, 1, 1, 0, 0).day_of_week(), 4);
    assert_eq!(at(2000, 1, 1, 0, 0).day_of_week(), 6);
    assert_eq!(at(2024, 2, 29, 0, 0).day_of_week(), 4);
    assert_eq!(at(2010, 8, 1, 0, 0).day_of_week(), 0);
    assert_eq!(at(1600, 3, 1, 0, 0).day_of_week(), 3);
    assert_eq!(
        at(MIN_YEAR, 1, 1, 0, 0).day_of_week(),
        at(MIN_YEAR + 400, 1, 1, 0, 0).day_of_week()
    );
    assert!(at(2024, 12, 31, 23, 59) < at(2025, 1, 1, 0, 0));
    assert_eq!(
        at(2024, 2, 28, 23, 59).next_minute(),
        Some(at(2024, 2, 29, 0, 0))
    );
    assert_eq!(
        at(2024, 3, 1, 0, 0).prev_minute(),
        Some(at(2024, 2, 29, 23, 59))
    );
    assert_eq!(
        at(2023, 3, 1, 0, 0).prev_minute(),
        Some(at(2023, 2, 28, 23, 59))
    );
}

/// A line that is mostly valid: five fields of terms with values in or near range.
fn arb_line() -> impl Strategy<Value = String> {
    let field = |min: u32, max: u32| {
        let value = min..=max;
        let term = prop_oneof![
            Just("*".to_owned()),
            Just("H".to_owned()),
            (1..=max + 1).prop_map(|step| format!("*/{step}")),
            (1..=max + 1).prop_map(|step| format!("H/{step}")),
            value.clone().prop_map(|v| v.to_string()),
            (value.clone(), value.clone()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (value.clone(), value.clone(), 1..=max + 1).prop_map(|(a, b, s)| format!(
                "{}-{}/{s}",
                a.min(b),
                a.max(b)
            )),
            (value.clone(), value.clone()).prop_map(|(a, b)| format!(
                "H({}-{})",
                a.min(b),
                a.max(b)
            )),
            (value.clone(), value, 1..=max + 1).prop_map(|(a, b, s)| format!(
                "H({}-{})/{s}",
                a.min(b),
                a.max(b)
            )),
        ];
        proptest::collection::vec(term, 1..3).prop_map(|terms| terms.join(","))
    };
    prop_oneof![
        9 => (field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 7))
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}")),
        1 => prop_oneof![Just("@daily"), Just("@weekly"), Just("@monthly"), Just("@yearly"), Just("@midnight")]
            .prop_map(str::to_owned),
    ]
}

proptest! {
    #[test]
    fn next_and_previous_agree_with_matches(
        lines in proptest::collection::vec(arb_line(), 1..3),
        seed in "[a-z/]{1,12}",
        t in arb_minute(),
    ) {
        let Ok(list) = CronTabList::parse(&lines.join("\n"), &seed) else {
            return Ok(());
        };
        if let Some(next) = list.next_after(&t) {
            prop_assert!(next > t);
            prop_assert!(list.matches(&next), "{next} from {t}");
            // Nothing fires in between.
            prop_assert!(list.prev_before(&next).is_none_or(|prev| prev <= t));
            let mut between = t.next_minute().unwrap();
            for _ in 0..2_000 {
                if between >= next {
                    break;
                }
                prop_assert!(!list.matches(&between), "{between} between {t} and {next}");
                between = between.next_minute().unwrap();
            }
        }
        if let Some(prev) = list.prev_before(&t) {
            prop_assert!(prev < t);
            prop_assert!(list.matches(&prev), "{prev} before {t}");
            prop_assert!(list.next_after(&prev).is_some_and(|next| next >= t));
        }
        if list.matches(&t) {
            prop_assert!(list.next_after(&t.prev_minute().unwrap()) == Some(t));
            prop_assert!(list.prev_before(&t.next_minute().unwrap()) == Some(t));
        }
    }
}
