//! The shipped workflows agree with the action: every `with:` key an example passes to
//! `afu9/deploy-action` (block or flow style) is an input of `action.yml`, and every output an
//! example reads from such a step is declared. The files are read as YAML. (zizmor lints them for
//! security in scripts/test.sh.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;

use deploy_action_e2e::contract::{Yaml, declared, yaml};
use deploy_action_e2e::rig;

/// Every step of every job that uses the action.
fn action_steps(workflow: &Yaml) -> Vec<Yaml> {
    let Some(jobs) = workflow["jobs"].as_hash() else {
        return Vec::new();
    };
    jobs.values()
        .filter_map(|job| job["steps"].as_vec())
        .flatten()
        .filter(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("afu9/deploy-action@"))
        })
        .cloned()
        .collect()
}

#[test]
fn examples_use_only_declared_inputs_and_outputs() {
    let root = rig::workspace_root();
    let action = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let inputs: BTreeSet<String> = declared(&action, "inputs").into_keys().collect();
    let outputs: BTreeSet<String> = declared(&action, "outputs").into_keys().collect();
    assert!(
        inputs.contains("tool") && outputs.contains("outcome"),
        "{inputs:?} {outputs:?}"
    );
    let (mut steps, mut keys, mut reads) = (0, 0, 0);
    for entry in std::fs::read_dir(root.join("workflows-examples")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut ids = BTreeSet::new();
        for step in action_steps(&yaml(&text)) {
            steps += 1;
            if let Some(id) = step["id"].as_str() {
                ids.insert(id.to_owned());
            }
            for key in step["with"].as_hash().into_iter().flat_map(|h| h.keys()) {
                let key = key.as_str().unwrap();
                assert!(
                    inputs.contains(key),
                    "{}: `with: {key}` is not an input of action.yml",
                    path.display()
                );
                keys += 1;
            }
        }
        for id in &ids {
            let needle = format!("steps.{id}.outputs.");
            for (pos, _) in text.match_indices(&needle) {
                let name: String = text[pos + needle.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                assert!(
                    outputs.contains(&name),
                    "{}: reads output {name}, not declared in action.yml",
                    path.display()
                );
                reads += 1;
            }
        }
    }
    // Every example deploys with the action, and the flow-style `with: { tool: ... }` is read too.
    assert!(
        steps >= 8 && keys >= steps && reads >= 3,
        "{steps} steps, {keys} inputs, {reads} outputs: is the YAML still read?"
    );
}

/// The YAML reading itself: a flow-style `with:` is seen key by key, as a block one is.
#[test]
fn flow_and_block_style_with_are_both_read() {
    let flow = yaml(
        "jobs:\n  a:\n    steps:\n      - uses: afu9/deploy-action@v1\n        with: { tool: sync-check, bogus: 1 }\n",
    );
    let block = yaml(
        "jobs:\n  a:\n    steps:\n      - uses: afu9/deploy-action@v1\n        with:\n          tool: sync-check\n          bogus: 1\n",
    );
    for doc in [flow, block] {
        let steps = action_steps(&doc);
        let keys: Vec<&str> = steps[0]["with"]
            .as_hash()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, ["tool", "bogus"]);
    }
}

/// Every string anywhere in `node` (keys and values), for looking for expressions.
fn strings(node: &Yaml, out: &mut Vec<String>) {
    match node {
        Yaml::String(s) => out.push(s.clone()),
        Yaml::Array(a) => a.iter().for_each(|n| strings(n, out)),
        Yaml::Hash(h) => h.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        _ => {}
    }
}

/// The secrets a job reads (`secrets.NAME`), github.token aside (it is not a secret here).
fn secrets_of(job: &Yaml) -> BTreeSet<String> {
    let mut all = Vec::new();
    strings(job, &mut all);
    let mut names = BTreeSet::new();
    for s in &all {
        for (pos, _) in s.match_indices("secrets.") {
            let name: String = s[pos + "secrets.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != "GITHUB_TOKEN" {
                names.insert(name);
            }
        }
    }
    names
}

/// The example workflows and the project's CI, by file name.
fn contract_workflows() -> Vec<(String, Yaml)> {
    let root = rig::workspace_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("workflows-examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files.push(root.join(".github/workflows/ci.yml"));
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), yaml(&text))
        })
        .collect()
}

