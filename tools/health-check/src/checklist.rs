//! `--checklist`: the runbook's deployment checklist (section 6) from the JSON reports the tools
//! of this job wrote. Each item is ticked (its report passed), crossed (it failed) or "not run"
//! (no report of that tool), and items no tool can know are shown as manual. The items are the
//! report's checks, so the job summary, the JSON report and the annotations show them as any
//! other run's checks; crossed items fail the run (exit 1).

use std::path::{Path, PathBuf};

use deploy_core::report::Status;
use deploy_core::{Check, Exit, Report, exit};

/// The reports of this job: the files and directories named (every `*.json` in a directory), or
/// with none named, the `deploy-action-*.json` the tools wrote in `RUNNER_TEMP` (where they put
/// their report inside Actions unless `--report` says otherwise).
pub(crate) fn read_reports(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, Report)>> {
    let mut files = Vec::new();
    if paths.is_empty() {
        let dir = std::env::var_os("RUNNER_TEMP").map_or_else(std::env::temp_dir, PathBuf::from);
        files.extend(json_files(&dir, Some("deploy-action-"))?);
    }
    for p in paths {
        if p.is_dir() {
            files.extend(json_files(p, None)?);
        } else {
            files.push(p.clone());
        }
    }
    files
        .into_iter()
        .map(|f| {
            let bytes = deploy_core::read_file_capped(&f, 64 * 1024 * 1024).map_err(|e| {
                exit::usage(format!("--checklist: cannot read {}: {e}", f.display()))
            })?;
            let r: Report = serde_json::from_slice(&bytes).map_err(|e| {
                exit::usage(format!(
                    "--checklist: {} is not a deploy-action JSON report: {e}",
                    f.display()
                ))
            })?;
            Ok((f, r))
        })
        .collect()
}

