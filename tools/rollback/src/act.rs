//! Act and wait, for one service: mark the revision being left bad, start the rollback
//! (UpdateService, or StopServiceDeployment with ROLLBACK for a deployment still in flight), then
//! wait on the deployment this rollback created, by its id, with the one polling engine
//! ([`deploy_core::retry`]) at a steady cadence. New service events are logged once each as they
//! come. That deployment FAILED, replaced (a circuit breaker put the old revision back) or the
//! deadline passing is a failure, with the stopped tasks' reasons.

use deploy_core::{Check, Status};

use crate::plan::plan_details;
use crate::{OnFailure, Settings};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy_core::aws_sdk_ecs as sdk;
use deploy_core::ecs::{self, DeploymentStatus, Rollout, RolloutState, Service};
use deploy_core::report::{AuditAction, AuditEvent, AuditOutcome, now_rfc3339};
use deploy_core::retry::{self, Cadence, Deadline, Ended, Schedule, Verdict};
use deploy_core::taskdef::{self, TAG_BAD};

use crate::plan::{Action, Plan, event_key};

/// What happened to one service.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Rolled back (or already there).
    pub ok: bool,
    /// One line.
    pub reason: String,
    /// Evidence (stopped tasks, last state).
    pub details: Vec<(String, String)>,
    /// Polls made.
    pub attempts: u32,
    /// Time from the first call to the end of the wait.
    pub took: Duration,
}

/// The audit trail, shared so that a run cut short by a signal still reports every call made.
pub type Audit = Arc<Mutex<Vec<AuditEvent>>>;

fn audit(
    log: &Audit,
    action: AuditAction,
    target: &str,
    outcome: AuditOutcome,
    detail: Option<String>,
) {
    if let Ok(mut l) = log.lock() {
        l.push(AuditEvent {
            at: now_rfc3339(),
            action,
            target: target.to_owned(),
            outcome,
            detail,
        });
    }
}

fn failed(reason: impl Into<String>) -> Outcome {
    Outcome {
        ok: false,
        reason: reason.into(),
        details: Vec::new(),
        attempts: 0,
        took: Duration::ZERO,
    }
}

/// What every service's rollback shares: the ECS client and cluster, the deadline and cadence of
/// the wait, and the audit trail.
#[derive(Clone)]
pub struct Ctx {
    /// ECS.
    pub client: sdk::Client,
    /// The cluster of the services.
    pub cluster: String,
    /// When every wait ends.
    pub deadline: Deadline,
    /// Pause between polls.
    pub interval: Duration,
    /// The audit trail, shared by every service's task.
    pub log: Audit,
}

/// Rolls one service back and waits for it: the revision left is tagged bad, the rollback starts
/// (natively when a deployment is in flight, else UpdateService), and its deployment is followed.
pub async fn roll_back(ctx: &Ctx, plan: &Plan, reason: &str) -> Outcome {
    let (client, cluster, log) = (&ctx.client, ctx.cluster.as_str(), &ctx.log);
    let svc = &plan.service;
    if plan.action == Action::NoOp {
        return Outcome {
            ok: true,
            reason: format!("already running {}: nothing to do", plan.target.name()),
            details: Vec::new(),
            attempts: 0,
            took: Duration::ZERO,
        };
    }
    let started = std::time::Instant::now();
    tag_bad(client, plan, reason, log).await;
    let deployment = match start(client, cluster, plan, log).await {
        Ok(d) => d,
        Err(e) => return failed(format!("couldn't start the rollback of {svc}: {e:#}")),
    };
    tracing::info!(
        "{svc}: rolling back {} -> {}{}",
        plan.current.name(),
        plan.target.name(),
        deployment
            .as_deref()
            .map(|d| format!(" (deployment {d})"))
            .unwrap_or_default()
    );
    let mut out = wait(ctx, plan, deployment.as_deref()).await;
    out.took = started.elapsed();
    out
}

