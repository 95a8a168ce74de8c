//! Pre-flight: every service is planned before any is changed. A plan names the running revision,
//! the target and how to get there (nothing to do, a native ECS rollback of a deployment still in
//! flight, or UpdateService), with the diff a reviewer wants to see. A refusal (no verified
//! revision, an INACTIVE target, an image gone from ECR, another deployment controller) means
//! nothing changes anywhere.

use deploy_core::report::{AuditAction, AuditOutcome};
use deploy_core::{Check, Report, Status};

use crate::Settings;

use deploy_core::aws_sdk_ecs as sdk;
use deploy_core::ecs::{self, DeploymentStatus, RolloutState, Service};
use deploy_core::taskdef::{self, TaskDef};

use crate::images::{Checker, Found};
use crate::target::{self, To};

/// How a service gets to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Already there.
    NoOp,
    /// UpdateService to the target: a new deployment.
    Update,
    /// StopServiceDeployment with ROLLBACK of the deployment in flight (keeps the resolved digests).
    Native {
        /// The service deployment to stop.
        arn: String,
    },
}

/// A service ready to roll back.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Service name.
    pub service: String,
    /// The revision running now (the one left).
    pub current: TaskDef,
    /// The revision to go back to.
    pub target: TaskDef,
    /// How.
    pub action: Action,
    /// current -> target, for the report.
    pub diff: Vec<(String, String)>,
    /// Things to know (unverified target, circuit breaker).
    pub warnings: Vec<String>,
    /// When the deployment of the running revision was created (incident start).
    pub bad_since: Option<String>,
    /// Event ids already there at planning time (not streamed again).
    pub known_events: Vec<String>,
}

/// The pre-flight verdict for one service.
#[derive(Debug, Clone)]
pub enum Planned {
    /// Ready.
    Ready(Box<Plan>),
    /// Refused, with the reason and what was found.
    Refused {
        /// Service name.
        service: String,
        /// Why.
        reason: String,
        /// What was looked at.
        details: Vec<(String, String)>,
    },
}

/// The event key used to stream each event once.
pub fn event_key(e: &ecs::Event) -> String {
    e.id.clone()
        .unwrap_or_else(|| format!("{} {}", e.created_at.as_deref().unwrap_or(""), e.message))
}

fn refused(service: &str, reason: impl Into<String>, details: Vec<(String, String)>) -> Planned {
    Planned::Refused {
        service: service.to_owned(),
        reason: reason.into(),
        details,
    }
}

/// The most revisions looked at when walking back.
const MAX_WALK: usize = 50;

/// What a service's plan is asked for: the target (`--to`), and whether a revision never
/// verified may be chosen (`--allow-unverified`).
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The target.
    pub to: &'a To,
    /// `--allow-unverified`.
    pub allow_unverified: bool,
}

/// Plans one service: what it runs, the target (`--to`), whether that target may be deployed
/// (ACTIVE, not bad, its images still in ECR), and the diff and warnings to show.
pub async fn plan_service(
    client: &sdk::Client,
    checker: &mut Checker,
    cluster: &str,
    service: &str,
    wanted: Wanted<'_>,
) -> anyhow::Result<Planned> {
    let Wanted {
        to,
        allow_unverified,
    } = wanted;
    let (svc, running) = match running(client, cluster, service).await? {
        Ok(found) => found,
        Err(reason) => return Ok(refused(service, reason, Vec::new())),
    };
    let current = taskdef::describe(client, &running).await?;
    let chosen = match choose(client, checker, &current, to, allow_unverified).await? {
        Ok(c) => c,
        Err((reason, details)) => return Ok(refused(service, reason, details)),
    };
    let mut target = chosen.target;
    let mut warnings = chosen.warnings;
    let mut details: Vec<(String, String)> = chosen
        .passed_over
        .iter()
        .map(|s| ("passed over".to_owned(), format!("{}: {}", s.name, s.why)))
        .collect();
    if let Some(reason) = undeployable(&target) {
        return Ok(refused(service, reason, details));
    }
    if target.arn.is_empty() {
        target.arn = running.clone();
    }
    if ecs::td_matches(&current.arn, &target.name()) {
        return Ok(Planned::Ready(Box::new(Plan {
            service: service.to_owned(),
            target: current.clone(),
            current,
            action: Action::NoOp,
            diff: vec![("revision".into(), "already running the target".into())],
            warnings,
            bad_since: None,
            known_events: svc.events.iter().map(event_key).collect(),
        })));
    }
    if let Some(reason) = check_images(checker, &target, &mut details, &mut warnings).await? {
        return Ok(refused(service, reason, details));
    }
    if target.verified().is_none() && chosen.passed_over.is_empty() && !matches!(to, To::Previous) {
        warnings.push(format!(
            "target {} was never verified by health-check",
            target.name()
        ));
    }
    if svc.circuit_breaker == Some((true, true)) {
        warnings.push(format!(
            "the deployment circuit breaker rolls back failed deployments: if this rollback's deployment fails, ECS puts {service} back on {} (the revision being left)",
            current.name()
        ));
    }
    let mut diff = diff(&current, &target);
    diff.extend(details);
    let action = in_flight_action(client, ecs::locate(cluster, service).0, &svc, &target).await;
    let primary = svc.primary();
    Ok(Planned::Ready(Box::new(Plan {
        service: service.to_owned(),
        bad_since: primary.and_then(|d| d.created_at.clone()),
        known_events: svc.events.iter().map(event_key).collect(),
        current,
        target,
        action,
        diff,
        warnings,
    })))
}

