use super::*;

const SUREFIRE: &str = include_str!("../../tests/data/junit/TEST-com.example.CalculatorTest.xml");
const PYTEST: &str = include_str!("../../tests/data/junit/pytest.xml");
const GO: &str = include_str!("../../tests/data/junit/go-junit-report.xml");
const JEST: &str = include_str!("../../tests/data/junit/jest-junit.xml");

fn parse(xml: &str) -> Result<Vec<Suite>, JunitError> {
    parse_report(xml.as_bytes(), &Limits::default())
}

fn result(file: &str, xml: &str) -> TestResult {
    let mut r = TestResult::new();
    r.add_file(file, parse(xml)).unwrap();
    r
}

fn counts(r: &TestResult) -> (usize, usize, usize, usize) {
    (r.total(), r.pass_count(), r.fail_count(), r.skip_count())
}

#[test]
fn surefire() {
    let r = result(
        "target/surefire-reports/TEST-com.example.CalculatorTest.xml",
        SUREFIRE,
    );
    assert_eq!(counts(&r), (5, 2, 2, 1));
    assert_eq!(r.suites.len(), 1);
    let s = &r.suites[0];
    assert_eq!(s.name.as_deref(), Some("com.example.CalculatorTest"));
    assert_eq!(s.duration, 1234.5, "thousands separators are dropped");
    assert_eq!(r.duration, 1234.5);
    assert!(s.properties.is_empty(), "not kept by default");
    assert_eq!(s.stdout, None);
    let names: Vec<&str> = s.cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "addsTwoNumbers",
            "dividesByZero",
            "parsesInput",
            "slowPath",
            "multiplies"
        ]
    );
    let [adds, divides, parses, slow, multiplies] = &s.cases[..] else {
        unreachable!()
    };
    assert_eq!(
        adds.class_name.as_deref(),
        Some("com.example.CalculatorTest")
    );
    assert_eq!((adds.status, adds.duration), (Status::Passed, 0.003));
    assert_eq!(divides.status, Status::Failed);
    assert_eq!(
        divides.error_details.as_deref(),
        Some("expected: <0> but was: <1>")
    );
    let trace = divides.error_stack_trace.as_deref().unwrap();
    assert!(
        trace.starts_with("org.opentest4j.AssertionFailedError: expected: <0> but was: <1>\n\tat ")
    );
    assert!(trace.ends_with("(CalculatorTest.java:27)\n"));
    assert_eq!(divides.stdout.as_deref(), Some("computing 1 / 0\n"));
    assert_eq!(
        parses.status,
        Status::Failed,
        "an <error> fails the test too"
    );
    assert_eq!(
        parses.error_details.as_deref(),
        Some("For input string: \"x\"")
    );
    assert_eq!(parses.duration, 1001.25);
    assert!(slow.skipped && slow.status == Status::Skipped);
    assert_eq!(slow.skipped_message.as_deref(), Some("disabled on CI"));
    assert_eq!(multiplies.stdout.as_deref(), Some("2 * 3 = 6\n"));
    assert_eq!(
        multiplies.stderr.as_deref(),
        Some("warning: deprecated API\n")
    );

    let kept = parse_report(
        SUREFIRE.as_bytes(),
        &Limits {
            keep_properties: true,
            ..Limits::default()
        },
    )
    .unwrap();
    assert_eq!(kept[0].properties.len(), 3);
    assert_eq!(kept[0].properties["java.version"], "17.0.10");
}