/// Tags the revision being left `deploy-action:bad` (time and reason); a failure is only logged.
async fn tag_bad(client: &sdk::Client, plan: &Plan, reason: &str, log: &Audit) {
    let bad = format!("{} rolled back: {reason}", now_rfc3339());
    let (outcome, detail) =
        match taskdef::tag(client, &plan.current.arn, &[(TAG_BAD, bad.clone())]).await {
            Ok(()) => (
                AuditOutcome::Done,
                format!("{TAG_BAD}={}", taskdef::tag_value(&bad)),
            ),
            Err(e) => {
                let svc = &plan.service;
                tracing::warn!("{svc}: couldn't tag {} bad: {e:#}", plan.current.name());
                (AuditOutcome::Failed, format!("{e:#}"))
            }
        };
    audit(
        log,
        AuditAction::EcsTagResource,
        &plan.current.arn,
        outcome,
        Some(detail),
    );
}

/// Starts the rollback: StopServiceDeployment(ROLLBACK) for a deployment in flight (falling back
/// to UpdateService if ECS refuses), else UpdateService. The deployment to follow, if known.
async fn start(
    client: &sdk::Client,
    cluster: &str,
    plan: &Plan,
    log: &Audit,
) -> anyhow::Result<Option<String>> {
    let Action::Native { arn } = &plan.action else {
        return update(client, cluster, plan, log).await.map(Some);
    };
    match stop_deployment(client, arn).await {
        Ok(()) => {
            let detail = format!("ROLLBACK of {} to {}", plan.service, plan.target.name());
            audit(
                log,
                AuditAction::EcsStopServiceDeployment,
                arn,
                AuditOutcome::Done,
                Some(detail),
            );
            Ok(None)
        }
        Err(e) => {
            let detail = format!("{e:#}");
            audit(
                log,
                AuditAction::EcsStopServiceDeployment,
                arn,
                AuditOutcome::Failed,
                Some(detail),
            );
            tracing::warn!(
                "{}: native rollback refused ({e:#}); using UpdateService",
                plan.service
            );
            update(client, cluster, plan, log).await.map(Some)
        }
    }
}

async fn stop_deployment(client: &sdk::Client, arn: &str) -> anyhow::Result<()> {
    client
        .stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(sdk::types::StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .map_err(|e| {
            deploy_core::aws::error(&format!("couldn't stop service deployment {arn}"), &e)
        })?;
    Ok(())
}

/// UpdateService to the target; returns the id of the deployment it created.
async fn update(
    client: &sdk::Client,
    cluster: &str,
    plan: &Plan,
    log: &Audit,
) -> anyhow::Result<String> {
    let (cluster, service) = ecs::locate(cluster, &plan.service);
    let resp = client
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(&plan.target.arn)
        .send()
        .await;
    let detail = Some(format!("{} -> {}", plan.current.name(), plan.target.name()));
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            let e =
                deploy_core::aws::error(&format!("couldn't update service {}", plan.service), &e);
            audit(
                log,
                AuditAction::EcsUpdateService,
                &plan.service,
                AuditOutcome::Failed,
                Some(format!("{e:#}")),
            );
            return Err(e);
        }
    };
    audit(
        log,
        AuditAction::EcsUpdateService,
        &plan.service,
        AuditOutcome::Done,
        detail,
    );
    Ok(resp
        .service()
        .map(Service::from)
        .and_then(|s| s.primary().cloned())
        .map(|d| d.id)
        .unwrap_or_default())
}

