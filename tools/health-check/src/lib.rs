//! `health-check`: waits, with a deadline, until an environment is healthy. Polls every HTTP
//! health check (runbook 4.1, or `[health]` of deploy.toml) and optionally each ECS service's
//! rollout and the CloudWatch alarms, all in rounds at a steady cadence, until every probe has
//! passed N times in a row or the deadline passes. Then the optional bake window, the ALB 5xx gate
//! and the Availability metric. Attempts are counted and reported, never used as the limit.
//!
//! The run reads like the runbook: [`plan`] (what to poll, how long, how often), [`wait`] (the
//! rounds, on the one polling engine), [`gates`] (what counts only after healthy), [`report`].

mod checklist;
mod gates;
mod kpi;
mod plan;
mod preflight;
mod probe;
#[cfg(test)]
mod proptests;
mod report;
mod wait;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use deploy_core::aws::AwsArgs;
use deploy_core::cli::Resolved;
use deploy_core::config::EMBEDDED_HEALTH;
use deploy_core::duration::parse as parse_duration;
use deploy_core::http::{HttpClient, HttpOptions};
use deploy_core::settings::{
    ClusterArg, DiagnoseArgs, Docs, MetricArgs, ProbeArgs, ServicesArg, Wait, WaitArgs,
};
use deploy_core::{Exit, Report};

use crate::plan::Plan;
use crate::probe::Ctx;

/// Wait, with a deadline, until an environment is healthy.
///
/// Also the settings of [`check`] when another tool calls it as a library (rollback verifies the
/// environment it rolled back): a struct literal over `Args::default()`, which is what the flags
/// give with none set; no argv is built.
#[derive(Debug, Default, clap::Parser)]
#[command(name = "health-check", version, about, long_about = None)]
pub struct Args {
    /// The signal watch of a caller that runs health-check as a library (rollback's
    /// verification): one watch, so the caller sees the same signal. Else one of its own.
    #[arg(skip)]
    pub cancel: Option<deploy_core::cli::Cancel>,
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub cert: deploy_core::settings::CertArgs,

    #[command(flatten)]
    pub wait: WaitArgs<Help>,
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
    #[arg(long, value_name = "STATUS,...", value_delimiter = ',', help_heading = "Waiting")]
    pub retry_on: Vec<String>,
    /// Retry 401/403 too (normally a wrong token fails at once).
    #[arg(long, help_heading = "Waiting")]
    pub retry_unauthorized: bool,

    /// The commit the health body must report, in N consecutive responses (catches traffic still
    /// reaching old tasks).
    #[arg(long, value_name = "SHA", env = "DEPLOY_EXPECT_VERSION", help_heading = "Version")]
    pub expect_version: Option<String>,
    /// Field of the health body carrying the commit (default: health.version_field, else commitSha).
    #[arg(long, value_name = "FIELD", help_heading = "Version")]
    pub version_field: Option<String>,

    /// Also verify each ECS service of the environment: PRIMARY deployment COMPLETED, all tasks
    /// running, one deployment left, the expected task definition.
    #[arg(long, help_heading = "ECS")]
    pub ecs: bool,
    #[command(flatten)]
    pub cluster: ClusterArg<Help>,
    #[command(flatten)]
    pub services: ServicesArg<Help>,
    /// Task definition a service must run: `[SERVICE=]FAMILY:REV` or an ARN; repeat. Without
    /// `SERVICE=` it applies to every service.
    #[arg(long, value_name = "[SERVICE=]TD", help_heading = "ECS")]
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
    #[arg(long, value_name = "N", help_heading = "CloudWatch")]
    pub alb_5xx_threshold: Option<u64>,
    /// Window of the ALB 5xx gate (default: health.alb_5xx_window, else 5m).
    #[arg(long = "alb-5xx-window", value_name = "DURATION", value_parser = parse_duration, help_heading = "CloudWatch")]
    pub alb_5xx_window: Option<Duration>,
    /// ALB dimension value `app/NAME/ID` (default: the environment's load_balancer).
    #[arg(long, value_name = "app/NAME/ID", help_heading = "CloudWatch")]
    pub load_balancer: Option<String>,
    #[command(flatten)]
    pub metric: MetricArgs<Help>,