/// Issue 17: every job has a timeout; a job reading a secret (other than github.token) runs
/// behind an `environment:`, whose protection rules gate the environment's secrets; every step of
/// the composite action has a name. No exceptions today.
#[test]
fn jobs_have_timeouts_secrets_sit_behind_environments_and_action_steps_are_named() {
    let mut jobs_seen = 0;
    let mut secret_jobs = 0;
    for (file, wf) in contract_workflows() {
        let jobs = wf["jobs"]
            .as_hash()
            .unwrap_or_else(|| panic!("{file}: no jobs"));
        for (id, job) in jobs {
            let id = id.as_str().unwrap();
            jobs_seen += 1;
            assert!(
                job["timeout-minutes"].as_i64().is_some_and(|m| m > 0),
                "{file}: job {id} has no timeout-minutes"
            );
            let secrets = secrets_of(job);
            if !secrets.is_empty() {
                secret_jobs += 1;
                assert!(
                    !job["environment"].is_badvalue() && !job["environment"].is_null(),
                    "{file}: job {id} reads {secrets:?} without an environment:"
                );
            }
        }
    }
    assert!(
        jobs_seen >= 7 && secret_jobs >= 2,
        "{jobs_seen} jobs, {secret_jobs} with secrets"
    );
    let action = yaml(&std::fs::read_to_string(rig::workspace_root().join("action.yml")).unwrap());
    let steps = action["runs"]["steps"].as_vec().unwrap();
    assert!(!steps.is_empty());
    for (i, step) in steps.iter().enumerate() {
        assert!(
            step["name"].as_str().is_some_and(|n| !n.trim().is_empty()),
            "action.yml: step {i} ({:?}) has no name",
            step["id"]
        );
    }
}

/// The contract test itself sees a secret, wherever in a job it is read.
#[test]
fn secrets_are_found_in_step_env_and_with() {
    let job = yaml(
        "steps:\n  - env:\n      A: ${{ secrets.STAGING_API_TOKEN }}\n  - with:\n      t: ${{ secrets.GITHUB_TOKEN }}\n",
    );
    assert_eq!(
        secrets_of(&job),
        BTreeSet::from(["STAGING_API_TOKEN".to_owned()])
    );
}

/// GitHub's documented concurrency rule, as a model. Per group at most one run is in progress;
/// with `cancel-in-progress: false` and no `queue`, one is pending, and "any existing pending job
/// or workflow in the same concurrency group ... will be canceled and the new queued job or
/// workflow will take its place"
/// (https://docs.github.com/en/actions/writing-workflows/choosing-what-your-workflow-does/control-the-concurrency-of-workflows-and-jobs);
/// with `queue: max`, up to 100 wait in order and none is cancelled
/// (https://github.blog/changelog/2026-05-07-github-actions-concurrency-groups-now-allow-larger-queues).
/// A run waiting for an environment's approval already holds its group: it counts as running here
/// (the run started, its job waits), so the rule only ever drops a pending run.
#[derive(Default)]
struct Concurrency {
    running: std::collections::BTreeMap<String, usize>,
    pending: std::collections::BTreeMap<String, Vec<usize>>,
    /// The groups declared with `queue: max`.
    queued: BTreeSet<String>,
}

/// How many runs `queue: max` keeps waiting in one group.
const MAX_QUEUE: usize = 100;

impl Concurrency {
    /// Queues run `run` in `group`; returns the run it cancelled, if any.
    fn queue(&mut self, group: &str, run: usize) -> Option<usize> {
        if !self.running.contains_key(group) {
            self.running.insert(group.to_owned(), run);
            return None;
        }
        let waiting = self.pending.entry(group.to_owned()).or_default();
        if self.queued.contains(group) && waiting.len() < MAX_QUEUE {
            waiting.push(run);
            return None;
        }
        let gone = (!waiting.is_empty()).then(|| waiting.remove(0));
        waiting.push(run);
        gone
    }
}

