//! `rollback`: every ECS service of an environment back to its last verified task definition
//! revision, at once, with an incident record (runbook 3.3, the checklist of 6, MTTR of 7).
//!
//! plan (every service, before any change) -> act and wait (all services concurrently, on the
//! deployment each rollback created) -> verify (the health-check engine, same config; the target
//! is tagged verified again) -> record (incident file, job summary, CloudWatch Logs, MTTR metric,
//! changelog, GitHub deployment) -> report.

mod act;
mod images;
mod incident;
mod plan;
mod target;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use deploy_core::aws::AwsArgs;
use deploy_core::cli::{CommonArgs, Resolved, ServiceArgs};
use deploy_core::config::{EMBEDDED_HEALTH, flag_or_file, setting};
use deploy_core::duration::parse as parse_duration;
use deploy_core::github::GithubClient;
use deploy_core::incidents::Outcome as IncidentOutcome;
use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::retry::Deadline;
use deploy_core::{Check, Exit, Report, Status, exit};

use crate::act::{Audit, Outcome};
use crate::incident::{Incident, ServiceRecord};
use crate::plan::{Action, Plan, Planned};
use crate::target::Targets;

/// What to do with the other services when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnFailure {
    /// Keep rolling the others back (default).
    #[default]
    Continue,
    /// Stop waiting on the others and report.
    Stop,
}

/// Roll ECS services back to their last verified task definition revision.
#[derive(Debug, clap::Parser)]
#[command(name = "rollback", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub publish: deploy_core::github::PublishArgs,

    /// Where to go: previous (the newest verified revision older than the running one), a
    /// revision number, FAMILY:REV, an ARN, a commit SHA or an image tag; SERVICE=TARGET for one
    /// service. Repeat for several services.
    #[arg(
        long = "to",
        value_name = "[SERVICE=]TARGET",
        env = "DEPLOY_ROLLBACK_TO",
        help_heading = "Target"
    )]
    pub to: Vec<String>,
    /// Service to roll back; repeat (default: every service of the environment).
    #[arg(long = "service", value_name = "NAME", help_heading = "Target")]
    pub services: Vec<String>,
    /// ECS cluster (default: the environment's).
    #[arg(long, value_name = "NAME", help_heading = "Target")]
    pub cluster: Option<String>,
    /// With no verified revision, go to the next lower ACTIVE revision not tagged bad (warned).
    #[arg(long, help_heading = "Target")]
    pub allow_unverified: bool,
    /// Why: kept in the incident record and on the revision left (deploy-action:bad).
    #[arg(
        long,
        value_name = "TEXT",
        env = "DEPLOY_ROLLBACK_REASON",
        default_value = "manual rollback",
        help_heading = "Target"
    )]
    pub reason: String,

    /// Deadline for the rollback deployments (default: rollback.wait, else 15m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Waiting")]
    pub wait: Option<Duration>,
    /// Pause between polls of the deployments (default: rollback.interval, else 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Waiting")]
    pub interval: Option<Duration>,
    /// Deadline of the health verification after the rollback (default: health.wait, else 300s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Waiting")]
    pub verify_wait: Option<Duration>,
    /// When a service fails: continue with the others, or stop waiting on them.
    #[arg(long, value_enum, default_value_t = OnFailure::Continue, help_heading = "Waiting")]
    pub on_failure: OnFailure,

    /// When the incident began, RFC 3339 (default: when the bad deployment was created).
    #[arg(
        long,
        value_name = "TIME",
        env = "DEPLOY_INCIDENT_START",
        help_heading = "Incident record"
    )]
    pub incident_start: Option<String>,
    /// When it was detected, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME", help_heading = "Incident record")]
    pub detected_at: Option<String>,
    /// Write the incident record (JSON) to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Incident record")]
    pub incident_file: Option<PathBuf>,
    /// CloudWatch Logs group for the record, stream `incidents` (default: rollback.incident_log_group).
    #[arg(long, value_name = "GROUP", help_heading = "Incident record")]
    pub incident_log_group: Option<String>,
    /// Put the MTTR metric (seconds, dimension Environment) when recovered.
    #[arg(long, help_heading = "Incident record")]
    pub emit_metric: bool,
    /// Namespace of the MTTR metric (default: metrics.namespace, else AFU9/Factory).
    #[arg(long, value_name = "NAMESPACE", help_heading = "Incident record")]
    pub metric_namespace: Option<String>,
    /// Append a dated entry to this changelog (default: rollback.changelog).
    #[arg(long, value_name = "FILE", help_heading = "Incident record")]
    pub changelog: Option<PathBuf>,
    /// Record a GitHub deployment (task `rollback`) of the restored commit, with its status.
    #[arg(long, help_heading = "Incident record")]
    pub github_deployment: bool,

    /// When a service fails, skip gathering why (stopped tasks, events, target health, log lines,
    /// alarms).
    #[arg(long, help_heading = "Waiting")]
    pub no_diagnose: bool,

    /// Plan every service and show it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Required to act on a protected environment: repeat its name.
    #[arg(long, value_name = "ENV")]
    pub confirm: Option<String>,
}

