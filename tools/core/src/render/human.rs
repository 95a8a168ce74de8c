//! The terminal renderer: what a person reads on stderr. Colour only on a terminal.

use std::io::{self, Write};

use crate::exit::Exit;
use crate::report::{Report, Status};
use crate::secret::redact;

use super::short_duration;

/// Writes the report for a person. `colour` adds ANSI colours.
pub fn render(report: &Report, colour: bool, out: &mut impl Write) -> io::Result<()> {
    let paint = |code: &str, s: &str| {
        if colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    };
    let dry = if report.dry_run { " (dry run)" } else { "" };
    writeln!(
        out,
        "{}{dry} · {}",
        paint("1", &report.tool),
        redact(&report.target)
    )?;
    let width = report
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let mark = match c.status {
            Status::Passed => paint("32", c.status.mark()),
            Status::Failed => paint("31", c.status.mark()),
            Status::Error => paint("33", c.status.mark()),
            Status::Skipped => paint("2", c.status.mark()),
        };
        let attempts = if c.attempts > 1 {
            format!(", {} attempts", c.attempts)
        } else {
            String::new()
        };
        write!(
            out,
            "  {mark} {:width$}  {}{attempts}",
            redact(&c.name),
            short_duration(c.duration_ms)
        )?;
        if let Some(reason) = &c.reason {
            write!(out, "  {}", redact(reason))?;
        }
        writeln!(out)?;
        for (k, v) in &c.details {
            writeln!(out, "      {}: {}", redact(k), redact(v))?;
        }
    }
    if !report.diagnosis.is_empty() {
        writeln!(out, "  {}", paint("1", "Why it failed:"))?;
        for f in &report.diagnosis {
            writeln!(
                out,
                "  • {}: {}: {}",
                redact(&f.subject),
                paint("31", &f.class),
                redact(&f.summary)
            )?;
            writeln!(out, "      check: {}", redact(&f.hint))?;
            for line in &f.evidence {
                writeln!(out, "      | {}", redact(line))?;
            }
        }
    }
    for e in &report.audit {
        writeln!(
            out,
            "  {} {} {} {}",
            paint("2", &e.at),
            e.outcome,
            e.action,
            redact(&e.target)
        )?;
    }
    if let Some(err) = &report.error {
        writeln!(out, "{} {}", paint("31", "error:"), redact(err))?;
    }
    let outcome = match report.outcome {
        Exit::Passed => paint("32", "passed"),
        Exit::Failed => paint("31", "failed"),
        other => paint("33", &other.to_string()),
    };
    writeln!(
        out,
        "{outcome}: {} · {}",
        redact(&report.summary),
        short_duration(report.duration_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Check;
    use std::time::Duration;

    #[test]
    fn plain_text_without_colour() {
        let mut r = Report::new("health-check", "0.1.0", "staging https://s.example");
        r.push(
            Check::new("ready", Status::Failed)
                .reason("ready is false")
                .attempts(3)
                .took(Duration::from_millis(1500))
                .detail("mcp-github", "down"),
        );
        r.finish(Duration::from_millis(1600));
        let mut buf = Vec::new();
        render(&r, false, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains('\x1b'));
        assert!(text.contains("✘ ready  1.5 s, 3 attempts  ready is false"));
        assert!(text.contains("mcp-github: down"));
        assert!(text.contains("failed: 1 of 1 checks did not pass"));
    }
}
