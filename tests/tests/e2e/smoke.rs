//! smoke-test end to end: the real binary against the stand-in service: the runbook's five
//! checks, bounded parallelism, per-check retry windows inside the suite deadline, JUnit, the
//! failure count, suite files, and SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;
use std::time::{Duration, Instant};

use deploy_action_e2e::rig::{self, Ran, run, run_report, tool, words};
use deploy_action_e2e::standin::{Behaviour, with_dir as standin};
use serde_json::Value;

/// smoke-test in `dir` with `args`, a command line split at white space, and `token` as the API
/// token.
fn smoke_cmd(dir: &std::path::Path, token: &str, args: &str) -> Command {
    let mut c = tool("smoke-test", dir);
    c.args(words(args)).env("API_TOKEN", token);
    c
}

/// Runs [`smoke_cmd`] with `--format json`: what it did and its report.
async fn smoke(dir: &std::path::Path, token: &str, args: &str) -> (Ran, Value) {
    run_report(smoke_cmd(dir, token, args)).await
}

/// A suite file of `n` checks of `/api/health` (c0, c1...) under `header` (the `[smoke]` table).
fn health_suite(dir: &std::path::Path, header: &str, n: usize) -> std::path::PathBuf {
    let suite = dir.join("suite.toml");
    let mut text = format!("[smoke]\n{header}");
    for i in 0..n {
        text.push_str(&format!(
            "[[smoke.checks]]\nname = \"c{i}\"\npath = \"/api/health\"\n"
        ));
    }
    std::fs::write(&suite, text).unwrap();
    suite
}

fn status_of(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_runbook_suite_passes_with_the_token_and_writes_junit() {
    let (s, dir) = standin(Behaviour {
        token: "tok-smoke-1".into(),
        ..Behaviour::default()
    })
    .await;
    let junit = dir.path().join("junit.xml");
    let args = format!("--base-url {} --junit {}", s.url, junit.display());
    let (r, report) = smoke(dir.path(), "tok-smoke-1", &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        status_of(&report)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        [
            "Homepage",
            "API health",
            "API readiness",
            "MCP servers",
            "Workflow API"
        ]
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "passed" && c["latency_ms"].is_u64())
    );
    let x = std::fs::read_to_string(junit).unwrap();
    assert!(x.contains("tests=\"5\" failures=\"0\" errors=\"0\""), "{x}");
    assert_eq!(x.matches("<testcase ").count(), 5);
}

#[tokio::test]
async fn failures_are_counted_and_exit_1() {
    let (s, dir) = standin(Behaviour {
        token: "tok-smoke-2".into(),
        ready: false,
        mcp_down: vec!["mcp-deploy".into()],
        ..Behaviour::default()
    })
    .await;
    let junit = dir.path().join("junit.xml");
    let args = format!(
        "--base-url {} --retry-for 300ms --junit {}",
        s.url,
        junit.display()
    );
    let (r, report) = smoke(dir.path(), "tok-smoke-2", &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(report["summary"], "2 of 5 smoke checks failed");
    assert_eq!(report["outputs"]["failed"], "2");
    let failed: Vec<String> = status_of(&report)
        .into_iter()
        .filter(|(_, s)| s == "failed")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(failed, ["API readiness", "MCP servers"]);
    let mcp = &report["checks"][3];
    assert!(
        mcp["reason"]
            .as_str()
            .unwrap()
            .starts_with("assertion `.status == \"healthy\"` failed: `.status` is \"degraded\""),
        "{mcp}"
    );
    assert!(
        mcp["attempts"].as_u64().unwrap() >= 2,
        "retried within its window: {mcp}"
    );
    let x = std::fs::read_to_string(junit).unwrap();
    assert!(x.contains("failures=\"2\""), "{x}");
}

#[tokio::test]
async fn wrong_token_fails_at_once_and_is_never_printed() {
    let (s, dir) = standin(Behaviour::default()).await;
    let start = Instant::now();
    let args = format!("--base-url {} --retry-for 5s", s.url);
    let (r, report) = smoke(dir.path(), "tok-wrong-3141592", &args).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "401 must not be retried"
    );
    assert_eq!(r.code, 1);
    let wf = &report["checks"][4];
    assert_eq!(wf["attempts"], 1);
    assert!(
        wf["reason"]
            .as_str()
            .unwrap()
            .starts_with("status 401, expected 2xx"),
        "{wf}"
    );
    assert!(!r.all().contains("tok-wrong-3141592"));
}