/// Everything settled from flags and config before AWS is touched.
struct Settings {
    resolved: Resolved,
    environment: String,
    cluster: String,
    services: Vec<String>,
    targets: Targets,
    wait: Duration,
    interval: Duration,
    log_group: Option<String>,
    changelog: Option<PathBuf>,
    incident_start: Option<SystemTime>,
    detected: SystemTime,
    github: Option<GithubClient>,
}

fn settings(args: &Args) -> anyhow::Result<Settings> {
    let resolved = args
        .common
        .resolve(&args.service, EMBEDDED_HEALTH, &config_reads())?;
    let environment = resolved
        .environment
        .clone()
        .ok_or_else(|| exit::usage("rollback needs an environment: pass --environment NAME"))?;
    let env = resolved.config.environment(&environment)?;
    if env.protected && !args.dry_run && args.confirm.as_deref() != Some(environment.as_str()) {
        return Err(exit::usage(format!(
            "environment {environment:?} is protected: pass --confirm {environment} to roll back (or --dry-run)"
        )));
    }
    let cluster = flag_or_file(args.cluster.as_ref(), env.cluster.as_ref(), || {
        format!("no cluster: pass --cluster or set environments.{environment}.cluster")
    })?;
    let services: Vec<String> = if args.services.is_empty() {
        env.services.iter().map(|s| s.expose().to_owned()).collect()
    } else {
        args.services.clone()
    };
    if services.is_empty() {
        return Err(exit::usage(format!(
            "no services: pass --service or list environments.{environment}.services"
        )));
    }
    let targets = Targets::parse(&args.to, &services).map_err(exit::usage)?;
    let rb = &resolved.config.rollback;
    let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<SystemTime>> {
        v.as_deref()
            .map(|s| incident::parse_time(s).map_err(|e| exit::usage(format!("{flag}: {e}"))))
            .transpose()
    };
    let github = if args.github_deployment {
        Some(GithubClient::new(&args.publish.github)?)
    } else {
        None
    };
    Ok(Settings {
        wait: setting(args.wait, rb.wait, Duration::from_secs(900)),
        interval: setting(args.interval, rb.interval, Duration::from_secs(5)),
        log_group: args.incident_log_group.clone().or_else(|| {
            rb.incident_log_group
                .as_ref()
                .map(|t| t.expose().to_owned())
        }),
        changelog: args
            .changelog
            .clone()
            .or_else(|| rb.changelog.as_ref().map(|t| PathBuf::from(t.expose()))),
        incident_start: time("--incident-start", &args.incident_start)?,
        detected: time("--detected-at", &args.detected_at)?.unwrap_or_else(SystemTime::now),
        github,
        resolved,
        environment,
        cluster,
        services,
        targets,
    })
}

/// The sections of deploy.toml rollback reads (health-check's, for the verification, and
/// `[rollback]`): a `${VAR}` elsewhere may be unset.
fn config_reads() -> Vec<&'static str> {
    let mut reads = health_check::CONFIG_READS.to_vec();
    reads.push("rollback");
    reads
}

/// Runs the tool.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    match run_rollback(&args).await {
        Ok(exit) => Ok(exit),
        // A run that stops on an error still answers its check run (--publish).
        Err(e) => Err(args.publish.answer_error(e, &args.common, "rollback").await),
    }
}

async fn run_rollback(args: &Args) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let report = rollback(args).await?;
    // `--publish`: a check run `rollback (<environment>)` on the workflow's commit.
    let path = args.common.config_label();
    args.publish
        .publish_and_emit(report, &args.common, &path, || started.elapsed())
        .await
}

