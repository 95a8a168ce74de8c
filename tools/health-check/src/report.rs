//! Report: each probe's last word, the gates, and what a healthy (or not) run records: the
//! Availability metric, the verified tags rollback chooses from, and "why it failed".

use std::time::{Duration, Instant};

use deploy_core::checks;
use deploy_core::cli::Resolved;
use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::retry::Ended;
use deploy_core::{Check, Exit, Report, Status, ecs, exit};

use crate::Args;
use crate::gates::{self, Gates};
use crate::plan::Plan;
use crate::probe::{Ctx, Kind};
use crate::wait::Waited;

/// What the report is built from.
pub(crate) struct Run<'a> {
    pub args: &'a Args,
    pub resolved: &'a Resolved,
    pub plan: &'a Plan,
    pub ctx: &'a Ctx,
    pub sdk: Option<&'a deploy_core::aws_config::SdkConfig>,
    pub started: Instant,
}

/// The report of a finished wait: checks, gates, the record of health, outputs and summary.
pub(crate) async fn build(run: &Run<'_>, waited: &Waited, mut gates: Gates) -> Report {
    let (plan, args) = (run.plan, run.args);
    let mut report = Report::new(
        "health-check",
        env!("CARGO_PKG_VERSION"),
        run.resolved.label(),
    );
    let versions = probe_checks(run, waited, gates.interrupted, &mut report);
    if waited.rounds > 0 {
        report.charts.push(wait_chart(plan, waited));
    }
    if let (Some(want), true) = (&args.expect_version, gates.healthy) {
        let check = gates::version(plan, want, &versions);
        gates.healthy &= check.status == Status::Passed;
        gates.checks.push(check);
    }
    for g in gates.checks {
        report.push(g);
    }
    let healthy = gates.healthy && gates.interrupted.is_none();
    if let Some(s) = gates.interrupted {
        report.interrupted(
            s,
            format!("interrupted by {s} while waiting: partial report"),
        );
    }
    // A cancelled run says nothing about availability: no metric then.
    if args.metric.emit_metric && gates.interrupted.is_none() {
        emit_metric(run, healthy, &mut report).await;
    }
    if args.mark_verified
        && let Some((client, cluster)) = &run.ctx.ecs
    {
        let marked = healthy && report.outcome == Exit::Passed;
        if marked {
            let expect = args.expect_version.as_deref();
            mark_verified(client, cluster, &plan.services, expect, &mut report).await;
            // Verified again: the incidents a deploy rolled forward over are over.
            // Only when every service the environment has was verified (a --service subset
            // says nothing about the others).
            let whole = run.resolved.env().is_none_or(|e| {
                e.services
                    .iter()
                    .all(|s| plan.services.iter().any(|p| p == s.expose()))
            });
            if report.outcome == Exit::Passed
                && !args.keep_incidents_open
                && whole
                && let Some(sdk) = run.sdk
            {
                crate::preflight::resolve_open(args, run.resolved, sdk, &mut report).await;
            }
        }
        report.output("verified", marked && report.outcome == Exit::Passed);
    }
    if !healthy && gates.interrupted.is_none() && args.diagnose.on() {
        diagnose(run, waited, &mut report).await;
    }
    finish(run, waited, healthy, versions.first(), &mut report);
    report
}

/// One check per probe, from its last attempt; returns the versions the bodies reported.
fn probe_checks(
    run: &Run<'_>,
    waited: &Waited,
    interrupted: Option<&'static str>,
    report: &mut Report,
) -> Vec<String> {
    let plan = run.plan;
    let threshold = plan.threshold;
    let took = run.started.elapsed();
    let mut versions = Vec::new();
    for (p, t) in plan.probes.iter().zip(&waited.tallies) {
        let mut c = checks::report_check(&p.name, t.attempts, took, t.last.as_ref());
        if let Some(v) = t.last.as_ref().and_then(|a| a.version.clone()) {
            versions.push(v);
        }
        if c.status == Status::Passed && !t.streak.met() {
            c.reason = Some(match waited.ended {
                // Out of time before it held long enough: not healthy.
                Ended::Deadline => {
                    c.status = Status::Failed;
                    format!(
                        "passed {} of the {threshold} times in a row needed before the deadline",
                        t.streak.current()
                    )
                }
                // Another probe ended the run: this one was passing, say so.
                _ => format!(
                    "{}; {} of {threshold} passes in a row when the run ended",
                    c.reason.unwrap_or_default(),
                    t.streak.current()
                ),
            });
        }
        if c.status == Status::Failed && waited.ended == Ended::Deadline {
            c.reason = Some(format!(
                "{} (deadline of {} passed after {} attempts)",
                c.reason.unwrap_or_default(),
                humantime::format_duration(plan.wait),
                t.attempts
            ));
        }
        if let Some(s) = interrupted
            && t.attempts == 0
        {
            c = Check::new(&p.name, Status::Skipped).reason(format!("not run: interrupted by {s}"));
        }
        report.push(c);
    }
    versions
}

/// Puts the Availability metric (runbook 7); a failure is a dependency error in the report.
async fn emit_metric(run: &Run<'_>, healthy: bool, report: &mut Report) {
    let Some(cw) = &run.ctx.cloudwatch else {
        return;
    };
    let r = run.resolved;
    let env_name = r.environment.clone().unwrap_or_else(|| "default".into());
    let namespace = run.args.metric.namespace(&r.config);
    match deploy_core::cloudwatch::put_availability(cw, &namespace, &env_name, healthy).await {
        Ok(()) => {
            report.audit(
                AuditAction::CloudwatchPutMetricData,
                &format!("{namespace}/Availability Environment={env_name}"),
                AuditOutcome::Done,
                Some(format!("value {}", u8::from(healthy))),
            );
            report.output("availability", u8::from(healthy));
        }
        Err(e) => {
            report.audit(
                AuditAction::CloudwatchPutMetricData,
                &namespace,
                AuditOutcome::Failed,
                Some(format!("{e:#}")),
            );
            report.fail_with(Exit::Dependency, format!("{e:#}"));
        }
    }
}