    /// Report the runbook's KPIs over this window instead of checking health: uptime from the
    /// Availability metric, incidents and MTTR from rollback's incident records (e.g. 30d).
    #[arg(long, value_name = "WINDOW", value_parser = deploy_core::duration::parse_window, help_heading = "KPIs")]
    pub kpi: Option<Duration>,
    /// Lowest acceptable uptime in percent for --kpi (default: kpi.uptime_target).
    #[arg(long, value_name = "PERCENT", value_parser = deploy_core::config::parse_percent_arg, requires = "kpi", help_heading = "KPIs")]
    pub uptime_target: Option<f64>,
    /// Longest acceptable average MTTR for --kpi (default: kpi.mttr_target).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "kpi", help_heading = "KPIs")]
    pub mttr_target: Option<Duration>,
    /// CloudWatch Logs group of rollback's incident records, for --kpi, --preflight and
    /// --mark-verified (default: rollback.incident_log_group).
    #[arg(long, value_name = "GROUP", help_heading = "KPIs")]
    pub incident_log_group: Option<String>,

    /// Instead of checking health: the runbook's deployment checklist (section 6) from the JSON
    /// reports of this job's steps (files or directories; default: the deploy-action-*.json in
    /// RUNNER_TEMP), each item ticked, crossed, not run or manual; crossed items are exit 1.
    #[arg(long, value_name = "PATH", num_args = 0.., conflicts_with_all = ["kpi", "preflight", "mark_verified"], help_heading = "Checklist")]
    pub checklist: Option<Vec<PathBuf>>,

    /// Before a deploy, instead of checking health: fail (exit 1) while an incident of the
    /// environment is open (a rollback in progress, or one that failed or was interrupted),
    /// naming it. Reads the incident records only; sends no probe.
    #[arg(long, conflicts_with_all = ["kpi", "mark_verified"], help_heading = "Before a deploy")]
    pub preflight: bool,
    /// With --preflight: deploy even though an incident is open (to roll a fix forward); the
    /// open incidents are reported, and --mark-verified resolves them once the deploy passed.
    #[arg(long, requires = "preflight", help_heading = "Before a deploy")]
    pub allow_open_incident: bool,

    #[command(flatten)]
    pub diagnose: DiagnoseArgs<Help>,

    /// When healthy, tag each service's running task definition revision as verified
    /// (`deploy-action:verified`, `deploy-action:sha`, `deploy-action:run`): what rollback
    /// chooses from. Needs --ecs.
    #[arg(long, requires = "ecs", help_heading = "ECS")]
    pub mark_verified: bool,
    /// `--mark-verified` of every service of an environment also resolves its open incidents,
    /// unless this is set. Not a flag: rollback's own verification sets it (its incident record
    /// says how the rollback ended).
    #[arg(skip)]
    pub keep_incidents_open: bool,
}

/// health-check's words for the settings groups it shares with rollback
/// ([`deploy_core::settings`]): `words.txt`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Help;

impl Docs for Help {
    const WORDS: &'static str = include_str!("words.txt");
}

/// The built-in wait: 300s, polled every 2s.
pub const DEFAULT_WAIT: Wait = Wait {
    deadline: Duration::from_secs(300),
    interval: plan::DEFAULT_INTERVAL,
};

/// The sections of deploy.toml health-check reads: a `${VAR}` elsewhere may be unset.
pub const CONFIG_READS: &[&str] = &[
    "defaults",
    "environments",
    "health",
    "metrics",
    "alarms",
    "kpi",
    "notify",
];

