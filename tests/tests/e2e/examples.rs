//! The shipped example workflows, run by act as they are (only remote actions mapped to local
//! stand-ins, see `deploy_action_e2e::actions`, and the CDK step of deploy-staging replaced):
//! the action installs the release of this tree from the local HTTPS server, the tools run
//! against real git, moto, the registry, the stand-in service and Prism (behind a recording tap).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use deploy_action_e2e::actions::Actions;
use deploy_action_e2e::ecs;
use deploy_action_e2e::ecs_standin::EcsStandIn;
use deploy_action_e2e::git::{bare, clone_main, commit_file as commit, git};
use deploy_action_e2e::rig::{self, unique};
use deploy_action_e2e::standin::{Behaviour, StandIn};
use deploy_action_e2e::tap::{Recorded, Tap};

const GH_TOKEN: &str = "ghs_examples_token_0123456789";

/// A project on "GitHub": a bare `origin` that `https://github.com/afu9/app.git` resolves to
/// (through a git config act's jobs see as their global one), and `seed`, a clone to commit in.
struct Project {
    root: tempfile::TempDir,
    origin: PathBuf,
    seed: PathBuf,
    gitconfig: PathBuf,
}

impl Project {
    fn new() -> Project {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let origin = bare(r);
        git(
            &origin,
            &["config", "uploadpack.allowAnySHA1InWant", "true"],
        );
        let seed = clone_main(r, &origin, "seed");
        let gitconfig = r.join("gitconfig");
        std::fs::write(
            &gitconfig,
            format!(
                "[url \"{}\"]\n\tinsteadOf = https://github.com/afu9/app.git\n[user]\n\tname = dev\n\temail = dev@example.com\n",
                origin.display()
            ),
        )
        .unwrap();
        Project {
            root,
            origin,
            seed,
            gitconfig,
        }
    }

    /// Commits `file` in `seed` and pushes main: the new commit.
    fn push_main(&self, file: &str, text: &str) -> String {
        let rev = commit(&self.seed, file, text);
        git(&self.seed, &["push", "-q", "origin", "main"]);
        rev
    }

