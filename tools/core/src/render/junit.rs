//! JUnit XML, for test-report actions and CI dashboards: one test suite per run, one test case
//! per check.

use std::fmt::Write;

use crate::report::{Report, Status};
use crate::secret::redact;

/// Escapes text for XML attributes and content, dropping characters XML 1.0 forbids.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in redact(s).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The report as a JUnit XML document.
pub fn render(report: &Report) -> String {
    let (_, failed, errors, skipped) = report.counts();
    let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\">",
        escape(&report.tool),
        report.checks.len(),
        secs(report.duration_ms)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\" timestamp=\"{}\">",
        escape(&format!("{} {}", report.tool, report.target)),
        report.checks.len(),
        secs(report.duration_ms),
        escape(&report.started_at)
    );
    for c in &report.checks {
        let _ = write!(
            x,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
            escape(&c.name),
            escape(&report.tool),
            secs(c.duration_ms)
        );
        let reason = escape(c.reason.as_deref().unwrap_or(""));
        let mut body = String::new();
        for (k, v) in &c.details {
            let _ = writeln!(body, "{}: {}", escape(k), escape(v));
        }
        match c.status {
            Status::Passed => x.push_str("/>\n"),
            Status::Failed => {
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{reason}\">attempts: {}\n{body}</failure>\n    </testcase>",
                    c.attempts
                );
            }
            Status::Error => {
                let _ = writeln!(
                    x,
                    ">\n      <error message=\"{reason}\">attempts: {}\n{body}</error>\n    </testcase>",
                    c.attempts
                );
            }
            Status::Skipped => {
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"{reason}\"/>\n    </testcase>"
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Check;
    use std::time::Duration;

    #[test]
    fn counts_and_escapes() {
        let mut r = Report::new("smoke-test", "0.1.0", "<staging>");
        r.started_at = "2026-11-28T12:00:00Z".into();
        r.push(Check::new("a & b", Status::Passed).took(Duration::from_millis(12)));
        r.push(Check::new("c", Status::Failed).reason("expected \"ok\" <got> \u{1}"));
        r.push(Check::new("d", Status::Error).reason("connection refused"));
        r.finish(Duration::from_millis(20));
        let x = render(&r);
        assert!(x.contains("tests=\"3\" failures=\"1\" errors=\"1\" skipped=\"0\""));
        assert!(x.contains("name=\"a &amp; b\""));
        assert!(x.contains("<failure message=\"expected &quot;ok&quot; &lt;got&gt; \">"));
        assert!(x.contains("<error message=\"connection refused\">"));
        assert!(x.contains("name=\"smoke-test &lt;staging&gt;\""));
    }
}
