//! The action's contract, both ways. Each tool runs for real (passing and failing, against the
//! stand-in service, moto, the registry, real git and Prism) with the runner's files set, and:
//! every key it wrote to `GITHUB_OUTPUT` is an output of `action.yml` (with a description) and a
//! row of README's outputs table; every declared output is written by some run of a tool its
//! description names; README lists exactly the declared outputs. Also: the flags action-run.sh
//! hands each tool are flags that tool takes, and the Marketplace metadata is within its limits.
//!
//! Adding a tool's runs is one entry in `CASES` (rollback: the lead adds `rollback_cases`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;

use deploy_action_e2e::contract::{declared, readme_outputs, tools_of, written};
use deploy_action_e2e::git::{bare, clone_main, commit_file as commit, git};
use deploy_action_e2e::release::TOOLS;
use deploy_action_e2e::rig::{self, aws_env, run, tool, unique};
use deploy_action_e2e::standin::{Behaviour, StandIn};
use deploy_action_e2e::tap::Tap;

/// Outputs declared ahead of the code that writes them. Remove a name here when its writer
/// lands; the test then demands a run that writes it.
const PENDING: &[&str] = &[];

/// One run of a tool: what it was, and the output keys it wrote.
struct Written {
    tool: &'static str,
    case: &'static str,
    keys: BTreeSet<String>,
}

type CaseFn = fn() -> Pin<Box<dyn Future<Output = Vec<Written>> + Send>>;

/// Every tool's runs (each function runs a tool passing and failing).
const CASES: &[CaseFn] = &[
    || Box::pin(smoke_test_cases()),
    || Box::pin(health_check_cases()),
    || Box::pin(sync_check_cases()),
    || Box::pin(ecr_push_cases()),
];

/// A tool command inside "Actions": its own GITHUB_OUTPUT, summary and RUNNER_TEMP.
struct Step {
    dir: tempfile::TempDir,
}