/// The workflow-level concurrency group a workflow declares, for a dispatch to `environment`, and
/// whether it queues (`queue: max`).
fn group_of(workflow: &Yaml, environment: &str) -> (String, bool) {
    let group = workflow["concurrency"]["group"]
        .as_str()
        .expect("a workflow-level concurrency group");
    assert_eq!(
        workflow["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false),
        "deploys and rollbacks never cancel a running one"
    );
    assert!(
        workflow["jobs"]
            .as_hash()
            .unwrap()
            .values()
            .all(|j| j["concurrency"].is_badvalue()),
        "the model covers workflow-level groups only"
    );
    let queue = &workflow["concurrency"]["queue"];
    assert!(
        queue.is_badvalue() || queue.as_str() == Some("max"),
        "queue is max or not set: {queue:?}"
    );
    let group = group
        .replace("${{ inputs.environment }}", environment)
        .replace("${{inputs.environment}}", environment);
    (group, queue.as_str() == Some("max"))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Deploy,
    Rollback,
}

/// Every sequence of up to `len` queued runs of the two kinds, run through the model with the
/// given groups; returns each cancellation as (cancelled kind, kind that replaced it, sequence).
fn cancellations(
    (deploy, deploy_queues): (&str, bool),
    (rollback, rollback_queues): (&str, bool),
    len: u32,
) -> Vec<(Kind, Kind, Vec<Kind>)> {
    let mut found = Vec::new();
    for n in 1..=len {
        for bits in 0..(1u32 << n) {
            let seq: Vec<Kind> = (0..n)
                .map(|i| {
                    if bits >> i & 1 == 1 {
                        Kind::Rollback
                    } else {
                        Kind::Deploy
                    }
                })
                .collect();
            let mut model = Concurrency::default();
            for (g, q) in [(deploy, deploy_queues), (rollback, rollback_queues)] {
                if q {
                    model.queued.insert(g.to_owned());
                }
            }
            for (run, kind) in seq.iter().enumerate() {
                let group = if *kind == Kind::Deploy {
                    deploy
                } else {
                    rollback
                };
                if let Some(gone) = model.queue(group, run) {
                    found.push((seq[gone], *kind, seq.clone()));
                }
            }
        }
    }
    found
}

/// Issue 17: no deploy queued after a pending rollback cancels it, no rollback cancels a pending
/// deploy (a production deploy waiting behind one awaiting approval), and no rollback is dropped
/// at all: rollback.yml queues (`queue: max`), so a second rollback asked for while one is pending
/// waits too. A newer deploy replacing a pending older deploy is intended. The groups are the ones
/// the examples declare; the old designs (rollback.yml in `deploy-<env>`; its own group without
/// `queue`) fail the same check.
#[test]
fn no_rollback_is_ever_dropped_and_no_rollback_drops_a_deploy() {
    let root = rig::workspace_root();
    let read =
        |f: &str| yaml(&std::fs::read_to_string(root.join("workflows-examples").join(f)).unwrap());
    let rollback = read("rollback.yml");
    for (environment, deploy_file) in [
        ("staging", "deploy-staging.yml"),
        ("production", "deploy-production.yml"),
    ] {
        let deploy = group_of(&read(deploy_file), environment);
        let roll = group_of(&rollback, environment);
        assert_ne!(
            deploy.0, roll.0,
            "{environment}: one group for deploy and rollback"
        );
        assert!(roll.1, "{environment}: rollback.yml does not queue");
        let found = cancellations((&deploy.0, deploy.1), (&roll.0, roll.1), 6);
        for (gone, by, seq) in &found {
            assert!(
                *gone == Kind::Deploy && *by == Kind::Deploy,
                "{environment}: a {by:?} cancelled a pending {gone:?}: {seq:?}"
            );
        }
        // Intended: the newest deploy replaces a pending older deploy.
        assert!(!found.is_empty(), "{found:?}");
        // Its own group without `queue`: a third rollback drops the pending second.
        let unqueued = cancellations((&deploy.0, deploy.1), (&roll.0, false), 3);
        assert!(
            unqueued.iter().any(|(g, b, seq)| *g == Kind::Rollback
                && *b == Kind::Rollback
                && seq == &[Kind::Rollback, Kind::Rollback, Kind::Rollback]),
            "{unqueued:?}"
        );
        // The old design, one shared group: rollback pending, then a deploy queued, drops it.
        let old = cancellations((&deploy.0, deploy.1), (&deploy.0, deploy.1), 3);
        assert!(
            old.iter().any(|(g, b, seq)| *g == Kind::Rollback
                && *b == Kind::Deploy
                && seq == &[Kind::Deploy, Kind::Rollback, Kind::Deploy]),
            "{old:?}"
        );
        assert!(
            old.iter()
                .any(|(g, b, _)| *g == Kind::Deploy && *b == Kind::Rollback)
        );
    }
    // Past the documented 100 waiting runs the model falls back to the default rule (the oldest
    // pending run goes): GitHub does not say what happens there, so no example relies on it.
    let mut m = Concurrency::default();
    m.queued.insert("g".into());
    for run in 0..=MAX_QUEUE {
        assert_eq!(m.queue("g", run), None);
    }
    assert_eq!(m.queue("g", MAX_QUEUE + 1), Some(1));
}

/// A deploy refuses while an incident is open: in each deploy example, the deploy job's first
/// step that can change anything (pushing or promoting images, CDK) comes after
/// `health-check --preflight`, and the override is a manual run's boolean input that the step
/// passes as `--allow-open-incident`, never a default.
#[test]
fn the_deploy_examples_check_for_an_open_incident_before_their_first_change() {
    let root = rig::workspace_root();
    for file in ["deploy-staging.yml", "deploy-production.yml"] {
        let w = yaml(&std::fs::read_to_string(root.join("workflows-examples").join(file)).unwrap());
        let input = &w["on"]["workflow_dispatch"]["inputs"]["allow-open-incident"];
        assert_eq!(input["type"].as_str(), Some("boolean"), "{file}");
        assert_eq!(input["default"].as_bool(), Some(false), "{file}");
        let steps = w["jobs"]["deploy"]["steps"].as_vec().unwrap();
        let preflight = steps
            .iter()
            .position(|s| {
                s["with"]["tool"].as_str() == Some("health-check")
                    && s["with"]["args"]
                        .as_str()
                        .is_some_and(|a| a.lines().any(|l| l.trim() == "--preflight"))
            })
            .unwrap_or_else(|| panic!("{file}: no health-check --preflight step"));
        let args = steps[preflight]["with"]["args"].as_str().unwrap();
        assert!(
            args.contains("${{ inputs.allow-open-incident && '--allow-open-incident' || '' }}"),
            "{file}: {args}"
        );
        let changes = |s: &Yaml| {
            s["with"]["tool"]
                .as_str()
                .is_some_and(|t| t == "ecr-push" || t == "rollback")
                || s["run"].as_str().is_some_and(|r| {
                    r.contains("cdk deploy")
                        || r.contains("put-image")
                        || r.contains("create-db-snapshot")
                })
        };
        let first_change = steps
            .iter()
            .position(changes)
            .unwrap_or_else(|| panic!("{file}: no changing step found"));
        assert!(
            preflight < first_change,
            "{file}: the preflight (step {preflight}) must come before the first change (step {first_change})"
        );
    }
}

/// The release workflow packs exactly what the install accepts: the one binary and the licences
/// (action-install.sh refuses any other entry), and it checks every tool through its link.
#[test]
fn the_release_archive_holds_what_the_install_accepts() {
    let root = rig::workspace_root();
    let release = std::fs::read_to_string(root.join(".github/workflows/release.yml")).unwrap();
    let install = std::fs::read_to_string(root.join("scripts/action-install.sh")).unwrap();
    let packed: Vec<&str> = release
        .lines()
        .skip_while(|l| !l.contains("tar -czf"))
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(packed, ["deploy-action", "LICENSE-MIT", "LICENSE-APACHE"]);
    assert!(
        install.contains(r#""" | deploy-action | LICENSE-MIT | LICENSE-APACHE) ;;"#),
        "the install's list of accepted entries changed"
    );
    assert!(
        release.contains("cargo build --release --locked --target \"$TARGET\" -p deploy-action")
    );
    assert!(release.contains("bash scripts/link-tools.sh \"$dir\""));
    // x86_64 musl builds are static PIE: `file` says "static-pie linked" (a check for
    // "statically linked" alone failed every release).
    assert!(release.contains("grep -qE 'statically linked|static-pie linked'"));
    // Every build on the one commit the resolve job settled.
    let wf = deploy_action_e2e::contract::yaml(&release);
    assert_eq!(wf["jobs"]["build"]["needs"].as_str(), Some("resolve"));
    let checkout = &wf["jobs"]["build"]["steps"][0]["with"]["ref"];
    assert_eq!(checkout.as_str(), Some("${{ needs.resolve.outputs.sha }}"));
    for t in deploy_action_e2e::release::TOOLS {
        assert!(release.contains(t), "release.yml does not check {t}");
    }
}