/// The service and the task definition it runs (its PRIMARY deployment's), or why it cannot be
/// rolled back here (not found, another deployment controller, nothing running).
async fn running(
    client: &sdk::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<Result<(Service, String), String>> {
    let svc = match ecs::describe(client, cluster, &[service.to_owned()])
        .await?
        .pop()
    {
        Some(Ok(s)) => s,
        Some(Err(reason)) => return Ok(Err(reason)),
        None => return Ok(Err("not returned by DescribeServices".into())),
    };
    if let Some(c) = svc.deployment_controller.as_deref().filter(|c| *c != "ECS") {
        return Ok(Err(format!(
            "its deployment controller is {c}, not ECS: roll it back with {c}"
        )));
    }
    let primary = svc.primary();
    // The circuit breaker already rolling back: the PRIMARY is the older revision ECS is putting
    // back, and a newer one's deployment FAILED. That newer one is the bad revision to go back
    // from (and to tag bad), not the PRIMARY, which may well be the good one.
    let failed_newer = primary.and_then(|p| {
        let (family, rev) = deploy_core::taskdef::parse_name(&p.task_definition)?;
        svc.deployments
            .iter()
            .filter(|d| {
                d.status != ecs::DeploymentStatus::Primary
                    && d.rollout_state == Some(ecs::RolloutState::Failed)
            })
            .filter_map(|d| {
                let (f, r) = deploy_core::taskdef::parse_name(&d.task_definition)?;
                (f == family && r > rev).then(|| (r, d.task_definition.clone()))
            })
            .max_by_key(|(r, _)| *r)
            .map(|(_, td)| td)
    });
    if let Some(td) = failed_newer {
        tracing::warn!(
            "{service}: the circuit breaker is rolling back from {}: that is the revision rolled back from",
            ecs::family_revision(&td)
        );
        return Ok(Ok((svc, td)));
    }
    match primary
        .map(|d| d.task_definition.clone())
        .or_else(|| svc.task_definition.clone())
    {
        Some(running) => Ok(Ok((svc, running))),
        None => Ok(Err("the service runs no task definition".into())),
    }
}

/// Why ECS would refuse the target, or we do: not ACTIVE (moto accepts INACTIVE), or tagged bad.
fn undeployable(target: &TaskDef) -> Option<String> {
    if target.status != "ACTIVE" {
        let status = if target.status.is_empty() {
            "not ACTIVE"
        } else {
            &target.status
        };
        return Some(format!(
            "target {} is {status} (deregistered): ECS refuses to deploy it",
            target.name()
        ));
    }
    target
        .bad()
        .map(|bad| format!("target {} is tagged bad ({bad})", target.name()))
}

/// Checks every image of the target in ECR; a missing one is the refusal returned, a moving tag a
/// warning. Each image's finding goes into `details`.
async fn check_images(
    checker: &mut Checker,
    target: &TaskDef,
    details: &mut Vec<(String, String)>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<String>> {
    for c in &target.containers {
        let (image, name) = (&c.image, target.name());
        let finding = match checker.check(image).await? {
            Found::Missing(why) => {
                details.push(("image".into(), format!("{image}: {why}")));
                return Ok(Some(format!(
                    "image {image} of target {name} no longer exists in ECR ({why})"
                )));
            }
            Found::Pinned => format!("{image} (pinned, present)"),
            Found::Moving(d) => {
                warnings.push(format!(
                    "image {image} is a moving tag reference: it resolves to {d} now, which may not be what {name} ran"
                ));
                format!("{image} (tag, now {d})")
            }
            Found::Unchecked => format!("{image} (not in ECR: unchecked)"),
        };
        details.push(("image".into(), finding));
    }
    Ok(None)
}

/// A deployment still in flight whose source is the target is rolled back natively; anything
/// else (or no service deployment found) gets UpdateService.
async fn in_flight_action(
    client: &sdk::Client,
    cluster: &str,
    svc: &Service,
    target: &TaskDef,
) -> Action {
    let primary = svc.primary();
    let in_flight = primary.is_some_and(|p| p.rollout_state == Some(RolloutState::InProgress));
    let source_is_target = svc.deployments.iter().any(|d| {
        d.status == DeploymentStatus::Active && ecs::td_matches(&d.task_definition, &target.name())
    });
    if !(in_flight && source_is_target) {
        return Action::Update;
    }
    let listed = client
        .list_service_deployments()
        .cluster(cluster)
        .service(&svc.service_name)
        .status(sdk::types::ServiceDeploymentStatus::InProgress)
        .send()
        .await;
    match listed {
        Ok(r) => r
            .service_deployments()
            .iter()
            .find_map(|d| d.service_deployment_arn().map(str::to_owned))
            .map_or(Action::Update, |arn| Action::Native { arn }),
        Err(e) => {
            tracing::debug!(
                "ListServiceDeployments failed ({}); using UpdateService",
                deploy_core::http::error_chain(&e)
            );
            Action::Update
        }
    }
}

type Refusal = (String, Vec<(String, String)>);

async fn describe_explicit(
    client: &sdk::Client,
    name: &str,
) -> anyhow::Result<Result<TaskDef, Refusal>> {
    match taskdef::describe(client, name).await {
        Ok(td) => Ok(Ok(td)),
        Err(e) => {
            let msg = format!("{e:#}");
            if msg.contains("ClientException")
                || msg.contains("Unable to describe")
                || msg.contains("does not exist")
            {
                Ok(Err((
                    format!("target {name} does not exist ({msg})"),
                    Vec::new(),
                )))
            } else {
                Err(e)
            }
        }
    }
}

/// The target `--to` names: a revision, a name or ARN, the previous verified revision, or the
/// revision with a commit or image tag. A refusal says why and what was passed over.
async fn choose(
    client: &sdk::Client,
    checker: &mut Checker,
    current: &TaskDef,
    to: &To,
    allow_unverified: bool,
) -> anyhow::Result<Result<target::Choice, Refusal>> {
    match to {
        To::Revision(r) => revision_or_commit(client, checker, current, *r).await,
        To::Named(n) => Ok(describe_explicit(client, n).await?.map(explicit)),
        To::Previous => previous(client, current, allow_unverified).await,
        To::Ref(r) => by_ref(client, checker, current, r).await,
    }
}

/// `--to N`, all digits: revision N of the family when it exists, else the commit (or image tag)
/// `N`. The choice is a warning either way when `N` could be both.
async fn revision_or_commit(
    client: &sdk::Client,
    checker: &mut Checker,
    current: &TaskDef,
    r: i32,
) -> anyhow::Result<Result<target::Choice, Refusal>> {
    let name = format!("{}:{r}", current.family);
    let digits = r.to_string();
    let could_be_commit = digits.len() >= target::MIN_SHA;
    match describe_explicit(client, &name).await? {
        Ok(td) => {
            let mut choice = explicit(td);
            if could_be_commit {
                choice.warnings.push(format!(
                    "--to {r}: read as revision {name}, which exists (not as a commit {r})"
                ));
            }
            Ok(Ok(choice))
        }
        Err(refusal) if !could_be_commit => Ok(Err(refusal)),
        Err(_) => Ok(by_ref(client, checker, current, &digits)
            .await?
            .map(|mut choice| {
                choice.warnings.push(format!(
                    "--to {r}: {name} does not exist, so it was read as a commit or image tag"
                ));
                choice
            })
            .map_err(|(why, details)| {
                (
                    format!("--to {r}: {name} does not exist, and {why}"),
                    details,
                )
            })),
    }
}

/// A target named by the user: no warnings, nothing passed over.
fn explicit(td: TaskDef) -> target::Choice {
    target::Choice {
        target: td,
        warnings: Vec::new(),
        passed_over: Vec::new(),
    }
}

/// The newest older revision that is verified and not bad (walking back at most `MAX_WALK`).
async fn previous(
    client: &sdk::Client,
    current: &TaskDef,
    allow_unverified: bool,
) -> anyhow::Result<Result<target::Choice, Refusal>> {
    let revisions = taskdef::active_revisions(client, &current.family).await?;
    let mut older = Vec::new();
    for (rev, arn) in revisions
        .iter()
        .filter(|(r, _)| *r < current.revision)
        .take(MAX_WALK)
    {
        let td = taskdef::describe(client, arn).await?;
        let good = td.verified().is_some() && td.bad().is_none();
        tracing::debug!(
            "revision {rev}: verified {:?}, bad {:?}",
            td.verified(),
            td.bad()
        );
        older.push(td);
        if good {
            break;
        }
    }
    Ok(target::pick_previous(&older, allow_unverified).map_err(|seen| {
        let found = if seen.is_empty() {
            format!("no ACTIVE revision of {} is older than {}", current.family, current.name())
        } else {
            seen.iter()
                .map(|s| format!("{}: {}", s.name, s.why))
                .collect::<Vec<_>>()
                .join("; ")
        };
        (
            format!(
                "no verified revision of {} older than {} to go back to ({found}); pass --to to name one, or --allow-unverified",
                current.family,
                current.name()
            ),
            seen.into_iter()
                .map(|s| ("passed over".to_owned(), format!("{}: {}", s.name, s.why)))
                .collect(),
        )
    }))
}

/// The revision whose `deploy-action:sha` or image tag is `r` (also through ECR's tags of
/// digest-pinned images).
async fn by_ref(
    client: &sdk::Client,
    checker: &mut Checker,
    current: &TaskDef,
    r: &str,
) -> anyhow::Result<Result<target::Choice, Refusal>> {
    let revisions = taskdef::active_revisions(client, &current.family).await?;
    let mut candidates = Vec::new();
    for (_, arn) in revisions
        .iter()
        .filter(|(rev, _)| *rev != current.revision)
        .take(MAX_WALK)
    {
        candidates.push(taskdef::describe(client, arn).await?);
    }
    if let Some(td) = target::pick_ref(&candidates, r, |_| Vec::new()) {
        return Ok(Ok(explicit(td.clone())));
    }
    let mut tags = std::collections::BTreeMap::new();
    for c in candidates.iter().flat_map(|t| &t.containers) {
        if c.image.contains("@sha256:") && !tags.contains_key(&c.image) {
            tags.insert(c.image.clone(), checker.tags_of(&c.image).await);
        }
    }
    Ok(
        target::pick_ref(&candidates, r, |i| tags.get(i).cloned().unwrap_or_default())
            .map(|td| explicit(td.clone()))
            .ok_or_else(|| {
                (
                    format!(
                        "no ACTIVE revision of {} other than {} has commit or image tag {r}",
                        current.family,
                        current.name()
                    ),
                    Vec::new(),
                )
            }),
    )
}

fn names_diff(label: &str, from: &[String], to: &[String]) -> Option<(String, String)> {
    let added: Vec<&str> = to
        .iter()
        .filter(|n| !from.contains(n))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = from
        .iter()
        .filter(|n| !to.contains(n))
        .map(String::as_str)
        .collect();
    if added.is_empty() && removed.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("+{}", added.join(" +")));
    }
    if !removed.is_empty() {
        parts.push(format!("-{}", removed.join(" -")));
    }
    Some((label.to_owned(), parts.join(" ")))
}

