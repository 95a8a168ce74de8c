//! The terminal renderer: what a person reads on stderr. Colour only on a terminal.

use std::io::{self, Write};

use crate::exit::Exit;
use crate::report::{Report, Status};
use crate::secret::redact;

use super::short_duration;

/// Writes the report for a person. `colour` adds ANSI colours.
pub fn render(report: &Report, colour: bool, out: &mut impl Write) -> io::Result<()> {
    let paint = Paint(colour);
    let dry = if report.dry_run { " (dry run)" } else { "" };
    writeln!(
        out,
        "{}{dry} · {}",
        paint.on("1", &report.tool),
        redact(&report.target)
    )?;
    checks(report, paint, out)?;
    diagnosis(report, paint, out)?;
    for e in &report.audit {
        writeln!(
            out,
            "  {} {} {} {}",
            paint.on("2", &e.at),
            e.outcome,
            e.action,
            redact(&e.target)
        )?;
    }
    if let Some(err) = &report.error {
        writeln!(out, "{} {}", paint.on("31", "error:"), redact(err))?;
    }
    let outcome = match report.outcome {
        Exit::Passed => paint.on("32", "passed"),
        Exit::Failed => paint.on("31", "failed"),
        other => paint.on("33", &other.to_string()),
    };
    writeln!(
        out,
        "{outcome}: {} · {}",
        redact(&report.summary),
        short_duration(report.duration_ms)
    )
}

/// ANSI colours when on (SGR codes: 1 bold, 2 dim, 31 red, 32 green, 33 yellow).
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn on(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// A line per check (mark, name, duration, attempts, reason), its details below it.
fn checks(report: &Report, paint: Paint, out: &mut impl Write) -> io::Result<()> {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let mark = match c.status {
            Status::Passed => paint.on("32", c.status.mark()),
            Status::Failed => paint.on("31", c.status.mark()),
            Status::Error => paint.on("33", c.status.mark()),
            Status::Skipped => paint.on("2", c.status.mark()),
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
        for w in &c.warnings {
            writeln!(out, "      warning: {}", redact(w))?;
        }
    }
    Ok(())
}

/// "Why it failed:": each finding, its hint and its evidence.
fn diagnosis(report: &Report, paint: Paint, out: &mut impl Write) -> io::Result<()> {
    if report.diagnosis.is_empty() {
        return Ok(());
    }
    writeln!(out, "  {}", paint.on("1", "Why it failed:"))?;
    for f in &report.diagnosis {
        writeln!(
            out,
            "  • {}: {}: {}",
            redact(&f.subject),
            paint.on("31", &f.class),
            redact(&f.summary)
        )?;
        writeln!(out, "      check: {}", redact(&f.hint))?;
        for line in &f.evidence {
            writeln!(out, "      | {}", redact(line))?;
        }
    }
    Ok(())
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
