//! health-check end to end: the real binary against the stand-in service (deadlines, retries,
//! faults, versions, MCP detail, SIGTERM) and against moto (ECS rollout, alarms, ALB 5xx,
//! the Availability metric).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use deploy_action_e2e::report::{check, reason};
use deploy_action_e2e::rig::{self, Ran, aws_env, run, run_report, tool, unique, words};
use deploy_action_e2e::standin::{Behaviour, StandIn, with_dir as standin};
use deploy_core::aws_sdk_cloudwatch as cw;
use serde_json::Value;

/// health-check in `dir` with `args`, a command line split at white space.
fn health_cmd(dir: &Path, args: &str) -> Command {
    let mut c = tool("health-check", dir);
    c.args(words(args));
    c
}

/// [`health_cmd`] pointed at moto.
fn aws_cmd(dir: &Path, args: &str) -> Command {
    let mut c = health_cmd(dir, args);
    aws_env(&mut c);
    c
}

/// Runs health-check in `dir` with `args` and `--format json`: what it did, its report and how
/// long it took.
async fn health(dir: &Path, args: &str) -> (Ran, Value, Duration) {
    let start = Instant::now();
    let (r, report) = run_report(health_cmd(dir, args)).await;
    (r, report, start.elapsed())
}

/// Runs health-check pointed at moto in `dir` with `args` and `--format json`: what it did and
/// its report.
async fn health_aws(dir: &Path, args: &str) -> (Ran, Value) {
    run_report(aws_cmd(dir, args)).await
}

const READY: &str = "Control Center readiness";

#[tokio::test]
async fn healthy_service_needs_the_threshold_of_passes_in_a_row() {
    let (s, dir) = standin(Behaviour::default()).await;
    let args = format!("--base-url {} --success-threshold 3 --interval 50ms", s.url);
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(report["outputs"]["healthy"], "true");
    assert_eq!(report["outputs"]["attempts"], "3");
    assert_eq!(check(&report, READY)["attempts"], 3);
    assert_eq!(s.shared.hits()["/api/health"], 3);
    assert!(report["outputs"]["duration-seconds"].as_str().is_some());
}