fn json_files(dir: &Path, prefix: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| exit::usage(format!("--checklist: cannot read {}: {e}", dir.display())))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".json") && prefix.is_none_or(|x| name.starts_with(x))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The evidence an item is judged by.
enum Evidence {
    /// No tool can know it.
    Manual,
    /// The newest report of `tool` (whose target starts with `env`, when given) passed.
    Tool(&'static str, Option<&'static str>),
    /// The newest health-check report's checks whose names start with this all passed.
    HealthChecks(&'static str),
    /// An output of the newest report of `tool` is there and not empty.
    Output(&'static str, &'static str),
    /// A report of `tool` is there, whatever its outcome.
    Ran(&'static str),
    /// A report of this job says the stakeholders' webhook heard of it (output `notified`).
    Notified,
    /// The run is on a tag (`GITHUB_REF` is `refs/tags/...`).
    OnTag,
}

use Evidence::{HealthChecks, Manual, Notified, OnTag, Output, Ran, Tool};

/// Runbook section 6, item by item, with what each is judged by.
const ITEMS: &[(&str, &str, Evidence)] = &[
    (
        "Pre-Deployment",
        "Code synchronized mit `origin/main`",
        Tool("sync-check", None),
    ),
    ("Pre-Deployment", "Alle Tests bestanden", Manual),
    ("Pre-Deployment", "Linting erfolgreich", Manual),
    ("Pre-Deployment", "Security Scan durchgeführt", Manual),
    (
        "Pre-Deployment",
        "Docker Images gebaut und getestet (zu ECR gepusht)",
        Tool("ecr-push", None),
    ),
    (
        "Pre-Deployment",
        "Staging Deployment erfolgreich",
        Tool("health-check", Some("staging")),
    ),
    (
        "Pre-Deployment",
        "Smoke Tests auf Staging bestanden",
        Tool("smoke-test", Some("staging")),
    ),
    (
        "Pre-Deployment",
        "Backup erstellt (Production only)",
        Manual,
    ),
    (
        "Pre-Deployment",
        "Deployment-Zeitfenster geplant (Production only)",
        Manual,
    ),
    (
        "Pre-Deployment",
        "Stakeholder informiert (Production only)",
        Notified,
    ),
    ("During Deployment", "CDK Deploy gestartet", Manual),
    (
        "During Deployment",
        "CloudFormation Stack Update läuft",
        Manual,
    ),
    (
        "During Deployment",
        "ECS Tasks werden neu gestartet",
        HealthChecks("ECS service "),
    ),
    (
        "During Deployment",
        "Health Checks passieren",
        Tool("health-check", None),
    ),
    (
        "During Deployment",
        "Alte Tasks werden terminiert",
        HealthChecks("ECS service "),
    ),
    (
        "During Deployment",
        "Keine 5xx Errors im ALB",
        HealthChecks("ALB 5xx"),
    ),
    (
        "During Deployment",
        "CloudWatch Alarms sind OK",
        HealthChecks("CloudWatch alarms"),
    ),
    (
        "Post-Deployment",
        "Health Checks bestanden",
        Tool("health-check", None),
    ),
    (
        "Post-Deployment",
        "Smoke Tests bestanden",
        Tool("smoke-test", None),
    ),
    ("Post-Deployment", "Monitoring Dashboard überprüft", Manual),
    ("Post-Deployment", "CloudWatch Logs durchgesehen", Manual),
    (
        "Post-Deployment",
        "Keine Alarms aktiv",
        HealthChecks("CloudWatch alarms"),
    ),
    ("Post-Deployment", "Dokumentation aktualisiert", Manual),
    (
        "Post-Deployment",
        "Git Tag erstellt & gepusht (Production only)",
        OnTag,
    ),
    ("Post-Deployment", "CHANGELOG.md aktualisiert", Manual),
    (
        "Post-Deployment",
        "Stakeholder informiert (Production only)",
        Notified,
    ),
    (
        "Rollback (bei Problemen)",
        "Rollback ausgeführt",
        Ran("rollback"),
    ),
    (
        "Rollback (bei Problemen)",
        "Previous Version deployed",
        Output("rollback", "rolled-back-to"),
    ),
    (
        "Rollback (bei Problemen)",
        "Health Checks nach Rollback bestanden",
        Tool("rollback", None),
    ),
    (
        "Rollback (bei Problemen)",
        "Incident dokumentiert",
        Output("rollback", "incident-id"),
    ),
    ("Rollback (bei Problemen)", "Post-Mortem geplant", Manual),
];

/// The newest report of `tool` (by start time), whose target starts with `env` when given.
fn newest<'a>(
    reports: &'a [(PathBuf, Report)],
    tool: &str,
    env: Option<&str>,
) -> Option<&'a Report> {
    reports
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.tool == tool && env.is_none_or(|e| r.target.starts_with(e)))
        // health-check's own results only: not its --preflight, --kpi or --checklist reports,
        // which check no health (only a checking run sets `healthy`).
        .filter(|r| r.tool != "health-check" || r.outputs.contains_key("healthy"))
        .max_by(|a, b| a.started_at.cmp(&b.started_at))
}

fn not_run(what: &str) -> (Status, String) {
    (
        Status::Skipped,
        format!("not run: no {what} report in this job"),
    )
}