impl Step {
    fn new() -> Step {
        Step {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, name: &str, cwd: &Path) -> Command {
        let mut c = tool(name, cwd);
        c.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", self.dir.path().join("output"))
            .env("GITHUB_STEP_SUMMARY", self.dir.path().join("summary"))
            .env("RUNNER_TEMP", self.dir.path());
        c
    }

    async fn run(self, tool: &'static str, case: &'static str, want: i32, cmd: Command) -> Written {
        let ran = run(cmd).await;
        assert_eq!(ran.code, want, "{tool} {case}: {ran:?}");
        Written {
            tool,
            case,
            keys: written(&self.dir.path().join("output")),
        }
    }
}

fn github_env(c: &mut Command, api: &str) {
    c.env("GITHUB_API_URL", api)
        .env("GITHUB_TOKEN", "ghs_contract_token_0123456789")
        .env("GITHUB_REPOSITORY", "afu9/control-center")
        .env("GITHUB_SHA", "22cdb6a41c42366ad165a0fb4c96282304f6f7ae");
}

async fn smoke_test_cases() -> Vec<Written> {
    let token = "tok-contract-smoke-1234";
    let ok = StandIn::start(Behaviour {
        token: token.into(),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let bad = StandIn::start(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let refusing = Tap::start(rig::prism_url(), &["/check-runs"]).await;
    let mut out = Vec::new();
    let s = Step::new();
    std::fs::write(
        s.dir.path().join("deploy.toml"),
        format!(
            "[environments.preview]\nbase_url = \"{}\"\n\n[[smoke.checks]]\nname = \"Workflow API\"\npath = \"/api/workflows\"\nheaders = {{ Authorization = \"Bearer ${{API_TOKEN}}\" }}\n",
            ok.url
        ),
    )
    .unwrap();
    let mut c = s.cmd("smoke-test", s.dir.path());
    c.args(["--publish", "always", "-e", "preview"])
        .env("API_TOKEN", token);
    github_env(&mut c, &rig::prism_url());
    out.push(s.run("smoke-test", "passes, check run", 0, c).await);
    let s = Step::new();
    let mut c = s.cmd("smoke-test", s.dir.path());
    c.args([
        "--base-url",
        &bad.url,
        "--retry-for",
        "0s",
        "--publish",
        "always",
    ])
    .env("API_TOKEN", token);
    github_env(&mut c, &refusing.url);
    out.push(s.run("smoke-test", "fails, status fallback", 1, c).await);
    let s = Step::new();
    let mut c = s.cmd("smoke-test", s.dir.path());
    c.arg("--no-such-flag");
    out.push(s.run("smoke-test", "bad flag", 2, c).await);
    out
}

async fn health_check_cases() -> Vec<Written> {
    let ok = StandIn::start(Behaviour::default()).await.unwrap();
    let bad = StandIn::start(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await
    .unwrap();
    // An ECS service in moto, so --mark-verified has a revision to tag.
    let (cluster, service) = (unique("contract-cluster"), unique("contract-svc"));
    deploy_action_e2e::ecs::web_service(&cluster, &service, &["nginx:1"]).await;
    let mut out = Vec::new();
    let namespace = unique("Contract/Factory");
    // health-check verifying the ECS service and tagging it verified.
    let verifying = [
        "--ecs",
        "--cluster",
        &cluster,
        "--service",
        &service,
        "--mark-verified",
        "--base-url",
        &ok.url,
        "--interval",
        "100ms",
        "--wait",
        "20s",
    ];
    let s = Step::new();
    let mut c = s.cmd("health-check", s.dir.path());
    aws_env(&mut c).args(verifying).args([
        "--expect-version",
        &Behaviour::default().commit_sha,
        "--emit-metric",
        "--metric-namespace",
        &namespace,
    ]);
    out.push(
        s.run("health-check", "healthy, ECS verified, metric", 0, c)
            .await,
    );
    // The KPI report over what that run emitted, and one incident record.
    let group = unique("/contract/incidents");
    let logs = deploy_core::logs::client(&rig::moto_sdk().await);
    deploy_core::logs::put_event(
        &logs,
        &group,
        "incidents",
        r#"{"incident_id":"inc-1","environment":"default","mttr_seconds":60}"#,
    )
    .await
    .unwrap();
    // A step whose deploy.toml names the metric namespace and the incident log group.
    let configured = || {
        let s = Step::new();
        std::fs::write(
            s.dir.path().join("deploy.toml"),
            format!("[environments.default]\n\n[metrics]\nnamespace = \"{namespace}\"\n\n[rollback]\nincident_log_group = \"{group}\"\n"),
        )
        .unwrap();
        s
    };
    let s = configured();
    let mut c = s.cmd("health-check", s.dir.path());
    aws_env(&mut c).args(["-e", "default", "--kpi", "1d"]);
    out.push(s.run("health-check", "KPI report", 0, c).await);
    // Before a deploy: a failed rollback's incident is open (exit 1); the verified deploy of a
    // fix resolves it; then a deploy is free (exit 0).
    deploy_core::logs::put_event(
        &logs,
        &group,
        "incidents",
        r#"{"incident_id":"inc-2","environment":"default","outcome":"failed","detection_time":"2026-12-01T10:00:00Z"}"#,
    )
    .await
    .unwrap();
    let s = configured();
    let mut c = s.cmd("health-check", s.dir.path());
    aws_env(&mut c).args(["-e", "default", "--preflight"]);
    out.push(
        s.run("health-check", "preflight, incident open", 1, c)
            .await,
    );
    let s = configured();
    let mut c = s.cmd("health-check", s.dir.path());
    aws_env(&mut c).args(["-e", "default"]).args(verifying);
    out.push(
        s.run("health-check", "verified, resolves the incident", 0, c)
            .await,
    );
    let s = configured();
    let mut c = s.cmd("health-check", s.dir.path());
    aws_env(&mut c).args(["-e", "default", "--preflight"]);
    out.push(s.run("health-check", "preflight, none open", 0, c).await);
    let s = Step::new();
    let mut c = s.cmd("health-check", s.dir.path());
    c.args([
        "--base-url",
        &bad.url,
        "--interval",
        "100ms",
        "--wait",
        "1s",
    ]);
    out.push(s.run("health-check", "not ready", 1, c).await);
    // --notify to a webhook that records it: `notified`.
    let hook = deploy_action_e2e::recorder::Recorder::start(
        "127.0.0.1",
        deploy_action_e2e::recorder::Mode::Answer(200, "{}".into()),
    )
    .await;
    let s = Step::new();
    let mut c = s.cmd("health-check", s.dir.path());
    let url = format!("{}/hook-contract-0000", hook.url);
    c.args(["--base-url", &bad.url, "--wait", "1s", "--notify", &url]);
    out.push(s.run("health-check", "not ready, notified", 1, c).await);
    // --checklist over the reports of this job (none here): `ticked`, `crossed`, `open`.
    let s = Step::new();
    let mut c = s.cmd("health-check", s.dir.path());
    c.arg("--checklist");
    out.push(s.run("health-check", "checklist", 0, c).await);
    out
}

/// origin (bare) with main: 1 shared commit, then `feat` (1 commit, pushed) and 30 more on main.
/// Returns (root, origin, feat head).
fn sync_repos(conflict: bool) -> (tempfile::TempDir, PathBuf, String) {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let origin = bare(r);
    let seed = clone_main(r, &origin, "seed");
    commit(&seed, "f.txt", "base\n");
    git(&seed, &["push", "-q", "origin", "main"]);
    git(&seed, &["checkout", "-q", "-b", "feat"]);
    let feat = commit(&seed, "f.txt", "feature\n");
    git(&seed, &["push", "-q", "origin", "feat"]);
    git(&seed, &["checkout", "-q", "main"]);
    for i in 0..30 {
        commit(&seed, "m.txt", &format!("{i}\n"));
    }
    if conflict {
        commit(&seed, "f.txt", "main changed it\n");
    }
    git(&seed, &["push", "-q", "origin", "main"]);
    (root, origin, feat)
}

async fn sync_check_cases() -> Vec<Written> {
    let mut out = Vec::new();
    // A shallow clone of a pull request's head: deepened, and the note about GITHUB_SHA.
    let (root, origin, feat) = sync_repos(false);
    let url = format!("file://{}", origin.display());
    git(
        root.path(),
        &[
            "clone", "-q", "--depth", "1", "--branch", "feat", &url, "pr",
        ],
    );
    let event = rig::pull_request_event(root.path(), 7, &feat);
    let s = Step::new();
    let mut c = s.cmd("sync-check", root.path());
    c.args(["--repo", "pr", "--deepen", "4", "--publish", "never"])
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", &event)
        .env("GITHUB_SHA", "1111111111111111111111111111111111111111");
    out.push(s.run("sync-check", "shallow PR, clean", 0, c).await);
    // Safe rebase with push.
    git(
        root.path(),
        &["clone", "-q", "--branch", "feat", &url, "work"],
    );
    let s = Step::new();
    let mut c = s.cmd("sync-check", root.path());
    c.args([
        "--repo",
        "work",
        "--update",
        "rebase",
        "--push",
        "--publish",
        "never",
    ]);
    out.push(s.run("sync-check", "update rebase --push", 0, c).await);
    // A conflict.
    let (root, origin, _) = sync_repos(true);
    let url = format!("file://{}", origin.display());
    git(
        root.path(),
        &["clone", "-q", "--branch", "feat", &url, "work"],
    );
    let s = Step::new();
    let mut c = s.cmd("sync-check", root.path());
    c.args(["--repo", "work", "--publish", "never"]);
    out.push(s.run("sync-check", "conflict", 1, c).await);
    out
}

async fn ecr_push_cases() -> Vec<Written> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img");
    deploy_action_e2e::oci::oci_layout(&src, &[deploy_action_e2e::oci::random_bytes(50_000, 7)], 7);
    let repo = unique("afu9/contract");
    // ecr-push in a fresh step, pointed at moto and the registry, pushing to `repo` with `args`.
    let push = |s: &Step, args: &[&str]| {
        let mut c = s.cmd("ecr-push", dir.path());
        aws_env(&mut c)
            .args([
                "--registry-url",
                &rig::registry_url(),
                "--repository",
                &repo,
            ])
            .args(args);
        c
    };
    let s = Step::new();
    let args = [
        "--create-repo",
        "--source",
        src.to_str().unwrap(),
        "--tag",
        "sha-{sha7}",
        "--sha",
        "22cdb6a41c42366ad165a0fb4c96282304f6f7ae",
    ];
    let c = push(&s, &args);
    out.push(s.run("ecr-push", "push", 0, c).await);
    let s = Step::new();
    let missing = dir.path().join("missing");
    let c = push(&s, &["--source", missing.to_str().unwrap(), "--tag", "x"]);
    out.push(s.run("ecr-push", "missing source", 2, c).await);
    out
}

fn root_file(p: &str) -> String {
    std::fs::read_to_string(rig::workspace_root().join(p)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_output_a_tool_writes_is_declared_and_documented_and_back() {
    let action = root_file("action.yml");
    let outputs = declared(&action, "outputs");
    let readme = readme_outputs(&root_file("README.md"));
    for (name, d) in &outputs {
        assert!(
            !d.is_empty(),
            "action.yml: output {name} has no description"
        );
    }
    assert_eq!(
        outputs.keys().cloned().collect::<BTreeSet<_>>(),
        readme,
        "README's outputs table and action.yml's outputs differ"
    );
    let mut runs = Vec::new();
    for case in CASES {
        runs.extend(case().await);
    }
    let mut written_by: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for w in &runs {
        assert!(
            w.keys.contains("outcome") && w.keys.contains("exit-code"),
            "{} ({}) did not write outcome and exit-code: {:?}",
            w.tool,
            w.case,
            w.keys
        );
        for k in &w.keys {
            assert!(
                outputs.contains_key(k),
                "{} ({}) wrote output `{k}`, which action.yml does not declare",
                w.tool,
                w.case
            );
            written_by.entry(k.clone()).or_default().insert(w.tool);
        }
    }
    let tested: BTreeSet<&str> = runs.iter().map(|w| w.tool).collect();
    for (name, d) in &outputs {
        let owners = tools_of(d, &TOOLS);
        assert!(
            !owners.is_empty(),
            "action.yml: output {name}'s description does not start with the tools that write it"
        );
        if PENDING.contains(&name.as_str()) || !owners.iter().any(|t| tested.contains(t.as_str())) {
            continue;
        }
        let by = written_by.get(name).cloned().unwrap_or_default();
        assert!(
            owners.iter().any(|t| by.contains(t.as_str())),
            "output {name} is declared for {owners:?}, but no run of them wrote it (written by {by:?})"
        );
    }
    for p in PENDING {
        assert!(outputs.contains_key(*p), "PENDING names {p}, not declared");
    }
}

/// The lists at the top of action-run.sh: `NAME=" tool tool "`.
fn run_sh_list(name: &str) -> BTreeSet<String> {
    let text = root_file("scripts/action-run.sh");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("action-run.sh has no {name}"));
    line.split('"')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn inputs_reach_each_tool_only_as_flags_it_takes() {
    let lists = [
        ("DRY_RUN_TOOLS", "--dry-run"),
        ("CONFIRM_TOOLS", "--confirm"),
        ("PUBLISHING_TOOLS", "--github-token"),
    ];
    for t in TOOLS {
        let help = Command::new(rig::bin(t)).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        for (list, flag) in lists {
            let listed = run_sh_list(list).contains(t);
            let takes = help.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with(flag) || l.split_once(", ").is_some_and(|(_, f)| f.starts_with(flag))
            });
            assert_eq!(
                listed, takes,
                "action-run.sh {list} and `{t} --help` disagree about {flag}"
            );
        }
        for flag in ["--config", "--environment"] {
            assert!(help.contains(flag), "{t} lacks {flag}, which DEPLOY_* sets");
        }
        // DEPLOY_BASE_URL (the `base-url` input) reaches the tools that probe the service; the
        // others have no such flag and ignore the variable (README: "Inputs").
        assert_eq!(
            help.contains("--base-url"),
            matches!(t, "health-check" | "smoke-test" | "rollback"),
            "{t} and --base-url"
        );
    }
}

#[test]
fn marketplace_metadata_is_within_its_limits() {
    let action = root_file("action.yml");
    let top = |key: &str| {
        action
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("action.yml has no top-level {key}"))
    };
    let description = top("description");
    assert!(
        !description.is_empty() && description.chars().count() < 125,
        "the Marketplace wants a description under 125 characters: {} ({description:?})",
        description.chars().count()
    );
    assert!(!top("name").is_empty() && !top("author").is_empty());
    let branding = |key: &str| {
        action
            .lines()
            .skip_while(|l| *l != "branding:")
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("action.yml branding has no {key}"))
    };
    let colours = [
        "white",
        "black",
        "yellow",
        "blue",
        "green",
        "orange",
        "red",
        "purple",
        "gray-dark",
    ];
    assert!(colours.contains(&branding("color").as_str()));
    assert!(!branding("icon").is_empty());
    // Every licence Cargo.toml declares has its file.
    let cargo = root_file("Cargo.toml");
    let license = cargo
        .lines()
        .find_map(|l| l.strip_prefix("license = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    for id in license.split(" OR ") {
        let file = match id {
            "MIT" => "LICENSE-MIT",
            "Apache-2.0" => "LICENSE-APACHE",
            other => panic!("no licence file known for {other}"),
        };
        let text = root_file(file);
        assert!(
            text.contains(if id == "MIT" {
                "Permission is hereby granted"
            } else {
                "Apache License"
            }),
            "{file} is not the {id} text"
        );
    }
    for (name, d) in declared(&action, "inputs") {
        assert!(!d.is_empty(), "input {name} has no description");
    }
}