#[tokio::test]
async fn never_ready_respects_the_deadline_within_one_interval() {
    let (s, dir) = standin(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let args = format!("--base-url {} --wait 2s --interval 500ms", s.url);
    let (r, report, took) = health(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(
        took < Duration::from_millis(2500 + 700),
        "deadline overrun: {took:?}"
    );
    let why = reason(&report, READY);
    assert!(why.starts_with("status 503, expected 200"), "{why}");
    assert!(why.contains("deadline of 2s passed after"), "{why}");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .starts_with("not healthy within 2s")
    );
    assert_eq!(report["outputs"]["healthy"], "false");
}

#[tokio::test]
async fn flaky_service_passes_after_failures() {
    // Three checks a round: six failures are two failed rounds.
    let (s, dir) = standin(Behaviour {
        fail_next: 6,
        ..Behaviour::default()
    })
    .await;
    let args = format!(
        "--base-url {} --interval 100ms --success-threshold 2",
        s.url
    );
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(check(&report, READY)["attempts"], 4);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (s, dir) = standin(Behaviour {
        fail_next: 3,
        retry_after: Some(2),
        ..Behaviour::default()
    })
    .await;
    let args = format!(
        "--base-url {} --interval 100ms --success-threshold 1",
        s.url
    );
    let (r, _, took) = health(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        took >= Duration::from_secs(2),
        "Retry-After: 2 ignored: {took:?}"
    );
}

/// Gaps between consecutive arrivals.
fn gaps(at: &[Instant]) -> Vec<Duration> {
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn a_service_that_turns_ready_is_seen_at_the_steady_cadence() {
    // Four "not ready" (503) answers, then ready. Before issue 11 the interval doubled while the
    // probe failed (the gaps grew to 2x and 4x): detection lagged by up to four intervals.
    let interval = Duration::from_millis(500);
    let (s, dir) = standin(Behaviour {
        ready_after: 4,
        ..Behaviour::default()
    })
    .await;
    let args = format!(
        "--base-url {} --interval 500ms --success-threshold 2",
        s.url
    );
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    // Healthy on the second pass after ready: four failing polls and two passing ones, no more.
    let ready = s.shared.arrivals("/api/ready");
    assert_eq!(ready.len(), 6, "{ready:?}");
    assert_eq!(report["outputs"]["attempts"], "6");
    let g = gaps(&ready);
    // Steady: no gap shrinks to a retry storm, none grows while failing. Start to start, each is
    // within [0.8, 1.0] of the interval plus scheduling noise; a doubling would make the fourth
    // failing gap at least 2x.
    for (i, gap) in g.iter().enumerate() {
        assert!(*gap >= interval / 2, "gap {i} too short: {g:?}");
        assert!(*gap < interval * 3 / 2, "gap {i} grew: {g:?}");
    }
    // From the first "ready" answer to healthy: one more round, one interval.
    let first_pass_to_healthy = ready[5] - ready[4];
    assert!(first_pass_to_healthy < interval * 3 / 2, "{g:?}");
}

#[tokio::test]
async fn a_503_with_retry_after_is_honoured_and_the_cadence_resumes() {
    // The first round's three requests answer 503 with Retry-After: 1; the service is then fine.
    let (s, dir) = standin(Behaviour {
        fail_next: 3,
        retry_after: Some(1),
        ..Behaviour::default()
    })
    .await;
    let args = format!(
        "--base-url {} --interval 100ms --success-threshold 3",
        s.url
    );
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    let ready = s.shared.arrivals("/api/ready");
    assert_eq!(ready.len(), 4, "one failed round, three passing: {ready:?}");
    assert_eq!(report["outputs"]["attempts"], "4");
    let g = gaps(&ready);
    assert!(
        g[0] >= Duration::from_secs(1),
        "Retry-After: 1 not honoured: {g:?}"
    );
    // Once the server stops asking, the steady 100 ms cadence is back: no lingering backoff.
    assert!(
        g[1..].iter().all(|d| *d < Duration::from_millis(600)),
        "{g:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_backs_off() {
    // Nothing listens on the port: polling every 100 ms for 3 s would be ~30 rounds; backing off
    // (100, 200, 400, 800 ms, then 1 s, jittered) leaves a handful.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let args = format!("--base-url http://127.0.0.1:{port} --wait 3s --interval 100ms");
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    let rounds: u32 = report["outputs"]["attempts"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3..=9).contains(&rounds), "{rounds} rounds in 3s");
    assert!(
        reason(&report, READY).contains("couldn't connect"),
        "{report:#}"
    );
}

#[tokio::test]
async fn mcp_servers_are_listed_and_a_down_one_named() {
    let (s, dir) = standin(Behaviour {
        mcp_down: vec!["mcp-github".into()],
        ..Behaviour::default()
    })
    .await;
    let summary = dir.path().join("summary.md");
    let mut c = health_cmd(
        dir.path(),
        &format!("--base-url {} --wait 1s --interval 200ms", s.url),
    );
    c.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary);
    let r = run(c).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("mcp-github: unhealthy"), "{}", r.stderr);
    assert!(r.stderr.contains("mcp-deploy: healthy"), "{}", r.stderr);
    let md = std::fs::read_to_string(summary).unwrap();
    assert!(md.contains("mcp-github: unhealthy"), "{md}");
    assert!(
        md.contains("`.status` is \\\"degraded\\\"") || md.contains("`.status` is \"degraded\""),
        "{md}"
    );
}

#[tokio::test]
async fn expected_version_must_be_served() {
    let sha = "22cdb6a41c42366ad165a0fb4c96282304f6f7ae";
    let (s, dir) = standin(Behaviour::default()).await;
    let args = format!(
        "--base-url {} --interval 50ms --expect-version {}",
        s.url,
        &sha[..7]
    );
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(report["outputs"]["deployed-version"], sha);
    assert_eq!(check(&report, "Deployed version")["status"], "passed");

    let args = format!(
        "--base-url {} --wait 1s --interval 100ms --expect-version 0123456789abcdef",
        s.url
    );
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    let why = reason(&report, "Control Center health");
    assert!(
        why.starts_with(
            "commitSha is 22cdb6a41c42366ad165a0fb4c96282304f6f7ae, expected 0123456789abcdef"
        ),
        "{why}"
    );
}