#[test]
fn pytest() {
    let r = result("report.xml", PYTEST);
    assert_eq!(counts(&r), (4, 2, 1, 1));
    let s = &r.suites[0];
    assert_eq!(s.name.as_deref(), Some("pytest"));
    assert_eq!(s.timestamp.as_deref(), Some("2024-05-02T10:11:12.345678"));
    assert_eq!(s.duration, 0.087);
    let failed = &s.cases[1];
    assert_eq!(failed.full_name(), "tests.test_math.test_div_zero");
    assert_eq!(
        failed.error_details.as_deref(),
        Some("ZeroDivisionError: division by zero")
    );
    assert_eq!(
        failed.error_stack_trace.as_deref(),
        Some(
            "def test_div_zero():\n>       1 / 0\nE       ZeroDivisionError: division by zero\n\ntests/test_math.py:9: ZeroDivisionError"
        )
    );
    assert_eq!(s.cases[2].skipped_message.as_deref(), Some("not on linux"));
    assert_eq!(s.cases[3].name, "test_read[utf-8-1]");
    assert!(
        s.cases[3]
            .stdout
            .as_deref()
            .unwrap()
            .ends_with("reading sample.txt\n")
    );
}

#[test]
fn go_junit_report() {
    let suites = parse_report(
        GO.as_bytes(),
        &Limits {
            keep_properties: true,
            ..Limits::default()
        },
    )
    .unwrap();
    let mut r = TestResult::new();
    r.add_file("report.xml", Ok(suites)).unwrap();
    assert_eq!(counts(&r), (4, 2, 1, 1));
    let names: Vec<_> = r
        .suites
        .iter()
        .map(|s| s.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        ["github.com_acme_shop_cart", "github.com_acme_shop_pay"],
        "safe names"
    );
    let cart = &r.suites[0];
    assert_eq!(cart.id.as_deref(), Some("0"));
    assert_eq!(cart.properties["go.version"], "go1.22.2 linux/amd64");
    assert_eq!(
        cart.cases[1].class_name.as_deref(),
        Some("github.com/acme/shop/cart")
    );
    assert_eq!(cart.cases[1].error_details.as_deref(), Some("Failed"));
    assert_eq!(
        cart.cases[1].error_stack_trace.as_deref(),
        Some("    cart_test.go:42: expected 1 item, got 2")
    );
    assert_eq!(cart.cases[2].name, "TestRemove/empty");
    assert_eq!(
        r.suites[1].cases[0].skipped_message.as_deref(),
        Some("Skipped")
    );
    assert!((r.duration - 0.015).abs() < 1e-6);
}

#[test]
fn jest_junit() {
    let r = result("junit.xml", JEST);
    assert_eq!(counts(&r), (4, 2, 1, 1));
    assert_eq!(
        r.suites.len(),
        2,
        "the root <testsuites> holds no case itself"
    );
    assert_eq!(r.suites[0].name.as_deref(), Some("src_cart.test.js"));
    let removes = &r.suites[0].cases[1];
    assert_eq!(removes.class_name.as_deref(), Some("Cart removes an item"));
    assert_eq!(
        removes.full_name(),
        "Cart removes an item.Cart removes an item"
    );
    assert_eq!(removes.error_details, None, "jest-junit writes no message");
    assert!(
        removes
            .error_stack_trace
            .as_deref()
            .unwrap()
            .ends_with("(/repo/src/cart.test.js:12:23)")
    );
    assert!(removes.is_failed());
    let checkout = &r.suites[0].cases[2];
    assert_eq!(
        checkout.skipped_message.as_deref(),
        Some(""),
        "<skipped/> has empty text"
    );
    assert_eq!(r.suites[1].duration, 0.5);
}

#[test]
fn nested_suites_come_before_their_parent() {
    let xml = r#"<testsuites><testsuite name="outer" time="3">
        <testsuite name="inner1"><testcase name="a" time="1"/></testsuite>
        <testcase name="b" time="0.5"/>
        <testsuite name="inner2"><testsuite name="deepest"><testcase name="c"/></testsuite></testsuite>
    </testsuite></testsuites>"#;
    let suites = parse(xml).unwrap();
    let names: Vec<_> = suites.iter().map(|s| s.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        ["inner1", "deepest", "outer"],
        "inner2 holds no case of its own"
    );
    assert_eq!(suites[0].cases[0].class_name.as_deref(), Some("inner1"));
    assert_eq!(suites[2].cases.len(), 1);
    assert_eq!(suites[2].cases[0].class_name.as_deref(), Some("outer"));
    assert_eq!(suites[2].duration, 3.0);
    assert_eq!(suites[0].duration, 1.0, "without time, the cases' sum");
}

