//! The common `--publish`: health-check and smoke-test post their report as a check run that
//! Prism (GitHub's OpenAPI description) accepts, named `<tool> (<environment>)`, on the right
//! commit, with the right conclusion and one annotation per failed check; a token that may not
//! write checks falls back to a commit status, one that may write neither (a fork's PR) leaves the
//! result in the job summary without failing the run. A recording tap in front of Prism shows
//! what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;

use deploy_action_e2e::rig::{self, Ran, run, tool, words};
use deploy_action_e2e::standin::{self, Behaviour, StandIn};
use deploy_action_e2e::tap::{Recorded, Tap};
use serde_json::Value;

const SHA: &str = "22cdb6a41c42366ad165a0fb4c96282304f6f7ae";
const TOKEN: &str = "ghs_publish_token_0123456789";

/// A stand-in behaving as `b`, and a directory whose deploy.toml points staging at it.
async fn staging(b: Behaviour) -> (StandIn, tempfile::TempDir) {
    let (s, dir) = standin::with_dir(b).await;
    config(dir.path(), &s.url);
    (s, dir)
}

fn config(dir: &Path, url: &str) {
    rig::write_config(
        dir,
        format!(
            r#"[environments.staging]
base_url = "{url}"

[[health.checks]]
name = "Control Center health"
path = "/api/health"

[[health.checks]]
name = "Control Center readiness"
path = "/api/ready"
assert = [".ready == true"]

[[smoke.checks]]
name = "API health"
path = "/api/health"

[[smoke.checks]]
name = "API readiness"
path = "/api/ready"
assert = [".ready == true"]
"#
        ),
    );
}

/// `name` in `dir` for staging, publishing to `api`, with `args` (a command line split at white
/// space) and `env`: what it did.
async fn publish(name: &str, dir: &Path, api: &str, args: &str, env: &[(&str, &str)]) -> Ran {
    let mut c = tool(name, dir);
    c.args(["-e", "staging", "--publish", "always", "--format", "json"])
        .args(words(args))
        .env("GITHUB_API_URL", api)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "afu9/control-center")
        .env("GITHUB_SHA", SHA);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c).await
}

fn check_runs(tap: &Tap) -> Vec<Recorded> {
    tap.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/repos/afu9/control-center/check-runs")
        .collect()
}

/// The check runs posted through `tap`, which must be named `names` in that order.
fn runs_named(tap: &Tap, names: &[&str]) -> Vec<Recorded> {
    let runs = check_runs(tap);
    let got: Vec<&str> = runs
        .iter()
        .filter_map(|r| r.body["name"].as_str())
        .collect();
    assert_eq!(got, names, "one check run per tool: {:?}", tap.requests());
    runs
}

