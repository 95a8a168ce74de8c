//! "Why it failed": what an engineer gathers by hand after a failed deploy (runbook sections 5 and
//! 8: `aws ecs describe-services`, `aws logs tail`, `describe-alarms`, then the troubleshooting
//! list), done by the tool at the moment it matters. For each failing ECS service: the last stopped
//! tasks with their reasons and exit codes, tasks stuck in PENDING and the events that say why, the
//! target groups' unhealthy targets with their reason codes, and the last log lines of the failed
//! tasks (found through the task definition's `awslogs` options); plus alarms in ALARM. Each finding
//! is classified and mapped to the runbook's hint. Everything is bounded in time, and a call that is
//! denied or fails is noted, never fatal: the run's outcome is already decided.

use std::time::Duration;

use aws_sdk_ecs::types::{DesiredStatus, Task};

use crate::report::Finding;
use crate::secret::redact;

/// Runbook section 8 hints.
pub mod hint {
    /// Tasks cannot be placed.
    pub const CAPACITY: &str = "cluster capacity: `aws ecs describe-clusters` (registered and available CPU/memory, Fargate quotas), placement constraints";
    /// The image cannot be pulled.
    pub const IMAGE_PULL: &str = "ECR image pull: does the image exist in ECR, may the task execution role pull it (ecr:GetAuthorizationToken, ecr:BatchGetImage), is there a route to ECR (NAT or VPC endpoints)?";
    /// Secrets or network at task start.
    pub const INIT: &str = "task start: may the execution role read the secrets (Secrets Manager, SSM), is there a route to them and to ECR (NAT, VPC endpoints), do the security groups allow it?";
    /// Out of memory.
    pub const MEMORY: &str = "resource limits: the container ran out of memory; raise memory in the task definition, or look for a leak";
    /// The essential container exited.
    pub const EXITED: &str = "the application exited: read its logs below; dependencies (is RDS reachable? the GitHub API?) and configuration";
    /// Health checks failing.
    pub const HEALTH: &str = "health checks: does /api/health answer on the container port, are ports 3000-3003 open from the ALB to the tasks (security groups), are the dependencies (RDS, GitHub API) reachable?";
    /// Timeouts.
    pub const TIMEOUT: &str = "security groups and ports: the ALB cannot reach the target (ports 3000-3003 inbound from the ALB), or the health endpoint is too slow";
    /// 5xx and alarms.
    pub const UNSTABLE: &str = "instability: resource limits (CPU/memory too low?), connection pools (DB connections exhausted?), rate limits (GitHub API rate limit reached?)";
}

/// Classifies a stopped task from its stop reason and its containers' exit codes and reasons.
pub fn classify_stopped(
    stopped_reason: &str,
    containers: &[(String, Option<i32>, String)],
) -> (&'static str, &'static str) {
    let all = |needle: &str| {
        stopped_reason.contains(needle) || containers.iter().any(|(_, _, r)| r.contains(needle))
    };
    if all("CannotPullContainerError") || all("pull image") {
        ("image pull failure", hint::IMAGE_PULL)
    } else if all("ResourceInitializationError") || all("unable to retrieve secret") {
        ("secrets or network at task start", hint::INIT)
    } else if all("OutOfMemory") || containers.iter().any(|(_, code, _)| *code == Some(137)) {
        ("out of memory", hint::MEMORY)
    } else if stopped_reason.contains("ELB health checks")
        || stopped_reason.contains("health checks")
    {
        ("failed health checks", hint::HEALTH)
    } else if stopped_reason.contains("Essential container")
        || containers
            .iter()
            .any(|(_, code, _)| code.is_some_and(|c| c != 0))
    {
        ("essential container exited", hint::EXITED)
    } else {
        ("task stopped", hint::EXITED)
    }
}

/// Classifies a service event that explains why tasks do not start, if it does.
pub fn classify_event(message: &str) -> Option<(&'static str, &'static str)> {
    let m = message.to_ascii_lowercase();
    if m.contains("unable to place")
        || m.contains("insufficient")
        || m.contains("no container instance")
        || m.contains("capacity")
    {
        Some(("no capacity to place tasks", hint::CAPACITY))
    } else if m.contains("cannotpullcontainer") {
        Some(("image pull failure", hint::IMAGE_PULL))
    } else if m.contains("resourceinitializationerror") {
        Some(("secrets or network at task start", hint::INIT))
    } else if m.contains("unhealthy") || m.contains("health check") {
        Some(("failed health checks", hint::HEALTH))
    } else {
        None
    }
}