/// Waits until the environment is healthy (or the deadline passes) and returns the report, without
/// writing it anywhere: `run` emits it; rollback verifies with it. Plan, act, report.
pub async fn check(args: &Args) -> anyhow::Result<Report> {
    let started = Instant::now();
    if let Some(paths) = &args.checklist {
        return checklist::report(paths);
    }
    // SIGINT and SIGTERM are answered from here on, in every mode: before the wait (AWS
    // credentials can take seconds), during it, and in --kpi and --preflight, a cancelled job
    // gets a report saying so (and its check run `cancelled`), not a killed process.
    let cancel = args
        .cancel
        .clone()
        .unwrap_or_else(deploy_core::cli::Cancel::watch);
    let r = args.probe.resolve(EMBEDDED_HEALTH, CONFIG_READS)?;
    let cancelled = |sig: &str, when: &str| {
        let mut report = Report::new("health-check", env!("CARGO_PKG_VERSION"), r.label());
        report.interrupted(
            sig,
            format!("interrupted by {sig} {when}: nothing was checked"),
        );
        report.finish(started.elapsed());
        report
    };
    if let Some(window) = args.kpi {
        return tokio::select! {
            biased;
            sig = cancel.arrived() => Ok(cancelled(sig, "while reading the KPIs")),
            r = kpi::report(args, window, &r) => r,
        };
    }
    if args.preflight {
        return tokio::select! {
            biased;
            sig = cancel.arrived() => Ok(cancelled(sig, "before the deploy's checks")),
            r = preflight::report(args, &r) => r,
        };
    }
    if args.incident_log_group.is_some() && !args.mark_verified {
        return Err(deploy_core::exit::usage(
            "--incident-log-group is read by --kpi, --preflight and --mark-verified only",
        ));
    }
    // Plan: what each round polls, how long, how often; usage errors before any request.
    let plan = plan::plan(args, &r)?;
    let sdk = tokio::select! {
        biased;
        sig = cancel.arrived() => return Ok(cancelled(sig, "before the wait began")),
        sdk = aws(args, &r, &plan) => sdk?,
    };
    let ctx = connect(args, &plan, sdk.as_ref())?;
    // Act: poll until healthy, then the gates that count only after it.
    let mut interrupt = std::pin::pin!(cancel.arrived());
    let waited = wait::until_healthy(&ctx, &plan, interrupt.as_mut()).await?;
    let gates = gates::after_wait(&ctx, &plan, &waited, interrupt.as_mut()).await?;
    // Report: each probe's last word, the gates, the metric, the verified tags, why it failed.
    let run = report::Run {
        args,
        resolved: &r,
        plan: &plan,
        ctx: &ctx,
        sdk: sdk.as_ref(),
        started,
    };
    Ok(report::build(&run, &waited, gates).await)
}

/// The AWS configuration, when ECS or CloudWatch is used.
async fn aws(
    args: &Args,
    r: &Resolved,
    plan: &Plan,
) -> anyhow::Result<Option<deploy_core::aws_config::SdkConfig>> {
    if !args.ecs && !plan.needs_cloudwatch(args) {
        return Ok(None);
    }
    let region = r.region();
    Ok(Some(deploy_core::aws::sdk_config(&args.aws, region).await?))
}

/// The clients the rounds use.
fn connect(
    args: &Args,
    plan: &Plan,
    sdk: Option<&deploy_core::aws_config::SdkConfig>,
) -> anyhow::Result<Ctx> {
    Ok(Ctx {
        http: HttpClient::new("health-check", HttpOptions::for_checks())?,
        policy: plan.policy.clone(),
        ecs: match (sdk, &plan.cluster) {
            (Some(c), Some(cl)) => Some((deploy_core::aws::ecs(c), cl.clone())),
            _ => None,
        },
        cloudwatch: sdk
            .filter(|_| plan.needs_cloudwatch(args))
            .map(deploy_core::aws::cloudwatch),
        alarm_names: plan.alarm_names.clone(),
        alarm_prefix: plan.alarm_prefix.clone(),
    })
}

/// Runs the tool: waits, publishes the report when asked (`--publish`), then writes it
/// everywhere else it belongs.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    let report = match deploy_core::cli::catching(check(&args)).await {
        Ok(r) => r,
        Err(e) => {
            return Err(args
                .probe
                .publish
                .answer_error(e, &args.probe.common, "health-check")
                .await);
        }
    };
    // The wait's own duration stands: publishing is not part of it.
    let took = Duration::from_millis(report.duration_ms);
    let path = args.probe.common.config_label();
    args.probe
        .publish
        .publish_and_emit(report, &args.probe.common, &path, || took)
        .await
}

#[cfg(test)]
#[test]
fn every_shared_flag_has_its_words() {
    assert!(deploy_core::settings::missing_words::<Help>().is_empty());
}