/// What changes from `current` to `target`: images, environment variable and secret names,
/// cpu/memory, and the target's verification.
pub fn diff(current: &TaskDef, target: &TaskDef) -> Vec<(String, String)> {
    let mut out = vec![(
        "revision".to_owned(),
        format!("{} -> {}", current.name(), target.name()),
    )];
    for t in &target.containers {
        let c = current.containers.iter().find(|c| c.name == t.name);
        let from = c.map_or("(no such container)", |c| c.image.as_str());
        if from != t.image {
            out.push((
                format!("{} image", t.name),
                format!("{from} -> {}", t.image),
            ));
        }
        let (fe, fs) = c.map_or((&[][..], &[][..]), |c| {
            (&c.env_names[..], &c.secret_names[..])
        });
        out.extend(names_diff(&format!("{} env", t.name), fe, &t.env_names));
        out.extend(names_diff(
            &format!("{} secrets", t.name),
            fs,
            &t.secret_names,
        ));
    }
    for c in &current.containers {
        if !target.containers.iter().any(|t| t.name == c.name) {
            out.push((
                format!("{} image", c.name),
                format!("{} -> (container removed)", c.image),
            ));
        }
    }
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    if current.cpu != target.cpu || current.memory != target.memory {
        out.push((
            "cpu/memory".into(),
            format!(
                "{}/{} -> {}/{}",
                show(&current.cpu),
                show(&current.memory),
                show(&target.cpu),
                show(&target.memory)
            ),
        ));
    }
    out.push((
        "target verified".into(),
        match (target.verified(), target.sha()) {
            (Some(t), Some(s)) => format!("{t} at commit {s}"),
            (Some(t), None) => t.to_owned(),
            (None, _) => "never".to_owned(),
        },
    ));
    out
}

