//! "Why it failed" and the KPI report, end to end: health-check against moto behind the ECS
//! stand-in. moto holds the task definitions (with their awslogs options), the log streams, the
//! alarms, the Availability metric and the incident records; the stand-in answers what moto cannot
//! produce (stopped tasks with reasons, placement events, unhealthy targets with reason codes),
//! shaped like real AWS answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration, SystemTime};

use deploy_action_e2e::ecs as moto;
use deploy_action_e2e::ecs_standin::{EcsStandIn, Script};
use deploy_action_e2e::rig::{self, Ran, run, tool, unique};
use deploy_core::aws_sdk_ecs as ecs;
use serde_json::{Value, json};

const CANARY: &str = "canary-diag-7f6e5d4c3b2a";

struct Setup {
    cluster: String,
    service: String,
    group: String,
    dir: tempfile::TempDir,
    standin: EcsStandIn,
}

async fn setup() -> Setup {
    let sdk = rig::moto_sdk().await;
    let client = deploy_core::aws::ecs(&sdk);
    let (cluster, service, group) = (unique("afu9"), unique("web"), unique("/ecs/afu9"));
    moto::cluster(&client, &cluster).await;
    let logging = ecs::types::LogConfiguration::builder()
        .log_driver(ecs::types::LogDriver::Awslogs)
        .options("awslogs-group", &group)
        .options("awslogs-stream-prefix", "ecs")
        .options("awslogs-region", "eu-central-1")
        .build()
        .unwrap();
    for _ in 0..2 {
        let web = moto::container("web", "nginx:1").log_configuration(logging.clone());
        moto::register(&client, &service, web.build()).await;
    }
    moto::service(&client, &cluster, &service, &format!("{service}:1"), 2).await;
    // The failed task's log stream, as awslogs names it: PREFIX/CONTAINER/TASK_ID.
    let logs = deploy_core::logs::client(&sdk);
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("ecs/web/task3")
        .send()
        .await
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut lines: Vec<String> = (1..=30).map(|i| format!("log line {i}")).collect();
    lines[27] = format!("connecting with token {CANARY}");
    lines[28] = format!("stack: {}", "x".repeat(600));
    lines[29] = "Error: connect ECONNREFUSED 10.0.3.12:5432".into();
    let events: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            deploy_core::aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now - 30_000 + i as i64)
                .message(l)
                .build()
                .unwrap()
        })
        .collect();
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name("ecs/web/task3")
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();
    let standin = EcsStandIn::start(&rig::moto_url()).await.unwrap();
    let td =
        |rev: u32| format!("arn:aws:ecs:eu-central-1:123456789012:task-definition/{service}:{rev}");
    let task = |id: &str, reason: &str, exit: Option<i32>, creason: &str| {
        json!({
            "taskArn": format!("arn:aws:ecs:eu-central-1:123456789012:task/{cluster}/{id}"),
            "taskDefinitionArn": td(1),
            "lastStatus": "STOPPED",
            "stoppedReason": reason,
            "stopCode": "TaskFailedToStart",
            "containers": [{ "name": "web", "exitCode": exit, "reason": creason, "lastStatus": "STOPPED" }]
        })
    };
    let arns: Vec<String> = ["task1", "task2", "task3", "task4", "task5"]
        .iter()
        .map(|t| format!("arn:aws:ecs:eu-central-1:123456789012:task/{cluster}/{t}"))
        .collect();
    standin.answer("ListTasks", json!({ "taskArns": arns }));
    standin.answer(
        "DescribeTasks",
        json!({ "failures": [], "tasks": [
            task("task1", "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref 123456789012.dkr.ecr.eu-central-1.amazonaws.com/afu9/web:v9", None, "CannotPullContainerError: pull access denied"),
            task("task2", "Essential container in task exited", Some(137), "OutOfMemoryError: Container killed due to memory usage"),
            task("task3", "Essential container in task exited", Some(1), ""),
            task("task4", "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed", None, ""),
            task("task5", "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/web/abc)", Some(0), ""),
        ]}),
    );
    standin.script(
        &service,
        Script::in_flight(
            json!({
                "pendingCount": 1,
                "loadBalancers": [{ "targetGroupArn": "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/afu9-web/6d0ecf831eec9f09", "containerName": "web", "containerPort": 3000 }],
                "events": [
                    { "id": "e2", "createdAt": 1.8e9, "message": format!("(service {service}) was unable to place a task because no container instance met all of its requirements. The closest matching container-instance has insufficient memory available.") },
                    { "id": "e1", "createdAt": 1.8e9, "message": format!("(service {service}) has started 1 tasks.") }
                ]
            }),
            Vec::new(),
        ),
    );
    standin.answer_query("DescribeTargetHealth", 200, r#"<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeTargetHealthResult>
    <TargetHealthDescriptions>
      <member><Target><Id>10.0.1.15</Id><Port>3000</Port></Target><HealthCheckPort>3000</HealthCheckPort>
        <TargetHealth><State>unhealthy</State><Reason>Target.ResponseCodeMismatch</Reason><Description>Health checks failed with these codes: [503]</Description></TargetHealth></member>
      <member><Target><Id>10.0.2.27</Id><Port>3000</Port></Target><HealthCheckPort>3000</HealthCheckPort>
        <TargetHealth><State>unhealthy</State><Reason>Target.Timeout</Reason><Description>Request timed out</Description></TargetHealth></member>
      <member><Target><Id>10.0.2.28</Id><Port>3000</Port></Target><HealthCheckPort>3000</HealthCheckPort>
        <TargetHealth><State>healthy</State></TargetHealth></member>
    </TargetHealthDescriptions>
  </DescribeTargetHealthResult>
  <ResponseMetadata><RequestId>d1</RequestId></ResponseMetadata>
</DescribeTargetHealthResponse>"#);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!(
            r#"
[environments.staging]
cluster = "{cluster}"
services = ["{service}"]

[health]
interval = "100ms"

[[health.checks]]
name = "secret header"
url = "http://127.0.0.1:1/"
headers = {{ Authorization = "Bearer ${{API_TOKEN}}" }}
"#
        ),
    )
    .unwrap();
    Setup {
        cluster,
        service,
        group,
        dir,
        standin,
    }
}

