//! `health-check`: waits, with a deadline, until an environment is healthy. Polls every HTTP
//! health check (runbook 4.1, or `[health]` of deploy.toml) and optionally each ECS service's
//! rollout and the CloudWatch alarms, all in rounds, until every probe has passed N times in a row
//! or the deadline passes. Then the optional bake window, the ALB 5xx gate and the Availability
//! metric. Attempts are counted and reported, never used as the limit.

mod kpi;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deploy_core::aws::AwsArgs;
use deploy_core::checks::{self, Attempt, Policy, Prepared, Verdict};
use deploy_core::cli::{CommonArgs, Resolved, parse_duration};
use deploy_core::config::{EMBEDDED_HEALTH, StatusSet};
use deploy_core::ecs::{self, Rollout};
use deploy_core::http::{HttpClient, HttpOptions};
use deploy_core::retry::{Backoff, Deadline, Streak};
use deploy_core::{Check, Exit, Report, Status, exit};

/// Wait, with a deadline, until an environment is healthy.
#[derive(Debug, clap::Parser)]
#[command(name = "health-check", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub publish: deploy_core::github::PublishArgs,

    /// Deadline for the whole wait (default: health.wait, else 300s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Waiting")]
    pub wait: Option<Duration>,
    /// Pause between polling rounds; backoff with jitter grows from it while failing
    /// (default: health.interval, else 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Waiting")]
    pub interval: Option<Duration>,
    /// Passes in a row every probe needs (default: health.success_threshold, else 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100), help_heading = "Waiting")]
    pub success_threshold: Option<u32>,
    /// Wait this long before the first poll, inside the deadline (default: health.stabilize, else 0s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Waiting")]
    pub stabilize: Option<Duration>,
    /// Timeout of one request (default: health.request_timeout, else 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Waiting")]
    pub request_timeout: Option<Duration>,
    /// Statuses that mean "not yet" and are retried, replacing 408,429,502-504 (add 404 for warm-up).
    #[arg(
        long,
        value_name = "STATUS,...",
        value_delimiter = ',',
        help_heading = "Waiting"
    )]
    pub retry_on: Vec<String>,
    /// Retry 401/403 too (normally a wrong token fails at once).
    #[arg(long, help_heading = "Waiting")]
    pub retry_unauthorized: bool,

    /// The commit the health body must report, in N consecutive responses (catches traffic still
    /// reaching old tasks).
    #[arg(
        long,
        value_name = "SHA",
        env = "DEPLOY_EXPECT_VERSION",
        help_heading = "Version"
    )]
    pub expect_version: Option<String>,
    /// Field of the health body carrying the commit (default: health.version_field, else commitSha).
    #[arg(long, value_name = "FIELD", help_heading = "Version")]
    pub version_field: Option<String>,

    /// Also verify each ECS service of the environment: PRIMARY deployment COMPLETED, all tasks
    /// running, one deployment left, the expected task definition.
    #[arg(long, help_heading = "ECS")]
    pub ecs: bool,
    /// ECS cluster (default: the environment's cluster).
    #[arg(long, value_name = "NAME", help_heading = "ECS")]
    pub cluster: Option<String>,
    /// ECS service to verify; repeat (default: the environment's services).
    #[arg(long = "service", value_name = "NAME", help_heading = "ECS")]
    pub services: Vec<String>,
    /// Task definition a service must run: `[SERVICE=]FAMILY:REV` or an ARN; repeat. Without
    /// `SERVICE=` it applies to every service.
    #[arg(
        long = "expect-task-definition",
        value_name = "[SERVICE=]TD",
        help_heading = "ECS"
    )]
    pub expect_task_definition: Vec<String>,

    /// CloudWatch alarm that must not be in ALARM during the wait; repeat (adds to the config's).
    #[arg(long = "alarm", value_name = "NAME", help_heading = "CloudWatch")]
    pub alarms: Vec<String>,
    /// Alarms with this name prefix must not be in ALARM (default: the environment's alarms.prefix).
    #[arg(long, value_name = "PREFIX", help_heading = "CloudWatch")]
    pub alarm_prefix: Option<String>,
    /// After success, keep watching the alarms this long (default: health.bake, else 0s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "CloudWatch")]
    pub bake: Option<Duration>,
    /// Fail when the ALB's HTTPCode_Target_5XX_Count sum over the window is above N.
    #[arg(
        long = "alb-5xx-threshold",
        value_name = "N",
        help_heading = "CloudWatch"
    )]
    pub alb_5xx_threshold: Option<u64>,
    /// Window of the ALB 5xx gate (default: health.alb_5xx_window, else 5m).
    #[arg(long = "alb-5xx-window", value_name = "DURATION", value_parser = parse_duration, help_heading = "CloudWatch")]
    pub alb_5xx_window: Option<Duration>,
    /// ALB dimension value `app/NAME/ID` (default: the environment's load_balancer).
    #[arg(long, value_name = "app/NAME/ID", help_heading = "CloudWatch")]
    pub load_balancer: Option<String>,
    /// Put the Availability metric (1 healthy, 0 not) with dimension Environment (runbook 7).
    #[arg(long, help_heading = "CloudWatch")]
    pub emit_metric: bool,
    /// Namespace of the Availability metric (default: metrics.namespace, else AFU9/Factory).
    #[arg(long, value_name = "NAMESPACE", help_heading = "CloudWatch")]
    pub metric_namespace: Option<String>,

    /// Report the runbook's KPIs over this window instead of checking health: uptime from the
    /// Availability metric, incidents and MTTR from rollback's incident records (e.g. 30d).
    #[arg(long, value_name = "WINDOW", value_parser = parse_duration, help_heading = "KPIs")]
    pub kpi: Option<Duration>,
    /// Lowest acceptable uptime in percent for --kpi (default: kpi.uptime_target).
    #[arg(long, value_name = "PERCENT", requires = "kpi", help_heading = "KPIs")]
    pub uptime_target: Option<f64>,
    /// Longest acceptable average MTTR for --kpi (default: kpi.mttr_target).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "kpi", help_heading = "KPIs")]
    pub mttr_target: Option<Duration>,
    /// CloudWatch Logs group of rollback's incident records (default: rollback.incident_log_group).
    #[arg(long, value_name = "GROUP", requires = "kpi", help_heading = "KPIs")]
    pub incident_log_group: Option<String>,

    /// On failure, skip gathering why (stopped tasks, pending tasks and events, target health, log
    /// lines, alarms): by default it runs on every failure with AWS in use.
    #[arg(long, help_heading = "Diagnosis")]
    pub no_diagnose: bool,

    /// When healthy, tag each service's running task definition revision as verified
    /// (`deploy-action:verified`, `deploy-action:sha`, `deploy-action:run`): what rollback
    /// chooses from. Needs --ecs.
    #[arg(long, requires = "ecs", help_heading = "ECS")]
    pub mark_verified: bool,
}

