//! Wiring tests: each stand-in of the rig is really reached through the core's own factories.
//! moto (ECS, ECR), the registry (with moto's ECR token), Prism (GitHub's API description) and
//! act (a composite action writing a multi-line output). A stand-in that is not running fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;

use base64::Engine;
use deploy_action_e2e::rig::{self, act_repo};
use deploy_core::aws;
use deploy_core::github::{CommitReport, Conclusion, GithubArgs, GithubClient, Published};
use deploy_core::http::{HttpClient, HttpOptions};
use deploy_core::secret::Secret;

#[tokio::test]
async fn aws_factory_reaches_moto_for_ecs() {
    let conf = rig::moto_sdk().await;
    let ecs = aws::ecs(&conf);
    let name = format!("wiring-{}", fastrand_suffix());
    ecs.create_cluster()
        .cluster_name(&name)
        .send()
        .await
        .unwrap();
    let arns = ecs.list_clusters().send().await.unwrap();
    assert!(
        arns.cluster_arns()
            .iter()
            .any(|a| a.ends_with(&format!("cluster/{name}"))),
        "{:?}",
        arns.cluster_arns()
    );
}

#[tokio::test]
async fn ecr_token_from_moto_is_accepted_by_the_registry() {
    let conf = rig::moto_sdk().await;
    let login = aws::ecr_login(&aws::ecr(&conf)).await.unwrap();
    assert_eq!(login.username, "AWS");
    assert_eq!(format!("{:?}", login.password), "***");
    let http = HttpClient::new("wiring", HttpOptions::default()).unwrap();
    let url = format!("{}/v2/", rig::registry_url());
    let basic = |user: &str, pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let ok = http
        .send(
            "GET",
            &url,
            &[deploy_core::http::Header::new(
                "Authorization",
                basic(&login.username, login.password.expose()),
            )],
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "registry refused moto's token");
    let anonymous = http.send("GET", &url, &[], None, None).await.unwrap();
    assert_eq!(anonymous.status, 401);
    let wrong = http
        .send(
            "GET",
            &url,
            &[deploy_core::http::Header::new(
                "Authorization",
                basic("AWS", "not-the-token"),
            )],
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, 401, "registry must refuse a wrong password");
}

fn github() -> GithubClient {
    GithubClient::new(&GithubArgs {
        github_token: Some(Secret::new("ghs_wiringtoken1234567890")),
        github_api_url: rig::prism_url(),
        github_repository: Some("afu9/control-center".into()),
    })
    .unwrap()
}

fn report() -> CommitReport {
    CommitReport {
        name: "sync-check".into(),
        head_sha: "22cdb6a41c42366ad165a0fb4c96282304f6f7ae".into(),
        conclusion: Conclusion::Success,
        title: "up to date with main".into(),
        summary: "0 behind, 3 ahead, no conflicts".into(),
        details_url: None,
        annotations: Vec::new(),
    }
}

#[tokio::test]
async fn github_factory_creates_a_check_run_prism_validates() {
    let gh = github();
    let id = gh.create_check_run(&report()).await.unwrap();
    assert!(id > 0, "prism answers with the spec's example check run");
    assert_eq!(
        gh.publish(&report()).await.unwrap(),
        Published::CheckRun(id)
    );
    gh.create_status(&report()).await.unwrap();
}

#[tokio::test]
async fn prism_rejects_a_malformed_check_run() {
    let gh = github();
    let err = gh
        .octocrab()
        .post::<_, serde_json::Value>(
            "/repos/afu9/control-center/check-runs",
            Some(&serde_json::json!({ "name": "sync-check" })),
        )
        .await
        .unwrap_err();
    match err {
        deploy_core::octocrab::Error::GitHub { source, .. } => {
            assert_eq!(source.status_code.as_u16(), 422, "{}", source.message);
        }
        other => panic!("expected a 422 from prism, got {other:?}"),
    }
}

fn fastrand_suffix() -> String {
    format!(
        "{:08x}",
        std::process::id()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos())
    )
}

const PROBE_ACTION: &str = r#"name: probe
description: writes one output through deploy-core
inputs:
  value:
    description: the value
    required: true
outputs:
  message:
    description: what the probe wrote
    value: ${{ steps.write.outputs.message }}
runs:
  using: composite
  steps:
    - id: write
      shell: bash
      env:
        PROBE_VALUE: ${{ inputs.value }}
      run: '"$PROBE_BIN"'
"#;

const PROBE_WORKFLOW: &str = r#"name: probe
on: push
jobs:
  probe:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: probe
        uses: ./probe
        with:
          value: |-
            line one
            EOF
            ghadelimiter_x = 100% "quoted" $HOME
            last line
      - shell: bash
        env:
          GOT: ${{ steps.probe.outputs.message }}
        run: printf '%s' "$GOT" > "$OUT_FILE"
"#;

#[test]
fn act_runs_a_composite_action_whose_multi_line_output_survives() {
    let repo = act_repo(&[
        ("probe/action.yml", PROBE_ACTION),
        (".github/workflows/probe.yml", PROBE_WORKFLOW),
    ]);
    let out_file = repo.path().join("got.txt");
    let output = Command::new(rig::act())
        .current_dir(repo.path())
        .args([
            "push",
            "-P",
            "ubuntu-latest=-self-hosted",
            "-W",
            ".github/workflows/probe.yml",
        ])
        .arg("--env")
        .arg(format!("PROBE_BIN={}", rig::bin("gha-probe").display()))
        .arg("--env")
        .arg(format!("OUT_FILE={}", out_file.display()))
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "act failed:\n{log}");
    let got = std::fs::read_to_string(&out_file).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(
        got,
        "line one\nEOF\nghadelimiter_x = 100% \"quoted\" $HOME\nlast line"
    );
}

/// A stand-in that exits at start-up (prism once did, with an empty log, on a newcomer's first
/// demo) is reported with why (status, empty log, memory, port) and started once more. A second
/// rig on its own ports and state directory, sharing the installs, so the suite's rig is untouched.
#[test]
fn the_rig_says_why_a_stand_in_exited_at_start_up_and_starts_it_once_more() {
    let root = rig::workspace_root();
    let state = tempfile::tempdir().unwrap();
    for d in ["venv", "node", "github-trimmed.json", "stamps"] {
        std::os::unix::fs::symlink(root.join(".rig").join(d), state.path().join(d)).unwrap();
    }
    let rig_sh = |cmd: &str| {
        Command::new("bash")
            .arg(root.join("scripts/rig.sh"))
            .arg(cmd)
            .env("RIG_DIR", state.path())
            // Below Linux's ephemeral range (32768-60999): the other tests of this one test
            // binary open sockets there while this rig starts, and one can take a fixed port in
            // that range (it did: the registry's bind failed with "address already in use").
            .env("RIG_PORT_BASE", "23400")
            .env("RIG_FAULT_PRISM_EXITS", "1")
            .output()
            .unwrap()
    };
    let up = rig_sh("up");
    let down = rig_sh("down");
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "{err}");
    assert!(
        err.contains(
            "rig: WARNING: prism: process exited during start-up with status 7, and its log is empty"
        ),
        "{err}"
    );
    assert!(err.contains("rig: starting prism once more"), "{err}");
    assert!(err.contains("rig: prism ready"), "{err}");
    assert!(down.status.success(), "{down:?}");
}