#[tokio::test]
async fn faults_are_reported_for_what_they_are() {
    let (s, dir) = standin(Behaviour::default()).await;
    let fast = format!("--base-url {} --wait 1s --interval 200ms", s.url);
    /// Serves `body` and runs the fast check against it: what it did and its report.
    async fn with_body(s: &StandIn, dir: &Path, fast: &str, body: &str) -> (Ran, Value) {
        s.shared.set(Behaviour {
            body: body.into(),
            ..Behaviour::default()
        });
        let (r, report, _) = health(dir, fast).await;
        (r, report)
    }

    // Not JSON: retried until the deadline, with an excerpt.
    let (r, report) = with_body(&s, dir.path(), &fast, "not-json").await;
    assert_eq!(r.code, 1);
    assert!(
        reason(&report, READY).starts_with("body is not JSON: <html>this is not JSON</html>"),
        "{report:#}"
    );

    // A body over the cap fails at once.
    let (r, report) = with_body(&s, dir.path(), &fast, "huge").await;
    assert_eq!(r.code, 1);
    assert!(
        reason(&report, READY).contains("is larger than 1048576 bytes"),
        "{report:#}"
    );
    assert_eq!(check(&report, READY)["attempts"], 1);

    // An endless redirect fails at once.
    let (r, report) = with_body(&s, dir.path(), &fast, "redirect-loop").await;
    assert_eq!(r.code, 1);
    assert!(
        reason(&report, READY).starts_with("too many redirects"),
        "{report:#}"
    );

    // A slow service times out per request, inside the deadline.
    s.shared.set(Behaviour {
        delay_ms: 3000,
        ..Behaviour::default()
    });
    let args = format!(
        "--base-url {} --wait 1s --interval 100ms --request-timeout 300ms",
        s.url
    );
    let (r, report, took) = health(dir.path(), &args).await;
    assert_eq!(r.code, 1);
    assert!(
        reason(&report, READY).starts_with("timed out after"),
        "{report:#}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");

    // TLS against a plain-HTTP port: a TLS failure, not retried.
    s.shared.set(Behaviour::default());
    let https = fast.replace("http://", "https://");
    let (r, report, _) = health(dir.path(), &https).await;
    assert_eq!(r.code, 1);
    assert!(
        reason(&report, READY).starts_with("TLS failure"),
        "{report:#}"
    );
    assert_eq!(check(&report, READY)["attempts"], 1);
}

#[tokio::test]
async fn unresolvable_host_is_a_dns_failure() {
    let dir = tempfile::tempdir().unwrap();
    let args =
        "--base-url http://no-such-host.invalid --wait 1s --interval 200ms --request-timeout 5s";
    let (r, report, took) = health(dir.path(), args).await;
    assert_eq!(r.code, 1, "{r:?}");
    let why = reason(&report, READY);
    assert!(why.starts_with("couldn't resolve host"), "{why}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn sigterm_mid_wait_gives_a_partial_report() {
    let (s, dir) = standin(Behaviour {
        ready: false,
        ..Behaviour::default()
    })
    .await;
    let args = format!(
        "--base-url {} --wait 60s --interval 200ms --format json",
        s.url
    );
    let child = rig::spawn(health_cmd(dir.path(), &args));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let start = Instant::now();
    let out = rig::sigterm(child).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "did not stop promptly"
    );
    assert_eq!(out.code, 1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["error"],
        "interrupted by SIGTERM while waiting: partial report"
    );
    assert!(check(&report, READY)["attempts"].as_u64().unwrap() >= 2);
    assert_eq!(check(&report, READY)["status"], "failed");
}

