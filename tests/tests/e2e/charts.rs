//! The pictures in the job summary (Mermaid, which GitHub renders): the health wait as a timeline
//! of each check's passes and failures, and the KPI report's availability per day with the target
//! as a line and the days with incidents marked; read from the summary file the tool wrote. (The
//! rollback's timeline is asserted in `rollback::`, beside its other summary facts.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use deploy_action_e2e::rig::{self, run, tool, unique, words};
use deploy_action_e2e::standin::{Behaviour, with_dir as standin};

/// Runs `cmd` as a GitHub step whose job summary is `summary`, which must pass: the one picture
/// in the summary it wrote, and the summary.
async fn the_picture(
    mut cmd: std::process::Command,
    summary: &std::path::Path,
) -> (String, String) {
    cmd.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", summary);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(summary).unwrap();
    let charts = mermaid(&text);
    assert_eq!(charts.len(), 1, "{text}");
    (charts[0].to_owned(), text)
}

/// The mermaid blocks of a summary.
fn mermaid(summary: &str) -> Vec<&str> {
    summary
        .split("```mermaid\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect()
}

#[tokio::test]
async fn the_health_wait_is_drawn_check_by_check_with_its_failures_and_passes() {
    let (s, dir) = standin(Behaviour {
        ready_after: 2,
        ..Behaviour::default()
    })
    .await;
    let summary = dir.path().join("summary.md");
    let mut c = tool("health-check", dir.path());
    c.args(words("--success-threshold 2 --interval 50ms --base-url"))
        .arg(&s.url);
    let (g, text) = the_picture(c, &summary).await;
    let g = g.as_str();
    assert!(
        g.starts_with("gantt\n    title Health wait, healthy after 4 rounds"),
        "{g}"
    );
    let lane = g
        .split("    section Control Center readiness\n")
        .nth(1)
        .unwrap();
    let lane: Vec<&str> = lane
        .lines()
        .take_while(|l| !l.contains("section"))
        .collect();
    assert_eq!(lane.len(), 4, "{g}");
    assert!(
        lane[0].starts_with("    fail :crit, ") && lane[1].starts_with("    fail :crit, "),
        "{g}"
    );
    assert!(
        lane[2].starts_with("    pass :done, ") && lane[3].starts_with("    pass :done, "),
        "{g}"
    );
    // The text table stays, for screen readers.
    assert!(text.contains("| ✔ | Control Center readiness |"), "{text}");
}

#[tokio::test]
async fn the_kpi_report_draws_availability_per_day_with_the_target_and_the_incidents() {
    let (ns, group) = (unique("AFU9/Chart"), unique("/afu9/incidents"));
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let rec = format!(
        r#"{{"incident_id":"inc-c1","environment":"staging","mttr_seconds":120,"detection_time":"{now}"}}"#
    );
    let healthy = [true, true, true, false, true, true, true, true];
    deploy_action_e2e::kpi::record(&ns, "staging", &healthy, &group, &[rec]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!("[environments.staging]\n\n[metrics]\nnamespace = \"{ns}\"\n\n[rollback]\nincident_log_group = \"{group}\"\n\n[kpi]\nuptime_target = 80.0\n"),
    )
    .unwrap();
    let summary = dir.path().join("summary.md");
    let mut c = tool("health-check", dir.path());
    rig::aws_env(&mut c).args(["-e", "staging", "--kpi", "7d"]);
    let (x, _) = the_picture(c, &summary).await;
    let x = x.as_str();
    assert!(x.starts_with("xychart-beta\n"), "{x}");
    let today = &now[5..10];
    assert!(
        x.contains(&format!("x-axis [\"{today} (1 incident)\"]")),
        "{x}"
    );
    assert!(
        x.contains("bar [87.50]") && x.contains("line [80.00]"),
        "{x}"
    );
    assert!(x.contains("y-axis \"percent\" 79 --> 100"), "{x}");
}
