//! `rollback`: every ECS service of an environment back to its last verified task definition
//! revision, at once, with an incident record (runbook 3.3, the checklist of 6, MTTR of 7).
//!
//! plan (every service, before any change) -> act and wait (all services concurrently, on the
//! deployment each rollback created) -> verify (the health-check engine, same config; the target
//! is tagged verified again) -> record (incident file, job summary, CloudWatch Logs, MTTR metric,
//! changelog, GitHub deployment) -> report. One module a stage: `plan`, `act`, `verify`,
//! `record` (and `deployment`, the GitHub deployment); this file holds the flags, the settings
//! and the order of the stages.

mod act;
mod deployment;
mod images;
mod incident;
mod plan;
#[cfg(test)]
mod proptests;
mod record;
mod target;
mod verify;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use deploy_core::aws::AwsArgs;
use deploy_core::cli::Resolved;
use deploy_core::config::EMBEDDED_HEALTH;
use deploy_core::duration::parse as parse_duration;
use deploy_core::github::GithubClient;
use deploy_core::settings::{
    ClusterArg, DiagnoseArgs, Docs, EcsScope, MetricArgs, ProbeArgs, ServicesArg, Wait, WaitArgs,
    ecs_scope,
};
use deploy_core::{Exit, Report, exit};

use crate::act::{act_all, service_check};
use crate::deployment::{finish_github_deployment, start_github_deployment};
use crate::plan::{Plan, Planned, plan_all, report_plans};
use crate::record::{build_incident, open_incident, record_incident, summary};
use crate::target::Targets;
use crate::verify::{diagnose, verify_environment};

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
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub aws: AwsArgs,

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
    #[command(flatten)]
    pub services: ServicesArg<Help>,
    #[command(flatten)]
    pub cluster: ClusterArg<Help>,
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

    #[command(flatten)]
    pub wait: WaitArgs<Help>,
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
    #[arg(long, value_name = "FILE", value_parser = deploy_core::cli::output_file, help_heading = "Incident record")]
    pub incident_file: Option<PathBuf>,
    /// CloudWatch Logs group for the record, stream `incidents` (default: rollback.incident_log_group).
    #[arg(long, value_name = "GROUP", help_heading = "Incident record")]
    pub incident_log_group: Option<String>,
    #[command(flatten)]
    pub metric: MetricArgs<Help>,
    /// Append a dated entry to this changelog (default: rollback.changelog).
    #[arg(long, value_name = "FILE", help_heading = "Incident record")]
    pub changelog: Option<PathBuf>,
    /// Record a GitHub deployment (task `rollback`) of the restored commit, with its status.
    #[arg(long, help_heading = "Incident record")]
    pub github_deployment: bool,

    #[command(flatten)]
    pub diagnose: DiagnoseArgs<Help>,

    /// Plan every service and show it; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Required to act on a protected environment: repeat its name.
    #[arg(long, value_name = "ENV")]
    pub confirm: Option<String>,
}

/// rollback's words for the settings groups it shares with health-check
/// ([`deploy_core::settings`]): `words.txt`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Help;

impl Docs for Help {
    const WORDS: &'static str = include_str!("words.txt");
}

/// The built-in wait of the rollback deployments: 15 minutes, polled every 5s.
pub const DEFAULT_WAIT: Wait = Wait {
    deadline: Duration::from_secs(900),
    interval: Duration::from_secs(5),
};

/// Everything settled from flags and config before AWS is touched.
struct Settings {
    resolved: Resolved,
    environment: String,
    cluster: String,
    services: Vec<String>,
    targets: Targets,
    wait: Wait,
    log_group: Option<String>,
    changelog: Option<PathBuf>,
    incident_start: Option<SystemTime>,
    detected: SystemTime,
    github: Option<GithubClient>,
}

fn settings(args: &Args) -> anyhow::Result<Settings> {
    let resolved = args.probe.resolve(EMBEDDED_HEALTH, &config_reads())?;
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
    let EcsScope { cluster, services } = ecs_scope(&args.cluster, &args.services, &resolved)?;
    let targets = Targets::parse(&args.to, &services).map_err(exit::usage)?;
    let rb = &resolved.config.rollback;
    let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<SystemTime>> {
        v.as_deref()
            .map(|s| incident::parse_time(s).map_err(|e| exit::usage(format!("{flag}: {e}"))))
            .transpose()
    };
    let github = if args.github_deployment {
        Some(GithubClient::new(&args.probe.publish.github)?)
    } else {
        None
    };
    Ok(Settings {
        wait: args.wait.resolve(rb.wait, rb.interval, DEFAULT_WAIT),
        log_group: resolved
            .config
            .incident_log_group(args.incident_log_group.as_ref()),
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

/// The sections of deploy.toml rollback reads: `[rollback]`, and for its verification exactly
/// what health-check reads, since it calls `health_check::check` (a list of its own could drift
/// from the one the call uses); a `${VAR}` elsewhere may be unset.
pub fn config_reads() -> Vec<&'static str> {
    let mut reads = health_check::CONFIG_READS.to_vec();
    reads.push("rollback");
    reads
}

/// Runs the tool.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    match deploy_core::cli::catching(run_rollback(&args)).await {
        Ok(exit) => Ok(exit),
        // A run that stops on an error still answers its check run (--publish).
        Err(e) => Err(args
            .probe
            .publish
            .answer_error(e, &args.probe.common, "rollback")
            .await),
    }
}