/// What a probe looks at.
#[derive(Debug, Clone)]
enum Kind {
    Http(Box<Prepared>),
    Ecs {
        service: String,
        expected: Option<String>,
    },
    Alarms,
}

#[derive(Debug)]
struct Probe {
    name: String,
    kind: Kind,
    attempts: u32,
    streak: Streak,
    last: Option<Attempt>,
    extra: Vec<(String, String)>,
    /// The probe's body has carried the version field: from then on it must always.
    carries_version: bool,
}

/// Everything a round needs.
struct Ctx {
    http: HttpClient,
    policy: Arc<Policy>,
    ecs: Option<(deploy_core::aws_sdk_ecs::Client, String)>,
    cloudwatch: Option<deploy_core::aws_sdk_cloudwatch::Client>,
    alarm_names: Vec<String>,
    alarm_prefix: Option<String>,
}

fn attempt_of(verdict: Verdict) -> Attempt {
    Attempt {
        verdict,
        status: None,
        latency: Duration::ZERO,
        details: Vec::new(),
        version: None,
    }
}

/// One polling round over every probe, HTTP and AWS concurrently. AWS errors end the run (exit 3):
/// the SDK already retried throttling and transient faults.
async fn round(ctx: &Ctx, probes: &[Probe], deadline: Deadline) -> anyhow::Result<Vec<Attempt>> {
    let http = async {
        let mut set = tokio::task::JoinSet::new();
        for (i, p) in probes.iter().enumerate() {
            if let Kind::Http(check) = &p.kind {
                let (client, policy, check) = (ctx.http.clone(), ctx.policy.clone(), check.clone());
                let cap = deadline.remaining();
                set.spawn(async move {
                    (
                        i,
                        checks::attempt(&client, &check, &policy, Some(cap)).await,
                    )
                });
            }
        }
        let mut out = BTreeMap::new();
        while let Some(r) = set.join_next().await {
            let (i, a) = r?;
            out.insert(i, a);
        }
        anyhow::Ok(out)
    };
    let aws = async {
        let mut out = BTreeMap::new();
        if let Some((client, cluster)) = &ctx.ecs {
            let wanted: Vec<(usize, &String, &Option<String>)> = probes
                .iter()
                .enumerate()
                .filter_map(|(i, p)| match &p.kind {
                    Kind::Ecs { service, expected } => Some((i, service, expected)),
                    _ => None,
                })
                .collect();
            if !wanted.is_empty() {
                let names: Vec<String> = wanted.iter().map(|(_, s, _)| (*s).clone()).collect();
                let found = ecs::describe(client, cluster, &names).await?;
                for ((i, _, expected), svc) in wanted.into_iter().zip(found) {
                    let mut a = match svc {
                        Err(reason) => attempt_of(Verdict::Fatal { reason }),
                        Ok(svc) => {
                            let mut a = attempt_of(match ecs::judge(&svc, expected.as_deref()) {
                                Rollout::Completed => Verdict::Pass,
                                Rollout::InProgress(reason) => Verdict::Retry {
                                    reason,
                                    after: None,
                                },
                                Rollout::Failed(reason) => Verdict::Fatal { reason },
                            });
                            if let Some(p) = svc.deployments.iter().find(|d| d.status == "PRIMARY")
                            {
                                a.details.push((
                                    "primary".into(),
                                    format!(
                                        "{} {}",
                                        ecs::family_revision(&p.task_definition),
                                        p.rollout_state.as_deref().unwrap_or("(no rollout state)")
                                    ),
                                ));
                            }
                            if !a.verdict.passed() {
                                for e in svc.events.iter().take(5) {
                                    a.details.push(("event".into(), e.message.clone()));
                                }
                            }
                            a
                        }
                    };
                    a.details.dedup();
                    out.insert(i, a);
                }
            }
        }
        if let Some(cw) = &ctx.cloudwatch
            && let Some(i) = probes.iter().position(|p| matches!(p.kind, Kind::Alarms))
        {
            let firing = deploy_core::cloudwatch::firing_alarms(
                cw,
                &ctx.alarm_names,
                ctx.alarm_prefix.as_deref(),
            )
            .await?;
            let mut a = attempt_of(if firing.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fatal {
                    reason: deploy_core::cloudwatch::gate_reason(&firing),
                }
            });
            a.details = firing.into_iter().map(|f| (f.name, f.reason)).collect();
            out.insert(i, a);
        }
        anyhow::Ok(out)
    };
    let (http, aws) = tokio::join!(http, aws);
    let (mut http, mut aws) = (http?, aws?);
    Ok((0..probes.len())
        .map(|i| {
            http.remove(&i)
                .or_else(|| aws.remove(&i))
                .unwrap_or_else(|| {
                    attempt_of(Verdict::Fatal {
                        reason: "probe did not run".into(),
                    })
                })
        })
        .collect())
}