#[tokio::test]
async fn flaky_check_passes_within_its_window() {
    let (s, dir) = standin(Behaviour {
        fail_next: 2,
        ..Behaviour::default()
    })
    .await;
    let suite = dir.path().join("suite.toml");
    std::fs::write(&suite, "[[smoke.checks]]\nname = \"health\"\npath = \"/api/health\"\nassert = ['.status == \"ok\"']\n").unwrap();
    let args = format!("--base-url {} --suite {}", s.url, suite.display());
    let (r, report) = smoke(dir.path(), "x", &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(report["checks"][0]["attempts"], 3);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let (s, dir) = standin(Behaviour {
        delay_ms: 150,
        ..Behaviour::default()
    })
    .await;
    let suite = health_suite(dir.path(), "concurrency = 4\n", 20);
    let args = format!("--base-url {} --suite {}", s.url, suite.display());
    let (r, _) = smoke(dir.path(), "x", &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.shared.peak_in_flight(), 4);
    assert_eq!(s.shared.hits()["/api/health"], 20);
    let (r, _) = smoke(dir.path(), "x", &format!("{args} --concurrency 20")).await;
    assert_eq!(r.code, 0);
    assert!(
        s.shared.peak_in_flight() > 4,
        "{}",
        s.shared.peak_in_flight()
    );
}

#[tokio::test]
async fn a_server_that_refuses_is_not_hammered() {
    // The server serves 4 requests at once and answers 429 to a fifth; 40 checks start at the
    // default cap of 128 in flight, all at once. Held there, every retry round would send every
    // check still waiting (36 + 32 + 28 + ... = 180 refusals); backing off halves the requests
    // in flight down to what the server takes, so most retries find room.
    let (s, dir) = standin(Behaviour {
        delay_ms: 100,
        max_in_flight: 4,
        ..Behaviour::default()
    })
    .await;
    let suite = health_suite(dir.path(), "", 40);
    let args = format!("--base-url {} --suite {}", s.url, suite.display());
    let (r, report) = smoke(dir.path(), "x", &args).await;
    assert_eq!(r.code, 0, "every check passes in the end: {r:?}");
    assert_eq!(s.shared.hits()["/api/health"], 40, "each served once");
    let lowest: u32 = report["outputs"]["concurrency"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(lowest <= 4, "backed off to what the server takes: {lowest}");
    assert!(
        s.shared.refused() <= 100,
        "{} refusals: the server was hammered",
        s.shared.refused()
    );
    assert!(
        r.stderr.contains("the server refused or slowed down"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn a_server_that_keeps_up_gets_the_cap() {
    let (s, dir) = standin(Behaviour {
        delay_ms: 100,
        ..Behaviour::default()
    })
    .await;
    let suite = health_suite(dir.path(), "concurrency = 30\n", 30);
    let args = format!("--base-url {} --suite {}", s.url, suite.display());
    let (r, report) = smoke(dir.path(), "x", &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.shared.peak_in_flight(), 30, "all 30 at once, the cap");
    assert_eq!(report["outputs"]["concurrency"], "30");
}

#[tokio::test]
async fn suite_deadline_bounds_every_window() {
    let (s, dir) = standin(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let start = Instant::now();
    let args = format!("--base-url {} --retry-for 30s --timeout 1s", s.url);
    let (r, report) = smoke(dir.path(), "standin-token", &args).await;
    let took = start.elapsed();
    assert_eq!(r.code, 1);
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(report["checks"][2]["attempts"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn an_empty_suite_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.toml");
    std::fs::write(&suite, "[smoke]\nconcurrency = 2\n").unwrap();
    let mut c = tool("smoke-test", dir.path());
    c.args([
        "--base-url",
        "http://127.0.0.1:1",
        "--suite",
        suite.to_str().unwrap(),
    ]);
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("suite.toml: no [[smoke.checks]] to run"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn sigterm_gives_a_partial_report() {
    let (s, dir) = standin(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let args = format!(
        "--base-url {} --retry-for 60s --timeout 60s --format json",
        s.url
    );
    let child = rig::spawn(smoke_cmd(dir.path(), "standin-token", &args));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let out = rig::sigterm(child).await;
    assert_eq!(out.code, 1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["error"], "interrupted by SIGTERM: partial report");
    let statuses = status_of(&report);
    assert!(
        statuses.contains(&("Homepage".into(), "passed".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("API readiness".into(), "skipped".into())),
        "{statuses:?}"
    );
}

/// The README's chained suite: log in with a password from `${SMOKE_PASSWORD}`, capture the
/// session token (secret) and the CSRF cookie, call `/api/workflows` with them; `/api/health`
/// does not depend on the login.
const CHAINED: &str = r#"
[[smoke.checks]]
name = "Log in"
path = "/api/login"
method = "POST"
headers = { Content-Type = "application/json" }
body = '{"user": "smoke", "password": "${SMOKE_PASSWORD}"}'
capture = { session = { jq = "CAPTURE", secret = true }, csrf = { cookie = "csrf" } }

[[smoke.checks]]
name = "Workflow API"
path = "/api/workflows"
headers = { Authorization = "Bearer {{session}}", X-CSRF-Token = "{{csrf}}" }
assert = [".workflows != null"]

[[smoke.checks]]
name = "API health"
path = "/api/health"
"#;

/// Runs the chained suite (capturing with `capture`) as a GitHub step with `password`.
async fn chained(
    s: &deploy_action_e2e::standin::StandIn,
    dir: &std::path::Path,
    capture: &str,
    password: &str,
) -> (Ran, Value) {
    let suite = dir.join("chained.toml");
    std::fs::write(&suite, CHAINED.replace("CAPTURE", capture)).unwrap();
    let mut c = smoke_cmd(
        dir,
        "unused",
        &format!(
            "--base-url {} --suite {} --retry-for 0s",
            s.url,
            suite.display()
        ),
    );
    c.env("SMOKE_PASSWORD", password)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .env("GITHUB_OUTPUT", dir.join("output"));
    run_report(c).await
}

#[tokio::test]
async fn a_login_captures_a_secret_token_that_later_checks_use_and_nothing_prints_it() {
    let (s, dir) = standin(Behaviour {
        token: "tok-capture-91".into(),
        password: "pw-smoke-3".into(),
        delay_ms: 200,
        ..Behaviour::default()
    })
    .await;
    let (r, v) = chained(&s, dir.path(), ".token", "pw-smoke-3").await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(status_of(&v).iter().all(|(_, st)| st == "passed"), "{v}");
    // The token is masked the moment it is captured, and appears nowhere else.
    assert!(
        r.stderr.contains("::add-mask::tok-capture-91"),
        "{}",
        r.stderr
    );
    let mut written = r.stdout.clone();
    written.extend(
        r.stderr
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .map(|l| format!("{l}\n")),
    );
    written.push_str(&std::fs::read_to_string(dir.path().join("summary.md")).unwrap());
    written.push_str(&std::fs::read_to_string(dir.path().join("output")).unwrap());
    assert!(!written.contains("tok-capture-91"), "{written}");
    // The dependant ran after the login answered; the independent check did not wait for it.
    let at = |p: &str| s.shared.arrivals(p)[0];
    assert!(at("/api/workflows") >= at("/api/login") + Duration::from_millis(200));
    assert!(at("/api/health") < at("/api/login") + Duration::from_millis(150));
}

#[tokio::test]
async fn a_failed_login_or_an_empty_capture_fails_by_name_and_skips_its_dependants() {
    let (s, dir) = standin(Behaviour {
        password: "pw-smoke-3".into(),
        ..Behaviour::default()
    })
    .await;
    let (r, v) = chained(&s, dir.path(), ".token", "wrong-password").await;
    assert_eq!(r.code, 1, "{r:?}");
    let why = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| {
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["reason"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap()
    };
    assert!(why("Log in").1.starts_with("status 401"), "{v}");
    let (st, reason) = why("Workflow API");
    assert_eq!(st, "skipped");
    assert!(
        reason.starts_with(
            "skipped: it uses what check \"Log in\" captures, and it failed: status 401"
        ),
        "{reason}"
    );
    assert_eq!(why("API health").0, "passed");
    assert_eq!(s.shared.hits().get("/api/workflows"), None);

    let (r, v) = chained(&s, dir.path(), ".nope", "pw-smoke-3").await;
    assert_eq!(r.code, 1, "{r:?}");
    let login = &v["checks"][0];
    assert_eq!(login["status"], "failed");
    assert_eq!(
        login["reason"],
        "capture `session` (jq `.nope` over the body) found nothing"
    );
    assert!(
        v["checks"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("found nothing"),
        "{v}"
    );
}

#[tokio::test]
async fn a_name_no_earlier_check_captures_is_a_usage_error() {
    let (s, dir) = standin(Behaviour::default()).await;
    let suite = dir.path().join("bad.toml");
    // The suite `text` is refused with exit 2 and a message holding `says`.
    let refused = async |text: &str, says: &str| {
        std::fs::write(&suite, text).unwrap();
        let args = format!("--base-url {} --suite {}", s.url, suite.display());
        let r = run(smoke_cmd(dir.path(), "t", &args)).await;
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains(says), "{says:?} not in {}", r.stderr);
    };
    refused(
        "[[smoke.checks]]\nname = \"w\"\npath = \"/api/workflows\"\nheaders = { Authorization = \"Bearer {{session}}\" }\n",
        "check \"w\" uses {{session}}, which no earlier check captures",
    )
    .await;
    // A name captured twice, and a capture in a health check: exit 2 too.
    refused(
        "[[smoke.checks]]\nname = \"a\"\npath = \"/api/health\"\ncapture = { s = \".status\" }\n\n\
         [[smoke.checks]]\nname = \"b\"\npath = \"/api/health\"\ncapture = { s = \".service\" }\n",
        "capture \"s\" is set by both check \"a\" and check \"b\"",
    )
    .await;
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[[health.checks]]\nname = \"h\"\npath = \"/api/health\"\ncapture = { s = \".status\" }\n",
    )
    .unwrap();
    let mut c = tool("health-check", dir.path());
    c.args(["--base-url", &s.url]);
    let r = run(c).await;
    assert_eq!(r.code, 2, "{r:?}");
    let says = "health check \"h\": capture is for smoke checks";
    assert!(r.stderr.contains(says), "{}", r.stderr);
}

/// The suite's deadline (`--timeout`) is a deadline for the checks still waiting for a slot
/// too: one at a time against answers of 300 ms, a 1 s deadline lets a few run, and the rest are
/// not sent at all (they said so), rather than each starting one more request after it.
#[tokio::test]
async fn checks_still_waiting_when_the_suite_deadline_passes_are_not_sent() {
    let (s, dir) = standin(Behaviour {
        delay_ms: 300,
        ..Behaviour::default()
    })
    .await;
    let suite = health_suite(dir.path(), "", 12);
    let args = format!(
        "--suite {} --base-url {} --concurrency 1 --timeout 1s --retry-for 0s",
        suite.display(),
        s.url
    );
    let (r, report) = smoke(dir.path(), "t", &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    let sent = s.shared.hits().get("/api/health").copied().unwrap_or(0);
    assert!(
        sent <= 5,
        "{sent} requests for a 1 s deadline at 300 ms each"
    );
    let not_sent = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["reason"].as_str().is_some_and(|r| {
                r.contains("the suite's deadline (--timeout) passed while it waited for a slot")
            })
        })
        .count();
    assert!(not_sent >= 7, "{report:#}");
}