#[test]
fn class_names_when_missing() {
    let suites = parse(
        r#"<testsuites><testcase name="pkg.Cls.method"/><testcase name="plain"/></testsuites>"#,
    )
    .unwrap();
    let c = &suites[0].cases;
    assert_eq!(
        (c[0].class_name.as_deref(), c[0].name.as_str()),
        (Some("pkg.Cls"), "method")
    );
    assert_eq!(
        (c[1].class_name.as_deref(), c[1].name.as_str()),
        (None, "plain")
    );
    let mut r = TestResult::new();
    r.add_file("out/results.xml", Ok(suites)).unwrap();
    assert_eq!(
        r.suites[0].name.as_deref(),
        Some("(results.xml)"),
        "named after the file"
    );
    let s =
        parse(r#"<testsuite name="S" package="org.x"><testcase name=""/></testsuite>"#).unwrap();
    assert_eq!(s[0].name.as_deref(), Some("org.x.S"));
    assert_eq!(
        s[0].cases[0].class_name.as_deref(),
        Some("S"),
        "the raw name, not the package"
    );
    assert_eq!(s[0].cases[0].name, "(?)");
}

#[test]
fn a_suite_error_is_an_init_case() {
    let xml = r#"<testsuite name="com.x.BrokenTest" time="0.5">
        <error message="java.lang.NoClassDefFoundError: Foo" type="java.lang.NoClassDefFoundError">trace</error>
        <system-out>loading</system-out></testsuite>"#;
    let suites = parse(xml).unwrap();
    let init = &suites[0].cases[0];
    assert_eq!(suites[0].cases.len(), 1);
    assert_eq!(init.class_name.as_deref(), Some("<init>"));
    assert_eq!(init.name, "com.x.BrokenTest");
    assert_eq!(
        init.error_details.as_deref(),
        Some("java.lang.NoClassDefFoundError: Foo")
    );
    assert_eq!(init.error_stack_trace.as_deref(), Some("trace"));
    assert_eq!((init.duration, init.status), (0.5, Status::Failed));
    assert_eq!(init.stdout.as_deref(), Some("loading"));
    // <error> comes before <failure>, whatever the order; the first of each counts.
    let xml = r#"<testsuite name="s"><testcase name="t"><failure message="f">F</failure>
        <error message="e1">E1</error><error message="e2">E2</error></testcase></testsuite>"#;
    let case = &parse(xml).unwrap()[0].cases[0];
    assert_eq!(case.error_details.as_deref(), Some("e1"));
    assert_eq!(case.error_stack_trace.as_deref(), Some("E1"));
    // An empty <failure/> still fails the test.
    let case = &parse(r#"<testsuite><testcase name="t"><failure/></testcase></testsuite>"#)
        .unwrap()[0]
        .cases[0];
    assert_eq!(
        (
            case.error_stack_trace.as_deref(),
            case.error_details.as_deref()
        ),
        (Some(""), None)
    );
    assert!(case.is_failed());
}

#[test]
fn times_are_read_as_jenkins_reads_them() {
    for (text, want) in [
        ("1.5", 1.5),
        ("1,234.5", 1234.5),
        (" 2 ", 2.0),
        ("1e3", 1000.0),
        ("2.5f", 2.5),
        ("1.5s", 1.5),
        ("12abc", 12.0),
        ("abc", 0.0),
        ("", 0.0),
        ("-3", -3.0),
    ] {
        assert_eq!(parse_time(Some(text)), want, "{text:?}");
    }
    assert_eq!(parse_time(None), 0.0);
    let s = parse(r#"<testsuite><testcase name="a" time="-3"/><testcase name="b" time="1e99"/><testcase name="c" time="NaN"/></testsuite>"#)
        .unwrap();
    let d: Vec<f32> = s[0].cases.iter().map(|c| c.duration).collect();
    assert_eq!(d, [0.0, 31_536_000.0, 0.0], "clamped between 0 and a year");
}

#[test]
fn output_is_cut_as_jenkins_cuts_it() {
    let long = |n: usize| {
        (0..n)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect::<String>()
    };
    let out = long(2000);
    let xml = format!(
        r#"<testsuite name="s"><testcase name="pass"><system-out>{out}</system-out></testcase></testsuite>"#
    );
    let case = &parse(&xml).unwrap()[0].cases[0];
    let want = format!(
        "{}\n...[truncated 1000 chars]...\n{}",
        &out[..500],
        &out[1500..]
    );
    assert_eq!(case.stdout.as_deref(), Some(want.as_str()));

    let out = long(120_000);
    let xml = format!(
        r#"<testsuite name="s"><system-out>{out}</system-out><testcase name="fail"><failure/><system-err>{out}</system-err></testcase></testsuite>"#
    );
    let suite = &parse(&xml).unwrap()[0];
    let want = format!(
        "{}\n...[truncated 20000 chars]...\n{}",
        &out[..50_000],
        &out[70_000..]
    );
    assert_eq!(suite.cases[0].stderr.as_deref(), Some(want.as_str()));
    assert_eq!(
        suite.stdout.as_deref(),
        Some(want.as_str()),
        "the suite has a failure"
    );

    let all = Limits {
        stdio: StdioRetention::All,
        ..Limits::default()
    };
    let xml = format!(
        r#"<testsuite><testcase name="p"><system-out>{out}</system-out></testcase></testsuite>"#
    );
    let case = &parse_report(xml.as_bytes(), &all).unwrap()[0].cases[0];
    assert_eq!(case.stdout.as_deref(), Some(out.as_str()));
    let failed = Limits {
        stdio: StdioRetention::Failed,
        ..Limits::default()
    };
    let case = &parse_report(xml.as_bytes(), &failed).unwrap()[0].cases[0];
    assert_eq!(
        case.stdout.as_deref().map(str::len),
        Some(1000 + "\n...[truncated 119000 chars]...\n".len())
    );
}

#[test]
fn huge_text_streams_through() {
    // 8 MB of output in one text run and one CDATA section: read in pieces, 1,000
    // characters kept.
    let big = "0123456789abcdef".repeat(512 * 1024);
    let xml = format!(
        "<testsuite><testcase name='t'><system-out>{big}</system-out><system-err><![CDATA[{big}]]></system-err></testcase></testsuite>"
    );
    let case = &parse(&xml).unwrap()[0].cases[0];
    let want = format!(
        "{}\n...[truncated {} chars]...\n{}",
        &big[..500],
        big.len() - 1000,
        &big[big.len() - 500..]
    );
    assert_eq!(case.stdout.as_deref(), Some(want.as_str()));
    assert_eq!(case.stderr.as_deref(), Some(want.as_str()));
    // A 1 MB message: cut by the reader, then to 50,000 characters at each end.
    let xml = format!(
        "<testsuite><testcase name='t'><failure message='{}'/></testcase></testsuite>",
        "m".repeat(1 << 20)
    );
    let case = &parse(&xml).unwrap()[0].cases[0];
    let details = case.error_details.as_deref().unwrap();
    assert!(details.len() < 100_100, "{}", details.len());
    assert!(details.contains("\n...[truncated "));
    assert!(details.ends_with(&format!(
        " ...[truncated {} bytes]",
        (1 << 20) - MAX_ATTRIBUTE_VALUE_BYTES
    )));
}

#[test]
fn text_details() {
    // Line ends as XML reads them, NUL shown as Jenkins shows it, entities resolved.
    let xml = "<testsuite><testcase name='t'><system-out>a\r\nb\rc\0d &amp; &#x41;</system-out></testcase></testsuite>";
    let case = &parse(xml).unwrap()[0].cases[0];
    assert_eq!(case.stdout.as_deref(), Some("a\nb\nc^@d & A"));
    // Text of the element itself, not of its children.
    let xml = "<testsuite><testcase name='t'><failure>own<b>child</b> more</failure></testcase></testsuite>";
    let case = &parse(xml).unwrap()[0].cases[0];
    assert_eq!(case.error_stack_trace.as_deref(), Some("own more"));
    // A message with a raw line break reads as a space, as attribute values do.
    let xml = "<testsuite><testcase name='t'><failure message='a\nb'/></testcase></testsuite>";
    assert_eq!(
        parse(xml).unwrap()[0].cases[0].error_details.as_deref(),
        Some("a b")
    );
}

#[test]
fn empty_unreadable_and_foreign_files() {
    assert_eq!(parse(""), Err(JunitError::Empty));
    assert_eq!(parse("  \n"), Err(JunitError::NoRoot));
    assert_eq!(
        parse("<?xml version='1.0'?><!-- nothing -->"),
        Err(JunitError::NoRoot)
    );
    let err = parse("<html><body>404</body></html>").unwrap_err();
    assert_eq!(
        err,
        JunitError::NotJunit {
            root: "html".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "not a JUnit report: the root element is <html>, not <testsuites> or <testsuite>"
    );

    let mut r = TestResult::new();
    r.add_file("/ws/target/TEST-a.xml", parse("")).unwrap();
    r.add_file("/ws/target/TEST-b.xml", parse("<html/>"))
        .unwrap();
    let not_xml = r.add_file("/ws/target/index.html", parse("<html/>"));
    assert!(
        matches!(not_xml, Err(JunitError::NotJunit { .. })),
        "Jenkins fails the build"
    );
    assert_eq!(counts(&r), (2, 0, 2, 0));
    let empty = &r.suites[0];
    assert_eq!(empty.name.as_deref(), Some("TEST-a.xml"));
    assert_eq!(empty.cases[0].name, "[empty]");
    assert_eq!(empty.cases[0].class_name.as_deref(), Some("TEST-a.xml"));
    assert_eq!(
        empty.cases[0].error_stack_trace.as_deref(),
        Some("Test report file /ws/target/TEST-a.xml was length 0")
    );
    let unreadable = &r.suites[1].cases[0];
    assert_eq!(unreadable.name, "[failed-to-read]");
    assert!(
        unreadable
            .error_stack_trace
            .as_deref()
            .unwrap()
            .starts_with(
                "Failed to read test report file /ws/target/TEST-b.xml\nnot a JUnit report"
            )
    );
}

#[test]
fn truncated_and_malformed_reports_say_where() {
    let at = PYTEST.find("tests/test_math.py:9").unwrap();
    let cut = &PYTEST[..at];
    match parse(cut).unwrap_err() {
        JunitError::Truncated { position, element } => {
            assert_eq!(position, at as u64);
            assert_eq!(element, "failure");
        }
        e => panic!("{e:?}"),
    }
    let err = parse("<testsuite><testcase name='a'></testsuite>").unwrap_err();
    assert!(
        matches!(err, JunitError::Syntax { position, .. } if position > 20),
        "{err:?}"
    );
    let err = parse(&PYTEST[..300]).unwrap_err();
    assert_eq!(
        err,
        JunitError::Syntax {
            position: 300,
            reason: "syntax error: tag not closed: `>` not found before end of input".into()
        }
    );
    let err = parse("<testsuite/><testsuite/>").unwrap_err();
    assert!(err.to_string().contains("after the root element"), "{err}");
    let err = parse("<testsuite>&nbsp;</testsuite>").unwrap_err();
    assert!(matches!(err, JunitError::Syntax { .. }), "{err:?}");
}

#[test]
fn hostile_reports_are_refused() {
    let xml = r#"<?xml version="1.0"?><!DOCTYPE testsuite [<!ENTITY a "aaaaaaaaaa">]><testsuite><testcase name="&a;"/></testsuite>"#;
    assert!(matches!(parse(xml), Err(JunitError::Doctype { .. })));
    let deep = "<testsuite>".repeat(MAX_DEPTH + 1) + &"</testsuite>".repeat(MAX_DEPTH + 1);
    assert!(matches!(
        parse(&deep),
        Err(JunitError::TooDeep {
            limit: MAX_DEPTH,
            ..
        })
    ));
    let few = Limits {
        max_cases: 2,
        max_report_bytes: 200,
        ..Limits::default()
    };
    let three = "<testsuite><testcase/><testcase/><testcase/></testsuite>";
    assert_eq!(
        parse_report(three.as_bytes(), &few),
        Err(JunitError::TooManyCases { limit: 2 })
    );
    let big = format!("<testsuite>{}</testsuite>", " ".repeat(300));
    assert!(matches!(
        parse_report(big.as_bytes(), &few),
        Err(JunitError::TooLarge { .. })
    ));
    let tag = format!("<testsuite {}/>", "a".repeat(MAX_MARKUP_BYTES));
    assert!(matches!(parse(&tag), Err(JunitError::MarkupTooLong { .. })));
}

#[test]
fn many_cases() {
    // 50,000 cases, 1 in 10 failing: the counts, and no case lost.
    let mut xml = String::from("<testsuites><testsuite name='big'>");
    for i in 0..50_000 {
        if i % 10 == 0 {
            xml.push_str(&format!("<testcase classname='C' name='t{i}' time='0.001'><failure message='boom'>at C.t{i}</failure></testcase>"));
        } else {
            xml.push_str(&format!(
                "<testcase classname='C' name='t{i}' time='0.001'/>"
            ));
        }
    }
    xml.push_str("</testsuite></testsuites>");
    let r = result("big.xml", &xml);
    assert_eq!(counts(&r), (50_000, 45_000, 5_000, 0));
    assert_eq!(r.suites[0].cases[49_999].name, "t49999");
}

#[test]
fn suites_split_over_files_are_merged() {
    let part = |case: &str, id: &str| {
        format!(
            r#"<testsuite name="com.x.T" time="1" {id}><testcase classname="com.x.T" name="{case}" time="1"/></testsuite>"#
        )
    };
    let mut r = TestResult::new();
    r.add_file("a.xml", parse(&part("one", ""))).unwrap();
    r.add_file("b.xml", parse(&part("two", ""))).unwrap();
    assert_eq!(r.suites.len(), 1);
    assert_eq!(r.suites[0].cases.len(), 2);
    assert_eq!((r.suites[0].duration, r.duration), (2.0, 2.0));
    let mut r = TestResult::new();
    r.add_file("a.xml", parse(&part("one", "id='1'"))).unwrap();
    r.add_file("b.xml", parse(&part("two", "id='2'"))).unwrap();
    assert_eq!(r.suites.len(), 2, "same name, other id");
    let mut all = TestResult::new();
    all.merge(r);
    all.merge(result("c.xml", &part("three", "")));
    assert_eq!(all.suites.len(), 2, "no id matches any");
    assert_eq!(all.total(), 3);
}

/// A result whose cases have the given outcomes (`p`, `f`, `s`) and failedSince.
fn outcomes(cases: &[(&str, char, u32)]) -> TestResult {
    let mut xml = String::from("<testsuite name='S'>");
    for (name, outcome, _) in cases {
        let inner = match outcome {
            'f' => "<failure message='x'/>",
            's' => "<skipped/>",
            _ => "",
        };
        xml.push_str(&format!(
            "<testcase classname='C' name='{name}'>{inner}</testcase>"
        ));
    }
    xml.push_str("</testsuite>");
    let mut r = result("r.xml", &xml);
    for (case, (_, _, since)) in r.suites[0].cases.iter_mut().zip(cases) {
        case.failed_since = *since;
    }
    r
}

#[test]
fn statuses_against_earlier_builds() {
    let build8 = outcomes(&[("H", 'f', 5)]);
    let build9 = outcomes(&[
        ("A", 'p', 0),
        ("B", 'f', 8),
        ("C", 'f', 9),
        ("D", 'p', 0),
        ("E", 's', 0),
    ]);
    let mut now = outcomes(&[
        ("A", 'p', 0),
        ("B", 'f', 0),
        ("C", 'p', 0),
        ("D", 'f', 0),
        ("E", 'p', 0),
        ("F", 'f', 0),
        ("G", 's', 0),
        ("H", 'f', 0),
    ]);
    now.compare_with(10, [&build9, &build8]);
    let got: Vec<(&str, Status, u32, u32)> = now.suites[0]
        .cases
        .iter()
        .map(|c| (c.name.as_str(), c.status, c.failed_since, c.age))
        .collect();
    assert_eq!(
        got,
        [
            ("A", Status::Passed, 0, 0),
            ("B", Status::Failed, 8, 3),
            ("C", Status::Fixed, 0, 0),
            ("D", Status::Regression, 10, 1),
            ("E", Status::Fixed, 0, 0),
            ("F", Status::Failed, 10, 1),
            ("G", Status::Skipped, 0, 11),
            ("H", Status::Failed, 5, 6),
        ]
    );
    // Alone, a failure is new.
    let mut first = outcomes(&[("A", 'f', 0)]);
    first.compare_with(1, []);
    assert_eq!(
        (
            first.suites[0].cases[0].failed_since,
            first.suites[0].cases[0].age
        ),
        (1, 1)
    );
}

#[test]
fn json_is_jenkins_shape() {
    let xml = r#"<testsuite name="S" time="0.25" timestamp="T"><testcase classname="C" name="ok" time="0.25"><system-out>out</system-out></testcase><testcase classname="C" name="bad" time="0"><failure message="m">trace</failure></testcase><system-err>suite err</system-err></testsuite>"#;
    let mut r = result("r.xml", xml);
    r.compare_with(7, []);
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"_class":"hudson.tasks.junit.TestResult","testActions":[],"duration":0.25,"empty":false,"failCount":1,"passCount":1,"skipCount":0,"suites":[{"cases":["#,
            r#"{"testActions":[],"age":0,"className":"C","duration":0.25,"errorDetails":null,"errorStackTrace":null,"failedSince":0,"name":"ok","properties":{},"skipped":false,"skippedMessage":null,"status":"PASSED","stderr":"suite err","stdout":"out"},"#,
            r#"{"testActions":[],"age":1,"className":"C","duration":0.0,"errorDetails":"m","errorStackTrace":"trace","failedSince":7,"name":"bad","properties":{},"skipped":false,"skippedMessage":null,"status":"FAILED","stderr":"suite err","stdout":null}],"#,
            r#""duration":0.25,"enclosingBlockNames":[],"enclosingBlocks":[],"id":null,"name":"S","nodeId":null,"properties":{},"stderr":"suite err","stdout":null,"timestamp":"T"}]}"#
        )
    );
    // What was written reads back, for the next build's comparison.
    let back: TestResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back.suites[0].cases[1].failed_since, 7);
    assert_eq!(back.fail_count(), 1);
    let empty = serde_json::to_value(TestResult::new()).unwrap();
    assert_eq!(empty["empty"], true);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = parse_report(&bytes[..], &Limits::default());
    }

    #[test]
    fn damaged_reports_never_panic(cut in 0usize..2000, at in 0usize..2000, byte: u8) {
        for sample in [SUREFIRE, PYTEST, GO, JEST] {
            let mut bytes = sample.as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut.max(1));
            if let Ok(suites) = parse_report(&bytes[..], &Limits::default()) {
                let mut r = TestResult::new();
                let _ = r.add_file("x.xml", Ok(suites));
                let _ = serde_json::to_string(&r);
            }
        }
    }
}
