//! Certificate expiry of https checks, end to end: a local TLS server whose certificate (made by
//! the test, signed by a test CA the tools trust through `SSL_CERT_FILE`) expires in 5 days.
//! smoke-test and health-check warn within `--cert-warn` (default 14 days) and fail within
//! `--cert-fail`, naming the host, the subject and the date; the warning reaches the report, the
//! annotations and the job summary the tool wrote.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use deploy_action_e2e::https::HttpsServer;
use deploy_action_e2e::rig::{run_report, tool, words};

/// The server, with `/api/health` answering `{"status":"ok"}`.
fn server() -> HttpsServer {
    let s = HttpsServer::expiring_in(5);
    s.put("api/health", br#"{"status":"ok"}"#);
    s
}

/// The expiry date openssl wrote, as the tools print it (`YYYY-MM-DD`).
fn expiry_in_5_days() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{}", now + 5 * 86_400), "+%F"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `name` (smoke-test or health-check) with `args` against `s`, trusting its CA, as a GitHub
/// step (summary and output files in `dir`).
fn step(name: &str, s: &HttpsServer, dir: &std::path::Path, args: &str) -> std::process::Command {
    let mut c = tool(name, dir);
    c.arg("--base-url")
        .arg(&s.url)
        .args(words(args))
        .env("SSL_CERT_FILE", &s.ca)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .env("GITHUB_OUTPUT", dir.join("output"));
    c
}

fn suite(dir: &std::path::Path) -> String {
    let p = dir.join("suite.toml");
    std::fs::write(
        &p,
        "[[smoke.checks]]\nname = \"health\"\npath = \"/api/health\"\nassert = ['.status == \"ok\"']\n",
    )
    .unwrap();
    format!("--suite {}", p.display())
}

#[tokio::test]
async fn a_certificate_expiring_in_5_days_warns_by_default_and_names_host_subject_and_date() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (r, v) = run_report(step("smoke-test", &s, dir.path(), &suite(dir.path()))).await;
    assert_eq!(r.code, 0, "{r:?}");
    let date = expiry_in_5_days();
    let w = v["checks"][0]["warnings"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    for part in [
        "127.0.0.1",
        "subject 127.0.0.1",
        &date,
        "--cert-warn 14 days",
    ] {
        assert!(w.contains(part), "{part:?} not in {w:?}");
    }
    assert!(
        r.stderr
            .contains("::warning title=smoke-test::health: the certificate of 127.0.0.1"),
        "{}",
        r.stderr
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(summary.contains(&format!("expires on {date}")), "{summary}");

    // Within a smaller --cert-warn there is nothing to say.
    let (r, v) = run_report(step(
        "smoke-test",
        &s,
        dir.path(),
        &format!("{} --cert-warn 3", suite(dir.path())),
    ))
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(v["checks"][0].get("warnings").is_none(), "{v}");
}

#[tokio::test]
async fn cert_fail_fails_the_check_in_both_tools_and_config_sets_it_too() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (r, v) = run_report(step(
        "smoke-test",
        &s,
        dir.path(),
        &format!("{} --cert-fail 7", suite(dir.path())),
    ))
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    let reason = v["checks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("127.0.0.1") && reason.contains("within --cert-fail 7 days"),
        "{reason}"
    );

    // health-check: a certificate does not get better by waiting, so it fails at once.
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[defaults]\ncert_fail_days = 7\n\n[[health.checks]]\nname = \"health\"\npath = \"/api/health\"\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (r, v) = run_report(step("health-check", &s, dir.path(), "--wait 30s")).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "it waited"
    );
    let failed: Vec<_> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        failed
            .iter()
            .any(|r| r.contains("within --cert-fail 7 days")),
        "{failed:?}"
    );
}