/// The runbook's rollback: plan every service (nothing changes on a refusal or a dry run), roll
/// them back, verify the environment, and record the incident.
async fn rollback(args: &Args) -> anyhow::Result<Report> {
    let started = Instant::now();
    let s = settings(args)?;
    let region = s.resolved.region();
    let sdk = deploy_core::aws::sdk_config(&args.aws, region).await?;
    let ecs = deploy_core::aws::ecs(&sdk);
    let mut report = Report::new(
        "rollback",
        env!("CARGO_PKG_VERSION"),
        format!("{} (cluster {})", s.environment, s.cluster),
    );
    report.dry_run = args.dry_run;
    let planned = plan_all(&ecs, &sdk, &s, args.allow_unverified).await?;
    let refused = planned
        .iter()
        .filter(|p| matches!(p, Planned::Refused { .. }))
        .count();
    if refused > 0 || args.dry_run {
        report_plans(&mut report, &planned, refused);
        report.finish(started.elapsed());
        return Ok(report);
    }
    let plans: Vec<Plan> = planned
        .into_iter()
        .filter_map(|p| match p {
            Planned::Ready(p) => Some(*p),
            Planned::Refused { .. } => None,
        })
        .collect();
    // Before the first change: the incident is open, so a deploy of this environment refuses
    // to roll forward over the rollback (health-check --preflight) until its record says how it
    // ended.
    open_incident(args, &s, &sdk, &plans, &mut report).await;
    let gh = start_github_deployment(&s, &plans, &mut report).await;
    let (outcomes, interrupted, audit) =
        act_all(&ecs, &s, &plans, &args.reason, args.on_failure).await;
    report.audit.extend(audit);
    for p in &plans {
        report.push(service_check(p, outcomes.get(&p.service), interrupted));
    }
    let failed: Vec<String> = plans
        .iter()
        .filter(|p| outcomes.get(&p.service).is_some_and(|o| !o.ok))
        .map(|p| p.service.clone())
        .collect();
    if !failed.is_empty() && interrupted.is_none() && !args.no_diagnose {
        report.diagnosis = diagnose(&s, &sdk, failed).await;
    }
    let (recovered_at, interrupted) = match interrupted {
        Some(sig) => (None, Some(sig)),
        None => match verify_environment(args, &s, &plans, &outcomes, &mut report).await {
            Ok(v) => v,
            Err(e) => {
                // The in-progress record must not outlive this run: it ends as failed.
                let record = build_incident(args, &s, &plans, &outcomes, (None, None));
                record_incident(args, &s, &sdk, &record, &mut report).await;
                return Err(e);
            }
        },
    };
    let record = build_incident(args, &s, &plans, &outcomes, (recovered_at, interrupted));
    record_incident(args, &s, &sdk, &record, &mut report).await;
    finish_github_deployment(gh, &record, &mut report).await;
    if let Some(sig) = interrupted {
        report.interrupted(
            sig,
            format!("interrupted by {sig}: partial report, incident record marked incomplete"),
        );
    }
    report.finish(started.elapsed());
    report.summary = summary(&record, &plans, &outcomes, interrupted);
    Ok(report)
}

/// Runs the health-check engine on the environment once the services rolled back; its checks join
/// the report as `verify: ...`. Returns when the incident recovered (every service rolled back
/// and the environment healthy) and whether a signal cut the verification short.
async fn verify_environment(
    args: &Args,
    s: &Settings,
    plans: &[Plan],
    outcomes: &Outcomes,
    report: &mut Report,
) -> anyhow::Result<(Option<SystemTime>, Option<&'static str>)> {
    let ok: Vec<&Plan> = plans
        .iter()
        .filter(|p| outcomes.get(&p.service).is_some_and(|o| o.ok))
        .collect();
    if ok.is_empty() {
        return Ok((None, None));
    }
    match verify(args, s, &ok).await? {
        Verified::Report(v) => {
            for c in v.checks.clone() {
                report.push(Check {
                    name: format!("verify: {}", c.name),
                    ..c
                });
            }
            report.audit.extend(v.audit.iter().cloned());
            let recovered = v.outcome == Exit::Passed && ok.len() == plans.len();
            Ok((recovered.then(SystemTime::now), None))
        }
        Verified::Interrupted(sig) => Ok((None, Some(sig))),
    }
}