/// Judges one snapshot of the service while waiting on `deployment` (None: a native rollback,
/// judged by the revision PRIMARY runs).
pub fn judge_wait(svc: &Service, target: &str, deployment: Option<&str>) -> Verdict {
    if let Some(id) = deployment.filter(|d| !d.is_empty()) {
        let primary = svc.primary();
        match svc.deployments.iter().find(|d| d.id == id) {
            None => {
                return Verdict::Fatal {
                    reason: format!(
                        "deployment {id} is gone: PRIMARY now runs {} (replaced, e.g. by the circuit breaker)",
                        primary.map_or("nothing", |p| ecs::family_revision(&p.task_definition))
                    ),
                };
            }
            Some(d) if d.rollout_state == Some(RolloutState::Failed) => {
                return Verdict::Fatal {
                    reason: format!(
                        "deployment {id} FAILED: {}",
                        d.rollout_state_reason
                            .as_deref()
                            .unwrap_or("no reason given")
                    ),
                };
            }
            Some(d) if d.status != DeploymentStatus::Primary => {
                return Verdict::Fatal {
                    reason: format!(
                        "deployment {id} was replaced: PRIMARY is {} running {} (circuit breaker?)",
                        primary.map_or("none", |p| p.id.as_str()),
                        primary.map_or("nothing", |p| ecs::family_revision(&p.task_definition))
                    ),
                };
            }
            Some(_) => {}
        }
    } else if let Some(p) = svc.primary()
        && !ecs::td_matches(&p.task_definition, target)
    {
        // A native rollback (StopServiceDeployment) creates no deployment to follow: ECS puts the
        // previous one back as PRIMARY in its own time. Until it does, that is waiting, not a
        // failure; a deployment of the target that FAILED is one.
        if let Some(f) = svc.deployments.iter().find(|d| {
            ecs::td_matches(&d.task_definition, target)
                && d.rollout_state == Some(RolloutState::Failed)
        }) {
            return Verdict::Fatal {
                reason: format!(
                    "deployment {} of {} FAILED: {}",
                    f.id,
                    ecs::family_revision(target),
                    f.rollout_state_reason
                        .as_deref()
                        .unwrap_or("no reason given")
                ),
            };
        }
        return Verdict::retry(format!(
            "waiting for ECS to make {} PRIMARY again (PRIMARY runs {})",
            ecs::family_revision(target),
            ecs::family_revision(&p.task_definition)
        ));
    }
    match ecs::judge(svc, Some(target)) {
        Rollout::Completed => Verdict::Pass,
        Rollout::InProgress(reason) => Verdict::retry(reason),
        Rollout::Failed(reason) => Verdict::Fatal { reason },
    }
}

async fn wait(ctx: &Ctx, plan: &Plan, deployment: Option<&str>) -> Outcome {
    let (client, cluster) = (&ctx.client, ctx.cluster.as_str());
    let (deadline, interval) = (ctx.deadline, ctx.interval);
    let svc = plan.service.clone();
    let target = plan.target.arn.clone();
    let mut seen: HashSet<String> = plan.known_events.iter().cloned().collect();
    let names = [svc.clone()];
    // Signals are the run's business: it stops every service's wait at once.
    let outcome = retry::poll(
        Schedule::new(deadline, Cadence::steady(interval)),
        std::future::pending(),
        |_| async { ecs::describe(client, cluster, &names).await },
        |r| match r {
            Err(e) => Verdict::retry(format!("{e:#}")),
            Ok(list) => match list.first() {
                Some(Ok(s)) => {
                    for e in s.events.iter().rev() {
                        if seen.insert(event_key(e)) {
                            tracing::info!(
                                "{svc}: {} {}",
                                e.created_at.as_deref().unwrap_or(""),
                                e.message
                            );
                        }
                    }
                    judge_wait(s, &target, deployment)
                }
                Some(Err(reason)) => Verdict::Fatal {
                    reason: reason.clone(),
                },
                None => Verdict::retry("service not returned"),
            },
        },
    )
    .await;
    let details = outcome
        .last
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .and_then(|l| l.first())
        .and_then(|s| s.as_ref().ok())
        .and_then(ecs::primary_detail)
        .into_iter()
        .collect();
    let (ok, reason) = match outcome.ended {
        Ended::Done => (
            true,
            format!(
                "rolled back {} -> {}",
                plan.current.name(),
                plan.target.name()
            ),
        ),
        Ended::Deadline => (
            false,
            format!(
                "not rolled back within {}: {}",
                humantime::format_duration(Duration::from_secs(deadline.budget().as_secs())),
                outcome.reason().unwrap_or("no answer")
            ),
        ),
        _ => (false, outcome.reason().unwrap_or("stopped").to_owned()),
    };
    Outcome {
        ok,
        reason,
        details,
        attempts: outcome.attempts,
        took: Duration::ZERO,
    }
}

pub(crate) type Outcomes = std::collections::BTreeMap<String, Outcome>;