/// The hint for an unhealthy target's reason code.
pub fn classify_target(reason: &str) -> &'static str {
    match reason {
        "Target.Timeout" => hint::TIMEOUT,
        "Target.ResponseCodeMismatch" | "Target.FailedHealthChecks" => hint::HEALTH,
        _ => hint::HEALTH,
    }
}

/// Lines of a log excerpt are cut to this many characters.
pub const MAX_LINE: usize = 300;

fn line(s: &str) -> String {
    let s = redact(s.trim_end());
    if s.chars().count() > MAX_LINE {
        let mut t: String = s.chars().take(MAX_LINE).collect();
        t.push('…');
        t
    } else {
        s
    }
}

/// The clients diagnosis reads from.
pub struct Sources {
    /// ECS (services, stopped tasks, task definitions).
    pub ecs: aws_sdk_ecs::Client,
    /// ELBv2 (target health).
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// CloudWatch Logs (log excerpts).
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudWatch (alarms).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Sources {
    /// Clients from one SDK config.
    pub fn new(conf: &aws_config::SdkConfig) -> Sources {
        Sources {
            ecs: aws_sdk_ecs::Client::new(conf),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(conf),
            logs: aws_sdk_cloudwatchlogs::Client::new(conf),
            cloudwatch: aws_sdk_cloudwatch::Client::new(conf),
        }
    }
}

/// What to look at.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The ECS cluster.
    pub cluster: Option<String>,
    /// The failing services.
    pub services: Vec<String>,
    /// Alarm names (with the prefix, the environment's filter).
    pub alarm_names: Vec<String>,
    /// Alarm-name prefix.
    pub alarm_prefix: Option<String>,
    /// Stopped tasks looked at per service.
    pub stopped_tasks: usize,
    /// Log lines per failed task.
    pub log_lines: usize,
}

/// Gathers the findings, within `budget`. Never fails: a call that fails is a finding of its own.
pub async fn diagnose(src: &Sources, scope: &Scope, budget: Duration) -> Vec<Finding> {
    match tokio::time::timeout(budget, gather(src, scope)).await {
        Ok(f) => f,
        Err(_) => vec![Finding {
            subject: "diagnosis".into(),
            class: "incomplete".into(),
            summary: format!("not finished within {}", humantime::format_duration(budget)),
            hint: "run `aws ecs describe-services` and `aws logs tail` by hand".into(),
            evidence: Vec::new(),
        }],
    }
}

fn denied(subject: &str, what: &str, e: &anyhow::Error) -> Finding {
    Finding {
        subject: subject.to_owned(),
        class: "not diagnosed".into(),
        summary: format!("couldn't {what}: {}", line(&format!("{e:#}"))),
        hint: "give the role read access (ecs:ListTasks, ecs:DescribeTasks, elasticloadbalancing:DescribeTargetHealth, logs:GetLogEvents, cloudwatch:DescribeAlarms) to see why".into(),
        evidence: Vec::new(),
    }
}

async fn gather(src: &Sources, scope: &Scope) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(cluster) = &scope.cluster {
        for svc in &scope.services {
            out.extend(service(src, cluster, svc, scope).await);
        }
    }
    if !scope.alarm_names.is_empty() || scope.alarm_prefix.is_some() {
        match crate::cloudwatch::firing_alarms(
            &src.cloudwatch,
            &scope.alarm_names,
            scope.alarm_prefix.as_deref(),
        )
        .await
        {
            Ok(firing) => out.extend(firing.into_iter().map(|a| Finding {
                subject: format!("alarm {}", a.name),
                class: "alarm in ALARM".into(),
                summary: line(&a.reason),
                hint: hint::UNSTABLE.into(),
                evidence: Vec::new(),
            })),
            Err(e) => out.push(denied("alarms", "describe the alarms", &e)),
        }
    }
    out
}