async fn plan_all(
    ecs: &deploy_core::aws_sdk_ecs::Client,
    sdk: &deploy_core::aws_config::SdkConfig,
    s: &Settings,
    allow_unverified: bool,
) -> anyhow::Result<Vec<Planned>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, svc) in s.services.iter().enumerate() {
        let (ecs, cluster, svc, to) = (
            ecs.clone(),
            s.cluster.clone(),
            svc.clone(),
            s.targets.for_service(svc),
        );
        let mut checker = images::Checker::new(sdk.clone());
        set.spawn(async move {
            (
                i,
                plan::plan_service(
                    &ecs,
                    &mut checker,
                    &cluster,
                    &svc,
                    plan::Wanted {
                        to: &to,
                        allow_unverified,
                    },
                )
                .await,
            )
        });
    }
    let mut out: Vec<(usize, Planned)> = Vec::new();
    while let Some(r) = set.join_next().await {
        let (i, p) = r?;
        out.push((i, p?));
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::NoOp => "no-op",
        Action::Update => "update-service",
        Action::Native { .. } => "native-rollback",
    }
}

fn plan_details(p: &Plan) -> Vec<(String, String)> {
    let mut d = vec![("action".to_owned(), action_name(&p.action).to_owned())];
    d.extend(p.diff.iter().cloned());
    d.extend(p.warnings.iter().map(|w| ("warning".to_owned(), w.clone())));
    d
}

/// The plan (dry run) or the refusal: nothing was changed.
fn report_plans(report: &mut Report, planned: &[Planned], refused: usize) {
    for p in planned {
        let c = match p {
            Planned::Refused {
                service,
                reason,
                details,
            } => {
                let mut c =
                    Check::new(format!("service {service}"), Status::Failed).reason(reason.clone());
                c.details = details.clone();
                c
            }
            Planned::Ready(p) if refused > 0 => {
                let mut c = Check::new(format!("service {}", p.service), Status::Skipped).reason(
                    format!("not changed: {refused} service(s) refused, so nothing is rolled back"),
                );
                c.details = plan_details(p);
                c
            }
            Planned::Ready(p) => {
                for w in &p.warnings {
                    tracing::warn!("{}: {w}", p.service);
                }
                report.audit(
                    if matches!(p.action, Action::Native { .. }) {
                        AuditAction::EcsStopServiceDeployment
                    } else {
                        AuditAction::EcsUpdateService
                    },
                    &p.service,
                    AuditOutcome::Planned,
                    Some(format!("{} -> {}", p.current.name(), p.target.name())),
                );
                let mut c =
                    Check::new(format!("service {}", p.service), Status::Skipped).reason(format!(
                        "dry run: would roll back {} -> {}",
                        p.current.name(),
                        p.target.name()
                    ));
                c.details = plan_details(p);
                c
            }
        };
        report.push(c);
    }
    report.summary = if refused > 0 {
        format!(
            "refused: {refused} of {} services cannot be rolled back; nothing was changed",
            planned.len()
        )
    } else {
        format!(
            "dry run: {} services planned, nothing changed",
            planned.len()
        )
    };
}

type Outcomes = std::collections::BTreeMap<String, Outcome>;