enum Ended {
    Healthy,
    Fatal,
    Deadline,
    Interrupted(&'static str),
}

fn retry_after(attempts: &[Attempt]) -> Duration {
    attempts
        .iter()
        .filter_map(|a| match &a.verdict {
            Verdict::Retry { after, .. } => *after,
            _ => None,
        })
        .max()
        .unwrap_or_default()
}

fn expected_tds(items: &[String]) -> anyhow::Result<(Option<String>, BTreeMap<String, String>)> {
    let mut all = None;
    let mut per = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((svc, td)) if !svc.is_empty() && !td.is_empty() => {
                per.insert(svc.to_owned(), td.to_owned());
            }
            Some(_) => {
                return Err(exit::usage(format!(
                    "--expect-task-definition {item:?}: write SERVICE=FAMILY:REV or FAMILY:REV"
                )));
            }
            None => all = Some(item.clone()),
        }
    }
    Ok((all, per))
}

fn plan_probes(
    args: &Args,
    r: &Resolved,
    http: Vec<Prepared>,
    threshold: u32,
) -> anyhow::Result<(Vec<Probe>, Option<String>, Vec<String>)> {
    let probe = |name: String, kind: Kind| Probe {
        name,
        kind,
        attempts: 0,
        streak: Streak::new(threshold),
        last: None,
        extra: Vec::new(),
        carries_version: false,
    };
    let mut probes: Vec<Probe> = http
        .into_iter()
        .map(|p| probe(p.spec.name.clone(), Kind::Http(Box::new(p))))
        .collect();
    let env = r.env();
    let mut cluster = None;
    let mut services = Vec::new();
    if args.ecs {
        cluster = args.cluster.clone().or_else(|| {
            env.and_then(|e| e.cluster.as_ref())
                .map(|c| c.expose().to_owned())
        });
        if cluster.is_none() {
            return Err(exit::usage(
                "--ecs needs a cluster: pass --cluster or choose an environment with a cluster",
            ));
        }
        services = if args.services.is_empty() {
            env.map(|e| e.services.iter().map(|s| s.expose().to_owned()).collect())
                .unwrap_or_default()
        } else {
            args.services.clone()
        };
        if services.is_empty() {
            return Err(exit::usage(
                "--ecs needs services: pass --service or list services in the environment",
            ));
        }
        let (all, per) = expected_tds(&args.expect_task_definition)?;
        for svc in per.keys() {
            if !services.contains(svc) {
                return Err(exit::usage(format!(
                    "--expect-task-definition names service {svc:?}, which is not verified (services: {})",
                    services.join(", ")
                )));
            }
        }
        for s in &services {
            let expected = per.get(s).cloned().or_else(|| all.clone());
            probes.push(probe(
                format!("ECS service {s}"),
                Kind::Ecs {
                    service: s.clone(),
                    expected,
                },
            ));
        }
    } else if !args.expect_task_definition.is_empty() || !args.services.is_empty() {
        return Err(exit::usage(
            "--service and --expect-task-definition need --ecs",
        ));
    }
    Ok((probes, cluster, services))
}