#[tokio::test]
async fn unauthorized_is_not_retried_unless_asked() {
    let (s, dir) = standin(Behaviour::default()).await;
    rig::write_config(
        dir.path(),
        "[[health.checks]]\nname = \"workflows\"\npath = \"/api/workflows\"\nheaders = { Authorization = \"Bearer ${API_TOKEN}\" }\n",
    );
    let mut c = health_cmd(dir.path(), &format!("--base-url {} --wait 5s", s.url));
    c.env("API_TOKEN", "wrong-token-123");
    let start = Instant::now();
    let (r, report) = run_report(c).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(
        reason(&report, "workflows").contains("status 401, expected 2xx"),
        "{report:#}"
    );
    assert!(
        !r.all()
            .replace("::add-mask::wrong-token-123", "")
            .contains("wrong-token-123")
    );

    let args = format!(
        "--base-url {} --wait 1s --interval 200ms --retry-unauthorized",
        s.url
    );
    let mut c = health_cmd(dir.path(), &args);
    c.env("API_TOKEN", "wrong-token-123");
    let (_, report) = run_report(c).await;
    assert!(
        check(&report, "workflows")["attempts"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
}

// ---- ECS and CloudWatch, against moto -------------------------------------------------------

/// The cluster `cluster` with `service`, revisions 1 (nginx:1, running) and 2 (nginx:2).
async fn ecs_service(cluster: &str, service: &str) -> deploy_core::aws_sdk_ecs::Client {
    deploy_action_e2e::ecs::web_service(cluster, service, &["nginx:1", "nginx:2"]).await
}

#[tokio::test]
async fn ecs_rollout_of_the_expected_task_definition_passes() {
    let (cluster, service) = (unique("afu9"), unique("web"));
    ecs_service(&cluster, &service).await;
    let dir = tempfile::tempdir().unwrap();
    let td = format!("{service}:1");
    let args = format!(
        "--ecs --cluster {cluster} --service {service} --expect-task-definition {td} --interval 50ms"
    );
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    let c = check(&report, &format!("ECS service {service}"));
    assert_eq!(c["status"], "passed");
    assert_eq!(c["details"][0][1], format!("{td} COMPLETED"));
}

#[tokio::test]
async fn ecs_primary_on_another_task_definition_is_a_failure_not_stable() {
    // moto keeps the first deployment PRIMARY after UpdateService: exactly what a completed
    // circuit-breaker rollback looks like to DescribeServices.
    let (cluster, service) = (unique("afu9"), unique("web"));
    let ecs = ecs_service(&cluster, &service).await;
    ecs.update_service()
        .cluster(&cluster)
        .service(&service)
        .task_definition(format!("{service}:2"))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let on = format!("--ecs --cluster {cluster} --service {service} --expect-task-definition");
    let r = run(aws_cmd(dir.path(), &format!("{on} other-service=web:1"))).await;
    assert_eq!(
        r.code, 2,
        "a service name that is not verified is a usage error: {r:?}"
    );
    assert!(
        r.stderr
            .contains("names service \"other-service\", which is not verified"),
        "{}",
        r.stderr
    );
    let args = format!("{on} {service}={service}:2 --wait 5s");
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    let why = reason(&report, &format!("ECS service {service}"));
    assert!(
        why.starts_with(&format!(
            "PRIMARY deployment runs {service}:1, not the expected {service}:2"
        )),
        "{why}"
    );
    assert_eq!(
        check(&report, &format!("ECS service {service}"))["attempts"],
        1,
        "fatal at once"
    );
}

/// A service given by its ARN is found (ECS answers with its name and its ARN).
#[tokio::test]
async fn ecs_service_given_by_arn_is_found() {
    let (cluster, service) = (unique("afu9"), unique("web"));
    let ecs = ecs_service(&cluster, &service).await;
    let arn = ecs
        .describe_services()
        .cluster(&cluster)
        .services(&service)
        .send()
        .await
        .unwrap()
        .services()[0]
        .service_arn()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let args = format!("--ecs --cluster {cluster} --service {arn} --interval 50ms --wait 10s");
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        check(&report, &format!("ECS service {arn}"))["status"],
        "passed"
    );
}

#[tokio::test]
async fn ecs_missing_service_is_named() {
    let (cluster, service) = (unique("afu9"), unique("web"));
    ecs_service(&cluster, &service).await;
    let dir = tempfile::tempdir().unwrap();
    let args = format!("--ecs --cluster {cluster} --service nope --wait 2s");
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        reason(&report, "ECS service nope"),
        format!("service nope not found in cluster {cluster} (MISSING)")
    );
}