/// Rolls every planned service back concurrently, under one deadline, until done or a signal.
async fn act_all(
    ecs: &deploy_core::aws_sdk_ecs::Client,
    s: &Settings,
    plans: &[Plan],
    reason: &str,
    on_failure: OnFailure,
) -> (
    Outcomes,
    Option<&'static str>,
    Vec<deploy_core::report::AuditEvent>,
) {
    let log: Audit = Arc::new(Mutex::new(Vec::new()));
    let deadline = Deadline::after(s.wait);
    let mut set = tokio::task::JoinSet::new();
    for p in plans {
        for w in &p.warnings {
            tracing::warn!("{}: {w}", p.service);
        }
        let ctx = act::Ctx {
            client: ecs.clone(),
            cluster: s.cluster.clone(),
            deadline,
            interval: s.interval,
            log: log.clone(),
        };
        let (p, reason) = (p.clone(), reason.to_owned());
        set.spawn(async move {
            let o = act::roll_back(&ctx, &p, &reason).await;
            (p.service, o)
        });
    }
    let mut outcomes = Outcomes::new();
    let mut interrupted = None;
    let mut signal = std::pin::pin!(deploy_core::cli::interrupted());
    loop {
        tokio::select! {
            r = set.join_next() => match r {
                None => break,
                Some(Ok((svc, o))) => {
                    let stop = !o.ok && on_failure == OnFailure::Stop;
                    outcomes.insert(svc, o);
                    if stop {
                        set.abort_all();
                        for p in plans {
                            outcomes.entry(p.service.clone()).or_insert_with(|| Outcome {
                                ok: false,
                                reason: "abandoned: another service failed (--on-failure stop)".into(),
                                details: Vec::new(),
                                attempts: 0,
                                took: Duration::ZERO,
                            });
                        }
                        break;
                    }
                }
                Some(Err(e)) => tracing::warn!("a rollback task ended abnormally: {e}"),
            },
            sig = &mut signal => {
                interrupted = Some(sig);
                set.abort_all();
                break;
            }
        }
    }
    let audit = log.lock().map(|l| l.clone()).unwrap_or_default();
    (outcomes, interrupted, audit)
}

fn service_check(p: &Plan, o: Option<&Outcome>, interrupted: Option<&str>) -> Check {
    let name = format!("service {}", p.service);
    let mut c = match o {
        Some(o) => {
            let mut c = Check::new(&name, if o.ok { Status::Passed } else { Status::Failed })
                .reason(o.reason.clone())
                .attempts(o.attempts.max(1))
                .took(o.took);
            c.details = o.details.clone();
            c
        }
        None => Check::new(&name, Status::Failed).reason(format!(
            "interrupted by {} while rolling back {} -> {}",
            interrupted.unwrap_or("a signal"),
            p.current.name(),
            p.target.name()
        )),
    };
    c.details.extend(plan_details(p));
    c
}

/// Why the failed services did not roll back, with the environment's alarms.
async fn diagnose(
    s: &Settings,
    sdk: &deploy_core::aws_config::SdkConfig,
    services: Vec<String>,
) -> Vec<deploy_core::report::Finding> {
    let alarms = s
        .resolved
        .env()
        .and_then(|e| e.alarms.clone())
        .unwrap_or_else(|| s.resolved.config.alarms.clone());
    let scope = deploy_core::diagnose::Scope {
        cluster: Some(s.cluster.clone()),
        services,
        alarm_names: alarms.names,
        alarm_prefix: alarms.prefix,
        stopped_tasks: 5,
        log_lines: 20,
    };
    let src = deploy_core::diagnose::Sources::new(sdk);
    deploy_core::diagnose::diagnose(&src, &scope, Duration::from_secs(20)).await
}

enum Verified {
    Report(Box<Report>),
    Interrupted(&'static str),
}

/// The health-check engine over the same config: HTTP checks, the rolled-back services on their
/// targets, the alarms; on success it tags the targets verified again (`--mark-verified`).
async fn verify(args: &Args, s: &Settings, ok: &[&Plan]) -> anyhow::Result<Verified> {
    // health-check as a library: its settings as a struct, the flags rollback shares with it
    // passed as they are (no argv is built and parsed again).
    let hc = health_check::Args {
        common: CommonArgs {
            config: args.common.config.clone(),
            environment: Some(s.environment.clone()),
            ..CommonArgs::default()
        },
        service: args.service.clone(),
        aws: args.aws.clone(),
        ecs: true,
        mark_verified: true,
        cluster: Some(s.cluster.clone()),
        services: ok.iter().map(|p| p.service.clone()).collect(),
        expect_task_definition: ok
            .iter()
            .map(|p| format!("{}={}", p.service, p.target.arn))
            .collect(),
        wait: args.verify_wait,
        // The version a deploy expected is the bad one: the restored revision serves its own.
        expect_version: None,
        // This rollback's own record says how it ended; its verification resolves no incident.
        keep_incidents_open: true,
        ..health_check::Args::default()
    };
    tracing::info!("verifying {} with the health checks", s.environment);
    let mut signal = std::pin::pin!(deploy_core::cli::interrupted());
    tokio::select! {
        r = health_check::check(&hc) => Ok(Verified::Report(Box::new(r?))),
        sig = &mut signal => Ok(Verified::Interrupted(sig)),
    }
}

/// How a rollback ended: when the environment was healthy again (none: not recovered), and the
/// signal that cut it short.
type Ended<'a> = (Option<SystemTime>, Option<&'a str>);

