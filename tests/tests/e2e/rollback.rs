//! rollback end to end: the real binary against moto behind the ECS stand-in (which answers what
//! moto cannot: service deployments, paging, scripted rollouts), the registry-less ECR of moto,
//! CloudWatch and CloudWatch Logs in moto, the stand-in service for the health verification, and
//! Prism for the GitHub deployment. Every test reads the outcome back from moto, not from the tool.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration, Instant};

use deploy_action_e2e::ecs as moto;
use deploy_action_e2e::ecs_standin::{EcsStandIn, Script};
use deploy_action_e2e::report::check;
use deploy_action_e2e::rig::{self, Ran, aws_env, run, tool, unique};
use deploy_action_e2e::standin::{Behaviour, StandIn};
use deploy_core::aws_sdk_ecs as ecs;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";
const CANARY_TOKEN: &str = "canary-bearer-9f8e7d6c5b4a";
/// Commits a revision was verified at.
const SHA_1: &str = "1111111111111111111111111111111111111111";
const SHA_2: &str = "2222222222222222222222222222222222222222";
const SHA_3: &str = "3333333333333333333333333333333333333333";
/// A commit whose short form is all digits.
const SHA_DIGITS: &str = "1234567890abcdef1234567890abcdef12345678";

/// A staging environment in moto: a cluster, services each with `revisions` task definition
/// revisions (images pinned by digest in moto's ECR), every service on the newest revision.
struct Env {
    cluster: String,
    services: Vec<String>,
    dir: tempfile::TempDir,
    _standin: StandIn,
    ecs_standin: EcsStandIn,
    ecs: ecs::Client,
    repo: String,
}

fn image(repo: &str, rev: i32) -> (String, String) {
    let digest = format!("sha256:{:064x}", rev as u64 * 7919 + repo.len() as u64);
    (
        format!("{ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com/{repo}@{digest}"),
        digest,
    )
}

async fn put_image(repo: &str, rev: i32) {
    let ecr = deploy_core::aws::ecr(&rig::moto_sdk().await);
    let (_, digest) = image(repo, rev);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": digest },
        "layers": []
    });
    ecr.put_image()
        .repository_name(repo)
        .image_manifest(manifest.to_string())
        .image_digest(&digest)
        .image_tag(format!("v0.{rev}.0"))
        .send()
        .await
        .unwrap();
}