async fn service(src: &Sources, cluster: &str, svc: &str, scope: &Scope) -> Vec<Finding> {
    let subject = format!("service {svc}");
    let mut out = Vec::new();
    let described = match crate::ecs::describe(&src.ecs, cluster, &[svc.to_owned()]).await {
        Ok(mut v) => v.pop().and_then(Result::ok),
        Err(e) => {
            out.push(denied(&subject, "describe the service", &e));
            None
        }
    };
    if let Some(s) = &described {
        // Events that explain tasks not starting, newest first, once per kind.
        let mut seen = Vec::new();
        for e in s.events.iter().take(20) {
            if let Some((class, hint)) = classify_event(&e.message)
                && !seen.contains(&class)
            {
                seen.push(class);
                out.push(Finding {
                    subject: subject.clone(),
                    class: class.into(),
                    summary: line(&e.message),
                    hint: hint.into(),
                    evidence: vec![format!(
                        "{} pending of {} desired",
                        s.pending_count, s.desired_count
                    )],
                });
            }
        }
    }
    out.extend(stopped(src, cluster, svc, scope).await);
    if let Some(s) = &described {
        for tg in &s.target_groups {
            out.extend(targets(src, &subject, tg).await);
        }
    }
    out
}

/// The service's last stopped tasks, a finding per kind of stop; the first task of a kind carries
/// the evidence (its containers' exits and last log lines), the rest are counted.
async fn stopped(src: &Sources, cluster: &str, svc: &str, scope: &Scope) -> Vec<Finding> {
    let (cluster, svc) = crate::ecs::locate(cluster, svc);
    let subject = format!("service {svc}");
    let tasks = match stopped_tasks(src, cluster, svc, scope.stopped_tasks.max(1)).await {
        Ok(t) => t,
        Err((what, e)) => return vec![denied(&subject, what, &e)],
    };
    let mut out: Vec<Finding> = Vec::new();
    for t in &tasks {
        let id = t
            .task_arn()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or("?")
            .to_owned();
        let reason = t.stopped_reason().unwrap_or("no stop reason");
        let containers = containers(t);
        let (class, hint) = classify_stopped(reason, &containers);
        let mut evidence = container_exits(&containers);
        if let Some(td) = t.task_definition_arn() {
            evidence.extend(log_excerpt(src, td, &id, scope.log_lines).await);
        }
        if let Some(f) = out.iter_mut().find(|f| f.class == class) {
            f.evidence.push(format!("also task {id}: {}", line(reason)));
            continue;
        }
        out.push(Finding {
            subject: subject.clone(),
            class: class.into(),
            summary: line(&format!("task {id} stopped: {reason}")),
            hint: hint.into(),
            evidence,
        });
    }
    out
}

/// The service's last `n` stopped tasks, or what could not be done and why.
async fn stopped_tasks(
    src: &Sources,
    cluster: &str,
    svc: &str,
    n: usize,
) -> Result<Vec<Task>, (&'static str, anyhow::Error)> {
    let list = src
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(svc)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .map_err(|e| ("list stopped tasks", crate::aws::error("ListTasks", &e)))?;
    let arns: Vec<String> = list.task_arns().iter().take(n).cloned().collect();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let described = src
        .ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .map_err(|e| {
            (
                "describe stopped tasks",
                crate::aws::error("DescribeTasks", &e),
            )
        })?;
    Ok(described.tasks().to_vec())
}