/// The incident record of this rollback as it `ended`.
fn build_incident(
    args: &Args,
    s: &Settings,
    plans: &[Plan],
    outcomes: &Outcomes,
    (recovered_at, interrupted): Ended<'_>,
) -> Incident {
    let bad_since = plans
        .iter()
        .filter_map(|p| p.bad_since.as_deref())
        .filter_map(|t| incident::parse_time(t).ok())
        .min();
    let detected = incident::whole_seconds(s.detected);
    let recovered_at = recovered_at.map(incident::whole_seconds);
    let start =
        incident::whole_seconds(s.incident_start.or(bad_since).unwrap_or(detected)).min(detected);
    let env_var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Incident {
        incident_id: incident::incident_id(&s.environment, s.detected),
        start_time: incident::rfc3339(start),
        detection_time: incident::rfc3339(detected),
        recovery_time: recovered_at.map(incident::rfc3339),
        mttr_seconds: recovered_at.map(|r| incident::seconds_between(detected, r)),
        time_to_detect_seconds: incident::seconds_between(start, detected),
        outcome: match (interrupted, recovered_at) {
            (Some(_), _) => IncidentOutcome::Interrupted,
            (None, Some(_)) => IncidentOutcome::Recovered,
            (None, None) => IncidentOutcome::Failed,
        },
        complete: interrupted.is_none(),
        environment: s.environment.clone(),
        cluster: s.cluster.clone(),
        reason: args.reason.clone(),
        actor: env_var("GITHUB_ACTOR")
            .or_else(|| env_var("USER"))
            .unwrap_or_else(|| "unknown".into()),
        run_url: deploy_core::taskdef::run_url(),
        updated_at: incident::rfc3339(SystemTime::now()),
        services: plans
            .iter()
            .map(|p| {
                let o = outcomes.get(&p.service);
                ServiceRecord {
                    service: p.service.clone(),
                    from: p.current.name(),
                    to: p.target.name(),
                    from_images: p
                        .current
                        .containers
                        .iter()
                        .map(|c| c.image.clone())
                        .collect(),
                    to_images: p
                        .target
                        .containers
                        .iter()
                        .map(|c| c.image.clone())
                        .collect(),
                    action: action_name(&p.action).to_owned(),
                    result: match o {
                        Some(o) if o.ok => "rolled-back",
                        Some(_) => "failed",
                        None => "not-run",
                    }
                    .to_owned(),
                    detail: o.map_or_else(|| "interrupted".to_owned(), |o| o.reason.clone()),
                }
            })
            .collect(),
    }
}

/// The `in-progress` record in the incident log group, when there is one. A failure to write it
/// is a warning: the rollback is the recovery and goes on; its final record still follows.
async fn open_incident(
    args: &Args,
    s: &Settings,
    sdk: &deploy_core::aws_config::SdkConfig,
    plans: &[Plan],
    report: &mut Report,
) {
    let Some(group) = &s.log_group else {
        return;
    };
    let mut record = build_incident(args, s, plans, &Outcomes::new(), (None, None));
    record.outcome = IncidentOutcome::InProgress;
    record.complete = false;
    record.recovery_time = None;
    record.mttr_seconds = None;
    for svc in &mut record.services {
        "not rolled back yet".clone_into(&mut svc.detail);
    }
    let json = deploy_core::secret::redact(&serde_json::to_string(&record).unwrap_or_default());
    let target = format!("{group}/{}", deploy_core::logs::INCIDENT_STREAM);
    let sent = deploy_core::logs::put_event(
        &deploy_core::logs::client(sdk),
        group,
        deploy_core::logs::INCIDENT_STREAM,
        &json,
    )
    .await;
    match sent {
        Ok(()) => report.audit(
            AuditAction::LogsPutLogEvents,
            &target,
            AuditOutcome::Done,
            Some(format!("{} in-progress", record.incident_id)),
        ),
        Err(e) => {
            tracing::warn!(
                "couldn't record the incident as in progress in {target}: {e:#}; a deploy started now will not see it"
            );
            report.audit(
                AuditAction::LogsPutLogEvents,
                &target,
                AuditOutcome::Failed,
                Some(format!("{e:#}")),
            );
        }
    }
}