async fn env(n_services: usize, revisions: i32) -> Env {
    let sdk = rig::moto_sdk().await;
    let client = deploy_core::aws::ecs(&sdk);
    let cluster = unique("afu9");
    moto::cluster(&client, &cluster).await;
    let repo = unique("afu9/web");
    deploy_core::aws::ecr(&sdk)
        .create_repository()
        .repository_name(&repo)
        .send()
        .await
        .unwrap();
    let mut services = Vec::new();
    for s in 0..n_services {
        let svc = unique(&format!("svc{s}"));
        for rev in 1..=revisions {
            put_image(&repo, rev + 100 * s as i32).await;
            client
                .register_task_definition()
                .family(&svc)
                .cpu("256")
                .memory("512")
                .container_definitions(
                    moto::container("web", image(&repo, rev + 100 * s as i32).0)
                        .environment(
                            ecs::types::KeyValuePair::builder()
                                .name(format!("FEATURE_{rev}"))
                                .value("on")
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        moto::service(&client, &cluster, &svc, &format!("{svc}:{revisions}"), 1).await;
        services.push(svc);
    }
    let standin = StandIn::start(Behaviour {
        token: CANARY_TOKEN.into(),
        ..Behaviour::default()
    })
    .await
    .unwrap();
    let ecs_standin = EcsStandIn::start(&rig::moto_url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[environments.staging]
base_url = "{url}"
cluster = "{cluster}"
services = [{services}]

[environments.production]
base_url = "{url}"
cluster = "{cluster}"
services = [{services}]
protected = true

[health]
interval = "100ms"
success_threshold = 1

[[health.checks]]
name = "Control Center health"
path = "/api/health"

[[health.checks]]
name = "Workflow API"
path = "/api/workflows"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}

[rollback]
interval = "100ms"
wait = "20s"
"#,
        url = standin.url,
        services = services
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(dir.path().join("deploy.toml"), config).unwrap();
    Env {
        cluster,
        services,
        dir,
        _standin: standin,
        ecs_standin,
        ecs: client,
        repo,
    }
}

impl Env {
    fn td(&self, s: usize, rev: i32) -> String {
        format!("{}:{rev}", self.services[s])
    }

    fn arn(&self, s: usize, rev: i32) -> String {
        format!(
            "arn:aws:ecs:eu-central-1:{ACCOUNT}:task-definition/{}",
            self.td(s, rev)
        )
    }

    async fn tag(&self, s: usize, rev: i32, tags: &[(&str, &str)]) {
        let tags: Vec<ecs::types::Tag> = tags
            .iter()
            .map(|(k, v)| ecs::types::Tag::builder().key(*k).value(*v).build())
            .collect();
        self.ecs
            .tag_resource()
            .resource_arn(self.arn(s, rev))
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
    }

    async fn verified(&self, s: usize, rev: i32, sha: &str) {
        self.tag(
            s,
            rev,
            &[
                ("deploy-action:verified", "2026-11-01T00:00:00Z"),
                ("deploy-action:sha", sha),
            ],
        )
        .await;
    }

    async fn tags(&self, s: usize, rev: i32) -> Vec<(String, String)> {
        moto::described_tags(&self.ecs, &self.td(s, rev)).await
    }

    async fn tag_value(&self, s: usize, rev: i32, key: &str) -> Option<String> {
        self.tags(s, rev)
            .await
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// What moto says the service runs now (moto keeps the raw string UpdateService was given).
    async fn running(&self, s: usize) -> String {
        let out = self
            .ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.services[s])
            .send()
            .await
            .unwrap();
        let td = out.services()[0].task_definition().unwrap().to_owned();
        deploy_core::ecs::family_revision(&td).to_owned()
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        self.cmd_in("staging", args)
    }

    fn cmd_in(&self, environment: &str, args: &[&str]) -> std::process::Command {
        let mut c = tool("rollback", self.dir.path());
        c.env("AWS_ENDPOINT_URL", &self.ecs_standin.url)
            .env("AWS_REGION", "eu-central-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("API_TOKEN", CANARY_TOKEN)
            .args(["--environment", environment, "--format", "json"])
            .args(args);
        c
    }

    /// Service `s`'s rollback to revision 2 stays IN_PROGRESS, revision 3 still running.
    fn stick_in_progress(&self, s: usize) {
        self.ecs_standin.script(&self.services[s], Script::after_update(vec![json!({
            "deployments": [
                { "id": "{new}", "status": "PRIMARY", "taskDefinition": self.arn(s, 2), "desiredCount": 1, "runningCount": 0, "pendingCount": 1, "rolloutState": "IN_PROGRESS" },
                { "id": "ecs-svc/old", "status": "ACTIVE", "taskDefinition": self.arn(s, 3), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
            ]
        })]));
    }

    /// Starts `c` (a rollback) with its output captured and returns once it has sent
    /// UpdateService: the rollback is under way.
    async fn start_rolling(&self, mut c: std::process::Command) -> std::process::Child {
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        let t0 = Instant::now();
        while self.ecs_standin.calls_of("UpdateService").is_empty()
            && t0.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !self.ecs_standin.calls_of("UpdateService").is_empty(),
            "the rollback never started"
        );
        child
    }

    async fn rollback(&self, args: &[&str]) -> (Ran, Value) {
        let r = run(self.cmd(args)).await;
        let report = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"));
        (r, report)
    }

    /// The reason `report` gives for service `s` (a panic when it gives none).
    fn reason(&self, report: &Value, s: usize) -> String {
        let service = format!("service {}", self.services[s]);
        check(report, &service)["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// [`Env::rollback`] with a `--to` per target: `SERVICE=WHAT` for service `s`, or `WHAT`
    /// alone for `None`.
    async fn rollback_to(&self, targets: &[(Option<usize>, &str)]) -> (Ran, Value) {
        let args: Vec<String> = targets
            .iter()
            .flat_map(|(s, what)| {
                let to = match s {
                    Some(s) => format!("{}={what}", self.services[*s]),
                    None => (*what).to_owned(),
                };
                ["--to".to_owned(), to]
            })
            .collect();
        self.rollback(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
    }
}

/// The events of stream `incidents` in log group `group`, read back from moto.
async fn incident_events(
    group: &str,
) -> deploy_core::aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput {
    deploy_core::logs::client(&rig::moto_sdk().await)
        .get_log_events()
        .log_group_name(group)
        .log_stream_name("incidents")
        .send()
        .await
        .unwrap()
}

fn details(c: &Value) -> String {
    c["details"].to_string()
}

/// No secret in stdout or stderr, but on the `::add-mask::` lines that tell the runner to hide it.
fn no_canary(r: &Ran) {
    let text: String = r
        .all()
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!text.contains(CANARY_TOKEN), "bearer token leaked: {text}");
    let password = rig::var("DEPLOY_TEST_REGISTRY_PASSWORD");
    assert!(!text.contains(&password), "registry password leaked");
}

#[tokio::test]
async fn previous_skips_a_bad_and_an_unverified_revision_and_verifies_the_target() {
    let e = env(1, 5).await;
    e.verified(0, 2, SHA_2).await;
    e.verified(0, 3, SHA_3).await;
    e.tag(
        0,
        3,
        &[("deploy-action:bad", "2026-11-02 earlier rollback")],
    )
    .await;
    // revision 4 is neither verified nor bad; 5 runs.
    let (r, report) = e.rollback(&["--reason", "HTTP 503 after deploy"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    no_canary(&r);
    assert_eq!(
        e.running(0).await,
        e.td(0, 2),
        "moto runs the verified revision"
    );
    let c = check(&report, &format!("service {}", e.services[0]));
    assert_eq!(c["status"], "passed");
    let d = details(c);
    assert!(d.contains(&format!("{}: not verified", e.td(0, 4))), "{d}");
    assert!(
        d.contains(&format!(
            "{}: tagged bad (2026-11-02 earlier rollback)",
            e.td(0, 3)
        )),
        "{d}"
    );
    assert!(
        d.contains(&format!("{} -> {}", e.td(0, 5), e.td(0, 2))),
        "{d}"
    );
    assert!(d.contains("+FEATURE_2 -FEATURE_5"), "env names diffed: {d}");
    // The revision left is bad now; the target was verified again (a new time, same commit).
    let bad = e.tag_value(0, 5, "deploy-action:bad").await.unwrap();
    assert!(bad.contains("HTTP 503 after deploy"), "{bad}");
    let verified = e.tag_value(0, 2, "deploy-action:verified").await.unwrap();
    assert_ne!(verified, "2026-11-01T00:00:00Z");
    assert_eq!(
        e.tag_value(0, 2, "deploy-action:sha").await.as_deref(),
        Some(SHA_2)
    );
    assert_eq!(check(&report, "verify: Workflow API")["status"], "passed");
    assert_eq!(
        report["outputs"]["rolled-back-to"],
        format!("{}={}", e.services[0], e.td(0, 2))
    );
    // Nothing is ever deregistered.
    for rev in 1..=5 {
        let td = e
            .ecs
            .describe_task_definition()
            .task_definition(e.td(0, rev))
            .send()
            .await
            .unwrap();
        assert_eq!(
            td.task_definition().unwrap().status().unwrap().as_str(),
            "ACTIVE"
        );
    }
    // A second rollback walks further back instead of returning to the bad revision.
    e.verified(0, 1, SHA_1).await;
    let (r, _) = e.rollback(&[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(e.running(0).await, e.td(0, 1));
}

#[tokio::test]
async fn no_verified_revision_is_refused_unless_allowed() {
    let e = env(2, 3).await;
    e.verified(1, 2, "abc1234abc1234").await;
    let (r, report) = e.rollback(&[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let c = check(&report, &format!("service {}", e.services[0]));
    assert_eq!(c["status"], "failed");
    let why = c["reason"].as_str().unwrap();
    assert!(why.contains("no verified revision"), "{why}");
    assert!(
        why.contains(&format!("{}: not verified", e.td(0, 2))),
        "names what it found: {why}"
    );
    assert_eq!(
        check(&report, &format!("service {}", e.services[1]))["status"],
        "skipped"
    );
    // Nothing changed anywhere: both services still run revision 3, nothing tagged bad.
    for s in 0..2 {
        assert_eq!(e.running(s).await, e.td(s, 3));
        assert_eq!(e.tag_value(s, 3, "deploy-action:bad").await, None);
    }
    assert!(e.ecs_standin.calls_of("UpdateService").is_empty());
    assert!(e.ecs_standin.calls_of("TagResource").is_empty());

    let (r, report) = e
        .rollback(&["--allow-unverified", "--service", &e.services[0]])
        .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(e.running(0).await, e.td(0, 2));
    assert!(
        details(check(&report, &format!("service {}", e.services[0])))
            .contains("not verified (--allow-unverified)")
    );
    assert_eq!(
        e.running(1).await,
        e.td(1, 3),
        "--service limits the rollback"
    );
}

#[tokio::test]
async fn targets_by_tag_sha_revision_and_per_service_across_pages() {
    let e = env(3, 6).await;
    e.ecs_standin.page_task_definitions(2);
    e.verified(0, 2, "feedface00112233").await;
    let tag = "v0.103.0"; // images of service 1, revision 3 carry it (tag written by put_image)
    let targets = [(Some(0), "feedface"), (Some(1), tag), (None, "4")];
    let (r, report) = e.rollback_to(&targets).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(e.running(0).await, e.td(0, 2), "by commit");
    assert_eq!(
        e.running(1).await,
        e.td(1, 3),
        "by image tag, found through ECR"
    );
    assert_eq!(e.running(2).await, e.td(2, 4), "by revision");
    assert!(
        details(check(&report, &format!("service {}", e.services[2])))
            .contains("was never verified"),
        "an explicit unverified target is warned about"
    );
    let pages = e.ecs_standin.calls_of("ListTaskDefinitions");
    assert!(
        pages.iter().any(|c| c.body["nextToken"].is_string()),
        "paged through ListTaskDefinitions"
    );
}

#[tokio::test]
async fn an_all_digit_to_is_a_revision_only_when_the_family_has_it_else_a_commit() {
    let e = env(2, 4).await;
    // A short SHA that happens to be all digits: no revision 1234567 exists.
    e.verified(0, 2, SHA_DIGITS).await;
    e.verified(1, 3, SHA_3).await;
    let (r, report) = e.rollback_to(&[(Some(0), "1234567"), (Some(1), "3")]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(e.running(0).await, e.td(0, 2), "read as the commit");
    assert_eq!(e.running(1).await, e.td(1, 3), "read as the revision");
    let said = details(check(&report, &format!("service {}", e.services[0])));
    assert!(
        said.contains("does not exist, so it was read as a commit"),
        "the report says which it chose: {said}"
    );
    // Neither a revision nor a commit: refused by name, nothing moved.
    let (r, report) = e.rollback_to(&[(Some(0), "7654321")]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let why = e.reason(&report, 0);
    assert!(
        why.contains("--to 7654321:") && why.contains("does not exist, and no ACTIVE revision"),
        "{why}"
    );
    assert_eq!(e.running(0).await, e.td(0, 2), "nothing changed");
}

#[tokio::test]
async fn a_deleted_image_or_an_inactive_target_is_refused_and_nothing_changes() {
    let e = env(2, 3).await;
    e.verified(0, 2, "aaaaaaa").await;
    e.verified(1, 2, "bbbbbbb").await;
    let ecr = deploy_core::aws::ecr(&rig::moto_sdk().await);
    let (_, digest) = image(&e.repo, 102);
    ecr.batch_delete_image()
        .repository_name(&e.repo)
        .image_ids(
            deploy_core::aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(digest)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (r, report) = e.rollback(&[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let why = e.reason(&report, 1);
    assert!(why.contains("no longer exists in ECR"), "{why}");
    for s in 0..2 {
        assert_eq!(e.running(s).await, e.td(s, 3), "unchanged");
    }
    // Deregistered (INACTIVE) targets: moto would accept them, the tool must not.
    e.ecs
        .deregister_task_definition()
        .task_definition(e.td(0, 1))
        .send()
        .await
        .unwrap();
    let (r, report) = e
        .rollback(&[
            "--to",
            &format!("{}=1", e.services[0]),
            "--service",
            &e.services[0],
        ])
        .await;
    assert_eq!(r.code, 1, "{r:?}");
    let why = e.reason(&report, 0);
    assert!(why.contains("is INACTIVE"), "{why}");
    assert_eq!(e.running(0).await, e.td(0, 3));
    assert!(e.ecs_standin.calls_of("UpdateService").is_empty());
}

#[tokio::test]
async fn a_deployment_in_flight_is_rolled_back_natively_and_one_on_target_is_a_no_op() {
    let e = env(2, 3).await;
    e.verified(0, 2, "aaaaaaa").await;
    e.verified(1, 3, "bbbbbbb").await;
    let svc = &e.services[0];
    let in_flight = json!({
        "deployments": [
            { "id": "ecs-svc/new", "status": "PRIMARY", "taskDefinition": e.arn(0, 3), "desiredCount": 1, "runningCount": 0, "pendingCount": 1, "rolloutState": "IN_PROGRESS", "createdAt": 1.7e9 },
            { "id": "ecs-svc/old", "status": "ACTIVE", "taskDefinition": e.arn(0, 2), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
        ]
    });
    let rolled_back = json!({
        "taskDefinition": e.arn(0, 2),
        "deployments": [
            { "id": "ecs-svc/old", "status": "PRIMARY", "taskDefinition": e.arn(0, 2), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
        ]
    });
    e.ecs_standin
        .script(svc, Script::in_flight(in_flight, vec![rolled_back]));
    e.ecs_standin.service_deployments(
        svc,
        vec![json!({ "serviceDeploymentArn": "arn:aws:ecs:eu-central-1:123456789012:service-deployment/c/s/new", "status": "IN_PROGRESS", "serviceArn": svc })],
    );
    let (r, report) = e.rollback_to(&[(Some(1), "3")]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(e.ecs_standin.calls_of("StopServiceDeployment").len(), 1);
    assert!(
        e.ecs_standin.calls_of("UpdateService").is_empty(),
        "neither the in-flight service nor the one already on its target got UpdateService"
    );
    assert!(details(check(&report, &format!("service {svc}"))).contains("native-rollback"));
    let c = check(&report, &format!("service {}", e.services[1]));
    assert!(
        c["reason"].as_str().unwrap().contains("nothing to do"),
        "{c}"
    );
}

/// Rollback called while the circuit breaker is already rolling back (PRIMARY: the good revision
/// 2, in progress; revision 3's deployment FAILED): revision 3 is the one rolled back from and
/// tagged bad, the target is 2, and 2 is neither tagged bad nor passed over for 1.
#[tokio::test]
async fn during_a_circuit_breaker_rollback_the_failed_revision_is_the_bad_one() {
    let e = env(1, 3).await;
    e.verified(0, 1, "1111111").await;
    e.verified(0, 2, "2222222").await;
    let svc = &e.services[0];
    let breaking = json!({
        "taskDefinition": e.arn(0, 2),
        "deployments": [
            { "id": "ecs-svc/back", "status": "PRIMARY", "taskDefinition": e.arn(0, 2), "desiredCount": 1, "runningCount": 0, "pendingCount": 1, "rolloutState": "IN_PROGRESS" },
            { "id": "ecs-svc/bad", "status": "ACTIVE", "taskDefinition": e.arn(0, 3), "desiredCount": 0, "runningCount": 0, "failedTasks": 3, "rolloutState": "FAILED", "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start." }
        ]
    });
    let steady = json!({
        "taskDefinition": e.arn(0, 2),
        "deployments": [
            { "id": "{new}", "status": "PRIMARY", "taskDefinition": e.arn(0, 2), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
        ]
    });
    e.ecs_standin
        .script(svc, Script::in_flight(breaking, vec![steady]));
    let (r, report) = e.rollback(&["--verify-wait", "5s"]).await;
    assert!(
        e.tag_value(0, 3, "deploy-action:bad").await.is_some(),
        "{r:?} {report:#}"
    );
    assert_eq!(
        e.tag_value(0, 2, "deploy-action:bad").await,
        None,
        "{report:#}"
    );
    let updates = e.ecs_standin.calls_of("UpdateService");
    assert!(
        updates
            .iter()
            .all(|c| c.body.to_string().contains(&format!("{}:2", svc))),
        "{updates:?}"
    );
}

fn failed_frame(e: &Env, s: usize) -> Value {
    json!({
        "deployments": [
            { "id": "{new}", "status": "PRIMARY", "taskDefinition": e.arn(s, 2), "desiredCount": 1, "runningCount": 0, "failedTasks": 3, "rolloutState": "FAILED", "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start." }
        ]
    })
}

#[tokio::test]
async fn four_services_one_failing_reports_each_and_rolls_the_others_back() {
    let e = env(4, 3).await;
    for s in 0..4 {
        e.verified(s, 2, "c0ffee0").await;
    }
    let going = json!({
        "deployments": [
            { "id": "{new}", "status": "PRIMARY", "taskDefinition": e.arn(2, 2), "desiredCount": 1, "runningCount": 0, "pendingCount": 1, "rolloutState": "IN_PROGRESS" },
            { "id": "ecs-svc/old", "status": "ACTIVE", "taskDefinition": e.arn(2, 3), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
        ]
    });
    e.ecs_standin.script(
        &e.services[2],
        Script::after_update(vec![going.clone(), going, failed_frame(&e, 2)]),
    );
    // What moto cannot show: the failed service's stopped task, for the diagnosis.
    e.ecs_standin.answer(
        "ListTasks",
        json!({ "taskArns": ["arn:aws:ecs:eu-central-1:123456789012:task/c/t1"] }),
    );
    e.ecs_standin.answer("DescribeTasks", json!({ "failures": [], "tasks": [{
        "taskArn": "arn:aws:ecs:eu-central-1:123456789012:task/c/t1",
        "lastStatus": "STOPPED",
        "stoppedReason": "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
        "containers": [{ "name": "web", "reason": "CannotPullContainerError: not found" }]
    }]}));
    let (r, report) = e.rollback(&["--incident-file", "incident.json"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    for s in [0, 1, 3] {
        assert_eq!(
            check(&report, &format!("service {}", e.services[s]))["status"],
            "passed"
        );
        assert_eq!(e.running(s).await, e.td(s, 2), "rolled back in moto");
    }
    let c = check(&report, &format!("service {}", e.services[2]));
    assert_eq!(c["status"], "failed");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("FAILED: ECS deployment circuit breaker"),
        "{c}"
    );
    assert!(
        c["attempts"].as_u64().unwrap() >= 3,
        "waited through the frames: {c}"
    );
    let inc: Value =
        serde_json::from_str(&std::fs::read_to_string(e.dir.path().join("incident.json")).unwrap())
            .unwrap();
    assert_eq!(inc["outcome"], "failed");
    assert_eq!(inc["recovery_time"], Value::Null);
    assert_eq!(inc["mttr_seconds"], Value::Null);
    let results: Vec<&str> = inc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        ["rolled-back", "rolled-back", "failed", "rolled-back"]
    );
    let why = &report["diagnosis"][0];
    assert_eq!(
        why["subject"],
        format!("service {}", e.services[2]),
        "{report:#}"
    );
    assert_eq!(why["class"], "image pull failure");
    assert_eq!(
        e.ecs_standin.calls_of("ListTasks").len(),
        1,
        "only the failed service is diagnosed"
    );
    let lines = report["outputs"]["rolled-back-to"]
        .as_str()
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 3, "only what was rolled back");
}

/// A service of another cluster (`CLUSTER/NAME`, the environment's cluster being elsewhere) is
/// planned, rolled back and verified in its own cluster.
#[tokio::test]
async fn a_service_of_another_cluster_is_rolled_back_there() {
    let e = env(1, 2).await;
    e.verified(0, 1, SHA_1).await;
    let elsewhere = unique("afu9-other");
    moto::cluster(&e.ecs, &elsewhere).await;
    let qualified = format!("{}/{}", e.cluster, e.services[0]);
    let (r, report) = e
        .rollback(&["--cluster", &elsewhere, "--service", &qualified])
        .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(e.running(0).await, e.td(0, 1), "rolled back in its cluster");
    assert_eq!(
        check(&report, &format!("service {qualified}"))["status"],
        "passed"
    );
    let updates = e.ecs_standin.calls_of("UpdateService");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].body["cluster"], e.cluster.as_str());
    assert_eq!(updates[0].body["service"], e.services[0].as_str());
}

#[tokio::test]
async fn throttled_calls_are_retried_and_nothing_is_lost() {
    // Every third ECS call is answered ThrottlingException, as AWS answers past its call rates:
    // the SDK's retry answers each one, so every service is rolled back once, verified, and
    // tagged, and no call is given up.
    let e = env(6, 2).await;
    for s in 0..6 {
        e.verified(s, 1, SHA_1).await;
    }
    e.ecs_standin.throttle_every(3);
    let (r, report) = e.rollback(&[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let throttled: u64 = e.ecs_standin.throttled().values().sum();
    assert!(throttled >= 10, "the stand-in throttled: {throttled}");
    for s in 0..6 {
        assert_eq!(e.running(s).await, e.td(s, 1), "service {s} rolled back");
        let c = check(&report, &format!("service {}", e.services[s]));
        assert_eq!(c["status"], "passed", "{c}");
        assert!(e.tag_value(s, 2, "deploy-action:bad").await.is_some());
    }
    let updates = e.ecs_standin.calls_of("UpdateService");
    let mut updated: Vec<String> = updates
        .iter()
        .map(|c| c.body["service"].as_str().unwrap().to_owned())
        .collect();
    updated.sort();
    let mut services = e.services.clone();
    services.sort();
    assert_eq!(
        updated, services,
        "one UpdateService per service, none lost or doubled"
    );
}

#[tokio::test]
async fn the_wait_streams_events_once_and_catches_replacement_and_the_deadline() {
    let e = env(3, 3).await;
    for s in 0..3 {
        e.verified(s, 2, "c0ffee0").await;
    }
    let ev = |id: &str, msg: &str| json!({ "id": id, "createdAt": 1.8e9, "message": msg });
    let progressing = |events: Vec<Value>| {
        json!({
            "events": events,
            "deployments": [
                { "id": "{new}", "status": "PRIMARY", "taskDefinition": e.arn(0, 2), "desiredCount": 1, "runningCount": 0, "pendingCount": 1, "rolloutState": "IN_PROGRESS" },
                { "id": "ecs-svc/old", "status": "ACTIVE", "taskDefinition": e.arn(0, 3), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
            ]
        })
    };
    let done = json!({
        "events": [ev("e3", "service has reached a steady state."), ev("e2", "registered 1 targets"), ev("e1", "has started 1 tasks")],
        "deployments": [ { "id": "{new}", "status": "PRIMARY", "taskDefinition": e.arn(0, 2), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" } ]
    });
    e.ecs_standin.script(
        &e.services[0],
        Script::after_update(vec![
            progressing(vec![ev("e1", "has started 1 tasks")]),
            progressing(vec![
                ev("e2", "registered 1 targets"),
                ev("e1", "has started 1 tasks"),
            ]),
            progressing(vec![
                ev("e2", "registered 1 targets"),
                ev("e1", "has started 1 tasks"),
            ]),
            done,
        ]),
    );
    // Service 1: the circuit breaker put the old revision back under a new deployment id.
    e.ecs_standin.script(&e.services[1], Script::after_update(vec![json!({
        "deployments": [ { "id": "ecs-svc/circuit-breaker", "status": "PRIMARY", "taskDefinition": e.arn(1, 3), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" } ]
    })]));
    // Service 2: stuck in progress for ever.
    e.ecs_standin.script(&e.services[2], Script::after_update(vec![json!({
        "deployments": [
            { "id": "{new}", "status": "PRIMARY", "taskDefinition": e.arn(2, 2), "desiredCount": 1, "runningCount": 0, "pendingCount": 1, "rolloutState": "IN_PROGRESS" },
            { "id": "ecs-svc/old", "status": "ACTIVE", "taskDefinition": e.arn(2, 3), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" }
        ]
    })]));
    let start = Instant::now();
    let (r, report) = e.rollback(&["--wait", "3s", "--interval", "200ms"]).await;
    let took = start.elapsed();
    assert_eq!(r.code, 1, "{r:?}");
    for msg in [
        "has started 1 tasks",
        "registered 1 targets",
        "service has reached a steady state.",
    ] {
        assert_eq!(
            r.stderr.matches(msg).count(),
            1,
            "event {msg:?} logged exactly once: {}",
            r.stderr
        );
    }
    assert_eq!(
        check(&report, &format!("service {}", e.services[0]))["status"],
        "passed"
    );
    let replaced = e.reason(&report, 1);
    assert!(
        replaced.contains("is gone: PRIMARY now runs") && replaced.contains(&e.td(1, 3)),
        "{replaced}"
    );
    let stuck = e.reason(&report, 2);
    assert!(stuck.starts_with("not rolled back within 3s"), "{stuck}");
    assert!(
        took < Duration::from_secs(3 + 8),
        "deadline kept (plus verification of the others): {took:?}"
    );
}

#[tokio::test]
async fn dry_run_and_a_protected_environment_change_nothing() {
    let e = env(2, 3).await;
    for s in 0..2 {
        e.verified(s, 2, "c0ffee0").await;
    }
    let (r, report) = e.rollback(&["--dry-run"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(report["dry_run"], true);
    let c = check(&report, &format!("service {}", e.services[0]));
    assert_eq!(c["status"], "skipped");
    assert!(c["reason"].as_str().unwrap().contains(&format!(
        "would roll back {} -> {}",
        e.td(0, 3),
        e.td(0, 2)
    )));
    assert!(
        report["audit"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["outcome"] == "planned")
    );
    let r = run(e.cmd_in("production", &[])).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("pass --confirm production"),
        "{}",
        r.stderr
    );
    for s in 0..2 {
        assert_eq!(e.running(s).await, e.td(s, 3));
        assert_eq!(e.tag_value(s, 3, "deploy-action:bad").await, None);
    }
    assert!(e.ecs_standin.calls_of("UpdateService").is_empty());
    assert!(e.ecs_standin.calls_of("TagResource").is_empty());
}

#[tokio::test]
async fn the_incident_record_reaches_every_sink() {
    let e = env(1, 3).await;
    e.verified(0, 2, SHA_DIGITS).await;
    let group = unique("/afu9/incidents");
    let ns = unique("AFU9/Test");
    std::fs::write(e.dir.path().join("CHANGELOG.md"), "# Changelog\n").unwrap();
    let mut c = e.cmd(&[
        "--incident-start",
        "2026-11-28T10:00:00Z",
        "--detected-at",
        "2026-11-28T10:01:30Z",
        "--incident-file",
        "incident.json",
        "--incident-log-group",
        &group,
        "--emit-metric",
        "--metric-namespace",
        &ns,
        "--changelog",
        "CHANGELOG.md",
        "--github-deployment",
        "--publish",
        "always",
        "--reason",
        "5xx after deploy",
    ]);
    let summary = e.dir.path().join("summary.md");
    let outputs = e.dir.path().join("outputs.txt");
    let tap = deploy_action_e2e::tap::Tap::start(rig::prism_url(), &[]).await;
    c.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_API_URL", &tap.url)
        .env("GITHUB_SHA", "22cdb6a41c42366ad165a0fb4c96282304f6f7ae")
        .env("GITHUB_REPOSITORY", "afu9/control-center")
        .env("GITHUB_TOKEN", "ghs_canarytoken0123456789")
        .env("GITHUB_ACTOR", "oncall-dev")
        .env("GITHUB_RUN_ID", "4242");
    let r = run(c).await;
    assert_eq!(r.code, 0, "{r:?}");
    no_canary(&r);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let inc: Value =
        serde_json::from_str(&std::fs::read_to_string(e.dir.path().join("incident.json")).unwrap())
            .unwrap();
    assert_eq!(inc["start_time"], "2026-11-28T10:00:00Z");
    assert_eq!(inc["detection_time"], "2026-11-28T10:01:30Z");
    assert_eq!(inc["time_to_detect_seconds"], 90);
    let recovered = humantime::parse_rfc3339(inc["recovery_time"].as_str().unwrap()).unwrap();
    let detected = humantime::parse_rfc3339("2026-11-28T10:01:30Z").unwrap();
    assert_eq!(
        inc["mttr_seconds"].as_u64().unwrap(),
        recovered.duration_since(detected).unwrap().as_secs()
    );
    assert_eq!(inc["outcome"], "recovered");
    assert_eq!(inc["complete"], true);
    assert_eq!(inc["actor"], "oncall-dev");
    assert_eq!(inc["reason"], "5xx after deploy");
    assert_eq!(
        inc["run_url"],
        "https://github.com/afu9/control-center/actions/runs/4242"
    );
    assert_eq!(inc["services"][0]["from"], e.td(0, 3));
    assert_eq!(inc["services"][0]["to"], e.td(0, 2));
    assert_eq!(inc["services"][0]["to_images"][0], image(&e.repo, 2).0);
    let id = inc["incident_id"].as_str().unwrap();
    assert_eq!(id, "inc-staging-20261128T100130Z");
    // CloudWatch Logs: one JSON event in stream `incidents`, read back from moto.
    let sdk = rig::moto_sdk().await;
    let events = incident_events(&group).await;
    // Two events: `in-progress` before the first change (so a deploy's --preflight refuses while
    // it runs), then the final record, which is the incident's state.
    assert_eq!(events.events().len(), 2);
    let opened: Value = serde_json::from_str(events.events()[0].message().unwrap()).unwrap();
    assert_eq!(opened["incident_id"], id);
    assert_eq!(opened["outcome"], "in-progress");
    assert_eq!(opened["complete"], false);
    assert_eq!(opened["mttr_seconds"], Value::Null);
    let logged: Value = serde_json::from_str(events.events()[1].message().unwrap()).unwrap();
    assert_eq!(logged["incident_id"], id);
    assert_eq!(logged["outcome"], "recovered");
    assert_eq!(logged["mttr_seconds"], inc["mttr_seconds"]);
    // The MTTR metric, read back.
    let cw = deploy_core::aws::cloudwatch(&sdk);
    let now = std::time::SystemTime::now();
    let stats = cw
        .get_metric_statistics()
        .namespace(&ns)
        .metric_name("MTTR")
        .dimensions(
            deploy_core::aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Environment")
                .value("staging")
                .build(),
        )
        .start_time((now - Duration::from_secs(600)).into())
        .end_time((now + Duration::from_secs(60)).into())
        .period(60)
        .statistics(deploy_core::aws_sdk_cloudwatch::types::Statistic::Maximum)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.datapoints().len(), 1);
    assert_eq!(
        stats.datapoints()[0].maximum(),
        inc["mttr_seconds"].as_f64()
    );
    // The changelog entry.
    let log = std::fs::read_to_string(e.dir.path().join("CHANGELOG.md")).unwrap();
    assert!(
        log.starts_with("# Changelog\n\n## 2026-11-28: rollback of staging (recovered)"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "- {}: {} -> {} (rolled-back)",
            e.services[0],
            e.td(0, 3),
            e.td(0, 2)
        )),
        "{log}"
    );
    // The GitHub deployment and its statuses went through Prism (which rejects malformed calls).
    let gh: Vec<&Value> = report["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"].as_str().unwrap().starts_with("github:"))
        .collect();
    assert_eq!(gh.len(), 3, "{gh:?}");
    assert!(gh.iter().all(|a| a["outcome"] == "done"), "{gh:?}");
    assert_eq!(gh[0]["target"], SHA_DIGITS, "the restored commit");
    assert_eq!(gh[2]["detail"], "success");
    // `--publish always`: the report as a check run `rollback (staging)` on the workflow's commit.
    let runs: Vec<_> = tap
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/repos/afu9/control-center/check-runs")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].body["name"], "rollback (staging)");
    assert_eq!(runs[0].body["conclusion"], "success");
    assert_eq!(
        runs[0].body["head_sha"],
        "22cdb6a41c42366ad165a0fb4c96282304f6f7ae"
    );
    assert!(!runs[0].body.to_string().contains(CANARY_TOKEN));
    // The job summary and the step outputs.
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.contains(&format!("incident record {id}")),
        "{summary}"
    );
    assert!(!summary.contains(CANARY_TOKEN) && !summary.contains("ghs_canarytoken0123456789"));
    // The picture: per service, planned, rolling until steady, verified (a Mermaid timeline).
    assert!(summary.contains("```mermaid\ngantt\n"), "{summary}");
    for part in [
        "planned ",
        " rolling to steady :active, ",
        " verified :done, ",
    ] {
        assert!(summary.contains(part), "{part:?} not in {summary}");
    }
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    for key in [
        "rolled-back-to",
        "mttr-seconds",
        "incident-id",
        "incident-file",
    ] {
        assert!(
            outputs.contains(&format!("{key}<<")),
            "output {key}: {outputs}"
        );
    }
    assert!(!outputs.contains("ghs_canarytoken0123456789"));
    let raw = std::fs::read_to_string(e.dir.path().join("incident.json")).unwrap();
    assert!(!raw.contains(CANARY_TOKEN) && !raw.contains("ghs_canarytoken0123456789"));
}

/// SIGTERM to `child` after `ms`, as GitHub cancels a job: exit 1, and its JSON report, whose
/// error says `why`.
async fn sigterm_after(child: std::process::Child, ms: u64, why: &str) -> Value {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let out = rig::sigterm(child).await;
    assert_eq!(out.code, 1, "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        report["error"].as_str().unwrap().contains(why),
        "{report:#}"
    );
    report
}

#[tokio::test]
async fn sigterm_mid_wait_gives_a_partial_report_and_an_incomplete_record() {
    let e = env(1, 3).await;
    e.verified(0, 2, "c0ffee0").await;
    e.stick_in_progress(0);
    // Once the rollback is under way (UpdateService sent), cancel it like GitHub does.
    let child = e
        .start_rolling(e.cmd(&["--incident-file", "incident.json"]))
        .await;
    let report = sigterm_after(child, 400, "interrupted by SIGTERM").await;
    assert!(
        report["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "ecs:UpdateService" && a["outcome"] == "done"),
        "the call made is in the audit trail"
    );
    let inc: Value =
        serde_json::from_str(&std::fs::read_to_string(e.dir.path().join("incident.json")).unwrap())
            .unwrap();
    assert_eq!(inc["complete"], false);
    assert_eq!(inc["outcome"], "interrupted");
}

/// A cancel while planning (here ECS accepts the connection and never answers) still ends with
/// a report and the step outputs, and changes nothing: no incident opened, no service touched.
#[tokio::test]
async fn sigterm_while_planning_changes_nothing_and_still_reports() {
    let e = env(1, 3).await;
    e.verified(0, 2, "c0ffee0").await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outputs = e.dir.path().join("outputs.txt");
    let mut c = e.cmd(&["--incident-file", "incident.json"]);
    c.env(
        "AWS_ENDPOINT_URL",
        format!("http://{}", silent.local_addr().unwrap()),
    )
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_OUTPUT", &outputs)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let report = sigterm_after(
        c.spawn().unwrap(),
        1000,
        "interrupted by SIGTERM while planning: nothing was changed",
    )
    .await;
    assert!(
        report["audit"].as_array().is_none_or(Vec::is_empty),
        "{report:#}"
    );
    assert!(!e.dir.path().join("incident.json").exists());
    assert!(e.ecs_standin.calls_of("UpdateService").is_empty());
    let outputs = std::fs::read_to_string(&outputs).unwrap();
    for key in ["outcome", "exit-code", "report"] {
        assert!(outputs.contains(&format!("{key}<<")), "{key}: {outputs}");
    }
}

/// `health-check --preflight` as a deploy's first step, against the records a real rollback
/// wrote to moto's CloudWatch Logs: refused while the rollback runs and after it failed, allowed
/// with `--allow-open-incident`; the fix's `--mark-verified` resolves the incident, and a deploy
/// is free again. Another environment's incident never blocks.
#[tokio::test]
async fn a_deploy_refuses_while_an_incident_is_open_until_a_verified_deploy_resolves_it() {
    let e = env(1, 3).await;
    e.verified(0, 2, "c0ffee0").await;
    let group = unique("/afu9/incidents");
    let preflight_in = |environment: &str, extra: &[&str]| {
        let mut c = tool("health-check", e.dir.path());
        aws_env(&mut c)
            .env("API_TOKEN", CANARY_TOKEN)
            .args(["-e", environment, "--format", "json", "--preflight"])
            .args(["--incident-log-group", &group])
            .args(extra);
        c
    };
    let preflight = |extra: &[&str]| preflight_in("staging", extra);
    let report_of = |r: &Ran| -> Value {
        serde_json::from_str(&r.stdout).unwrap_or_else(|err| panic!("{err}: {r:?}"))
    };

    // Nothing recorded yet (the group does not even exist): free to deploy.
    let r = run(preflight(&[])).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(report_of(&r)["outputs"]["open-incidents"], "");

    // A rollback that stays in progress until its 5 s deadline.
    e.stick_in_progress(0);
    let rolling = e.cmd(&[
        "--wait",
        "5s",
        "--interval",
        "200ms",
        "--incident-log-group",
        &group,
        "--reason",
        "5xx after the deploy",
        "--no-diagnose",
    ]);
    let child = e.start_rolling(rolling).await;

    // During the rollback: refused, naming the incident and that it is in progress.
    let r = run(preflight(&[])).await;
    assert_eq!(r.code, 1, "refused while the rollback runs: {r:?}");
    let report = report_of(&r);
    let id = report["outputs"]["open-incidents"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("inc-staging-"), "{report:#}");
    let reason = check(&report, "no open incident (staging)")["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    for part in [
        id.as_str(),
        "a rollback is in progress",
        "5xx after the deploy",
        "wait until it has ended",
    ] {
        assert!(reason.contains(part), "{part:?} not in {reason}");
    }
    // A running rollback is never overridden.
    let r = run(preflight(&["--allow-open-incident"])).await;
    assert_eq!(r.code, 1, "the override raced a running rollback: {r:?}");
    let reason = check(&report_of(&r), "no open incident (staging)")["reason"].to_string();
    assert!(
        reason.contains("does not override a rollback in progress"),
        "{reason}"
    );
    // Another environment's incident is not this one's.
    let r = run(preflight_in("production", &[])).await;
    assert_eq!(r.code, 0, "production has no incident: {r:?}");

    // The rollback ends without recovering: still refused, now as failed.
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the stuck rollback fails");
    let r = run(preflight(&[])).await;
    assert_eq!(r.code, 1, "refused after a failed rollback: {r:?}");
    let report = report_of(&r);
    assert_eq!(report["outputs"]["open-incidents"], id.as_str());
    let reason = check(&report, "no open incident (staging)")["reason"].to_string();
    assert!(reason.contains("its rollback failed"), "{reason}");

    // The override: passes, and still names what it deploys over.
    let r = run(preflight(&["--allow-open-incident"])).await;
    assert_eq!(r.code, 0, "{r:?}");
    let report = report_of(&r);
    let reason = check(&report, "no open incident (staging)")["reason"].to_string();
    assert!(
        reason.contains("deploying anyway") && reason.contains(&id),
        "{reason}"
    );

    // The fix is deployed (revision 3 runs, steady) and verified: the incident is resolved.
    let steady = json!({
        "taskDefinition": e.arn(0, 3),
        "deployments": [ { "id": "ecs-svc/fix", "status": "PRIMARY", "taskDefinition": e.arn(0, 3), "desiredCount": 1, "runningCount": 1, "rolloutState": "COMPLETED" } ]
    });
    e.ecs_standin.script(
        &e.services[0],
        Script::in_flight(steady.clone(), vec![steady]),
    );
    let mut verify = tool("health-check", e.dir.path());
    aws_env(&mut verify)
        .env("AWS_ENDPOINT_URL", &e.ecs_standin.url)
        .env("API_TOKEN", CANARY_TOKEN)
        .args([
            "-e",
            "staging",
            "--format",
            "json",
            "--ecs",
            "--mark-verified",
            "--wait",
            "20s",
        ])
        .args(["--incident-log-group", &group, "--expect-version"])
        .arg(&Behaviour::default().commit_sha);
    let r = run(verify).await;
    let report = report_of(&r);
    assert_eq!(r.code, 0, "{report:#}");
    assert_eq!(report["outputs"]["verified"], "true", "{report:#}");
    assert_eq!(
        report["outputs"]["resolved-incidents"],
        id.as_str(),
        "{report:#}"
    );

    let r = run(preflight(&[])).await;
    assert_eq!(r.code, 0, "free to deploy once resolved: {r:?}");
    assert_eq!(report_of(&r)["outputs"]["open-incidents"], "");

    // The records, read back from moto: in-progress, failed, resolved (with its MTTR).
    let events = incident_events(&group).await;
    let outcomes: Vec<String> = events
        .events()
        .iter()
        .map(|ev| serde_json::from_str::<Value>(ev.message().unwrap()).unwrap())
        .inspect(|v| assert_eq!(v["incident_id"], id.as_str()))
        .map(|v| v["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["in-progress", "failed", "resolved"]);
    let last: Value = serde_json::from_str(events.events()[2].message().unwrap()).unwrap();
    assert!(last["mttr_seconds"].as_u64().is_some(), "{last:#}");
    assert_eq!(last["resolved_by"], "health-check --mark-verified");
}