async fn run_rollback(args: &Args) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let report = rollback(args).await?;
    // `--publish`: a check run `rollback (<environment>)` on the workflow's commit.
    let path = args.probe.common.config_label();
    args.probe
        .publish
        .publish_and_emit(report, &args.probe.common, &path, || started.elapsed())
        .await
}

/// The runbook's rollback: plan every service (nothing changes on a refusal or a dry run), roll
/// them back, verify the environment, and record the incident.
async fn rollback(args: &Args) -> anyhow::Result<Report> {
    let started = Instant::now();
    // From here on SIGINT and SIGTERM no longer end the process: each phase below answers them
    // (planning stops with nothing changed; once the incident is open, the run records how far
    // it got), so a cancelled job never leaves an in-progress record behind.
    let cancel = deploy_core::cli::Cancel::watch();
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
    let planned = tokio::select! {
        p = plan_all(&ecs, &sdk, &s, args.allow_unverified) => p?,
        sig = cancel.arrived() => {
            report.interrupted(
                sig,
                format!("interrupted by {sig} while planning: nothing was changed"),
            );
            report.finish(started.elapsed());
            return Ok(report);
        }
    };
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
    let planned_at = started.elapsed();
    open_incident(args, &s, &sdk, &plans, &mut report).await;
    let gh = start_github_deployment(&s, &plans, &mut report).await;
    let acting_at = started.elapsed();
    let (outcomes, interrupted, audit) =
        act_all(&ecs, &s, &plans, &args.reason, args.on_failure, &cancel).await;
    report.audit.extend(audit);
    for p in &plans {
        report.push(service_check(p, outcomes.get(&p.service), interrupted));
    }
    let failed: Vec<String> = plans
        .iter()
        .filter(|p| outcomes.get(&p.service).is_some_and(|o| !o.ok))
        .map(|p| p.service.clone())
        .collect();
    if !failed.is_empty() && interrupted.is_none() && args.diagnose.on() {
        report.diagnosis = diagnose(&s, &sdk, failed).await;
    }
    let verifying_at = started.elapsed();
    let (recovered_at, interrupted) = match interrupted {
        Some(sig) => (None, Some(sig)),
        None => match verify_environment(args, &s, &plans, &outcomes, &mut report, &cancel).await {
            Ok(v) => v,
            Err(e) => {
                // The in-progress record must not outlive this run: it ends as failed.
                let record = build_incident(args, &s, &plans, &outcomes, (None, None));
                record_incident(args, &s, &sdk, &record, &mut report).await;
                return Err(e);
            }
        },
    };
    let times = Times {
        planned: planned_at,
        acting: acting_at,
        verifying: verifying_at,
        verified: recovered_at.is_some().then(|| started.elapsed()),
    };
    report.charts.push(chart(&plans, &outcomes, &times));
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

/// When the phases of a rollback began, from the start of the run.
struct Times {
    planned: Duration,
    acting: Duration,
    verifying: Duration,
    /// When the verification passed (none when it did not).
    verified: Option<Duration>,
}

/// The rollback as a timeline: a lane per service, planned, rolling until steady (every service
/// starts as the act phase does: they roll at once) and verified, with times.
fn chart(plans: &[Plan], outcomes: &act::Outcomes, t: &Times) -> String {
    use deploy_core::render::mermaid::{Bar, Lane, Mark, gantt};
    let ms = |d: Duration| d.as_millis() as u64;
    let lanes: Vec<Lane> = plans
        .iter()
        .map(|p| {
            let mut bars = vec![Bar {
                label: format!("planned {}", p.target.name()),
                start_ms: 0,
                end_ms: ms(t.planned),
                mark: Mark::Done,
            }];
            if let Some(o) = outcomes.get(&p.service) {
                bars.push(Bar {
                    label: if o.ok {
                        "rolling to steady"
                    } else {
                        "rolling, failed"
                    }
                    .to_owned(),
                    start_ms: ms(t.acting),
                    end_ms: ms(t.acting + o.took),
                    mark: if o.ok { Mark::Active } else { Mark::Crit },
                });
            }
            let (label, end, mark) = match t.verified {
                Some(v) => ("verified", v, Mark::Done),
                None => ("not verified", t.verifying, Mark::Crit),
            };
            bars.push(Bar {
                label: label.to_owned(),
                start_ms: ms(t.verifying),
                end_ms: ms(end),
                mark,
            });
            Lane {
                name: p.service.clone(),
                bars,
            }
        })
        .collect();
    gantt(
        "Rollback per service, planned, rolling, steady, verified",
        &lanes,
    )
}

#[cfg(test)]
#[test]
fn every_shared_flag_has_its_words() {
    assert!(deploy_core::settings::missing_words::<Help>().is_empty());
}
