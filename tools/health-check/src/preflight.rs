//! `health-check --preflight`: before a deploy changes anything, is the environment free to roll
//! forward? It is not while an incident of it is open: a rollback in progress (a deploy now
//! would race it), or one that failed or was cut short (a deploy now would bury it). The state
//! comes from the incident records rollback writes (see `deploy_core::incidents`). No probe is
//! sent. `--allow-open-incident` deploys anyway, saying so; the deploy's `--mark-verified` then
//! resolves the incidents it rolled forward over.

use std::time::Instant;

use deploy_core::cli::Resolved;
use deploy_core::incidents::{self, LOOKBACK};
use deploy_core::report::AuditAction;
use deploy_core::{Check, Report, Status, exit};

use crate::Args;

/// The preflight report: one check, passed when no incident is open (or when it is and
/// `--allow-open-incident` says to deploy anyway), failed naming each open one.
pub(crate) async fn report(args: &Args, r: &Resolved) -> anyhow::Result<Report> {
    let started = Instant::now();
    let environment = r
        .environment
        .clone()
        .ok_or_else(|| exit::usage("--preflight needs an environment: pass --environment NAME"))?;
    let group = r.config.incident_log_group(args.incident_log_group.as_ref()).ok_or_else(|| {
        exit::usage(
            "--preflight reads rollback's incident records: pass --incident-log-group GROUP or set rollback.incident_log_group",
        )
    })?;
    let region = r.region();
    let sdk = deploy_core::aws::sdk_config(&args.aws, region).await?;
    let open = incidents::read_open(&deploy_core::logs::client(&sdk), &group, &environment).await?;
    let mut report = Report::new(
        "health-check",
        env!("CARGO_PKG_VERSION"),
        format!("{environment} before a deploy"),
    );
    let name = format!("no open incident ({environment})");
    let source = format!(
        "{group} stream {}, last {} days",
        deploy_core::logs::INCIDENT_STREAM,
        LOOKBACK.as_secs() / 86_400
    );
    let now = std::time::SystemTime::now();
    let running: Vec<String> = open
        .iter()
        .filter(|o| o.running(now))
        .map(|o| incidents::describe(o, now))
        .collect();
    let listed: Vec<String> = open.iter().map(|o| incidents::describe(o, now)).collect();
    let what = match open.len() {
        1 => format!("{environment} has an open incident: {}", listed.join("; ")),
        n => format!(
            "{environment} has {n} open incidents: {}",
            listed.join("; ")
        ),
    };
    let check = if open.is_empty() {
        Check::new(name, Status::Passed).reason("no incident is open: free to deploy")
    } else if !running.is_empty() {
        // A running rollback is never overridden: the deploy would race it on the same services.
        Check::new(name, Status::Failed).reason(format!(
            "{what}. A deploy now would race the rollback on the same services: wait until it \
             has ended (it records how){}",
            if args.allow_open_incident {
                "; --allow-open-incident does not override a rollback in progress"
            } else {
                ""
            }
        ))
    } else if args.allow_open_incident {
        tracing::warn!("deploying over it (--allow-open-incident): {what}");
        Check::new(name, Status::Passed)
            .reason(format!("{what}; deploying anyway (--allow-open-incident)"))
    } else {
        Check::new(name, Status::Failed).reason(format!(
            "{what}. A deploy now would roll forward over it. Once the cause is fixed, deploy \
             with --allow-open-incident (in the example workflows: a manual run with the input \
             allow-open-incident); that deploy's health-check --mark-verified then resolves it"
        ))
    };
    report.push(check.detail("source", source));
    report.output(
        "open-incidents",
        open.iter()
            .map(|o| o.incident_id.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    report.finish(started.elapsed());
    Ok(report)
}

/// After `--mark-verified` tagged the revisions of every service of the environment: each
/// incident still open (but a rollback still running) is over, as the environment passed every
/// check again. Writes a `resolved` record per incident and sets `resolved-incidents`. Nothing
/// without a log group. A failure here is a warning: the verification stands.
pub(crate) async fn resolve_open(
    args: &Args,
    r: &Resolved,
    sdk: &deploy_core::aws_config::SdkConfig,
    report: &mut Report,
) {
    let (Some(group), Some(environment)) = (
        r.config
            .incident_log_group(args.incident_log_group.as_ref()),
        r.environment.clone(),
    ) else {
        return;
    };
    let client = deploy_core::logs::client(sdk);
    let open = match incidents::read_open(&client, &group, &environment).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(
                "couldn't read the open incidents of {environment} to resolve them: {e:#}"
            );
            return;
        }
    };
    let target = format!("{group}/{}", deploy_core::logs::INCIDENT_STREAM);
    let mut resolved = Vec::new();
    let now = std::time::SystemTime::now();
    // A rollback still running is not over because this deploy passed: only its own record ends it.
    for o in open.iter().filter(|o| !o.running(now)) {
        let record = incidents::resolution(
            o,
            std::time::SystemTime::now(),
            "health-check --mark-verified",
        );
        let json = deploy_core::secret::redact(&record.to_string());
        match deploy_core::logs::put_event(
            &client,
            &group,
            deploy_core::logs::INCIDENT_STREAM,
            &json,
        )
        .await
        {
            Ok(()) => {
                report.audit(
                    AuditAction::LogsPutLogEvents,
                    &target,
                    deploy_core::report::AuditOutcome::Done,
                    Some(format!("{} resolved", o.incident_id)),
                );
                resolved.push(o.incident_id.clone());
            }
            Err(e) => {
                tracing::warn!("couldn't resolve incident {}: {e:#}", o.incident_id);
                report.audit(
                    AuditAction::LogsPutLogEvents,
                    &target,
                    deploy_core::report::AuditOutcome::Failed,
                    Some(format!("{e:#}")),
                );
            }
        }
    }
    if !resolved.is_empty() {
        report.output("resolved-incidents", resolved.join("\n"));
    }
}