/// Waits until the environment is healthy (or the deadline passes) and returns the report, without
/// writing it anywhere: `run` emits it; rollback verifies with it.
pub async fn check(args: &Args) -> anyhow::Result<Report> {
    let started = Instant::now();
    let r = args.common.resolve(EMBEDDED_HEALTH, CONFIG_READS)?;
    if let Some(window) = args.kpi {
        return kpi::report(args, window, &r).await;
    }
    let h = &r.config.health;
    let wait = args
        .wait
        .or(h.wait.map(|d| d.0))
        .unwrap_or(Duration::from_secs(300));
    let interval = args
        .interval
        .or(h.interval.map(|d| d.0))
        .unwrap_or(Duration::from_secs(5));
    let threshold = args
        .success_threshold
        .or(h.success_threshold)
        .unwrap_or(2)
        .max(1);
    let stabilize = args
        .stabilize
        .or(h.stabilize.map(|d| d.0))
        .unwrap_or_default();
    let bake = args.bake.or(h.bake.map(|d| d.0)).unwrap_or_default();
    if stabilize >= wait {
        return Err(exit::usage(format!(
            "--stabilize ({}) must be shorter than --wait ({})",
            humantime::format_duration(stabilize),
            humantime::format_duration(wait)
        )));
    }
    let retry_statuses = if args.retry_on.is_empty() {
        h.retry_on.clone().unwrap_or_else(StatusSet::default_retry)
    } else {
        StatusSet(
            args.retry_on
                .iter()
                .map(|s| {
                    StatusSet::parse_one(s).map_err(|e| exit::usage(format!("--retry-on: {e}")))
                })
                .collect::<anyhow::Result<_>>()?,
        )
    };
    let version_field = args
        .version_field
        .clone()
        .or_else(|| h.version_field.clone())
        .unwrap_or_else(|| "commitSha".into());
    let policy = Arc::new(Policy {
        retry_statuses,
        retry_unauthorized: args.retry_unauthorized,
        expect_version: args
            .expect_version
            .clone()
            .map(|v| (version_field.clone(), v)),
        request_timeout: args
            .request_timeout
            .or(h.request_timeout.map(|d| d.0))
            .unwrap_or(Duration::from_secs(10)),
    });

    let http_checks = match &r.base_url {
        Some(base) => checks::prepare(&h.checks, Some(base))?,
        None if args.ecs => Vec::new(),
        None => {
            return Err(exit::usage(
                "no base URL: pass --base-url, or choose an environment with a base_url (or use --ecs alone)",
            ));
        }
    };
    let (mut probes, cluster, services) = plan_probes(args, &r, http_checks, threshold)?;

    // CloudWatch gates come from flags and the environment's (else the top-level) alarm filter.
    let env = r.env();
    let filter = env
        .and_then(|e| e.alarms.clone())
        .unwrap_or_else(|| r.config.alarms.clone());
    let mut alarm_names = filter.names.clone();
    alarm_names.extend(args.alarms.iter().cloned());
    let alarm_prefix = args.alarm_prefix.clone().or(filter.prefix.clone());
    let alarms_on = !alarm_names.is_empty() || alarm_prefix.is_some();
    if alarms_on {
        probes.push(Probe {
            name: "CloudWatch alarms".into(),
            kind: Kind::Alarms,
            attempts: 0,
            streak: Streak::new(threshold),
            last: None,
            extra: Vec::new(),
            carries_version: false,
        });
    }
    let alb_threshold = args.alb_5xx_threshold.or(h.alb_5xx_threshold);
    let load_balancer = args.load_balancer.clone().or_else(|| {
        env.and_then(|e| e.load_balancer.as_ref())
            .map(|l| l.expose().to_owned())
    });
    if alb_threshold.is_some() && load_balancer.is_none() {
        return Err(exit::usage(
            "the ALB 5xx gate needs a load balancer: pass --load-balancer or set the environment's load_balancer",
        ));
    }
    if probes.is_empty() {
        return Err(exit::usage(format!(
            "{}: no health checks to run",
            r.config.source
        )));
    }

    let needs_cw = alarms_on || alb_threshold.is_some() || args.emit_metric;
    let sdk = if args.ecs || needs_cw {
        let region = env
            .and_then(|e| e.region.as_deref())
            .or(r.config.defaults.region.as_deref());
        Some(deploy_core::aws::sdk_config(&args.aws, region).await?)
    } else {
        None
    };
    let ctx = Ctx {
        http: HttpClient::new("health-check", HttpOptions::default())?,
        policy,
        ecs: match (&sdk, cluster) {
            (Some(c), Some(cl)) => Some((deploy_core::aws::ecs(c), cl)),
            _ => None,
        },
        cloudwatch: sdk
            .as_ref()
            .filter(|_| needs_cw)
            .map(deploy_core::aws::cloudwatch),
        alarm_names,
        alarm_prefix,
    };

    let deadline = Deadline::after(wait);
    let backoff = Backoff {
        initial: interval,
        max: (interval * 4).max(Duration::from_secs(1)),
        factor: 2.0,
        jitter: true,
    };
    let steady = Backoff {
        factor: 1.0,
        max: interval,
        ..backoff
    };
    let mut interrupt = std::pin::pin!(deploy_core::cli::interrupted());
    let mut rounds = 0u32;
    let mut failing_rounds = 0u32;
    let mut ended = None;
    if !stabilize.is_zero() {
        tracing::info!(
            "waiting {} for the services to stabilise",
            humantime::format_duration(stabilize)
        );
        tokio::select! {
            () = tokio::time::sleep(stabilize) => {}
            s = &mut interrupt => ended = Some(Ended::Interrupted(s)),
        }
    }
    let ended = match ended {
        Some(e) => e,
        None => loop {
            let attempts = tokio::select! {
                // AWS calls have no deadline of their own: bound the whole round.
                r = tokio::time::timeout(deadline.remaining() + ctx.policy.request_timeout, round(&ctx, &probes, deadline)) => match r {
                    Ok(r) => r?,
                    Err(_) => return Err(exit::dependency(format!(
                        "a polling round did not finish within the deadline ({}) plus one request timeout",
                        humantime::format_duration(wait)
                    ))),
                },
                s = &mut interrupt => break Ended::Interrupted(s),
            };
            rounds += 1;
            let all_passed = attempts.iter().all(|a| a.verdict.passed());
            let wait_hint = retry_after(&attempts);
            let mut fatal = false;
            for (p, mut a) in probes.iter_mut().zip(attempts) {
                p.attempts += 1;
                if let Some((field, _)) = &ctx.policy.expect_version {
                    p.carries_version |= a.version.is_some();
                    if p.carries_version && a.version.is_none() && a.verdict.passed() {
                        a.verdict = Verdict::Retry {
                            reason: format!("the response has no {field}: an older task?"),
                            after: None,
                        };
                    }
                }
                p.streak.record(a.verdict.passed());
                fatal |= matches!(a.verdict, Verdict::Fatal { .. });
                p.last = Some(a);
            }
            if fatal {
                break Ended::Fatal;
            }
            if probes.iter().all(|p| p.streak.met()) {
                break Ended::Healthy;
            }
            if deadline.expired() {
                break Ended::Deadline;
            }
            let pause = if all_passed {
                failing_rounds = 0;
                steady.delay(0)
            } else {
                failing_rounds += 1;
                backoff.delay(failing_rounds - 1)
            };
            let pause = pause.max(wait_hint).min(deadline.remaining());
            tracing::info!(
                "round {rounds}: {} of {} probes passing; next poll in {} ms",
                probes
                    .iter()
                    .filter(|p| p.last.as_ref().is_some_and(|a| a.verdict.passed()))
                    .count(),
                probes.len(),
                pause.as_millis()
            );
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                s = &mut interrupt => break Ended::Interrupted(s),
            }
        },
    };

    let mut healthy = matches!(ended, Ended::Healthy);
    let mut gates: Vec<Check> = Vec::new();
    let mut interrupted = match ended {
        Ended::Interrupted(s) => Some(s),
        _ => None,
    };
    if !bake.is_zero() && !alarms_on {
        tracing::warn!(
            "--bake has no alarms to watch: set --alarm, --alarm-prefix or the environment's alarms"
        );
    }
    if healthy && !bake.is_zero() && alarms_on {
        let bake_start = Instant::now();
        let bake_deadline = Deadline::after(bake);
        let mut check = Check::new(
            format!("Bake ({})", humantime::format_duration(bake)),
            Status::Passed,
        );
        while !bake_deadline.expired() {
            tokio::select! {
                () = tokio::time::sleep(interval.min(bake_deadline.remaining())) => {}
                s = &mut interrupt => { interrupted = Some(s); break; }
            }
            if let Some(cw) = &ctx.cloudwatch {
                let firing = deploy_core::cloudwatch::firing_alarms(
                    cw,
                    &ctx.alarm_names,
                    ctx.alarm_prefix.as_deref(),
                )
                .await?;
                if !firing.is_empty() {
                    check = Check::new(check.name.clone(), Status::Failed).reason(format!(
                        "during the bake window: {}",
                        deploy_core::cloudwatch::gate_reason(&firing)
                    ));
                    for f in firing {
                        check = check.detail(f.name, f.reason);
                    }
                    healthy = false;
                    break;
                }
            }
        }
        if interrupted.is_some() && check.status == Status::Passed {
            check = Check::new(check.name.clone(), Status::Skipped).reason("interrupted");
        }
        gates.push(check.took(bake_start.elapsed()));
    }
    if let (true, Some(limit), Some(lb), Some(cw)) = (
        healthy && interrupted.is_none(),
        alb_threshold,
        &load_balancer,
        &ctx.cloudwatch,
    ) {
        let window = args
            .alb_5xx_window
            .or(h.alb_5xx_window.map(|d| d.0))
            .unwrap_or(Duration::from_secs(300));
        let sum = deploy_core::cloudwatch::alb_5xx_sum(cw, lb, window).await?;
        let name = format!("ALB 5xx (last {})", humantime::format_duration(window));
        let c = if sum <= limit as f64 {
            Check::new(name, Status::Passed)
                .reason(format!("{sum} target 5xx responses, threshold {limit}"))
        } else {
            healthy = false;
            Check::new(name, Status::Failed).reason(format!(
                "{sum} target 5xx responses on {lb}, more than the threshold {limit}"
            ))
        };
        gates.push(c);
    }

    // The services to diagnose if the run fails: those that failed, else (an HTTP failure) all.
    let failing: Vec<String> = probes
        .iter()
        .filter_map(|p| match (&p.kind, &p.last) {
            (Kind::Ecs { service, .. }, Some(last)) if !last.verdict.passed() => {
                Some(service.clone())
            }
            _ => None,
        })
        .collect();
    let diagnose_services = if failing.is_empty() {
        services.clone()
    } else {
        failing
    };

    let target = r.label();
    let mut report = Report::new("health-check", env!("CARGO_PKG_VERSION"), target);
    let took = started.elapsed();
    let mut versions = Vec::new();
    for p in &probes {
        let mut c = checks::report_check(&p.name, p.attempts, took, p.last.as_ref());
        if let Some(v) = p.last.as_ref().and_then(|a| a.version.clone()) {
            versions.push(v);
        }
        if c.status == Status::Passed && !p.streak.met() {
            match ended {
                // Out of time before it held long enough: not healthy.
                Ended::Deadline => {
                    c.status = Status::Failed;
                    c.reason = Some(format!(
                        "passed {} of the {threshold} times in a row needed before the deadline",
                        p.streak.current()
                    ));
                }
                // Another probe ended the run: this one was passing, say so.
                _ => {
                    c.reason = Some(format!(
                        "{}; {} of {threshold} passes in a row when the run ended",
                        c.reason.unwrap_or_default(),
                        p.streak.current()
                    ));
                }
            }
        }
        if c.status == Status::Failed && matches!(ended, Ended::Deadline) {
            c.reason = Some(format!(
                "{} (deadline of {} passed after {} attempts)",
                c.reason.unwrap_or_default(),
                humantime::format_duration(wait),
                p.attempts
            ));
        }
        if let Some(s) = interrupted
            && p.attempts == 0
        {
            c = Check::new(&p.name, Status::Skipped).reason(format!("not run: interrupted by {s}"));
        }
        for (k, v) in &p.extra {
            c = c.detail(k.clone(), v.clone());
        }
        report.push(c);
    }
    if let (Some((field, want)), true) = (
        &args.expect_version.as_ref().map(|v| (&version_field, v)),
        healthy,
    ) {
        if versions.is_empty() {
            healthy = false;
            gates.push(
                Check::new("Deployed version", Status::Failed).reason(format!(
                    "no health response carried {field}, so {want} could not be confirmed"
                )),
            );
        } else {
            gates.push(
                Check::new("Deployed version", Status::Passed).reason(format!(
                    "{field} is {want} in {threshold} consecutive responses"
                )),
            );
        }
    }
    for g in gates {
        report.push(g);
    }
    healthy &= interrupted.is_none();
    if let Some(s) = interrupted {
        report.fail_with(
            Exit::Failed,
            format!("interrupted by {s} while waiting: partial report"),
        );
    }
    // A cancelled run says nothing about availability: no metric then.
    if args.emit_metric && interrupted.is_none() {
        let env_name = r.environment.clone().unwrap_or_else(|| "default".into());
        let namespace = args
            .metric_namespace
            .clone()
            .unwrap_or_else(|| r.config.metrics.namespace.clone());
        if let Some(cw) = &ctx.cloudwatch {
            match deploy_core::cloudwatch::put_availability(cw, &namespace, &env_name, healthy)
                .await
            {
                Ok(()) => {
                    report.audit(
                        "cloudwatch:PutMetricData",
                        &format!("{namespace}/Availability Environment={env_name}"),
                        "done",
                        Some(format!("value {}", u8::from(healthy))),
                    );
                    report.output("availability", u8::from(healthy));
                }
                Err(e) => {
                    report.audit(
                        "cloudwatch:PutMetricData",
                        &namespace,
                        "failed",
                        Some(format!("{e:#}")),
                    );
                    report.fail_with(Exit::Dependency, format!("{e:#}"));
                }
            }
        }
    }
    if args.mark_verified
        && let Some((client, cluster)) = &ctx.ecs
    {
        let marked = healthy && report.outcome == Exit::Passed;
        if marked {
            mark_verified(
                client,
                cluster,
                &services,
                args.expect_version.as_deref(),
                &mut report,
            )
            .await;
        }
        report.output("verified", marked && report.outcome == Exit::Passed);
    }
    if !healthy
        && interrupted.is_none()
        && !args.no_diagnose
        && let Some(sdk) = &sdk
    {
        let scope = deploy_core::diagnose::Scope {
            cluster: ctx.ecs.as_ref().map(|(_, c)| c.clone()),
            services: diagnose_services,
            alarm_names: if alarms_on {
                ctx.alarm_names.clone()
            } else {
                Vec::new()
            },
            alarm_prefix: if alarms_on {
                ctx.alarm_prefix.clone()
            } else {
                None
            },
            stopped_tasks: 5,
            log_lines: 20,
        };
        let src = deploy_core::diagnose::Sources::new(sdk);
        report.diagnosis =
            deploy_core::diagnose::diagnose(&src, &scope, Duration::from_secs(20)).await;
    }
    let (passed, ..) = report.counts();
    report.output("passed", passed);
    report.output("failed", report.checks.len() - passed);
    report.output("healthy", healthy);
    report.output("attempts", rounds);
    report.output(
        "duration-seconds",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    if let Some(v) = versions.first() {
        report.output("deployed-version", v);
    }
    report.finish(started.elapsed());
    if !healthy && report.outcome == Exit::Passed {
        report.outcome = Exit::Failed;
    }
    report.summary = match (&ended, healthy) {
        (_, true) => format!(
            "healthy: {} probes passed {threshold} times in a row after {rounds} rounds",
            probes.len()
        ),
        (Ended::Interrupted(s), _) => format!("interrupted by {s} after {rounds} rounds"),
        (Ended::Deadline, _) => format!(
            "not healthy within {}: {} of {} probes not passing",
            humantime::format_duration(wait),
            report
                .checks
                .iter()
                .filter(|c| c.status != Status::Passed)
                .count(),
            report.checks.len()
        ),
        _ => format!(
            "not healthy: {} of {} probes failed",
            report
                .checks
                .iter()
                .filter(|c| c.status != Status::Passed)
                .count(),
            report.checks.len()
        ),
    };
    Ok(report)
}