/// One environment over two clusters: bare names are in `--cluster`, `CLUSTER/NAME` in another;
/// 12 services in the first (two DescribeServices batches) and one in the second all pass, and a
/// missing one is named with the cluster it was looked for in.
#[tokio::test]
async fn services_across_clusters_are_verified_where_they_are() {
    let (a, b) = (unique("afu9-a"), unique("afu9-b"));
    let mut names = Vec::new();
    for i in 0..12 {
        let s = format!("web-{i}");
        ecs_service(&a, &s).await;
        names.push(s);
    }
    ecs_service(&b, "api").await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = format!("--ecs --cluster {a} --interval 50ms --wait 3s");
    for s in &names {
        args.push_str(&format!(" --service {s}"));
    }
    args.push_str(&format!(" --service {b}/api --service {b}/nope"));
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    for s in &names {
        assert_eq!(
            check(&report, &format!("ECS service {s}"))["status"],
            "passed"
        );
    }
    let api = check(&report, &format!("ECS service {b}/api"));
    assert_eq!(api["status"], "passed", "{api}");
    assert_eq!(api["details"][0][1], "api:1 COMPLETED");
    assert_eq!(
        reason(&report, &format!("ECS service {b}/nope")),
        format!("service nope not found in cluster {b} (MISSING)")
    );

    let r = run(aws_cmd(
        dir.path(),
        &format!("--ecs --cluster {a} --service {b}/api/x"),
    ))
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "service \"{b}/api/x\": write NAME (in the environment's cluster) or CLUSTER/NAME"
        )),
        "{}",
        r.stderr
    );
}

async fn alarm(name: &str, state: cw::types::StateValue) {
    let client = deploy_core::aws::cloudwatch(&rig::moto_sdk().await);
    client
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(cw::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(cw::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    client
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0)")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn an_alarm_in_alarm_fails_the_wait() {
    let (s, dir) = standin(Behaviour::default()).await;
    let prefix = format!("{}-", unique("afu9-staging"));
    alarm(&format!("{prefix}cpu"), cw::types::StateValue::Ok).await;
    let args = format!(
        "--base-url {} --alarm-prefix {prefix} --interval 50ms",
        s.url
    );
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(check(&report, "CloudWatch alarms")["status"], "passed");

    alarm(&format!("{prefix}5xx"), cw::types::StateValue::Alarm).await;
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        reason(&report, "CloudWatch alarms"),
        format!("1 alarm(s) in ALARM: {prefix}5xx")
    );
}

