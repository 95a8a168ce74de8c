//! Verify: after the services rolled back, the health-check engine (as a library, the same
//! config) checks the environment and tags the targets verified again; on failure, "why it failed".

use std::time::{Duration, SystemTime};

use deploy_core::cli::CommonArgs;
use deploy_core::settings::{ClusterArg, ProbeArgs, ServicesArg, WaitArgs};
use deploy_core::{Check, Exit, Report};

use crate::act::Outcomes;
use crate::plan::Plan;
use crate::{Args, Settings};

/// Runs the health-check engine on the environment once the services rolled back; its checks join
/// the report as `verify: ...`. Returns when the incident recovered (every service rolled back
/// and the environment healthy) and whether a signal cut the verification short.
pub(crate) async fn verify_environment(
    args: &Args,
    s: &Settings,
    plans: &[Plan],
    outcomes: &Outcomes,
    report: &mut Report,
    cancel: &deploy_core::cli::Cancel,
) -> anyhow::Result<(Option<SystemTime>, Option<&'static str>)> {
    let ok: Vec<&Plan> = plans
        .iter()
        .filter(|p| outcomes.get(&p.service).is_some_and(|o| o.ok))
        .collect();
    if ok.is_empty() {
        return Ok((None, None));
    }
    match verify(args, s, &ok, cancel).await? {
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

/// Why the failed services did not roll back, with the environment's alarms.
pub(crate) async fn diagnose(
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

pub(crate) enum Verified {
    Report(Box<Report>),
    Interrupted(&'static str),
}

/// The health-check engine over the same config: HTTP checks, the rolled-back services on their
/// targets, the alarms; on success it tags the targets verified again (`--mark-verified`).
pub(crate) async fn verify(
    args: &Args,
    s: &Settings,
    ok: &[&Plan],
    cancel: &deploy_core::cli::Cancel,
) -> anyhow::Result<Verified> {
    // health-check as a library: its settings as a struct, the flags rollback shares with it
    // passed as they are (no argv is built and parsed again).
    let hc = health_check::Args {
        probe: ProbeArgs {
            common: CommonArgs {
                config: args.probe.common.config.clone(),
                environment: Some(s.environment.clone()),
                ..CommonArgs::default()
            },
            service: args.probe.service.clone(),
            ..ProbeArgs::default()
        },
        aws: args.aws.clone(),
        ecs: true,
        mark_verified: true,
        cluster: ClusterArg::new(Some(s.cluster.clone())),
        services: ServicesArg::new(ok.iter().map(|p| p.service.clone()).collect()),
        expect_task_definition: ok
            .iter()
            .map(|p| format!("{}={}", p.service, p.target.arn))
            .collect(),
        wait: WaitArgs::new(args.verify_wait, None),
        // The version a deploy expected is the bad one: the restored revision serves its own.
        expect_version: None,
        // This rollback's own record says how it ended; its verification resolves no incident.
        keep_incidents_open: true,
        // One watch for the signal: the rollback's.
        cancel: Some(cancel.clone()),
        ..health_check::Args::default()
    };
    tracing::info!("verifying {} with the health checks", s.environment);
    // Biased: once the signal is in, it is the rollback's to answer, whatever the check makes of it.
    tokio::select! {
        biased;
        sig = cancel.arrived() => Ok(Verified::Interrupted(sig)),
        r = health_check::check(&hc) => Ok(Verified::Report(Box::new(r?))),
    }
}