/// The sections of deploy.toml health-check reads: a `${VAR}` elsewhere may be unset.
const CONFIG_READS: &[&str] = &[
    "defaults",
    "environments",
    "health",
    "metrics",
    "alarms",
    "kpi",
];

/// Runs the tool: waits, publishes the report when asked (`--publish`), then writes it
/// everywhere else it belongs.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    let mut report = check(&args).await?;
    let config_path = args
        .common
        .config
        .as_ref()
        .map_or_else(|| "deploy.toml".to_owned(), |p| p.display().to_string());
    args.publish
        .publish(
            &mut report,
            args.common.environment.as_deref(),
            &config_path,
        )
        .await;
    report.finish(Duration::from_millis(report.duration_ms));
    deploy_core::cli::emit(&report, &args.common.output)
}

/// Tags the revision each service runs as verified. The commit is the one the revision was
/// verified at before (a revision's commit never changes), else `--expect-version`, else
/// `GITHUB_SHA`. A failed tag call is a dependency error in the report (exit 3), with the
/// services already tagged kept in the audit trail.
async fn mark_verified(
    client: &deploy_core::aws_sdk_ecs::Client,
    cluster: &str,
    services: &[String],
    expect_version: Option<&str>,
    report: &mut Report,
) {
    use deploy_core::taskdef::{self, TAG_RUN, TAG_SHA, TAG_VERIFIED};
    let now = deploy_core::report::now_rfc3339();
    let result: anyhow::Result<()> = async {
        for svc in ecs::describe(client, cluster, services).await? {
            let svc = svc.map_err(exit::dependency)?;
            let running = svc
                .deployments
                .iter()
                .find(|d| d.status == "PRIMARY")
                .map(|d| d.task_definition.clone())
                .or(svc.task_definition.clone())
                .ok_or_else(|| {
                    exit::dependency(format!(
                        "service {} has no task definition",
                        svc.service_name
                    ))
                })?;
            let td = taskdef::describe(client, &running).await?;
            let sha = td
                .sha()
                .map(str::to_owned)
                .or_else(|| expect_version.map(str::to_owned))
                .or_else(|| std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty()));
            let mut tags = vec![(TAG_VERIFIED, now.clone())];
            if let Some(sha) = &sha {
                tags.push((TAG_SHA, sha.clone()));
            }
            if let Some(url) = taskdef::run_url() {
                tags.push((TAG_RUN, url));
            }
            let detail = Some(format!(
                "{} of service {}{}",
                td.name(),
                svc.service_name,
                sha.map(|s| format!(", commit {s}")).unwrap_or_default()
            ));
            match taskdef::tag(client, &td.arn, &tags).await {
                Ok(()) => report.audit("ecs:TagResource", &td.arn, "done", detail),
                Err(e) => {
                    report.audit("ecs:TagResource", &td.arn, "failed", detail);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        report.fail_with(
            Exit::Dependency,
            format!("couldn't mark the revisions verified: {e:#}"),
        );
    }
}
