//! Plan: flags and `[health]` of deploy.toml become the settings of the wait and the probes to
//! poll. Nothing here talks to the network; a bad combination is a usage error (exit 2) before
//! anything starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deploy_core::checks::{self, Policy, Prepared};
use deploy_core::cli::Resolved;
use deploy_core::config::{Config, Health, StatusSet, setting};
use deploy_core::exit;
use deploy_core::settings::{EcsScope, Wait, ecs_scope};

use crate::probe::{Kind, Probe};
use crate::{Args, DEFAULT_WAIT};

/// The pause between polling rounds when neither `--interval` nor `health.interval` sets one:
/// short, because a health wait is one client polling one service, and every interval is lag.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// Everything the wait and the report need, decided before the first request.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Deadline of the whole wait.
    pub wait: Duration,
    /// Steady pause between polling rounds.
    pub interval: Duration,
    /// Passes in a row every probe needs.
    pub threshold: u32,
    /// Pause before the first round.
    pub stabilize: Duration,
    /// Alarm watch after success.
    pub bake: Duration,
    /// Statuses, versions and timeouts of the HTTP checks.
    pub policy: Arc<Policy>,
    /// Field of the health body carrying the commit.
    pub version_field: String,
    /// What every round polls.
    pub probes: Vec<Probe>,
    /// The ECS cluster (`--ecs`).
    pub cluster: Option<String>,
    /// The ECS services verified (`--ecs`).
    pub services: Vec<String>,
    /// Alarms that must not be in ALARM.
    pub alarm_names: Vec<String>,
    /// Alarms with this prefix must not be in ALARM.
    pub alarm_prefix: Option<String>,
    /// The ALB 5xx gate after success.
    pub alb: Option<AlbGate>,
}

/// The ALB 5xx gate: at most `threshold` target 5xx responses over `window`.
#[derive(Debug, Clone)]
pub(crate) struct AlbGate {
    pub threshold: u64,
    pub load_balancer: String,
    pub window: Duration,
}

impl Plan {
    /// Whether an alarm filter is configured.
    pub fn alarms_on(&self) -> bool {
        !self.alarm_names.is_empty() || self.alarm_prefix.is_some()
    }

    /// Whether CloudWatch is called at all.
    pub fn needs_cloudwatch(&self, args: &Args) -> bool {
        self.alarms_on() || self.alb.is_some() || args.metric.emit_metric
    }
}

/// Builds the plan from the flags and the resolved config.
pub(crate) fn plan(args: &Args, r: &Resolved) -> anyhow::Result<Plan> {
    let h = &r.config.health;
    let Wait {
        deadline: wait,
        interval,
    } = args.wait.resolve(h.wait, h.interval, DEFAULT_WAIT);
    let stabilize = setting(args.stabilize, h.stabilize, Duration::ZERO);
    if stabilize >= wait {
        return Err(exit::usage(format!(
            "--stabilize ({}) must be shorter than --wait ({})",
            humantime::format_duration(stabilize),
            humantime::format_duration(wait)
        )));
    }
    let version_field = args
        .version_field
        .clone()
        .or_else(|| h.version_field.clone())
        .unwrap_or_else(|| "commitSha".into());
    if let Some(c) = h.checks.iter().find(|c| !c.captures.is_empty()) {
        return Err(exit::usage(format!(
            "{}: health check {:?}: capture is for smoke checks (a health check is polled, not chained)",
            r.config.source, c.name
        )));
    }
    let policy = Arc::new(policy(args, &r.config, h, &version_field)?);
    let http = match &r.base_url {
        Some(base) => checks::prepare(&h.checks, Some(base))?,
        None if args.ecs => Vec::new(),
        None => {
            return Err(exit::usage(
                "no base URL: pass --base-url, or choose an environment with a base_url (or use --ecs alone)",
            ));
        }
    };
    let (probes, cluster, services) = probes(args, r, http)?;
    let mut plan = Plan {
        wait,
        interval,
        threshold: args
            .success_threshold
            .or(h.success_threshold)
            .unwrap_or(2)
            .max(1),
        stabilize,
        bake: setting(args.bake, h.bake, Duration::ZERO),
        policy,
        version_field,
        probes,
        cluster,
        services,
        alarm_names: Vec::new(),
        alarm_prefix: None,
        alb: alb_gate(args, r)?,
    };
    add_alarms(&mut plan, args, r);
    if plan.probes.is_empty() {
        return Err(exit::usage(format!(
            "{}: no health checks to run",
            r.config.source
        )));
    }
    Ok(plan)
}