/// "Why it failed": the failing ECS services (else, an HTTP failure, all of them) and the alarms.
async fn diagnose(run: &Run<'_>, waited: &Waited, report: &mut Report) {
    let Some(sdk) = run.sdk else {
        return;
    };
    let (plan, ctx) = (run.plan, run.ctx);
    let failing: Vec<String> = plan
        .probes
        .iter()
        .zip(&waited.tallies)
        .filter_map(|(p, t)| match (&p.kind, &t.last) {
            (Kind::Ecs { service, .. }, Some(last)) if !last.verdict.passed() => {
                Some(service.clone())
            }
            _ => None,
        })
        .collect();
    let alarms_on = plan.alarms_on();
    let scope = deploy_core::diagnose::Scope {
        cluster: ctx.ecs.as_ref().map(|(_, c)| c.clone()),
        services: if failing.is_empty() {
            plan.services.clone()
        } else {
            failing
        },
        alarm_names: if alarms_on {
            ctx.alarm_names.clone()
        } else {
            Vec::new()
        },
        alarm_prefix: ctx.alarm_prefix.clone().filter(|_| alarms_on),
        stopped_tasks: 5,
        log_lines: 20,
    };
    let src = deploy_core::diagnose::Sources::new(sdk);
    report.diagnosis = deploy_core::diagnose::diagnose(&src, &scope, Duration::from_secs(20)).await;
}

/// Outputs, the exit code a failed wait needs, and the one-line summary.
fn finish(
    run: &Run<'_>,
    waited: &Waited,
    healthy: bool,
    version: Option<&String>,
    report: &mut Report,
) {
    let rounds = waited.rounds;
    let (passed, ..) = report.counts();
    report.output("passed", passed);
    report.output("failed", report.checks.len() - passed);
    report.output("healthy", healthy);
    report.output("attempts", rounds);
    report.output(
        "duration-seconds",
        format!("{:.1}", run.started.elapsed().as_secs_f64()),
    );
    if let Some(v) = version {
        report.output("deployed-version", v);
    }
    report.finish(run.started.elapsed());
    if !healthy && report.outcome == Exit::Passed {
        report.outcome = Exit::Failed;
    }
    let not_passing = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Passed)
        .count();
    let total = report.checks.len();
    report.summary = match (waited.ended, healthy) {
        (_, true) => format!(
            "healthy: {} probes passed {} times in a row after {rounds} rounds",
            run.plan.probes.len(),
            run.plan.threshold
        ),
        (Ended::Interrupted(s), _) => format!("interrupted by {s} after {rounds} rounds"),
        (Ended::Deadline, _) => format!(
            "not healthy within {}: {not_passing} of {total} probes not passing",
            humantime::format_duration(run.plan.wait),
        ),
        _ => format!("not healthy: {not_passing} of {total} probes failed"),
    };
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
    let now = deploy_core::report::now_rfc3339();
    let result: anyhow::Result<()> = async {
        for svc in ecs::describe(client, cluster, services).await? {
            let svc = svc.map_err(exit::dependency)?;
            tag_verified(client, &svc, expect_version, &now, report).await?;
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

async fn tag_verified(
    client: &deploy_core::aws_sdk_ecs::Client,
    svc: &ecs::Service,
    expect_version: Option<&str>,
    now: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    use deploy_core::taskdef::{self, TAG_RUN, TAG_SHA, TAG_VERIFIED};
    let running = svc
        .primary()
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
    let mut tags = vec![(TAG_VERIFIED, now.to_owned())];
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
        Ok(()) => {
            report.audit(
                AuditAction::EcsTagResource,
                &td.arn,
                AuditOutcome::Done,
                detail,
            );
            Ok(())
        }
        Err(e) => {
            report.audit(
                AuditAction::EcsTagResource,
                &td.arn,
                AuditOutcome::Failed,
                detail,
            );
            Err(e)
        }
    }
}

/// The health wait as a timeline: a lane per probe, a bar per attempt (red failed, grey passed)
/// from its round's start for its latency, until healthy or the deadline.
fn wait_chart(plan: &Plan, waited: &Waited) -> String {
    use deploy_core::render::mermaid::{Bar, Lane, Mark, gantt};
    let ms = |d: Duration| d.as_millis() as u64;
    let lanes: Vec<Lane> = plan
        .probes
        .iter()
        .zip(&waited.tallies)
        .map(|(p, t)| Lane {
            name: p.name.clone(),
            bars: t
                .history
                .iter()
                .map(|&(at, latency, passed)| Bar {
                    label: if passed { "pass" } else { "fail" }.to_owned(),
                    start_ms: ms(at),
                    end_ms: ms(at + latency),
                    mark: if passed { Mark::Done } else { Mark::Crit },
                })
                .collect(),
        })
        .collect();
    let how = if waited.healthy() {
        "healthy"
    } else {
        "not healthy"
    };
    gantt(
        &format!(
            "Health wait, {how} after {} rounds (deadline {})",
            waited.rounds,
            humantime::format_duration(plan.wait)
        ),
        &lanes,
    )
}
