//! A Surefire-style JUnit report of N test cases, about 1 KB each: `<testsuites>` holding
//! suites of [`SUITE_CASES`] cases, each suite with Surefire's attributes and
//! `<properties>`; of the cases 8% fail (an assertion message with `<` and `>`, a stack
//! trace of 30 frames, `<system-out>`), 2% have an error (20 frames), 5% are skipped, and
//! most of the others print a few log lines in `<system-out>` (CDATA, as Surefire writes
//! it). The content is pseudo-random but fixed for a given N.

use std::io::Write;
use std::path::Path;

/// Cases per `<testsuite>`.
const SUITE_CASES: usize = 500;
/// Properties per suite, as Surefire writes the JVM's.
const PROPERTIES: usize = 60;

/// What the report holds.
pub struct Expected {
    pub bytes: u64,
    pub cases: usize,
    /// Failures and errors.
    pub failed: usize,
    pub skipped: usize,
}

/// Writes the report of `cases` test cases to `path`.
pub fn write(path: &Path, cases: usize) -> anyhow::Result<Expected> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut failed, mut skipped) = (0, 0);
    writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>"
    )?;
    for (suite, first) in (0..cases).step_by(SUITE_CASES).enumerate() {
        let count = SUITE_CASES.min(cases - first);
        let class = format!(
            "com.example.module{:02}.service.OrderService{suite:04}Test",
            suite % 20
        );
        writeln!(
            out,
            "  <testsuite xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xsi:noNamespaceSchemaLocation=\"https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report.xsd\" \
             version=\"3.0\" name=\"{class}\" time=\"{}.{:03}\" tests=\"{count}\" errors=\"0\" skipped=\"0\" failures=\"0\">",
            next() % 60,
            next() % 1000
        )?;
        writeln!(out, "    <properties>")?;
        for p in 0..PROPERTIES {
            writeln!(
                out,
                "      <property name=\"bench.property.{p:02}\" value=\"/usr/lib/jvm/java-17-openjdk-amd64/lib/value-{p}-{:x}\"/>",
                next()
            )?;
        }
        writeln!(out, "    </properties>")?;
        for case in first..first + count {
            let roll = next() % 100;
            write!(
                out,
                "    <testcase name=\"shouldProcessOrder{case:06}WhenTheInputIsValid\" classname=\"{class}\" time=\"0.{:03}\"",
                next() % 1000
            )?;
            match roll {
                0..=7 => {
                    failed += 1;
                    writeln!(out, ">")?;
                    writeln!(
                        out,
                        "      <failure message=\"expected: &lt;200&gt; but was: &lt;500&gt;\" type=\"org.opentest4j.AssertionFailedError\">\
                         org.opentest4j.AssertionFailedError: expected: &lt;200&gt; but was: &lt;500&gt;"
                    )?;
                    trace(&mut out, &class, 30, &mut next)?;
                    writeln!(out, "</failure>")?;
                    system_out(&mut out, case, 8, &mut next)?;
                    writeln!(out, "    </testcase>")?;
                }
                8..=9 => {
                    failed += 1;
                    writeln!(out, ">")?;
                    writeln!(
                        out,
                        "      <error message=\"Connection refused (localhost:5432)\" type=\"java.net.ConnectException\">\
                         java.net.ConnectException: Connection refused (localhost:5432)"
                    )?;
                    trace(&mut out, &class, 20, &mut next)?;
                    writeln!(out, "</error>")?;
                    writeln!(out, "    </testcase>")?;
                }
                10..=14 => {
                    skipped += 1;
                    writeln!(out, ">")?;
                    writeln!(
                        out,
                        "      <skipped message=\"@Disabled: flaky on CI &amp; slow\"/>"
                    )?;
                    writeln!(out, "    </testcase>")?;
                }
                15..=24 => writeln!(out, "/>")?,
                _ => {
                    writeln!(out, ">")?;
                    system_out(&mut out, case, 6, &mut next)?;
                    writeln!(out, "    </testcase>")?;
                }
            }
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")?;
    out.flush()?;
    drop(out);
    Ok(Expected {
        bytes: std::fs::metadata(path)?.len(),
        cases,
        failed,
        skipped,
    })
}

/// A Java stack trace of `frames` frames, escaped.
fn trace(
    out: &mut impl Write,
    class: &str,
    frames: usize,
    next: &mut impl FnMut() -> u64,
) -> std::io::Result<()> {
    for frame in 0..frames {
        match frame % 3 {
            0 => writeln!(
                out,
                "\tat {class}.lambda$process$0({}.java:{})",
                class.rsplit('.').next().unwrap_or(class),
                next() % 900 + 10
            )?,
            1 => writeln!(
                out,
                "\tat org.junit.platform.commons.util.ReflectionUtils.invokeMethod(ReflectionUtils.java:{})",
                next() % 900 + 10
            )?,
            _ => writeln!(
                out,
                "\tat com.example.support.Harness$Step.&lt;init&gt;(Harness.java:{})",
                next() % 900 + 10
            )?,
        }
    }
    Ok(())
}

/// `<system-out>` of `lines` log lines, in CDATA.
fn system_out(
    out: &mut impl Write,
    case: usize,
    lines: usize,
    next: &mut impl FnMut() -> u64,
) -> std::io::Result<()> {
    write!(out, "      <system-out><![CDATA[")?;
    for _ in 0..lines {
        let ms = next() % 1000;
        writeln!(
            out,
            "2026-12-07 12:00:{:02}.{ms:03} INFO  [main] c.e.o.OrderService - order {case} <{}> processed in {} ms",
            ms % 60,
            next() % 100_000,
            next() % 50
        )?;
    }
    writeln!(out, "]]></system-out>")
}
