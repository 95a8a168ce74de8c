//! The composite action itself (`action.yml`), run for real by act on the host: inputs reach the
//! tool through the environment, the tool's outputs come back as the action's outputs, the job
//! fails when the tool fails, and the bearer token never shows in the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;

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

/// A repository for act holding this tree's action (action.yml and its two scripts) and `files`.
fn action_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let root = rig::workspace_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let (action, install, run) = (
        read("action.yml"),
        read("scripts/action-install.sh"),
        read("scripts/action-run.sh"),
    );
    let mut all = vec![
        ("action.yml", action.as_str()),
        ("scripts/action-install.sh", install.as_str()),
        ("scripts/action-run.sh", run.as_str()),
    ];
    all.extend_from_slice(files);
    act_repo(&all)
}

/// What an act run of a workflow did: whether it passed, its log, and the outputs file its last
/// step wrote (`OUT_FILE`, in the repository).
struct Acted {
    ok: bool,
    log: String,
    out_file: std::path::PathBuf,
    outputs: String,
}

/// Runs `.github/workflows/WORKFLOW` of `repo` under act on a push, with `args` and then
/// `--env OUT_FILE=...`, and `env`.
async fn act(repo: &Path, workflow: &str, args: &[String], env: &[(&str, &str)]) -> Acted {
    let out_file = repo.join("outputs.txt");
    let output = tokio::process::Command::new(rig::act())
        .current_dir(repo)
        .args(["push", "-P", "ubuntu-latest=-self-hosted"])
        .arg("-W")
        .arg(format!(".github/workflows/{workflow}"))
        .envs(env.iter().copied())
        .args(args)
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
    Acted {
        ok: output.status.success(),
        log,
        out_file,
        outputs,
    }
}