/// What the reports say of one item: its mark and why.
fn judge(evidence: &Evidence, reports: &[(PathBuf, Report)]) -> (Status, String) {
    let verdict = |r: &Report| {
        let status = if r.outcome == Exit::Passed {
            Status::Passed
        } else {
            Status::Failed
        };
        (status, format!("{} {}: {}", r.tool, r.outcome, r.summary))
    };
    match evidence {
        Manual => (
            Status::Skipped,
            "manual: no tool of this job can know".to_owned(),
        ),
        Tool(tool, env) => newest(reports, tool, *env).map_or_else(
            || not_run(&env.map_or_else(|| (*tool).to_owned(), |e| format!("{tool} ({e})"))),
            verdict,
        ),
        HealthChecks(prefix) => {
            let Some(r) = newest(reports, "health-check", None) else {
                return not_run("health-check");
            };
            let checks: Vec<&Check> = r
                .checks
                .iter()
                .filter(|c| c.name.starts_with(prefix))
                .collect();
            if checks.is_empty() {
                return (
                    Status::Skipped,
                    format!("not run: health-check checked no {}", prefix.trim()),
                );
            }
            match checks.iter().find(|c| c.status != Status::Passed) {
                Some(c) => (
                    Status::Failed,
                    format!(
                        "{}: {}",
                        c.name,
                        c.reason.as_deref().unwrap_or("did not pass")
                    ),
                ),
                None => (
                    Status::Passed,
                    format!("{} of {} passed", checks.len(), checks.len()),
                ),
            }
        }
        Output(tool, key) => {
            let Some(r) = newest(reports, tool, None) else {
                return not_run(tool);
            };
            match r.outputs.get(*key).filter(|v| !v.is_empty()) {
                Some(v) => (Status::Passed, format!("{tool}: {key} {v}")),
                None => (Status::Failed, format!("{tool} {}: no {key}", r.outcome)),
            }
        }
        Ran(tool) => match newest(reports, tool, None) {
            Some(r) => (
                Status::Passed,
                format!("{tool} ran ({}): {}", r.outcome, r.summary),
            ),
            None => not_run(tool),
        },
        Notified => {
            let told: Vec<&Report> = reports
                .iter()
                .map(|(_, r)| r)
                .filter(|r| r.outputs.contains_key("notified"))
                .collect();
            match told.iter().find(|r| r.outputs["notified"] != "true") {
                _ if told.is_empty() => (
                    Status::Skipped,
                    "not run: no tool of this job had --notify".to_owned(),
                ),
                Some(r) => (Status::Failed, format!("{}'s webhook failed", r.tool)),
                None => (
                    Status::Passed,
                    format!(
                        "told by {}",
                        told.iter()
                            .map(|r| r.tool.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        OnTag => match std::env::var("GITHUB_REF")
            .ok()
            .and_then(|r| r.strip_prefix("refs/tags/").map(str::to_owned))
        {
            Some(tag) => (Status::Passed, format!("this run is on tag {tag}")),
            None => (
                Status::Skipped,
                "manual: this run is not on a tag".to_owned(),
            ),
        },
    }
}

/// The checklist as a report: one check per item, named `Section: item`; crossed items fail it.
pub(crate) fn report(paths: &[PathBuf]) -> anyhow::Result<Report> {
    let reports = read_reports(paths)?;
    let mut report = Report::new(
        "health-check",
        env!("CARGO_PKG_VERSION"),
        format!("runbook checklist ({} reports)", reports.len()),
    );
    for (section, item, evidence) in ITEMS {
        let (status, reason) = judge(evidence, &reports);
        report.push(Check::new(format!("{section}: {item}"), status).reason(reason));
    }
    let (ticked, crossed, _, open) = report.counts();
    report.output("ticked", ticked);
    report.output("crossed", crossed);
    report.output("open", open);
    report.summary =
        format!("checklist: {ticked} ticked, {crossed} crossed, {open} manual or not run");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `--preflight` (or `--kpi`, `--checklist`) report of health-check checked no health: the
    /// checklist's health items read a checking run's report only.
    #[test]
    fn only_a_checking_run_answers_for_health_check() {
        let mut preflight = Report::new("health-check", "1", "staging before a deploy");
        preflight.started_at = "2026-12-07T10:00:00Z".into();
        let mut checking = Report::new("health-check", "1", "staging (https://staging.example)");
        checking.started_at = "2026-12-07T09:00:00Z".into();
        checking.output("healthy", true);
        let only_preflight = vec![(PathBuf::from("a.json"), preflight.clone())];
        assert!(newest(&only_preflight, "health-check", Some("staging")).is_none());
        let both = vec![
            (PathBuf::from("a.json"), preflight),
            (PathBuf::from("b.json"), checking),
        ];
        let r = newest(&both, "health-check", Some("staging")).unwrap();
        assert!(r.outputs.contains_key("healthy"));
    }
}
