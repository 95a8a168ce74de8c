//! The composite action itself (`action.yml`), run for real by act on the host: inputs reach the
//! tool through the environment, the tool's outputs come back as the action's outputs, the job
//! fails when the tool fails, and the bearer token never shows in the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use deploy_action_e2e::rig::{self, act_repo};
use deploy_action_e2e::standin::{Behaviour, StandIn};

const WORKFLOW: &str = r#"name: action
on: push
jobs:
  smoke:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: smoke
        uses: ./
        env:
          API_TOKEN: ${{ secrets.API_TOKEN }}
        with:
          tool: smoke-test
          base-url: ${{ env.STANDIN_URL }}
          bin-dir: ${{ env.BIN_DIR }}
          github-token: ""
          args: |
            --retry-for=1s
      - if: always()
        shell: bash
        env:
          OUTCOME: ${{ steps.smoke.outputs.outcome }}
          EXIT_CODE: ${{ steps.smoke.outputs.exit-code }}
          PASSED: ${{ steps.smoke.outputs.passed }}
          FAILED: ${{ steps.smoke.outputs.failed }}
          REPORT: ${{ steps.smoke.outputs.report }}
        run: |
          printf 'outcome=%s\nexit-code=%s\npassed=%s\nfailed=%s\n' "$OUTCOME" "$EXIT_CODE" "$PASSED" "$FAILED" > "$OUT_FILE"
          cp "$REPORT" "$OUT_FILE.json"
"#;

struct Run {
    ok: bool,
    log: String,
    outputs: String,
    report: serde_json::Value,
}

async fn run_action(standin: &StandIn, token: &str) -> Run {
    let root = rig::workspace_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let (action, install, run, sums) = (
        read("action.yml"),
        read("scripts/action-install.sh"),
        read("scripts/action-run.sh"),
        read("checksums.txt"),
    );
    let repo = act_repo(&[
        ("action.yml", &action),
        ("scripts/action-install.sh", &install),
        ("scripts/action-run.sh", &run),
        ("checksums.txt", &sums),
        (".github/workflows/action.yml", WORKFLOW),
    ]);
    let out_file = repo.path().join("outputs.txt");
    let output = tokio::process::Command::new(rig::act())
        .current_dir(repo.path())
        .args(["push", "-P", "ubuntu-latest=-self-hosted"])
        .args(["-W", ".github/workflows/action.yml"])
        .arg("-s")
        .arg(format!("API_TOKEN={token}"))
        .arg("--env")
        .arg(format!("STANDIN_URL={}", standin.url))
        .arg("--env")
        .arg(format!("BIN_DIR={}", rig::bin_dir().display()))
        .arg("--env")
        .arg(format!("OUT_FILE={}", out_file.display()))
        .output()
        .await
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let outputs = std::fs::read_to_string(&out_file).unwrap_or_else(|e| panic!("{e}\n{log}"));
    let report = std::fs::read_to_string(out_file.with_extension("txt.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_else(|e| panic!("{e}\n{log}"));
    Run {
        ok: output.status.success(),
        log,
        outputs,
        report,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn action_runs_smoke_test_and_returns_its_outputs() {
    let token = "tok-action-secret-4711";
    let standin = StandIn::start(Behaviour {
        token: token.into(),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let run = run_action(&standin, token).await;
    assert!(run.ok, "act failed:\n{}", run.log);
    assert_eq!(
        run.outputs, "outcome=passed\nexit-code=0\npassed=5\nfailed=0\n",
        "{}",
        run.log
    );
    assert_eq!(run.report["tool"], "smoke-test");
    assert_eq!(run.report["checks"].as_array().unwrap().len(), 5);
    assert!(!run.log.contains(token), "token leaked into the log");
    // act masks secrets in its log itself, so the log alone proves little: the files the tool
    // wrote (the JSON report, the outputs) must not carry the token either.
    assert!(
        !run.report.to_string().contains(token),
        "token in the report"
    );
    assert!(!run.outputs.contains(token), "token in the outputs");
    let hits = standin.shared.hits();
    assert_eq!(hits.get("/api/workflows"), Some(&1), "{hits:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn action_fails_the_job_when_checks_fail_and_still_sets_outputs() {
    let standin = StandIn::start(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let token = "tok-wrong-secret-0815";
    let run = run_action(&standin, token).await;
    assert!(!run.ok, "the job must fail:\n{}", run.log);
    assert_eq!(
        run.outputs, "outcome=failed\nexit-code=1\npassed=3\nfailed=2\n",
        "{}",
        run.log
    );
    let failed: Vec<&str> = run.report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["API readiness", "Workflow API"]);
    assert!(!run.log.contains(token), "token leaked into the log");
    // act masks secrets in its log itself, so the log alone proves little: the files the tool
    // wrote (the JSON report, the outputs) must not carry the token either.
    assert!(
        !run.report.to_string().contains(token),
        "token in the report"
    );
    assert!(!run.outputs.contains(token), "token in the outputs");
}