impl Setup {
    fn health(&self, args: &[&str]) -> std::process::Command {
        let mut c = tool("health-check", self.dir.path());
        c.env("AWS_ENDPOINT_URL", &self.standin.url)
            .env("AWS_REGION", "eu-central-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("API_TOKEN", CANARY)
            .args(["-e", "staging", "--format", "json", "--ecs"])
            .args(["--expect-task-definition", &format!("{}:2", self.service)])
            .args(args);
        c
    }
}

fn finding<'a>(report: &'a Value, class: &str) -> &'a Value {
    report["diagnosis"]
        .as_array()
        .unwrap_or_else(|| panic!("no diagnosis: {report:#}"))
        .iter()
        .find(|f| f["class"] == class)
        .unwrap_or_else(|| panic!("no finding {class}: {:#}", report["diagnosis"]))
}

fn no_canary(r: &Ran) {
    for l in r.all().lines().filter(|l| !l.starts_with("::add-mask::")) {
        assert!(!l.contains(CANARY), "secret leaked: {l}");
    }
}

#[tokio::test]
async fn a_failed_deploy_says_why_with_the_runbook_hints() {
    let s = setup().await;
    let summary = s.dir.path().join("summary.md");
    let mut c = s.health(&["--wait", "2s"]);
    c.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", s.dir.path().join("out"));
    let r = run(c).await;
    assert_eq!(r.code, 1, "{r:?}");
    no_canary(&r);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let f = finding(&report, "image pull failure");
    assert!(
        f["hint"].as_str().unwrap().contains("task execution role"),
        "{f}"
    );
    assert_eq!(f["subject"], format!("service {}", s.service));
    assert!(
        finding(&report, "out of memory")["evidence"][0]
            .as_str()
            .unwrap()
            .contains("exit 137 (OutOfMemoryError")
    );
    assert!(
        finding(&report, "secrets or network at task start")["hint"]
            .as_str()
            .unwrap()
            .contains("Secrets Manager")
    );
    assert!(
        finding(&report, "failed health checks")["hint"]
            .as_str()
            .unwrap()
            .contains("ports 3000-3003")
    );
    let place = finding(&report, "no capacity to place tasks");
    assert!(
        place["summary"]
            .as_str()
            .unwrap()
            .contains("insufficient memory"),
        "{place}"
    );
    assert!(
        place["hint"]
            .as_str()
            .unwrap()
            .contains("describe-clusters")
    );
    let rc = finding(&report, "unhealthy targets: Target.ResponseCodeMismatch");
    assert!(rc["summary"].as_str().unwrap().contains("[503]"), "{rc}");
    assert!(
        rc["evidence"][0]
            .as_str()
            .unwrap()
            .starts_with("10.0.1.15:3000 unhealthy")
    );
    assert!(
        finding(&report, "unhealthy targets: Target.Timeout")["hint"]
            .as_str()
            .unwrap()
            .contains("security groups")
    );
    // The exited task's last log lines, found through its awslogs options, redacted and capped.
    let exited = finding(&report, "essential container exited");
    let evidence: Vec<&str> = exited["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        evidence.contains(&format!("last log lines of {} ecs/web/task3:", s.group).as_str()),
        "{evidence:?}"
    );
    assert!(
        evidence.contains(&"Error: connect ECONNREFUSED 10.0.3.12:5432"),
        "{evidence:?}"
    );
    assert!(
        evidence.contains(&"connecting with token ***"),
        "{evidence:?}"
    );
    assert!(
        evidence
            .iter()
            .any(|l| l.starts_with("stack: xxx") && l.ends_with('…') && l.chars().count() == 301)
    );
    assert!(
        !evidence.contains(&"log line 10"),
        "only the last 20 lines: {evidence:?}"
    );
    assert!(evidence.contains(&"log line 11"), "{evidence:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("#### Why it failed"), "{md}");
    assert!(
        md.contains("image pull failure") && md.contains("Check: ECR image pull"),
        "{md}"
    );
    assert!(!md.contains(CANARY));
    assert!(r.stderr.contains("Why it failed:"), "{}", r.stderr);
}

#[tokio::test]
async fn a_denied_call_is_noted_not_fatal_and_no_diagnose_skips() {
    let s = setup().await;
    s.standin.answer_query(
        "DescribeTargetHealth",
        403,
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: elasticloadbalancing:DescribeTargetHealth</Message></Error><RequestId>x</RequestId></ErrorResponse>",
    );
    let r = run(s.health(&["--wait", "2s"])).await;
    assert_eq!(
        r.code, 1,
        "still the check's failure, not a dependency error: {r:?}"
    );
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let f = finding(&report, "not diagnosed");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("couldn't describe target health"),
        "{f}"
    );
    assert!(
        f["summary"].as_str().unwrap().contains("AccessDenied"),
        "{f}"
    );
    finding(&report, "image pull failure");
    let r = run(s.health(&["--wait", "2s", "--no-diagnose"])).await;
    assert_eq!(r.code, 1);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(report.get("diagnosis").is_none(), "{report:#}");
    assert!(
        s.standin.calls_of("ListTasks").len() == 1,
        "diagnosis ran once, not with --no-diagnose"
    );
    let _ = &s.cluster;
}