pub(crate) async fn plan_all(
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
        let mut checker = Checker::new(sdk.clone());
        set.spawn(async move {
            (
                i,
                plan_service(
                    &ecs,
                    &mut checker,
                    &cluster,
                    &svc,
                    Wanted {
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

pub(crate) fn action_name(a: &Action) -> &'static str {
    match a {
        Action::NoOp => "no-op",
        Action::Update => "update-service",
        Action::Native { .. } => "native-rollback",
    }
}

pub(crate) fn plan_details(p: &Plan) -> Vec<(String, String)> {
    let mut d = vec![("action".to_owned(), action_name(&p.action).to_owned())];
    d.extend(p.diff.iter().cloned());
    d.extend(p.warnings.iter().map(|w| ("warning".to_owned(), w.clone())));
    d
}

/// The plan (dry run) or the refusal: nothing was changed.
pub(crate) fn report_plans(report: &mut Report, planned: &[Planned], refused: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use deploy_core::taskdef::Container;

    #[test]
    fn diff_names_what_changes() {
        let cur = TaskDef {
            family: "web".into(),
            revision: 5,
            cpu: Some("256".into()),
            memory: Some("512".into()),
            containers: vec![Container {
                name: "web".into(),
                image: "r/web:v5".into(),
                env_names: vec!["A".into(), "NEW".into()],
                secret_names: vec!["TOKEN".into()],
            }],
            ..Default::default()
        };
        let mut tgt = cur.clone();
        tgt.revision = 3;
        tgt.memory = Some("1024".into());
        tgt.containers[0].image = "r/web:v3".into();
        tgt.containers[0].env_names = vec!["A".into(), "OLD".into()];
        tgt.tags
            .insert(taskdef::TAG_VERIFIED.into(), "2026-11-01T00:00:00Z".into());
        let d = diff(&cur, &tgt);
        assert_eq!(d[0], ("revision".into(), "web:5 -> web:3".into()));
        assert!(d.contains(&("web image".into(), "r/web:v5 -> r/web:v3".into())));
        assert!(d.contains(&("web env".into(), "+OLD -NEW".into())));
        assert!(!d.iter().any(|(k, _)| k == "web secrets"));
        assert!(d.contains(&("cpu/memory".into(), "256/512 -> 256/1024".into())));
        assert!(d.contains(&("target verified".into(), "2026-11-01T00:00:00Z".into())));
    }
}