fn outputs(ran: &Ran) -> Value {
    let v: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran:?}"));
    v["outputs"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_smoke_test_becomes_a_failed_check_run_with_annotations() {
    let (_s, dir) = staging(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let tap = Tap::start(rig::prism_url(), &[]).await;
    let ran = publish("smoke-test", dir.path(), &tap.url, "--retry-for 0s", &[]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    let runs = check_runs(&tap);
    assert_eq!(runs.len(), 1, "{:?}", tap.requests());
    let r = &runs[0];
    assert_eq!(r.status, 201, "Prism accepted it: {r:?}");
    assert_eq!(r.body["name"], "smoke-test (staging)");
    assert_eq!(r.body["head_sha"], SHA);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["conclusion"], "failure");
    assert_eq!(r.body["output"]["title"], "1 of 2 smoke checks failed");
    let annotations = r.body["output"]["annotations"].as_array().unwrap();
    assert_eq!(annotations.len(), 1, "{annotations:?}");
    let a = &annotations[0];
    assert_eq!(a["annotation_level"], "failure");
    assert_eq!(a["path"], "deploy.toml");
    assert_eq!(a["title"], "smoke-test: API readiness");
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .starts_with("status 503, expected 2xx"),
        "{a}"
    );
    assert!(outputs(&ran)["check-run-id"].as_str().is_some());
    assert!(!ran.all().contains(TOKEN), "token leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_pull_request_deploy_passes_on_the_pr_head_not_the_merge_commit() {
    let (_s, dir) = staging(Behaviour::default()).await;
    let head = "0123456789abcdef0123456789abcdef01234567";
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        format!(r#"{{"number":3,"pull_request":{{"head":{{"sha":"{head}","ref":"feat"}}}}}}"#),
    )
    .unwrap();
    let tap = Tap::start(rig::prism_url(), &[]).await;
    let ran = publish(
        "health-check",
        dir.path(),
        &tap.url,
        "--interval 100ms --wait 20s",
        &[
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let runs = check_runs(&tap);
    assert_eq!(runs.len(), 1, "{:?}", tap.requests());
    let r = &runs[0];
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["name"], "health-check (staging)");
    assert_eq!(r.body["head_sha"], head, "the PR head, not GITHUB_SHA");
    assert_eq!(r.body["conclusion"], "success");
    assert!(r.body["output"].get("annotations").is_none(), "{r:?}");
    assert!(
        r.body["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("Control Center readiness"),
        "the job summary's table is the check run's summary"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_checks_permission_it_falls_back_to_a_status_then_to_the_summary() {
    let (_s, dir) = staging(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    // The token may not write checks: a commit status, accepted by Prism.
    let tap = Tap::start(rig::prism_url(), &["/check-runs"]).await;
    let fast = "--interval 100ms --wait 1s";
    let ran = publish("health-check", dir.path(), &tap.url, fast, &[]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    let status = tap
        .requests()
        .into_iter()
        .find(|r| r.path == format!("/repos/afu9/control-center/statuses/{SHA}"))
        .unwrap_or_else(|| panic!("{:?}", tap.requests()));
    assert_eq!(status.status, 201, "{status:?}");
    assert_eq!(status.body["context"], "health-check (staging)");
    assert_eq!(status.body["state"], "failure");
    assert_eq!(outputs(&ran)["published"], "commit-status");
    // A fork's pull request: neither. The run's verdict is the health check's alone.
    let fork = Tap::start(rig::prism_url(), &["/check-runs", "/statuses/"]).await;
    let ran = publish("health-check", dir.path(), &fork.url, fast, &[]).await;
    assert_eq!(ran.code, 1, "unhealthy, not a dependency error: {ran:?}");
    assert_eq!(outputs(&ran)["published"], "job-summary-only");
    assert!(
        ran.stderr
            .contains("the token may write neither check runs nor statuses"),
        "{ran:?}"
    );
}

/// A required check must never wait at "Expected": a tool that stops on bad input still posts
/// its check run, concluding `failure` with the error as its title.
#[tokio::test(flavor = "multi_thread")]
async fn every_tool_answers_its_check_when_it_stops_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    rig::write_config(
        dir.path(),
        "[environments.staging]\nbase_url = \"${DEPLOY_TEST_UNSET_BASE_URL}\"\n",
    );
    let tap = Tap::start(rig::prism_url(), &[]).await;
    for name in ["health-check", "smoke-test", "rollback", "ecr-push"] {
        let ran = publish(name, dir.path(), &tap.url, "", &[]).await;
        assert_eq!(ran.code, 2, "{name}: {ran:?}");
        assert!(!ran.all().contains(TOKEN), "{name}: token leaked");
    }
    let runs = runs_named(
        &tap,
        &[
            "health-check (staging)",
            "smoke-test (staging)",
            "rollback (staging)",
            "ecr-push (staging)",
        ],
    );
    for r in &runs {
        assert_eq!(r.status, 201, "Prism accepted it: {r:?}");
        assert_eq!(r.body["head_sha"], SHA);
        assert_eq!(r.body["conclusion"], "failure", "{r:?}");
        let title = r.body["output"]["title"].as_str().unwrap();
        assert!(
            title.starts_with("usage error: ") && title.contains("DEPLOY_TEST_UNSET_BASE_URL"),
            "{title}"
        );
        assert!(
            !r.body.to_string().contains(TOKEN),
            "token in the check run"
        );
    }
}

/// A mistyped flag stops a tool before it has its settings: the check run is answered all the
/// same when the run would have published (`--publish` on the command line; sync-check by
/// default inside Actions), and not at all when it would not have.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_flag_still_answers_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let tap = Tap::start(rig::prism_url(), &[]).await;
    let ran = publish("smoke-test", dir.path(), &tap.url, "--no-such-flag", &[]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    let mut c = tool("sync-check", dir.path());
    c.args(["--no-such-flag"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_API_URL", &tap.url)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "afu9/control-center")
        .env("GITHUB_SHA", SHA);
    let ran = run(c).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    // Never asked to publish: nothing posted.
    let mut c = tool("health-check", dir.path());
    c.args(["--no-such-flag"])
        .env("GITHUB_API_URL", &tap.url)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "afu9/control-center");
    assert_eq!(run(c).await.code, 2);
    let runs = runs_named(&tap, &["smoke-test (staging)", "sync-check"]);
    for r in &runs {
        assert_eq!(r.status, 201, "Prism accepted it: {r:?}");
        assert_eq!(r.body["conclusion"], "failure", "{r:?}");
        let title = r.body["output"]["title"].as_str().unwrap();
        assert!(
            title.contains("the flags were refused") && title.contains("--no-such-flag"),
            "{title}"
        );
    }
}

/// sync-check posts `sync-check` on the pull request's head (not the merge commit in
/// GITHUB_SHA) when the fetch fails, and `cancelled` when the job is cancelled mid-fetch.
#[tokio::test(flavor = "multi_thread")]
async fn sync_check_answers_its_check_on_a_failed_fetch_and_on_a_cancelled_job() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    std::fs::create_dir(&repo).unwrap();
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "init"]);
    let head = git(&["rev-parse", "HEAD"]);
    // A remote that refuses connections: the fetch fails (a dependency error).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/origin.git", closed.local_addr().unwrap());
    drop(closed);
    git(&["remote", "add", "origin", &closed_url]);
    let event = rig::pull_request_event(dir.path(), 7, &head);
    let tap = Tap::start(rig::prism_url(), &[]).await;
    let sync = || {
        let mut c = tool("sync-check", &repo);
        c.args(["--publish", "always", "--format", "json"])
            .env("GITHUB_API_URL", &tap.url)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "afu9/control-center")
            .env("GITHUB_EVENT_NAME", "pull_request")
            .env("GITHUB_EVENT_PATH", &event)
            .env("GITHUB_SHA", SHA); // the merge commit: not where the check belongs
        c
    };
    let ran = run(sync()).await;
    assert_eq!(ran.code, 3, "{ran:?}");
    let runs = check_runs(&tap);
    assert_eq!(runs.len(), 1, "{:?}", tap.requests());
    assert_eq!(runs[0].body["name"], "sync-check");
    assert_eq!(runs[0].body["head_sha"], head.as_str());
    assert_eq!(runs[0].body["conclusion"], "failure");
    let title = runs[0].body["output"]["title"].as_str().unwrap();
    assert!(title.starts_with("dependency error: "), "{title}");

    // A remote that accepts and never answers: SIGTERM mid-fetch gives `cancelled`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck = format!("http://{}/origin.git", listener.local_addr().unwrap());
    git(&["remote", "set-url", "origin", &stuck]);
    let child = rig::spawn(sync());
    let (_conn, _) = tokio::time::timeout(std::time::Duration::from_secs(60), listener.accept())
        .await
        .expect("git never connected")
        .unwrap();
    let out = rig::sigterm(child).await;
    assert_eq!(out.code, 1, "{out:?}");
    let runs = check_runs(&tap);
    assert_eq!(runs.len(), 2, "{:?}", tap.requests());
    assert_eq!(runs[1].body["name"], "sync-check");
    assert_eq!(runs[1].body["head_sha"], head.as_str());
    assert_eq!(runs[1].body["conclusion"], "cancelled", "{:?}", runs[1]);
    let title = runs[1].body["output"]["title"].as_str().unwrap();
    assert!(
        title.contains("cancelled during the fetch (SIGTERM)"),
        "{title}"
    );
    assert!(!out.all().contains(TOKEN), "token leaked");
}

/// A report past GitHub's limits on a check run: 200 failed checks with long non-ASCII names.
/// The first request carries 50 annotations and updates of the check run carry the other 150
/// (GitHub takes 50 a request); the summary fits 65,535 bytes, not characters, and each
/// annotation title 255 bytes; Prism accepts every request, and the run ends as a check failure
/// (exit 1), not a refused publication.
#[tokio::test(flavor = "multi_thread")]
async fn a_report_past_github_s_limits_is_published_whole_and_within_them() {
    let (s, dir) = staging(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let long = "é".repeat(150);
    let mut text = format!("[environments.staging]\nbase_url = \"{}\"\n", s.url);
    for i in 0..200 {
        text.push_str(&format!(
            "\n[[smoke.checks]]\nname = \"{long} {i}\"\npath = \"/api/ready\"\nassert = [\".ready == true\"]\n"
        ));
    }
    std::fs::write(dir.path().join("deploy.toml"), text).unwrap();
    let tap = Tap::start(rig::prism_url(), &[]).await;
    let ran = publish("smoke-test", dir.path(), &tap.url, "--retry-for 0s", &[]).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    let runs = check_runs(&tap);
    assert_eq!(runs.len(), 1, "{:?}", tap.requests());
    assert_eq!(runs[0].status, 201, "{:?}", runs[0]);
    let updates: Vec<Recorded> = tap
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH" && r.path.starts_with("/repos/afu9/control-center/check-runs/")
        })
        .collect();
    assert_eq!(updates.len(), 3, "{updates:?}");
    let mut annotations = 0;
    for r in runs.iter().chain(&updates) {
        assert!(r.status < 300, "Prism refused: {r:?}");
        let output = &r.body["output"];
        assert!(output["summary"].as_str().unwrap().len() <= 65_535);
        for a in output["annotations"].as_array().unwrap() {
            assert!(a["title"].as_str().unwrap().len() <= 255, "{a}");
            annotations += 1;
        }
    }
    assert_eq!(annotations, 200);
}

/// A run that published and then cannot write a file of its own (its JUnit file, here in /proc)
/// fails its step (exit 2) without posting a second, contradicting check run.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_after_publishing_posts_no_second_check_run() {
    let (_s, dir) = staging(Behaviour::default()).await;
    let tap = Tap::start(rig::prism_url(), &[]).await;
    let ran = publish(
        "smoke-test",
        dir.path(),
        &tap.url,
        "--junit /proc/deploy-action-junit.xml",
        &[],
    )
    .await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("couldn't write JUnit file"),
        "{}",
        ran.stderr
    );
    let runs = check_runs(&tap);
    assert_eq!(runs.len(), 1, "{:?}", tap.requests());
    assert_eq!(runs[0].body["conclusion"], "success");
}