/// Writes the incident record to every sink asked for (file, CloudWatch Logs, the MTTR metric,
/// the changelog), then its check and outputs. A sink that fails makes the check an error; the
/// rollback itself stands.
async fn record_incident(
    args: &Args,
    s: &Settings,
    sdk: &deploy_core::aws_config::SdkConfig,
    record: &Incident,
    report: &mut Report,
) {
    let mut problems: Vec<String> = Vec::new();
    if let Some(path) = &args.incident_file {
        let text =
            deploy_core::secret::redact(&serde_json::to_string_pretty(record).unwrap_or_default());
        match std::fs::write(path, text + "\n") {
            Ok(()) => report.output("incident-file", path.display()),
            Err(e) => problems.push(format!("couldn't write {}: {e}", path.display())),
        }
    }
    if let Some(group) = &s.log_group {
        let target = format!("{group}/{}", deploy_core::logs::INCIDENT_STREAM);
        let json = serde_json::to_string(record).unwrap_or_default();
        let sent = deploy_core::logs::put_event(
            &deploy_core::logs::client(sdk),
            group,
            deploy_core::logs::INCIDENT_STREAM,
            &deploy_core::secret::redact(&json),
        )
        .await;
        let done = Some(record.incident_id.clone());
        sink_audit(
            report,
            &mut problems,
            AuditAction::LogsPutLogEvents,
            &target,
            sent.map(|()| done),
        );
    }
    if let (true, Some(mttr)) = (args.emit_metric, record.mttr_seconds) {
        let ns = args
            .metric_namespace
            .clone()
            .unwrap_or_else(|| s.resolved.config.metrics.namespace.clone());
        let target = format!("{ns}/MTTR Environment={}", s.environment);
        let unit = deploy_core::aws_sdk_cloudwatch::types::StandardUnit::Seconds;
        let cw = deploy_core::aws::cloudwatch(sdk);
        let metric = deploy_core::cloudwatch::Metric {
            namespace: &ns,
            name: "MTTR",
            environment: &s.environment,
        };
        let sent = deploy_core::cloudwatch::put_metric(&cw, metric, mttr as f64, unit).await;
        let done = Some(format!("{mttr} s"));
        sink_audit(
            report,
            &mut problems,
            AuditAction::CloudwatchPutMetricData,
            &target,
            sent.map(|()| done),
        );
    }
    if let Some(path) = &s.changelog {
        match incident::append_changelog(path, record) {
            Ok(()) => report.audit(
                AuditAction::FileAppend,
                &path.display().to_string(),
                AuditOutcome::Done,
                Some(record.incident_id.clone()),
            ),
            Err(e) => problems.push(format!("couldn't append to {}: {e}", path.display())),
        }
    }
    report.push(incident_check(record, &problems));
    incident_outputs(record, report);
}

/// The audit event of one sink's call (`sent`: its detail when done, its error when not); a
/// failure is also one of `problems`.
fn sink_audit(
    report: &mut Report,
    problems: &mut Vec<String>,
    action: AuditAction,
    target: &str,
    sent: anyhow::Result<Option<String>>,
) {
    match sent {
        Ok(done) => report.audit(action, target, AuditOutcome::Done, done),
        Err(e) => {
            report.audit(action, target, AuditOutcome::Failed, Some(format!("{e:#}")));
            problems.push(format!("{e:#}"));
        }
    }
}

/// The record's check: passed when every sink took it, with its times and MTTR.
fn incident_check(record: &Incident, problems: &[String]) -> Check {
    let (status, reason) = if problems.is_empty() {
        (Status::Passed, "recorded".to_owned())
    } else {
        (Status::Error, problems.join("; "))
    };
    let c = Check::new(format!("incident record {}", record.incident_id), status)
        .reason(reason)
        .detail("start", record.start_time.clone())
        .detail("detected", record.detection_time.clone())
        .detail(
            "recovered",
            record
                .recovery_time
                .clone()
                .unwrap_or_else(|| "not recovered".into()),
        )
        .detail(
            "MTTR",
            record
                .mttr_seconds
                .map_or_else(|| "-".into(), |m| format!("{m} s")),
        );
    if record.complete {
        c
    } else {
        c.detail("complete", "no: the run was interrupted")
    }
}