#[tokio::test]
async fn alb_5xx_gate_and_availability_metric() {
    let (s, dir) = standin(Behaviour::default()).await;
    let lb = format!("app/{}/0123456789", unique("alb"));
    let client = deploy_core::aws::cloudwatch(&rig::moto_sdk().await);
    client
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(
            cw::types::MetricDatum::builder()
                .metric_name("HTTPCode_Target_5XX_Count")
                .dimensions(
                    cw::types::Dimension::builder()
                        .name("LoadBalancer")
                        .value(&lb)
                        .build(),
                )
                .value(7.0)
                .timestamp(cw::primitives::DateTime::from(std::time::SystemTime::now()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let namespace = unique("Test/Factory");
    rig::write_config(
        dir.path(),
        format!(
            "[environments.staging]\nbase_url = \"{}\"\nload_balancer = \"{lb}\"\n\n[[health.checks]]\nname = \"health\"\npath = \"/api/health\"\n",
            s.url
        ),
    );
    let gate = |threshold: &str| {
        format!(
            "-e staging --alb-5xx-threshold {threshold} --emit-metric --metric-namespace {namespace} --interval 50ms"
        )
    };
    let (r, report) = health_aws(dir.path(), &gate("10")).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        reason(&report, "ALB 5xx (last 5m)"),
        "7 target 5xx responses, threshold 10"
    );
    assert_eq!(report["outputs"]["availability"], "1");
    assert_eq!(report["audit"][0]["action"], "cloudwatch:PutMetricData");

    let (r, report) = health_aws(dir.path(), &gate("5")).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(reason(&report, "ALB 5xx (last 5m)").starts_with(&format!(
        "7 target 5xx responses on {lb}, more than the threshold 5"
    )));
    assert_eq!(report["outputs"]["availability"], "0");

    // Read the KPI back: one 1 and one 0 for Environment=staging.
    let end = std::time::SystemTime::now() + Duration::from_secs(60);
    let stats = client
        .get_metric_statistics()
        .namespace(&namespace)
        .metric_name("Availability")
        .dimensions(
            cw::types::Dimension::builder()
                .name("Environment")
                .value("staging")
                .build(),
        )
        .start_time(cw::primitives::DateTime::from(
            end - Duration::from_secs(600),
        ))
        .end_time(cw::primitives::DateTime::from(end))
        .period(60)
        .statistics(cw::types::Statistic::Sum)
        .statistics(cw::types::Statistic::SampleCount)
        .send()
        .await
        .unwrap();
    let count: f64 = stats
        .datapoints()
        .iter()
        .filter_map(|d| d.sample_count())
        .sum();
    let sum: f64 = stats.datapoints().iter().filter_map(|d| d.sum()).sum();
    assert_eq!((count, sum), (2.0, 1.0), "{stats:?}");
}

/// A composite alarm, made the way moto takes one: PutMetricAlarm with an AlarmRule (the SDK's
/// PutCompositeAlarm is not implemented by moto 5.2.5), sent as a raw awsQuery request.
async fn composite_alarm(name: &str, rule: &str) {
    let http =
        deploy_core::http::HttpClient::new("test", deploy_core::http::HttpOptions::default())
            .unwrap();
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let body = format!(
        "Action=PutMetricAlarm&Version=2010-08-01&AlarmName={}&AlarmRule={}",
        enc(name),
        enc(rule)
    );
    let headers = [
        deploy_core::http::Header::new(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/eu-central-1/monitoring/aws4_request, SignedHeaders=host, Signature=0",
        ),
        deploy_core::http::Header::new("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = http
        .send(
            "POST",
            &format!("{}/", rig::moto_url()),
            &headers,
            Some(body.into_bytes()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    deploy_core::aws::cloudwatch(&rig::moto_sdk().await)
        .set_alarm_state()
        .alarm_name(name)
        .state_value(cw::types::StateValue::Alarm)
        .state_reason("composite rule true")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn composite_alarms_count_and_an_unknown_alarm_is_named() {
    let (s, dir) = standin(Behaviour::default()).await;
    let prefix = format!("{}-", unique("afu9-composite"));
    let metric = format!("{prefix}cpu");
    alarm(&metric, cw::types::StateValue::Ok).await;
    let composite = format!("{prefix}any");
    composite_alarm(&composite, &format!("ALARM(\"{metric}\")")).await;
    let fast = format!("--base-url {} --interval 50ms", s.url);
    // By name and by prefix, a composite alarm in ALARM fails the gate.
    for how in [
        ["--alarm", composite.as_str()],
        ["--alarm-prefix", prefix.as_str()],
    ] {
        let (r, report) = health_aws(dir.path(), &format!("{fast} {}", how.join(" "))).await;
        assert_eq!(r.code, 1, "{how:?}: {r:?}");
        assert_eq!(
            reason(&report, "CloudWatch alarms"),
            format!("1 alarm(s) in ALARM: {composite}"),
            "{how:?}"
        );
    }
    // A name that matches no alarm (a typo) fails, naming it; an existing OK one passes.
    let typo = format!("{prefix}cpuu");
    let args = format!("{fast} --alarm {metric} --alarm {typo}");
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        reason(&report, "CloudWatch alarms"),
        format!("1 alarm(s) not found: {typo}")
    );
    let (r, _) = health_aws(dir.path(), &format!("{fast} --alarm {metric}")).await;
    assert_eq!(r.code, 0, "{r:?}");
}

#[tokio::test]
async fn alb_5xx_window_over_a_day_is_read_not_refused() {
    let (s, dir) = standin(Behaviour::default()).await;
    let lb = format!("app/{}/0123456789", unique("alb-long"));
    for window in ["25h", "7days"] {
        let args = format!(
            "--base-url {} --interval 50ms --load-balancer {lb} --alb-5xx-threshold 0 --alb-5xx-window {window}",
            s.url
        );
        let (r, report) = health_aws(dir.path(), &args).await;
        assert_eq!(r.code, 0, "{window}: {r:?}");
        let gate = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().starts_with("ALB 5xx"))
            .unwrap();
        assert_eq!(
            gate["reason"], "0 target 5xx responses, threshold 0",
            "{window}"
        );
    }
}

#[tokio::test]
async fn no_aws_credentials_is_one_clear_line_and_exit_3() {
    let (s, dir) = standin(Behaviour::default()).await;
    let home = tempfile::tempdir().unwrap();
    let mut c = health_cmd(
        dir.path(),
        &format!("--base-url {} --ecs --cluster c --service s", s.url),
    );
    // As a new user runs it: a region, no keys, no profile files; the chain then tries web
    // identity, the container endpoint and instance metadata, and finds nothing.
    c.env("AWS_REGION", "eu-central-1")
        .env("AWS_ENDPOINT_URL", rig::moto_url())
        .env("HOME", home.path());
    let r = run(c).await;
    assert_eq!(r.code, 3, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, no SDK internals:\n{}", r.stderr);
    assert!(
        lines[0].starts_with("error: no AWS credentials found: tried the environment"),
        "{}",
        r.stderr
    );
    assert!(
        lines[0].contains("configure-aws-credentials"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn an_alarm_firing_during_the_bake_fails_after_a_healthy_wait() {
    let (s, dir) = standin(Behaviour::default()).await;
    let name = unique("afu9-bake");
    alarm(&name, cw::types::StateValue::Ok).await;
    let bake = |time: &str| {
        format!(
            "--base-url {} --interval 100ms --alarm {name} --bake {time}",
            s.url
        )
    };
    // A quiet bake passes and takes its time.
    let (r, report) = health_aws(dir.path(), &bake("1s")).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(check(&report, "Bake (1s)")["status"], "passed");
    assert!(
        check(&report, "Bake (1s)")["duration_ms"].as_u64().unwrap() >= 1000,
        "{report:#}"
    );
    // An alarm that fires after the service looked healthy, inside the bake window, fails it.
    let running = tokio::spawn(run_report(aws_cmd(dir.path(), &bake("6s"))));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    alarm(&name, cw::types::StateValue::Alarm).await;
    let (r, report) = running.await.unwrap();
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(check(&report, "CloudWatch alarms")["status"], "passed");
    assert_eq!(
        reason(&report, "Bake (6s)"),
        format!("during the bake window: 1 alarm(s) in ALARM: {name}")
    );
}

#[tokio::test]
async fn stabilize_waits_before_the_first_poll() {
    let (s, dir) = standin(Behaviour::default()).await;
    let watch = s.shared.clone();
    let args = format!(
        "--base-url {} --interval 50ms --stabilize 1500ms --format json",
        s.url
    );
    let running = tokio::spawn(run(health_cmd(dir.path(), &args)));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        watch.hits().is_empty(),
        "polled during --stabilize: {:?}",
        watch.hits()
    );
    let r = running.await.unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!watch.hits().is_empty());
    // It must fit inside the deadline.
    let args = format!("--base-url {} --stabilize 5s --wait 5s", s.url);
    let r = run(health_cmd(dir.path(), &args)).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("--stabilize (5s) must be shorter than --wait (5s)"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn retry_on_decides_which_statuses_are_waited_out() {
    let (s, dir) = standin(Behaviour::default()).await;
    rig::write_config(
        dir.path(),
        "[[health.checks]]\nname = \"warm-up\"\npath = \"/api/not-yet\"\nstatus = 200\n",
    );
    // 404 is not retried by default: it fails at once.
    let args = format!("--base-url {} --wait 3s --interval 100ms", s.url);
    let (r, report, took) = health(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(check(&report, "warm-up")["attempts"], 1);
    assert!(took < Duration::from_secs(2), "{took:?}");
    // With --retry-on 404 it is waited out until the deadline.
    let args = format!(
        "--base-url {} --wait 1s --interval 100ms --retry-on 404,503",
        s.url
    );
    let (r, report, took) = health(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        check(&report, "warm-up")["attempts"].as_u64().unwrap() >= 3,
        "{report:#}"
    );
    assert!(took >= Duration::from_secs(1), "{took:?}");
    // A bad status list is a usage error naming the flag.
    let args = format!("--base-url {} --retry-on 4x4", s.url);
    let r = run(health_cmd(dir.path(), &args)).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--retry-on"), "{}", r.stderr);
}

#[tokio::test]
async fn version_field_names_where_the_version_is() {
    let (s, dir) = standin(Behaviour::default()).await;
    // The stand-in reports its service name in `service`: read the version from there.
    let args = format!(
        "--base-url {} --interval 50ms --version-field service --expect-version control-center",
        s.url
    );
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(report["outputs"]["deployed-version"], "control-center");
    // The default field (commitSha) does not hold that value: the same expectation fails.
    let args = format!(
        "--base-url {} --wait 1s --interval 100ms --expect-version control-center",
        s.url
    );
    let (r, report, _) = health(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        reason(&report, "Control Center health").starts_with("commitSha is "),
        "{report:#}"
    );
}

#[tokio::test]
async fn mark_verified_tags_the_running_revision_only_when_healthy() {
    let (cluster, service) = (unique("afu9"), unique("web"));
    let ecs = ecs_service(&cluster, &service).await;
    let tags = |rev: u32| {
        let (ecs, service) = (ecs.clone(), service.clone());
        async move {
            let td = format!("{service}:{rev}");
            let tags = deploy_action_e2e::ecs::described_tags(&ecs, &td).await;
            tags.into_iter()
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mark = format!("--ecs --cluster {cluster} --service {service} --mark-verified");
    // Not healthy (expects revision 2, runs 1): nothing is tagged.
    let args = format!("{mark} --expect-task-definition {service}:2 --wait 1s");
    let (r, report) = health_aws(dir.path(), &args).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(report["outputs"]["verified"], "false");
    assert!(tags(1).await.is_empty());
    // Healthy: revision 1 carries the record, with the run that verified it.
    let args = format!("{mark} --expect-task-definition {service}:1 --interval 50ms");
    let mut c = aws_cmd(dir.path(), &args);
    c.env("GITHUB_REPOSITORY", "afu9/control-center")
        .env("GITHUB_RUN_ID", "77")
        .env("GITHUB_SHA", "ffffffffffffffffffffffffffffffffffffffff");
    let (r, report) = run_report(c).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(report["outputs"]["verified"], "true");
    let t = tags(1).await;
    assert_eq!(
        t["deploy-action:sha"],
        "ffffffffffffffffffffffffffffffffffffffff"
    );
    assert_eq!(
        t["deploy-action:run"],
        "https://github.com/afu9/control-center/actions/runs/77"
    );
    let when = humantime::parse_rfc3339(&t["deploy-action:verified"]).unwrap();
    assert!(when.elapsed().unwrap() < Duration::from_secs(60));
    assert!(tags(2).await.is_empty(), "only the running revision");
    // A revision keeps the commit it was verified at.
    let mut c = aws_cmd(dir.path(), &format!("{mark} --interval 50ms"));
    c.env("GITHUB_SHA", "0000000000000000000000000000000000000000");
    assert_eq!(run(c).await.code, 0);
    assert_eq!(
        tags(1).await["deploy-action:sha"],
        "ffffffffffffffffffffffffffffffffffffffff"
    );
    // --mark-verified without --ecs is a usage error.
    let r = run(health_cmd(
        dir.path(),
        "--mark-verified --base-url http://127.0.0.1:1",
    ))
    .await;
    assert_eq!(r.code, 2);
}

/// A cancelled job before the wait begins (AWS credentials still being fetched from an STS that
/// never answers) and in --preflight (CloudWatch Logs never answering): a report that says it
/// was interrupted, exit 1, and the step outputs, not a process killed with nothing written.
#[tokio::test]
async fn sigterm_before_the_wait_and_in_preflight_still_reports() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.toml"),
        "[environments.staging]\nbase_url = \"http://127.0.0.1:9\"\ncluster = \"c\"\nservices = [\"s\"]\n",
    )
    .unwrap();
    let token = dir.path().join("web-identity-token");
    std::fs::write(&token, "not-a-real-token").unwrap();
    let outputs = dir.path().join("outputs");
    for (args, when) in [
        ("-e staging --ecs", "before the wait began"),
        (
            "-e staging --preflight --incident-log-group /afu9/incidents",
            "before the deploy's checks",
        ),
    ] {
        std::fs::write(&outputs, "").unwrap();
        let mut c = aws_cmd(dir.path(), &format!("{args} --format json"));
        c.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &outputs)
            .env("AWS_ENDPOINT_URL", &silent_url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if args.contains("--ecs") {
            // Credentials from a web identity, fetched from an STS that never answers.
            c.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
                .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/deploy");
        }
        let child = c.spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let out = deploy_action_e2e::rig::sigterm(child).await;
        assert_eq!(out.code, 1, "{args}: {out:?}");
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert!(
            v["error"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("interrupted by SIGTERM {when}")),
            "{args}: {v:#}"
        );
        let written = std::fs::read_to_string(&outputs).unwrap();
        assert!(written.contains("exit-code<<"), "{args}: {written}");
    }
}
