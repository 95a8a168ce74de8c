//! `--notify` and `[notify]` end to end: health-check against the stand-in service posts its
//! verdict to a local webhook that records what it got (Slack's and Teams' formats); a webhook
//! that fails is a warning and the verdict stands; the URL (its path is the token) is printed
//! nowhere, not in the log, the report or the job summary the tool wrote.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use deploy_action_e2e::recorder::{Mode, Recorder};
use deploy_action_e2e::rig::{run_report, tool, words};
use deploy_action_e2e::standin::{Behaviour, with_dir as standin};
use serde_json::Value;

const TOKEN_PATH: &str = "/services/T000/B000/hook-secret-4711";

/// health-check against `base` as a GitHub step in `dir` with `args`.
fn health(dir: &std::path::Path, base: &str, args: &str) -> std::process::Command {
    let mut c = tool("health-check", dir);
    c.arg("--base-url")
        .arg(base)
        .args(words("--success-threshold 1 --interval 50ms"))
        .args(words(args))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .env("GITHUB_OUTPUT", dir.join("output"))
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "afu9/control-center")
        .env("GITHUB_RUN_ID", "4242");
    c
}

/// Nothing the tool wrote names the webhook's secret path, but the `::add-mask::` command that
/// tells the runner to hide it (the runner does not print that line).
fn nowhere(dir: &std::path::Path, printed: &str) {
    let mut all: String = printed
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n");
    for f in ["summary.md", "output"] {
        all.push_str(&std::fs::read_to_string(dir.join(f)).unwrap_or_default());
    }
    assert!(!all.contains("hook-secret-4711"), "{all}");
}

fn body(hook: &Recorder) -> Value {
    let got = hook.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].uri, TOKEN_PATH);
    serde_json::from_str(&got[0].body).unwrap()
}

#[tokio::test]
async fn a_verdict_reaches_slack_and_teams_with_the_failed_checks_and_the_run() {
    let (s, dir) = standin(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let hook = Recorder::start("127.0.0.1", Mode::Answer(200, "{}".into())).await;
    let url = format!("{}{TOKEN_PATH}", hook.url);
    let (r, _) = run_report(health(
        dir.path(),
        &s.url,
        &format!("--wait 1s --notify {url}"),
    ))
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    let text = body(&hook)["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("*health-check FAILED:"), "{text}");
    assert!(
        text.contains("Control Center readiness: status 503"),
        "{text}"
    );
    assert!(
        text.contains("<https://github.com/afu9/control-center/actions/runs/4242|the run>"),
        "{text}"
    );
    nowhere(dir.path(), &r.all());

    // [notify] in deploy.toml, Teams' format, and a passing run.
    let (s, dir) = standin(Behaviour::default()).await;
    let hook = Recorder::start("127.0.0.1", Mode::Answer(200, "{}".into())).await;
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[notify]\nurl = \"${TEAMS_HOOK}\"\nformat = \"teams\"\n\n[[health.checks]]\nname = \"health\"\npath = \"/api/health\"\n",
    )
    .unwrap();
    let mut c = health(dir.path(), &s.url, "");
    c.env("TEAMS_HOOK", format!("{}{TOKEN_PATH}", hook.url));
    let (r, _) = run_report(c).await;
    assert_eq!(r.code, 0, "{r:?}");
    let card = body(&hook);
    assert_eq!(card["type"], "message");
    let content = &card["attachments"][0]["content"];
    assert_eq!(content["type"], "AdaptiveCard");
    let head = content["body"][0]["text"].as_str().unwrap();
    assert!(head.starts_with("health-check passed:"), "{head}");
    assert_eq!(content["body"][0]["color"], "Good");
    nowhere(dir.path(), &r.all());
}

#[tokio::test]
async fn a_failing_webhook_is_a_warning_and_the_verdict_stands() {
    let (s, dir) = standin(Behaviour::default()).await;
    let hook = Recorder::start("127.0.0.1", Mode::Answer(500, "{}".into())).await;
    let url = format!("{}{TOKEN_PATH}", hook.url);
    let (r, v) = run_report(health(dir.path(), &s.url, &format!("--notify {url}"))).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(v["outcome"], "passed");
    assert!(
        r.stderr
            .contains("::warning title=notify::the notify webhook at 127.0.0.1 answered 500"),
        "{}",
        r.stderr
    );
    nowhere(dir.path(), &r.all());

    // Nothing listens there at all: the same.
    drop(hook);
    let (r, _) = run_report(health(
        dir.path(),
        &s.url,
        "--notify http://127.0.0.1:9/services/T000/B000/hook-secret-4711",
    ))
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("could not be reached"), "{}", r.stderr);
    nowhere(dir.path(), &r.all());
}
