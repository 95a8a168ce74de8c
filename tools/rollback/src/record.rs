//! Record: the incident record (runbook section 7) built from the plans and outcomes, written
//! to every sink asked for (file, CloudWatch Logs, the MTTR metric, the changelog) with an audit
//! event each, its check and outputs, and the run's summary; and the `in-progress` record
//! written before the first change.

use std::time::SystemTime;

use deploy_core::incidents::Outcome as IncidentOutcome;
use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::{Check, Report, Status};

use crate::act::Outcomes;
use crate::incident::{self, Incident, ServiceRecord};
use crate::plan::{Plan, action_name};
use crate::{Args, Settings};

/// How a rollback ended: when the environment was healthy again (none: not recovered), and the
/// signal that cut it short.
pub(crate) type Ended<'a> = (Option<SystemTime>, Option<&'a str>);

/// The incident record of this rollback as it `ended`.
pub(crate) fn build_incident(
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
pub(crate) async fn open_incident(
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
pub(crate) async fn record_incident(
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
    if let (true, Some(mttr)) = (args.metric.emit_metric, record.mttr_seconds) {
        let ns = args.metric.namespace(&s.resolved.config);
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
pub(crate) fn sink_audit(
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
pub(crate) fn incident_check(record: &Incident, problems: &[String]) -> Check {
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
pub(crate) fn incident_outputs(record: &Incident, report: &mut Report) {
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

pub(crate) fn summary(
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