fn policy(args: &Args, cfg: &Config, h: &Health, version_field: &str) -> anyhow::Result<Policy> {
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
    Ok(Policy {
        retry_statuses,
        retry_unauthorized: args.retry_unauthorized,
        expect_version: args
            .expect_version
            .clone()
            .map(|v| (version_field.to_owned(), v)),
        request_timeout: setting(
            args.request_timeout,
            h.request_timeout,
            Duration::from_secs(10),
        ),
        cert: args.cert.resolve(cfg),
    })
}

/// CloudWatch gates come from flags and the environment's (else the top-level) alarm filter.
fn add_alarms(plan: &mut Plan, args: &Args, r: &Resolved) {
    let filter = r
        .env()
        .and_then(|e| e.alarms.clone())
        .unwrap_or_else(|| r.config.alarms.clone());
    plan.alarm_names = filter.names.clone();
    plan.alarm_names.extend(args.alarms.iter().cloned());
    plan.alarm_prefix = args.alarm_prefix.clone().or(filter.prefix.clone());
    if plan.alarms_on() {
        plan.probes.push(Probe {
            name: "CloudWatch alarms".into(),
            kind: Kind::Alarms,
        });
    }
}

fn alb_gate(args: &Args, r: &Resolved) -> anyhow::Result<Option<AlbGate>> {
    let h = &r.config.health;
    let Some(threshold) = args.alb_5xx_threshold.or(h.alb_5xx_threshold) else {
        return Ok(None);
    };
    let load_balancer = args.load_balancer.clone().or_else(|| {
        r.env()
            .and_then(|e| e.load_balancer.as_ref())
            .map(|l| l.expose().to_owned())
    });
    let Some(load_balancer) = load_balancer else {
        return Err(exit::usage(
            "the ALB 5xx gate needs a load balancer: pass --load-balancer or set the environment's load_balancer",
        ));
    };
    Ok(Some(AlbGate {
        threshold,
        load_balancer,
        window: setting(
            args.alb_5xx_window,
            h.alb_5xx_window,
            Duration::from_secs(300),
        ),
    }))
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

/// The HTTP probes, then with `--ecs` one per service; returns them with the cluster and services.
fn probes(
    args: &Args,
    r: &Resolved,
    http: Vec<Prepared>,
) -> anyhow::Result<(Vec<Probe>, Option<String>, Vec<String>)> {
    let mut probes: Vec<Probe> = http
        .into_iter()
        .map(|p| Probe {
            name: p.spec.name.clone(),
            kind: Kind::Http(Box::new(p)),
        })
        .collect();
    if !args.ecs {
        if !args.expect_task_definition.is_empty() || !args.services.services.is_empty() {
            return Err(exit::usage(
                "--service and --expect-task-definition need --ecs",
            ));
        }
        return Ok((probes, None, Vec::new()));
    }
    let EcsScope { cluster, services } = ecs_scope(&args.cluster, &args.services, r)?;
    let (all, per) = expected_tds(&args.expect_task_definition)?;
    if let Some(svc) = per.keys().find(|s| !services.contains(s)) {
        return Err(exit::usage(format!(
            "--expect-task-definition names service {svc:?}, which is not verified (services: {})",
            services.join(", ")
        )));
    }
    for s in &services {
        probes.push(Probe {
            name: format!("ECS service {s}"),
            kind: Kind::Ecs {
                service: s.clone(),
                expected: per.get(s).cloned().or_else(|| all.clone()),
            },
        });
    }
    Ok((probes, Some(cluster), services))
}
