//! `health-check --checklist` end to end: the runbook's section 6 from the JSON reports that real
//! runs of this job wrote (smoke-test and health-check against the stand-in service on staging,
//! with `--notify` to a local recording webhook); items ticked, crossed, not run or manual, in
//! the job summary the tool wrote, and a crossed item is exit 1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;

use deploy_action_e2e::recorder::{Mode, Recorder};
use deploy_action_e2e::rig::{run, run_report, tool, words};
use deploy_action_e2e::standin::{Behaviour, with_dir as standin};
use serde_json::Value;

/// `name` with `args` in `dir`, as a GitHub step whose reports go to `dir/reports`.
fn step(name: &str, dir: &Path, args: &str) -> std::process::Command {
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let mut c = tool(name, dir);
    c.args(words(args))
        .env("GITHUB_ACTIONS", "true")
        .env("RUNNER_TEMP", &reports)
        .env(
            "GITHUB_STEP_SUMMARY",
            dir.join(format!("{name}-summary.md")),
        )
        .env("GITHUB_OUTPUT", dir.join("output"))
        .env("API_TOKEN", "standin-token");
    c
}

/// The item's (status, reason) in the checklist's report.
fn item<'a>(v: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no item {name:?} in {v}"));
    (c["status"].as_str().unwrap(), c["reason"].as_str().unwrap())
}

#[tokio::test]
async fn the_checklist_ticks_what_the_job_s_reports_passed_and_leaves_the_rest_manual() {
    let (s, dir) = standin(Behaviour::default()).await;
    let hook = Recorder::start("127.0.0.1", Mode::Answer(200, "{}".into())).await;
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!(
            "[environments.staging]\nbase_url = \"{}\"\n\n{}",
            s.url,
            "[[health.checks]]\nname = \"health\"\npath = \"/api/health\"\n\n\
             [[smoke.checks]]\nname = \"API health\"\npath = \"/api/health\"\n\n\
             [[smoke.checks]]\nname = \"MCP servers\"\npath = \"/api/mcp/health\"\nassert = ['.status == \"healthy\"']\n"
        ),
    )
    .unwrap();
    let notify = format!("--notify {}/services/x/hook-0000", hook.url);
    // A report of its own (`--report`) as well: the checklist still sees the run.
    let r = run(step(
        "smoke-test",
        dir.path(),
        "-e staging --report smoke.json",
    ))
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(dir.path().join("smoke.json").is_file());
    let r = run(step(
        "health-check",
        dir.path(),
        &format!("-e staging --success-threshold 1 --interval 50ms {notify}"),
    ))
    .await;
    assert_eq!(r.code, 0, "{r:?}");

    let (r, v) = run_report(step("health-check", dir.path(), "--checklist")).await;
    assert_eq!(r.code, 0, "{r:?}");
    let (st, why) = item(&v, "Pre-Deployment: Smoke Tests auf Staging bestanden");
    assert_eq!(st, "passed", "{why}");
    assert!(why.starts_with("smoke-test passed: 2 of 2"), "{why}");
    assert_eq!(
        item(&v, "Post-Deployment: Health Checks bestanden").0,
        "passed"
    );
    let (st, why) = item(
        &v,
        "Post-Deployment: Stakeholder informiert (Production only)",
    );
    assert_eq!((st, why), ("passed", "told by health-check"));
    let (st, why) = item(&v, "Pre-Deployment: Code synchronized mit `origin/main`");
    assert_eq!(
        (st, why),
        ("skipped", "not run: no sync-check report in this job")
    );
    let (st, why) = item(&v, "Pre-Deployment: Alle Tests bestanden");
    assert_eq!(
        (st, why),
        ("skipped", "manual: no tool of this job can know")
    );
    assert_eq!(
        item(&v, "Rollback (bei Problemen): Rollback ausgeführt").0,
        "skipped"
    );
    assert_eq!(v["outputs"]["crossed"], "0");
    // The job summary shows it, item by item, with the words (not only marks).
    let summary = std::fs::read_to_string(dir.path().join("health-check-summary.md")).unwrap();
    assert!(
        summary.contains("Smoke Tests auf Staging bestanden"),
        "{summary}"
    );
    assert!(
        summary.contains("manual: no tool of this job can know"),
        "{summary}"
    );

    // A failed smoke run crosses its items and fails the checklist.
    s.shared.set(Behaviour {
        mcp_down: vec!["mcp-github".into()],
        ..Behaviour::default()
    });
    let r = run(step("smoke-test", dir.path(), "-e staging --retry-for 0s")).await;
    assert_eq!(r.code, 1, "{r:?}");
    let (r, v) = run_report(step("health-check", dir.path(), "--checklist")).await;
    assert_eq!(r.code, 1, "{r:?}");
    let (st, why) = item(&v, "Post-Deployment: Smoke Tests bestanden");
    assert_eq!(st, "failed");
    assert!(
        why.starts_with("smoke-test failed: 1 of 2 smoke checks failed"),
        "{why}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_report_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.json");
    std::fs::write(&bad, "{\"hello\": 1}").unwrap();
    let r = run(step(
        "health-check",
        dir.path(),
        &format!("--checklist {}", bad.display()),
    ))
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "{} is not a deploy-action JSON report",
            bad.display()
        )),
        "{}",
        r.stderr
    );
}