async fn run_action(standin: &StandIn, token: &str) -> Run {
    let sums = std::fs::read_to_string(rig::workspace_root().join("checksums.txt")).unwrap();
    let repo = action_repo(&[
        ("checksums.txt", &sums),
        (".github/workflows/action.yml", WORKFLOW),
    ]);
    let args = [
        "-s".to_owned(),
        format!("API_TOKEN={token}"),
        "--env".to_owned(),
        format!("STANDIN_URL={}", standin.url),
        "--env".to_owned(),
        format!("BIN_DIR={}", rig::bin_dir().display()),
    ];
    let a = act(repo.path(), "action.yml", &args, &[]).await;
    let report = std::fs::read_to_string(a.out_file.with_extension("txt.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_else(|e| panic!("{e}\n{}", a.log));
    Run {
        ok: a.ok,
        log: a.log,
        outputs: a.outputs,
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

const JOB_ENV_WORKFLOW: &str = r#"name: job-env
on: push
jobs:
  smoke:
    runs-on: ubuntu-latest
    env:
      DEPLOY_BASE_URL: __STANDIN_URL__
    steps:
      - uses: actions/checkout@v4
      - id: smoke
        uses: ./
        with:
          tool: smoke-test
          bin-dir: ${{ env.BIN_DIR }}
          dry-run: ${{ env.DRY_RUN }}
          args: |
            --retry-for=1s
      - if: always()
        shell: bash
        env:
          OUTCOME: ${{ steps.smoke.outputs.outcome }}
          EXIT_CODE: ${{ steps.smoke.outputs.exit-code }}
        run: printf 'outcome=%s\nexit-code=%s\n' "$OUTCOME" "$EXIT_CODE" > "$OUT_FILE"
"#;

async fn run_job_env(standin: &StandIn, dry_run: &str) -> (bool, String, String) {
    let workflow = JOB_ENV_WORKFLOW.replace("__STANDIN_URL__", &standin.url);
    let repo = action_repo(&[(".github/workflows/job-env.yml", &workflow)]);
    let args = [
        "--env".to_owned(),
        format!("BIN_DIR={}", rig::bin_dir().display()),
        "--env".to_owned(),
        format!("DRY_RUN={dry_run}"),
    ];
    let env = [("API_TOKEN", "standin-token")];
    let a = act(repo.path(), "job-env.yml", &args, &env).await;
    (a.ok, a.outputs, a.log)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_level_deploy_variable_survives_an_empty_input() {
    let standin = StandIn::start(Behaviour::default()).await.unwrap();
    let (ok, outputs, log) = run_job_env(&standin, "false").await;
    assert!(ok, "{log}");
    assert_eq!(outputs, "outcome=passed\nexit-code=0\n", "{log}");
    assert_eq!(standin.shared.hits().get("/api/ready"), Some(&1));
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_is_refused_for_a_tool_without_it_and_nothing_runs() {
    let standin = StandIn::start(Behaviour::default()).await.unwrap();
    let (ok, outputs, log) = run_job_env(&standin, "true").await;
    assert!(!ok, "{log}");
    assert_eq!(outputs, "outcome=usage error\nexit-code=2\n", "{log}");
    assert!(
        log.contains(
            "input 'dry-run' applies to sync-check (with --update), ecr-push and rollback, not to smoke-test"
        ),
        "{log}"
    );
    assert!(
        standin.shared.hits().is_empty(),
        "{:?}",
        standin.shared.hits()
    );
}

/// action-run.sh with `env` as the tool: what reaches a tool's environment and argv.
fn run_sh(tool: &str, inputs: &[(&str, &str)]) -> String {
    // A stand-in tool that prints its environment, then its arguments.
    let dir = tempfile::tempdir().unwrap();
    let stub = dir.path().join("tool");
    std::fs::write(&stub, "#!/bin/sh\nenv\nprintf 'ARG %s\\n' \"$@\"\n").unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(rig::workspace_root().join("scripts/action-run.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("DEPLOY_TOOL_BIN", &stub)
        .env("INPUT_TOOL", tool)
        .env("GITHUB_TOKEN", "ghs_job_level_token_0123")
        .env("DEPLOY_ENVIRONMENT", "from-the-job");
    for (k, v) in inputs {
        cmd.env(k, v);
    }
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    // A leading newline: every variable is then found as "\nNAME=value\n".
    format!("\n{}", String::from_utf8_lossy(&o.stdout))
}

/// An input the tool cannot take is said (its value escaped: it cannot start a workflow command
/// of its own) and still goes to the tool as the flag that carries it, so the tool refuses it and,
/// when it publishes, answers its check run.
#[test]
fn a_refused_input_is_escaped_and_reaches_the_tool_as_its_flag() {
    let out = run_sh(
        "health-check",
        &[("INPUT_DRY_RUN", "yes 100%\n::warning::injected")],
    );
    assert!(
        out.contains("\n::error title=deploy-action::input 'dry-run' must be true or false (got 'yes 100%25%0A::warning::injected')\n"),
        "{out}"
    );
    assert!(out.contains("\nARG --dry-run=yes 100%\n"), "{out}");
    let out = run_sh(
        "smoke-test",
        &[("INPUT_DRY_RUN", "true"), ("INPUT_CONFIRM", "production")],
    );
    assert!(
        out.contains("::error title=deploy-action::input 'dry-run' applies to sync-check (with --update), ecr-push and rollback, not to smoke-test\n"),
        "{out}"
    );
    assert!(
        out.contains("\nARG --dry-run\n") && out.contains("\nARG --confirm\nARG production\n"),
        "{out}"
    );
}

#[test]
fn the_token_reaches_only_publishing_tools_and_empty_inputs_leave_job_values() {
    let env = run_sh(
        "smoke-test",
        &[
            ("INPUT_GITHUB_TOKEN", "ghs_input_token_4567"),
            ("INPUT_ARGS", "--junit=j.xml\n--publish=auto"),
            ("INPUT_ENVIRONMENT", ""),
            ("INPUT_BASE_URL", "https://staging.example"),
        ],
    );
    assert!(
        env.contains("\nGITHUB_TOKEN=ghs_input_token_4567\n"),
        "{env}"
    );
    assert!(env.contains("\nDEPLOY_ENVIRONMENT=from-the-job\n"), "{env}");
    assert!(
        env.contains("\nDEPLOY_BASE_URL=https://staging.example\n"),
        "{env}"
    );
    assert!(!env.contains("INPUT_GITHUB_TOKEN"), "{env}");
    // A tool outside PUBLISHING_TOOLS gets no token, not even the job's (all five publish today,
    // so a name outside the list stands for the next tool that does not).
    let env = run_sh(
        "not-publishing",
        &[("INPUT_GITHUB_TOKEN", "ghs_input_token_4567")],
    );
    assert!(!env.contains("GITHUB_TOKEN"), "{env}");
}

/// Issue 17: the token reaches a tool only when it talks to GitHub: it publishes, records a GitHub
/// deployment, or (sync-check) fetches or pushes. `--publish never`, in either spelling, and a
/// tool's default of never keep it away from the others, the job's GITHUB_TOKEN included.
#[test]
fn the_token_reaches_a_tool_only_when_it_publishes() {
    let token = "\nGITHUB_TOKEN=ghs_input_token_4567\n";
    let with = |tool: &str, args: &str| {
        run_sh(
            tool,
            &[
                ("INPUT_GITHUB_TOKEN", "ghs_input_token_4567"),
                ("INPUT_ARGS", args),
            ],
        )
    };
    for (tool, args, gets) in [
        ("smoke-test", "", false),
        ("smoke-test", "--publish=never", false),
        ("smoke-test", "--publish\nnever", false),
        ("smoke-test", "--publish=auto", true),
        ("smoke-test", "--publish\nalways", true),
        ("health-check", "--ecs\n--mark-verified", false),
        ("sync-check", "--base=main", true),
        // Its fetch carries the token (a private repository checked out with
        // `persist-credentials: false`), whatever --publish says.
        ("sync-check", "--base=main\n--publish=never", true),
        ("sync-check", "--no-fetch\n--publish=never", false),
        (
            "sync-check",
            "--no-fetch\n--publish\nnever\n--update=rebase\n--push",
            true,
        ),
        ("rollback", "--incident-file=i.json", false),
        ("rollback", "--github-deployment", true),
        ("ecr-push", "--tag=x\n--publish=auto", true),
    ] {
        let env = with(tool, args);
        assert_eq!(env.contains(token), gets, "{tool} {args:?}: {env}");
        if !gets {
            assert!(!env.contains("GITHUB_TOKEN"), "{tool} {args:?}: {env}");
        }
        // The arguments still reach the tool unchanged.
        for a in args.lines() {
            assert!(env.contains(&format!("\nARG {a}\n")), "{tool} {a}: {env}");
        }
    }
}