/// The outputs `incident-id`, `mttr-seconds` and `rolled-back-to`.
fn incident_outputs(record: &Incident, report: &mut Report) {
    report.output("incident-id", &record.incident_id);
    report.output(
        "mttr-seconds",
        record
            .mttr_seconds
            .map(|m| m.to_string())
            .unwrap_or_default(),
    );
    report.output(
        "rolled-back-to",
        record
            .services
            .iter()
            .filter(|s| s.result == "rolled-back")
            .map(|s| format!("{}={}", s.service, s.to))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

async fn start_github_deployment(
    s: &Settings,
    plans: &[Plan],
    report: &mut Report,
) -> Option<(GithubClient, u64)> {
    let gh = s.github.clone()?;
    let Some(sha) = plans.iter().find_map(|p| p.target.sha()) else {
        tracing::warn!(
            "--github-deployment: no target revision carries a commit (deploy-action:sha): no GitHub deployment recorded"
        );
        report.audit(
            AuditAction::GithubCreateDeployment,
            "-",
            AuditOutcome::Failed,
            Some("no restored commit known".into()),
        );
        return None;
    };
    let desc = format!(
        "rollback of {} to {}",
        s.environment,
        plans
            .iter()
            .map(|p| p.target.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    match gh
        .create_deployment(sha, &s.environment, "rollback", &desc)
        .await
    {
        Ok(id) => {
            report.audit(
                AuditAction::GithubCreateDeployment,
                sha,
                AuditOutcome::Done,
                Some(format!("deployment {id}")),
            );
            let url = deploy_core::taskdef::run_url();
            match gh
                .create_deployment_status(id, "in_progress", "rolling back", url.as_deref())
                .await
            {
                Ok(()) => report.audit(
                    AuditAction::GithubCreateDeploymentStatus,
                    &id.to_string(),
                    AuditOutcome::Done,
                    Some("in_progress".into()),
                ),
                Err(e) => report.audit(
                    AuditAction::GithubCreateDeploymentStatus,
                    &id.to_string(),
                    AuditOutcome::Failed,
                    Some(e.to_string()),
                ),
            }
            Some((gh, id))
        }
        Err(e) => {
            report.audit(
                AuditAction::GithubCreateDeployment,
                sha,
                AuditOutcome::Failed,
                Some(e.to_string()),
            );
            report.push(Check::new("GitHub deployment", Status::Error).reason(e.to_string()));
            None
        }
    }
}

async fn finish_github_deployment(
    gh: Option<(GithubClient, u64)>,
    record: &Incident,
    report: &mut Report,
) {
    let Some((gh, id)) = gh else { return };
    let state = if record.outcome == IncidentOutcome::Recovered {
        "success"
    } else {
        "failure"
    };
    let desc = format!("rollback {}: {}", record.outcome, record.incident_id);
    match gh
        .create_deployment_status(id, state, &desc, record.run_url.as_deref())
        .await
    {
        Ok(()) => report.audit(
            AuditAction::GithubCreateDeploymentStatus,
            &id.to_string(),
            AuditOutcome::Done,
            Some(state.into()),
        ),
        Err(e) => {
            report.audit(
                AuditAction::GithubCreateDeploymentStatus,
                &id.to_string(),
                AuditOutcome::Failed,
                Some(e.to_string()),
            );
            report.push(Check::new("GitHub deployment", Status::Error).reason(e.to_string()));
        }
    }
}

fn summary(
    record: &Incident,
    plans: &[Plan],
    outcomes: &Outcomes,
    interrupted: Option<&str>,
) -> String {
    let ok = plans
        .iter()
        .filter(|p| outcomes.get(&p.service).is_some_and(|o| o.ok))
        .count();
    match (interrupted, record.mttr_seconds) {
        (Some(sig), _) => format!(
            "interrupted by {sig}: {ok} of {} services rolled back; record incomplete",
            plans.len()
        ),
        (None, Some(m)) => format!(
            "recovered: {ok} of {} services rolled back and healthy; MTTR {m} s ({})",
            plans.len(),
            record.incident_id
        ),
        (None, None) => format!(
            "not recovered: {ok} of {} services rolled back ({})",
            plans.len(),
            record.incident_id
        ),
    }
}
