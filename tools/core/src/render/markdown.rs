//! The Markdown job summary: a heading with the outcome, a table of checks, the outputs and the
//! audit trail.

use std::fmt::Write;

use crate::exit::Exit;
use crate::report::Report;
use crate::secret::redact;

use super::short_duration;

/// Escapes text for a Markdown table cell.
pub fn cell(s: &str) -> String {
    redact(s)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\r', "")
        .replace('\n', "<br>")
}

/// The report as a job-summary section.
pub fn render(report: &Report) -> String {
    let mut md = String::new();
    heading(&mut md, report);
    checks(&mut md, report);
    for chart in &report.charts {
        let _ = writeln!(md, "```mermaid\n{}```\n", chart);
    }
    diagnosis(&mut md, report);
    outputs(&mut md, report);
    audit(&mut md, report);
    md
}

/// The outcome, tool and summary; the target, duration and start; the error if any.
fn heading(md: &mut String, report: &Report) {
    let icon = match report.outcome {
        Exit::Passed => "✅",
        Exit::Failed => "❌",
        _ => "⚠️",
    };
    let dry = if report.dry_run { " (dry run)" } else { "" };
    let _ = writeln!(
        md,
        "### {icon} {}{dry}: {}\n",
        report.tool,
        cell(&report.summary)
    );
    let _ = writeln!(
        md,
        "Target: `{}` · {} · {}\n",
        cell(&report.target).replace('`', "'"),
        short_duration(report.duration_ms),
        report.started_at
    );
    if let Some(err) = &report.error {
        let _ = writeln!(md, "> **Error:** {}\n", cell(err));
    }
}

/// The table of checks, a row each.
fn checks(md: &mut String, report: &Report) {
    if report.checks.is_empty() {
        return;
    }
    md.push_str(
        "| | Check | Latency | Duration | Attempts | Details |\n|---|---|---|---|---|---|\n",
    );
    for c in &report.checks {
        let mut details = c.reason.as_deref().map(cell).unwrap_or_default();
        for (k, v) in &c.details {
            if !details.is_empty() {
                details.push_str("<br>");
            }
            let _ = write!(details, "{}: {}", cell(k), cell(v));
        }
        for w in &c.warnings {
            if !details.is_empty() {
                details.push_str("<br>");
            }
            let _ = write!(details, "⚠️ {}", cell(w));
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            c.status.mark(),
            cell(&c.name),
            c.latency_ms.map_or_else(|| "–".to_owned(), short_duration),
            short_duration(c.duration_ms),
            c.attempts,
            details
        );
    }
    md.push('\n');
}

/// "Why it failed": each finding with its hint, and its evidence folded away.
fn diagnosis(md: &mut String, report: &Report) {
    if report.diagnosis.is_empty() {
        return;
    }
    md.push_str("#### Why it failed\n\n");
    for f in &report.diagnosis {
        let _ = writeln!(
            md,
            "- **{}**: {}: {}<br>Check: {}",
            cell(&f.subject),
            cell(&f.class),
            cell(&f.summary),
            cell(&f.hint)
        );
        if !f.evidence.is_empty() {
            md.push_str("  <details><summary>Evidence</summary>\n\n  ```text\n");
            for line in &f.evidence {
                let _ = writeln!(md, "  {}", redact(line).replace("```", "` ` `"));
            }
            md.push_str("  ```\n\n  </details>\n");
        }
    }
    md.push('\n');
}

/// The step outputs, folded away.
fn outputs(md: &mut String, report: &Report) {
    if report.outputs.is_empty() {
        return;
    }
    let rows = report
        .outputs
        .iter()
        .map(|(k, v)| format!("| `{}` | {} |", cell(k), cell(v)));
    folded_table(md, "Outputs", "| Output | Value |\n|---|---|", rows);
    md.push('\n');
}

/// The audit trail of what was changed (or planned), folded away.
fn audit(md: &mut String, report: &Report) {
    if report.audit.is_empty() {
        return;
    }
    let rows = report.audit.iter().map(|e| {
        format!(
            "| {} | {} | {} | {} | {} |",
            e.at,
            cell(&e.outcome.to_string()),
            cell(e.action.as_str()),
            cell(&e.target),
            cell(e.detail.as_deref().unwrap_or(""))
        )
    });
    let columns = "| Time | Outcome | Action | Target | Detail |\n|---|---|---|---|---|";
    folded_table(md, "Audit trail", columns, rows);
}

/// A table under a `<details>` fold: `columns` is its header and separator lines.
fn folded_table(md: &mut String, summary: &str, columns: &str, rows: impl Iterator<Item = String>) {
    let _ = writeln!(md, "<details><summary>{summary}</summary>\n\n{columns}");
    for row in rows {
        let _ = writeln!(md, "{row}");
    }
    md.push_str("\n</details>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AuditAction, AuditOutcome, Check, Status};
    use std::time::Duration;

    #[test]
    fn summary_snapshot() {
        let mut r = Report::new("smoke-test", "0.1.0", "staging https://s.example");
        r.started_at = "2026-11-28T12:00:00Z".into();
        r.push(Check::new("homepage", Status::Passed).took(Duration::from_millis(42)));
        r.push(
            Check::new("workflow api", Status::Failed)
                .reason("status 401 | expected 200")
                .took(Duration::from_millis(1300))
                .latency(Duration::from_millis(120))
                .attempts(2),
        );
        r.output("failed", 1);
        r.audit(
            AuditAction::EcsUpdateService,
            "afu9-staging/web",
            AuditOutcome::Planned,
            None,
        );
        r.audit[0].at = "2026-11-28T12:00:01Z".into();
        r.finish(Duration::from_millis(1400));
        insta::assert_snapshot!(render(&r));
    }
}