/// A task's containers: (name, exit code, reason).
fn containers(t: &Task) -> Vec<(String, Option<i32>, String)> {
    t.containers()
        .iter()
        .map(|c| {
            (
                c.name().unwrap_or("?").to_owned(),
                c.exit_code(),
                c.reason().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A line per container: `container web: exit 137 (OutOfMemoryError)`.
fn container_exits(containers: &[(String, Option<i32>, String)]) -> Vec<String> {
    containers
        .iter()
        .map(|(n, code, r)| {
            line(&format!(
                "container {n}: exit {}{}",
                code.map_or_else(|| "-".into(), |c| c.to_string()),
                if r.is_empty() {
                    String::new()
                } else {
                    format!(" ({r})")
                }
            ))
        })
        .collect()
}

/// The last `n` log lines of task `task_id` for each container with `awslogs` logging.
async fn log_excerpt(src: &Sources, td: &str, task_id: &str, n: usize) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let Ok(d) = src
        .ecs
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
    else {
        return vec!["(couldn't describe the task definition to find its logs)".into()];
    };
    let mut out = Vec::new();
    for c in d
        .task_definition()
        .map(|t| t.container_definitions())
        .unwrap_or_default()
    {
        let Some(lc) = c.log_configuration() else {
            continue;
        };
        if lc.log_driver().as_str() != "awslogs" {
            continue;
        }
        let opts = lc.options();
        let (Some(group), Some(prefix)) = (
            opts.and_then(|o| o.get("awslogs-group")),
            opts.and_then(|o| o.get("awslogs-stream-prefix")),
        ) else {
            continue;
        };
        let name = c.name().unwrap_or_default();
        let stream = format!("{prefix}/{name}/{task_id}");
        match src
            .logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(&stream)
            .start_from_head(false)
            .limit(i32::try_from(n).unwrap_or(20))
            .send()
            .await
        {
            Ok(ev) => {
                out.push(format!("last log lines of {group} {stream}:"));
                out.extend(ev.events().iter().filter_map(|e| e.message()).map(line));
            }
            Err(e) => out.push(format!(
                "(couldn't read {group} {stream}: {})",
                line(&crate::http::error_chain(&e))
            )),
        }
    }
    out
}

async fn targets(src: &Sources, subject: &str, tg: &str) -> Vec<Finding> {
    let health = match src
        .elb
        .describe_target_health()
        .target_group_arn(tg)
        .send()
        .await
    {
        Ok(h) => h,
        Err(e) => {
            return vec![denied(
                subject,
                "describe target health",
                &crate::aws::error("DescribeTargetHealth", &e),
            )];
        }
    };
    let tg_name = tg.rsplit(':').next().unwrap_or(tg);
    let mut by_reason: Vec<Finding> = Vec::new();
    for d in health.target_health_descriptions() {
        let Some(h) = d.target_health() else { continue };
        let state = h.state().map(|s| s.as_str()).unwrap_or("unknown");
        if matches!(state, "healthy" | "initial" | "draining" | "unused") {
            continue;
        }
        let reason = h
            .reason()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|| "no reason".into());
        let target = d
            .target()
            .map(|t| {
                format!(
                    "{}:{}",
                    t.id().unwrap_or("?"),
                    t.port().map_or_else(|| "-".into(), |p| p.to_string())
                )
            })
            .unwrap_or_else(|| "?".into());
        let ev = line(&format!(
            "{target} {state}: {}",
            h.description().unwrap_or_default()
        ));
        if let Some(f) = by_reason.iter_mut().find(|f| f.class.ends_with(&reason)) {
            f.evidence.push(ev);
            continue;
        }
        by_reason.push(Finding {
            subject: subject.to_owned(),
            class: format!("unhealthy targets: {reason}"),
            summary: format!(
                "target group {tg_name}: {}",
                h.description().map_or_else(|| reason.clone(), line)
            ),
            hint: classify_target(&reason).into(),
            evidence: vec![ev],
        });
    }
    by_reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, code: Option<i32>, reason: &str) -> (String, Option<i32>, String) {
        (name.into(), code, reason.into())
    }

    #[test]
    fn stopped_tasks_are_classified_like_the_runbook() {
        assert_eq!(
            classify_stopped(
                "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
                &[]
            )
            .0,
            "image pull failure"
        );
        assert_eq!(
            classify_stopped(
                "ResourceInitializationError: unable to pull secrets or registry auth",
                &[]
            )
            .0,
            "secrets or network at task start"
        );
        assert_eq!(
            classify_stopped(
                "Essential container in task exited",
                &[c(
                    "web",
                    Some(137),
                    "OutOfMemoryError: Container killed due to memory usage"
                )]
            )
            .0,
            "out of memory"
        );
        assert_eq!(
            classify_stopped(
                "Essential container in task exited",
                &[c("web", Some(137), "")]
            )
            .0,
            "out of memory"
        );
        assert_eq!(
            classify_stopped(
                "Essential container in task exited",
                &[c("web", Some(1), "")]
            )
            .0,
            "essential container exited"
        );
        assert_eq!(
            classify_stopped(
                "Task failed ELB health checks in (target-group arn:aws:...)",
                &[c("web", None, "")]
            )
            .0,
            "failed health checks"
        );
        assert_eq!(
            classify_stopped(
                "Scaling activity initiated by deployment",
                &[c("web", Some(0), "")]
            )
            .0,
            "task stopped"
        );
    }

    #[test]
    fn events_explain_pending_tasks() {
        assert_eq!(
            classify_event("(service web) was unable to place a task because no container instance met all of its requirements. The closest matching container-instance has insufficient memory available.").unwrap().0,
            "no capacity to place tasks"
        );
        assert!(classify_event("(service web) has reached a steady state.").is_none());
        assert_eq!(classify_target("Target.Timeout"), hint::TIMEOUT);
    }

    #[test]
    fn log_lines_are_redacted_and_capped() {
        crate::secret::register("diag-secret-value-1234");
        let l = line(&format!("token=diag-secret-value-1234 {}", "x".repeat(500)));
        assert!(l.starts_with("token=*** "));
        assert_eq!(l.chars().count(), MAX_LINE + 1);
    }
}