#[tokio::test]
async fn kpis_add_up_the_metric_and_the_incident_records() {
    let (ns, env, group) = (unique("AFU9/Kpi"), "staging", unique("/afu9/incidents"));
    let records: Vec<String> = [
        ("inc-1", "staging", "630"),
        ("inc-2", "staging", "90"),
        ("inc-3", "staging", "null"),
        ("inc-4", "production", "5"),
    ]
    .iter()
    .map(|(id, e, mttr)| {
        format!(r#"{{"incident_id":"{id}","environment":"{e}","mttr_seconds":{mttr}}}"#)
    })
    .collect();
    let healthy = [true, true, true, false, true, true, true, true];
    deploy_action_e2e::kpi::record(&ns, env, &healthy, &group, &records).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        format!("[environments.staging]\n\n[metrics]\nnamespace = \"{ns}\"\n\n[rollback]\nincident_log_group = \"{group}\"\n\n[kpi]\nuptime_target = 80.0\nmttr_target = \"10m\"\n"),
    )
    .unwrap();
    let kpi = |window: &str, extra: &[&str]| {
        let mut c = tool("health-check", dir.path());
        rig::aws_env(&mut c)
            .args(["-e", "staging", "--kpi", window, "--format", "json"])
            .args(extra);
        c
    };
    // The runbook's own window (section 7): 30 days is a window to read, not a wait.
    let r = run(kpi("30d", &[])).await;
    assert_eq!(r.code, 0, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["outputs"]["uptime-percent"], "87.500", "{report:#}");
    assert_eq!(report["outputs"]["total-checks"], "8");
    let r = run(kpi("1d", &[])).await;
    assert_eq!(r.code, 0, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let o = &report["outputs"];
    assert_eq!(o["uptime-percent"], "87.500");
    assert_eq!(o["total-checks"], "8");
    assert_eq!(o["healthy-checks"], "7");
    assert_eq!(
        o["incidents"], "3",
        "production's incident is not staging's"
    );
    assert_eq!(o["mttr-avg-seconds"], "360");
    assert_eq!(o["mttr-max-seconds"], "630");
    // Targets make it fail: uptime below 99.5 %, average MTTR above 5 minutes.
    let r = run(kpi(
        "1d",
        &["--uptime-target", "99.5", "--mttr-target", "5m"],
    ))
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let reasons: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].contains("87.500 % (7 of 8 checks healthy), below the target of 99.5 %"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("average 360 s over 2 recovered incidents, above the target of 5m"),
        "{reasons:?}"
    );
    let _ = Duration::ZERO;
}