    /// The directory act runs in: a clone at `rev` whose `origin` is the GitHub URL, holding
    /// `workflow` as its only workflow.
    fn act_dir(&self, rev: &str, workflow_name: &str, workflow: &str) -> PathBuf {
        let dir = self.root.path().join(unique("act"));
        git(
            self.root.path(),
            &[
                "clone",
                "-q",
                self.origin.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        git(&dir, &["checkout", "-q", "--detach", rev]);
        git(
            &dir,
            &[
                "remote",
                "set-url",
                "origin",
                "https://github.com/afu9/app.git",
            ],
        );
        let wf = dir.join(".github/workflows").join(workflow_name);
        std::fs::create_dir_all(wf.parent().unwrap()).unwrap();
        std::fs::write(wf, workflow).unwrap();
        dir
    }
}

struct Act {
    ok: bool,
    log: String,
}

/// `event`: the event's name and, for a pull request, its payload file.
async fn act(
    dir: &Path,
    (event, event_file): (&str, Option<&Path>),
    workflow: &str,
    actions: &Actions,
    project: &Project,
    extra: &[(&str, String)],
    args: &[String],
) -> Act {
    let mut cmd = tokio::process::Command::new(rig::act());
    cmd.current_dir(dir)
        .args([event, "-P", "ubuntu-latest=-self-hosted"])
        .env("GIT_CONFIG_GLOBAL", &project.gitconfig)
        .env("XDG_CACHE_HOME", project.root.path().join("act-cache"));
    if let Some(f) = event_file {
        cmd.arg("-e").arg(f);
    }
    for r in actions.local_repositories(workflow) {
        cmd.arg("--local-repository").arg(r);
    }
    for (k, v) in actions.env() {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.args(args);
    let o = cmd.output().await.unwrap();
    Act {
        ok: o.status.success(),
        log: format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// Runs deploy-staging.yml (`workflow`) under act on a push of `rev`, with `env` and the
/// arguments `args` gives for a fresh tap in front of Prism: the run and the tap.
async fn deploy(
    p: &Project,
    rev: &str,
    workflow: &str,
    actions: &Actions,
    env: &[(&str, String)],
    args: &dyn Fn(&Tap) -> Vec<String>,
) -> (Act, Tap) {
    let dir = p.act_dir(rev, "deploy-staging.yml", workflow);
    let tap = Tap::start(rig::prism_url(), &[]).await;
    let run = act(&dir, ("push", None), workflow, actions, p, env, &args(&tap)).await;
    (run, tap)
}

fn example(name: &str) -> String {
    std::fs::read_to_string(rig::workspace_root().join("workflows-examples").join(name)).unwrap()
}

fn posts(tap: &Tap, suffix: &str) -> Vec<Recorded> {
    tap.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(suffix))
        .collect()
}

/// pr-sync-check.yml on a pull request whose branch is behind main, and on one that conflicts.
#[tokio::test(flavor = "multi_thread")]
async fn pr_sync_check_example_checks_the_pull_request_head() {
    let workflow = example("pr-sync-check.yml");
    let p = Project::new();
    p.push_main("f.txt", "base\n");
    git(&p.seed, &["checkout", "-q", "-b", "feat"]);
    let feat = commit(&p.seed, "feature.txt", "new\n");
    git(&p.seed, &["push", "-q", "origin", "feat"]);
    git(&p.seed, &["checkout", "-q", "-b", "clash", "main"]);
    let clash = commit(&p.seed, "f.txt", "clash\n");
    git(&p.seed, &["push", "-q", "origin", "clash"]);
    git(&p.seed, &["checkout", "-q", "main"]);
    p.push_main("f.txt", "main moved on\n");

    let actions = Actions::new();
    for (head, branch, want_ok, conclusion) in [
        (&feat, "feat", true, "success"),
        (&clash, "clash", false, "failure"),
    ] {
        let dir = p.act_dir(head, "pr-sync-check.yml", &workflow);
        let event = p.root.path().join(format!("{branch}.json"));
        std::fs::write(
            &event,
            format!(
                r#"{{"number":5,"pull_request":{{"number":5,"head":{{"sha":"{head}","ref":"{branch}"}},"base":{{"ref":"main"}}}}}}"#
            ),
        )
        .unwrap();
        let tap = Tap::start(rig::prism_url(), &[]).await;
        let run = act(
            &dir,
            ("pull_request", Some(&event)),
            &workflow,
            &actions,
            &p,
            &[],
            &[
                "-s".into(),
                format!("GITHUB_TOKEN={GH_TOKEN}"),
                "--env".into(),
                format!("GITHUB_API_URL={}", tap.url),
            ],
        )
        .await;
        assert_eq!(run.ok, want_ok, "{branch}:\n{}", run.log);
        let runs = posts(&tap, "/check-runs");
        assert_eq!(runs.len(), 1, "{branch}: {:?}\n{}", tap.requests(), run.log);
        let r = &runs[0];
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.path, "/repos/afu9/app/check-runs");
        assert_eq!(
            r.body["name"], "sync-check",
            "the name branch protection requires"
        );
        assert_eq!(r.body["head_sha"], head.as_str(), "the PR head");
        assert_eq!(r.body["conclusion"], conclusion);
        if want_ok {
            assert!(
                run.log
                    .contains("sync-check passed, 1 behind, 0 conflicting files"),
                "{}",
                run.log
            );
        } else {
            let a = &r.body["output"]["annotations"][0];
            assert_eq!(a["path"], "f.txt", "{r:?}");
            assert!(
                run.log
                    .contains("sync-check failed, 1 behind, 1 conflicting files"),
                "{}",
                run.log
            );
        }
        assert!(!run.log.contains(GH_TOKEN), "token leaked");
    }
}

const BUILD_IMAGES: &str = r#"#!/usr/bin/env bash
# Builds the service's image as an OCI layout with umoci (what `docker buildx --output type=oci`
# would give), one per image of deploy.toml.
set -euo pipefail
out="${1:?output dir}"
mkdir -p "$out"
layout="$out/control-center"
rm -rf "$layout" "$out/bundle"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --rootless --image "$layout:latest" "$out/bundle"
git rev-parse HEAD > "$out/bundle/rootfs/commit"
umoci repack --image "$layout:latest" "$out/bundle"
rm -rf "$out/bundle"
"#;

// Stands in for `npx cdk deploy`: registers a task definition revision running the pushed
// digest for each image and points the service at it, in moto.
const CDK_STANDIN: &str = r#"import os, boto3
ecs = boto3.client("ecs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="eu-central-1")
cluster = os.environ["CLUSTER"]
for line in os.environ["IMAGES"].splitlines():
    name, ref = line.split("=", 1)
    td = ecs.register_task_definition(
        family=name,
        containerDefinitions=[{"name": name, "image": ref, "memory": 128}],
    )["taskDefinition"]
    rev = f"{name}:{td['revision']}"
    ecs.update_service(cluster=cluster, service=name, taskDefinition=rev)
    print(f"deployed {rev} running {ref}")
"#;

/// deploy-staging.yml end to end: build, push to the registry/moto, the CDK stand-in deploys
/// the pushed digest, health-check (ECS rollout, expected version, the revision tagged
/// verified), smoke-test (JUnit uploaded, check run published); no rollback.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_staging_example_runs_end_to_end() {
    let example_text = example("deploy-staging.yml");
    // Only the CDK step changes: its `run:` becomes the stand-in.
    let cdk = "npx cdk deploy Afu9EcsStack --context environment=staging \"${args[@]}\" --require-approval never";
    assert!(example_text.contains(cdk), "the CDK step changed");
    let start = example_text
        .find("      - name: CDK deploy with the pushed digests")
        .unwrap();
    let end = example_text[start..].find("      - id: health").unwrap() + start;
    let workflow = format!(
        "{}      - name: CDK deploy with the pushed digests\n        env:\n          IMAGES: ${{{{ steps.push.outputs.images }}}}\n        run: |\n          \"$DEPLOY_TEST_PYTHON\" scripts/cdk-standin.py\n{}",
        &example_text[..start],
        &example_text[end..]
    );

    let cluster = unique("afu9-staging");
    let repo = unique("afu9/control-center");
    let incidents = unique("/afu9/incidents");
    let ecs = ecs::client().await;
    ecs::cluster(&ecs, &cluster).await;
    let container = ecs::container("control-center", "old:1").build();
    ecs::register(&ecs, "control-center", container).await;
    ecs::service(&ecs, &cluster, "control-center", "control-center:1", 1).await;
    deploy_core::aws::ecr(&rig::moto_sdk().await)
        .create_repository()
        .repository_name(&repo)
        .image_tag_mutability(deploy_core::aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();

    let p = Project::new();
    let api_token = "tok-staging-smoke-4711";
    // The stand-in reports the commit being deployed (set once the commit exists).
    let standin = StandIn::start(Behaviour {
        token: api_token.into(),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    commit(
        &p.seed,
        "deploy.toml",
        &format!(
            r#"[defaults]
region = "eu-central-1"

[environments.staging]
base_url = "{url}"
cluster = "{cluster}"
services = ["control-center"]

[images.control-center]
repository = "{repo}"
source = "build/control-center"
mutability = "MUTABLE"
moving_tags = ["{{env}}"]

[health]
wait = "8s"
interval = "200ms"

[[health.checks]]
name = "Control Center health"
path = "/api/health"

[[smoke.checks]]
name = "Workflow API"
path = "/api/workflows"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}
assert = [".workflows != null"]

[rollback]
incident_log_group = "{incidents}"
"#,
            url = standin.url
        ),
    );
    std::fs::create_dir_all(p.seed.join("scripts")).unwrap();
    commit(&p.seed, "scripts/cdk-standin.py", CDK_STANDIN);
    std::fs::write(p.seed.join("scripts/build-images.sh"), BUILD_IMAGES).unwrap();
    Command::new("chmod")
        .args(["+x", "scripts/build-images.sh"])
        .current_dir(&p.seed)
        .status()
        .unwrap();
    git(&p.seed, &["add", "-A"]);
    git(&p.seed, &["commit", "-qm", "build script"]);
    let sha = git(&p.seed, &["rev-parse", "HEAD"]);
    git(&p.seed, &["push", "-q", "origin", "main"]);
    standin.shared.set(Behaviour {
        token: api_token.into(),
        commit_sha: sha.clone(),
        ..Behaviour::default()
    });

    // moto keeps a service's first deployment PRIMARY for ever; the ECS stand-in in front of it
    // shows an UpdateService as a completed rollout of the new revision, as ECS would.
    let ecs_standin = EcsStandIn::start(&rig::moto_url()).await.unwrap();
    let venv = rig::act().parent().unwrap().join("python");
    let actions = Actions::new();
    let env = [
        ("AWS_ENDPOINT_URL", ecs_standin.url.clone()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("DEPLOY_REGISTRY_URL", rig::registry_url()),
        ("DEPLOY_TEST_PYTHON", venv.display().to_string()),
        ("CLUSTER", cluster.clone()),
    ];
    let args = |tap: &Tap| -> Vec<String> {
        vec![
            "-s".into(),
            format!("GITHUB_TOKEN={GH_TOKEN}"),
            "-s".into(),
            format!("STAGING_API_TOKEN={api_token}"),
            "--var".into(),
            "AWS_DEPLOY_ROLE=arn:aws:iam::123456789012:role/deploy".into(),
            "--env".into(),
            format!("GITHUB_API_URL={}", tap.url),
        ]
    };
    let (run, tap) = deploy(&p, &sha, &workflow, &actions, &env, &args).await;
    assert!(run.ok, "{}", run.log);
    // The digest pushed is the digest ECS runs.
    let td = ecs::running(&ecs, &cluster, "control-center").await;
    let image = ecs
        .describe_task_definition()
        .task_definition(&td)
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .container_definitions()[0]
        .image()
        .unwrap()
        .to_owned();
    let host = rig::registry_url().trim_start_matches("http://").to_owned();
    assert!(
        image.starts_with(&format!("{host}/{repo}@sha256:")),
        "ECS runs {image} ({td})"
    );
    assert!(
        run.log.contains(&format!("deployed {td} running {image}")),
        "{}",
        run.log
    );
    // Verified, smoke-tested, published, JUnit uploaded, nothing rolled back.
    let hits = standin.shared.hits();
    assert!(
        hits.get("/api/health").copied().unwrap_or(0) >= 2,
        "{hits:?}"
    );
    assert_eq!(hits.get("/api/workflows"), Some(&1), "{hits:?}");
    let runs = posts(&tap, "/check-runs");
    assert_eq!(runs.len(), 1, "{:?}", tap.requests());
    assert_eq!(runs[0].body["name"], "smoke-test (staging)");
    assert_eq!(runs[0].body["head_sha"], sha.as_str());
    assert_eq!(runs[0].body["conclusion"], "success");
    let junit = std::fs::read_to_string(
        actions
            .artifacts
            .join("smoke-junit-staging/smoke-junit.xml"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", run.log));
    assert!(junit.contains("Workflow API"), "{junit}");
    assert!(
        !run.log.contains("Main Roll back to the last verified"),
        "{}",
        run.log
    );
    assert!(
        run.log
            .contains("Success - Main Mark the revisions verified"),
        "{}",
        run.log
    );
    // health-check --mark-verified, after the smoke tests, tagged the revision, with the commit.
    let tags = ecs::tags(&ecs, &td).await;
    let tag = |k: &str| {
        tags.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    assert!(tag("deploy-action:verified").is_some(), "{tags:?}");
    assert_eq!(tag("deploy-action:sha").as_deref(), Some(sha.as_str()));
    assert!(!run.log.contains(api_token) && !run.log.contains(GH_TOKEN));

    // Issue 17: a push whose smoke tests fail. The tasks serve the new commit (health-check
    // passes), but the API token was rotated, so /api/workflows answers 401: the revision it
    // deployed must not be tagged verified (read back from ECS, not from the tool's output).
    let smoke_broken = p.push_main("smoke-broken.txt", "x\n");
    standin.shared.set(Behaviour {
        token: "rotated-token-not-the-secret".into(),
        commit_sha: smoke_broken.clone(),
        ..Behaviour::default()
    });
    let (run, _) = deploy(&p, &smoke_broken, &workflow, &actions, &env, &args).await;
    assert!(!run.ok, "the smoke tests failed:\n{}", run.log);
    let deployed = run
        .log
        .lines()
        .find_map(|l| {
            let at = l.find("deployed ")?;
            let rest = &l[at + "deployed ".len()..];
            Some(rest.split(" running ").next()?.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no CDK deploy in the log:\n{}", run.log));
    assert_ne!(
        deployed, td,
        "the smoke-failed push deployed a new revision"
    );
    let smoke_tags = ecs::tags(&ecs, &deployed).await;
    assert!(
        !smoke_tags
            .tags()
            .iter()
            .any(|t| t.key() == Some("deploy-action:verified")),
        "a revision whose smoke tests failed is tagged verified: {smoke_tags:?}\n{}",
        run.log
    );
    assert!(
        !run.log.contains("Main Mark the revisions verified"),
        "the marking step ran after a failed smoke test:\n{}",
        run.log
    );
    assert!(
        run.log.contains("Main Roll back to the last verified"),
        "{}",
        run.log
    );
    standin.shared.set(Behaviour {
        token: api_token.into(),
        commit_sha: sha.clone(),
        ..Behaviour::default()
    });

    // The next push breaks: its tasks never serve the new commit. health-check fails, and the
    // rollback step puts back the revision the first deploy verified and records the incident.
    let broken = p.push_main("broken.txt", "x\n");
    let (run, _) = deploy(&p, &broken, &workflow, &actions, &env, &args).await;
    assert!(!run.ok, "the deploy failed:\n{}", run.log);
    assert!(
        run.log
            .contains("Success - Main Roll back to the last verified"),
        "{}",
        run.log
    );
    let now = ecs::running(&ecs, &cluster, "control-center").await;
    let family_rev = |t: &str| t.rsplit('/').next().unwrap().to_owned();
    assert_eq!(
        family_rev(&now),
        family_rev(&td),
        "back on the verified revision"
    );
    let incident: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            actions
                .artifacts
                .join("rollback-incident-staging/rollback-incident.json"),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", run.log)),
    )
    .unwrap();
    assert!(incident["mttr_seconds"].is_u64(), "{incident}");
    assert!(
        incident.to_string().contains(&broken),
        "the reason names the broken commit: {incident}"
    );

    // Issue 17: an incident of staging is open (a rollback that did not recover, recorded where
    // rollback records): the next push stops at its first step, before any image is pushed or
    // deployed, naming the incident; ECS keeps the revision it runs.
    deploy_core::logs::put_event(
        &deploy_core::logs::client(&rig::moto_sdk().await),
        &incidents,
        "incidents",
        r#"{"incident_id":"inc-staging-20261203T090000Z","environment":"staging","outcome":"failed","detection_time":"2026-12-03T09:00:00Z","reason":"5xx after the deploy"}"#,
    )
    .await
    .unwrap();
    let blocked = p.push_main("blocked.txt", "x\n");
    let (run, _) = deploy(&p, &blocked, &workflow, &actions, &env, &args).await;
    assert!(
        !run.ok,
        "the deploy went ahead over an open incident:\n{}",
        run.log
    );
    assert!(
        run.log
            .contains("Failure - Main No open incident of staging")
            && run.log.contains("inc-staging-20261203T090000Z")
            && run.log.contains("its rollback failed"),
        "{}",
        run.log
    );
    for later in ["Main Build images", "Main CDK deploy", "Main Roll back"] {
        assert!(
            !run.log.contains(later),
            "{later} ran after the refusal:\n{}",
            run.log
        );
    }
    let after = ecs::running(&ecs, &cluster, "control-center").await;
    assert_eq!(after, now, "ECS was changed by a refused deploy");
}