/// Rolls every planned service back concurrently, under one deadline, until done or a signal.
pub(crate) async fn act_all(
    ecs: &deploy_core::aws_sdk_ecs::Client,
    s: &Settings,
    plans: &[Plan],
    reason: &str,
    on_failure: OnFailure,
    cancel: &deploy_core::cli::Cancel,
) -> (
    Outcomes,
    Option<&'static str>,
    Vec<deploy_core::report::AuditEvent>,
) {
    let log: Audit = Arc::new(Mutex::new(Vec::new()));
    // A signal that came while the incident was being opened: no service is touched.
    if let Some(sig) = cancel.signal() {
        return (Outcomes::new(), Some(sig), Vec::new());
    }
    let deadline = Deadline::after(s.wait.deadline);
    let mut set = tokio::task::JoinSet::new();
    for p in plans {
        for w in &p.warnings {
            tracing::warn!("{}: {w}", p.service);
        }
        let ctx = Ctx {
            client: ecs.clone(),
            cluster: s.cluster.clone(),
            deadline,
            interval: s.wait.interval,
            log: log.clone(),
        };
        let (p, reason) = (p.clone(), reason.to_owned());
        set.spawn(async move {
            let o = roll_back(&ctx, &p, &reason).await;
            (p.service, o)
        });
    }
    let mut outcomes = Outcomes::new();
    let mut interrupted = None;
    let mut signal = std::pin::pin!(cancel.arrived());
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

pub(crate) fn service_check(p: &Plan, o: Option<&Outcome>, interrupted: Option<&str>) -> Check {
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

#[cfg(test)]
mod tests {
    use super::*;
    use deploy_core::ecs::Deployment;

    fn svc(deps: Vec<Deployment>) -> Service {
        Service {
            service_name: "web".into(),
            status: "ACTIVE".into(),
            desired_count: 1,
            running_count: 1,
            deployments: deps,
            ..Default::default()
        }
    }

    fn dep(id: &str, status: &str, td: &str, state: &str) -> Deployment {
        Deployment {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            desired_count: 1,
            running_count: 1,
            rollout_state: Some(state.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_rollback_deployment_is_followed_by_id() {
        let done = svc(vec![dep("d2", "PRIMARY", "web:3", "COMPLETED")]);
        assert_eq!(judge_wait(&done, "web:3", Some("d2")), Verdict::Pass);
        let going = svc(vec![
            dep("d2", "PRIMARY", "web:3", "IN_PROGRESS"),
            dep("d1", "ACTIVE", "web:5", "COMPLETED"),
        ]);
        assert!(matches!(
            judge_wait(&going, "web:3", Some("d2")),
            Verdict::Retry { .. }
        ));
        let failed = svc(vec![dep("d2", "PRIMARY", "web:3", "FAILED")]);
        assert!(
            matches!(judge_wait(&failed, "web:3", Some("d2")), Verdict::Fatal { reason } if reason.contains("d2 FAILED"))
        );
        let replaced = svc(vec![dep("d3", "PRIMARY", "web:5", "COMPLETED")]);
        assert!(
            matches!(judge_wait(&replaced, "web:3", Some("d2")), Verdict::Fatal { reason } if reason.contains("d2 is gone: PRIMARY now runs web:5"))
        );
        let demoted = svc(vec![
            dep("d3", "PRIMARY", "web:5", "IN_PROGRESS"),
            dep("d2", "ACTIVE", "web:3", "IN_PROGRESS"),
        ]);
        assert!(
            matches!(judge_wait(&demoted, "web:3", Some("d2")), Verdict::Fatal { reason } if reason.contains("was replaced"))
        );
        // Native rollback: judged by what PRIMARY runs, waiting while ECS has not put the
        // target back yet, failing when a deployment of the target FAILED.
        assert_eq!(judge_wait(&done, "web:3", None), Verdict::Pass);
        let stopping = svc(vec![
            dep("d5", "PRIMARY", "web:5", "IN_PROGRESS"),
            dep("d2", "ACTIVE", "web:3", "COMPLETED"),
        ]);
        assert!(
            matches!(judge_wait(&stopping, "web:3", None), Verdict::Retry { .. }),
            "{:?}",
            judge_wait(&stopping, "web:3", None)
        );
        let back_failed = svc(vec![
            dep("d5", "PRIMARY", "web:5", "COMPLETED"),
            dep("d6", "ACTIVE", "web:3", "FAILED"),
        ]);
        assert!(
            matches!(judge_wait(&back_failed, "web:3", None), Verdict::Fatal { reason } if reason.contains("d6 of web:3 FAILED"))
        );
    }
}
