//! ECS rollout logic, shared by health-check `--ecs` and rollback: read services' deployments
//! (`DescribeServices`) into plain snapshots, and decide whether a rollout is COMPLETED, still in
//! progress, or FAILED. A deployment that ended FAILED, or a PRIMARY deployment that is not the
//! expected task definition (the circuit breaker rolled back), is a failure, never "stable".
//! The decision is a pure function over snapshots, tested with fixtures shaped like real ECS
//! responses (moto keeps one static deployment and cannot show a rollout or a rollback).

use serde::{Deserialize, Serialize};

/// Declares an ECS state as an enum of the values ECS documents, plus `Other` for a value it
/// may add later (kept as written, so it is reported, never lost). Read and written as ECS's
/// strings, so the fixtures stay shaped like real responses.
macro_rules! ecs_state {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A value ECS did not document when this was written.
            Other(String),
        }

        impl $name {
            /// As ECS writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name::from(s.as_str())
            }
        }

        impl From<$name> for String {
            fn from(s: $name) -> Self {
                s.as_str().to_owned()
            }
        }

        impl Default for $name {
            /// An absent value (ECS left the field out).
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

ecs_state! {
    /// A deployment's status (`DescribeServices`: a string, the SDK has no enum for it).
    DeploymentStatus {
        /// The newest deployment: what the service converges to.
        Primary = "PRIMARY",
        /// An older deployment with tasks still running (draining).
        Active = "ACTIVE",
        /// Gone.
        Inactive = "INACTIVE",
    }
}

ecs_state! {
    /// A deployment's rollout state (the SDK's `DeploymentRolloutState`, read through its string).
    RolloutState {
        /// Done: every new task running and steady.
        Completed = "COMPLETED",
        /// Still rolling out.
        InProgress = "IN_PROGRESS",
        /// Failed (the circuit breaker or a stopped rollout).
        Failed = "FAILED",
    }
}

ecs_state! {
    /// A service's status (`DescribeServices`: a string, the SDK has no enum for it).
    ServiceStatus {
        /// In service.
        Active = "ACTIVE",
        /// Being deleted.
        Draining = "DRAINING",
        /// Deleted.
        Inactive = "INACTIVE",
    }
}

/// One deployment of a service, as `DescribeServices` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Deployment {
    /// `ecs-svc/...`
    pub id: String,
    /// `PRIMARY`, `ACTIVE` or `INACTIVE`.
    pub status: DeploymentStatus,
    /// Task definition ARN.
    pub task_definition: String,
    /// Tasks wanted.
    pub desired_count: i32,
    /// Tasks running.
    pub running_count: i32,
    /// Tasks pending.
    pub pending_count: i32,
    /// Tasks that failed to start.
    pub failed_tasks: i32,
    /// `COMPLETED`, `IN_PROGRESS` or `FAILED` (absent without the rolling-update controller).
    pub rollout_state: Option<RolloutState>,
    /// ECS's words on the rollout state.
    pub rollout_state_reason: Option<String>,
    /// When the deployment was created (RFC 3339).
    pub created_at: Option<String>,
}

/// A service event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    /// ECS's id of the event (unique per service).
    pub id: Option<String>,
    /// When (RFC 3339 or as ECS printed it).
    pub created_at: Option<String>,
    /// The message.
    pub message: String,
}

/// A service, as `DescribeServices` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    /// Name.
    pub service_name: String,
    /// `ACTIVE`, `DRAINING`, `INACTIVE`.
    pub status: ServiceStatus,
    /// Tasks wanted.
    pub desired_count: i32,
    /// Tasks running.
    pub running_count: i32,
    /// Tasks pending.
    pub pending_count: i32,
    /// The service's task definition.
    pub task_definition: Option<String>,
    /// Deployments, PRIMARY first as ECS lists them.
    pub deployments: Vec<Deployment>,
    /// Newest events first.
    pub events: Vec<Event>,
    /// `ECS`, `CODE_DEPLOY` or `EXTERNAL` (absent means ECS). This and the next two are read from
    /// the SDK's types only (the fixtures carry ECS's nested shapes, which the judge does not use).
    #[serde(skip)]
    pub deployment_controller: Option<String>,
    /// The deployment circuit breaker: (enabled, rolls back on failure).
    #[serde(skip)]
    pub circuit_breaker: Option<(bool, bool)>,
    /// Target groups of its load balancers.
    #[serde(skip)]
    pub target_groups: Vec<String>,
}

/// What a service's rollout looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// PRIMARY completed, all tasks running, one deployment left.
    Completed,
    /// Not done yet; why.
    InProgress(String),
    /// Failed for good; why.
    Failed(String),
}

impl Service {
    /// The PRIMARY deployment, when ECS has made one.
    pub fn primary(&self) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Primary)
    }
}

impl Deployment {
    /// Its rollout state, or `(no rollout state)`.
    pub fn state_text(&self) -> &str {
        self.rollout_state
            .as_ref()
            .map_or("(no rollout state)", RolloutState::as_str)
    }
}

/// `("primary", "web:3 COMPLETED")`: what the service's PRIMARY deployment runs, and its state.
pub fn primary_detail(svc: &Service) -> Option<(String, String)> {
    let p = svc.primary()?;
    Some((
        "primary".to_owned(),
        format!("{} {}", family_revision(&p.task_definition), p.state_text()),
    ))
}

/// `family:revision` of a task definition ARN or name (`arn:...:task-definition/web:3` -> `web:3`).
pub fn family_revision(td: &str) -> &str {
    td.rsplit_once("task-definition/").map_or(td, |(_, r)| r)
}

/// Whether task definition `actual` is `expected` (ARN, `family:rev`, or a bare family = any rev).
pub fn td_matches(actual: &str, expected: &str) -> bool {
    let (a, e) = (family_revision(actual), family_revision(expected));
    a == e || (!e.contains(':') && a.split(':').next() == Some(e))
}

/// Decides the rollout state of `svc`, optionally against the task definition it must run.
pub fn judge(svc: &Service, expected_td: Option<&str>) -> Rollout {
    if svc.status != ServiceStatus::Active {
        return Rollout::Failed(format!("service is {}", svc.status));
    }
    let Some(primary) = svc.primary() else {
        return Rollout::InProgress("no PRIMARY deployment yet".into());
    };
    let state = primary.rollout_state.as_ref();
    let primary_td = family_revision(&primary.task_definition);
    if let Some(expected) = expected_td
        && !td_matches(&primary.task_definition, expected)
    {
        let expected = family_revision(expected);
        if let Some(failed) = svc.deployments.iter().find(|d| {
            td_matches(&d.task_definition, expected)
                && d.rollout_state == Some(RolloutState::Failed)
        }) {
            return Rollout::Failed(format!(
                "deployment {} of {expected} FAILED ({}); ECS rolled back to {primary_td} (circuit breaker)",
                failed.id,
                failed
                    .rollout_state_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            ));
        }
        return Rollout::Failed(format!(
            "PRIMARY deployment runs {primary_td}, not the expected {expected}: the new deployment was rolled back or replaced"
        ));
    }
    // No task definition to expect: a newer deployment that FAILED while the PRIMARY runs
    // another revision is the circuit breaker rolling back (or done rolling back, the FAILED one
    // still listed), never a rollout to wait out.
    if expected_td.is_none()
        && let Some(failed) = svc.deployments.iter().find(|d| {
            d.status != DeploymentStatus::Primary
                && d.rollout_state == Some(RolloutState::Failed)
                && !td_matches(&d.task_definition, &primary.task_definition)
        })
    {
        return Rollout::Failed(format!(
            "deployment {} of {} FAILED ({}); ECS rolled back to {primary_td} (circuit breaker)",
            failed.id,
            family_revision(&failed.task_definition),
            failed
                .rollout_state_reason
                .as_deref()
                .unwrap_or("no reason given")
        ));
    }
    if state == Some(&RolloutState::Failed) {
        return Rollout::Failed(format!(
            "deployment {} of {primary_td} FAILED: {}",
            primary.id,
            primary
                .rollout_state_reason
                .as_deref()
                .unwrap_or("no reason given")
        ));
    }
    let counts = format!(
        "{} of {} tasks running, {} pending",
        svc.running_count, svc.desired_count, svc.pending_count
    );
    if state == Some(&RolloutState::InProgress) {
        return Rollout::InProgress(format!(
            "rollout of {primary_td} in progress: {} of {} new tasks running, {} pending, {} failed to start",
            primary.running_count,
            primary.desired_count,
            primary.pending_count,
            primary.failed_tasks
        ));
    }
    if svc.deployments.len() > 1 {
        return Rollout::InProgress(format!(
            "{} deployments still active (old tasks draining): {counts}",
            svc.deployments.len()
        ));
    }
    if svc.running_count != svc.desired_count
        || svc.pending_count > 0
        || primary.running_count != primary.desired_count
    {
        return Rollout::InProgress(counts);
    }
    Rollout::Completed
}

/// Where a service of the config or `--service` is: `CLUSTER/NAME` is NAME in CLUSTER (one
/// environment may span several clusters), a bare NAME (or a service ARN) is in `cluster`, the
/// environment's. ECS service and cluster names are letters, digits, `-` and `_`, so the `/` is
/// unambiguous.
pub fn locate<'a>(cluster: &'a str, service: &'a str) -> (&'a str, &'a str) {
    if service.starts_with("arn:") {
        return (cluster, service);
    }
    service.split_once('/').unwrap_or((cluster, service))
}

/// Why `service` is not a `[CLUSTER/]NAME` ([`locate`]), if it is not: an empty part or more
/// than one `/`.
pub fn service_ref_error(service: &str) -> Option<String> {
    if service.starts_with("arn:") {
        return None;
    }
    let parts: Vec<&str> = service.split('/').collect();
    (parts.len() > 2 || parts.iter().any(|p| p.trim().is_empty())).then(|| {
        format!("service {service:?}: write NAME (in the environment's cluster) or CLUSTER/NAME")
    })
}

#[cfg(feature = "ecs")]
mod fetch {
    use super::{Deployment, Event, Service};
    use aws_sdk_ecs::types;

    fn time(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> Option<String> {
        t.and_then(|t| {
            t.fmt(aws_sdk_ecs::primitives::DateTimeFormat::DateTime)
                .ok()
        })
    }

    impl From<&types::Service> for Service {
        fn from(s: &types::Service) -> Self {
            Service {
                service_name: s.service_name().unwrap_or_default().to_owned(),
                status: s.status().unwrap_or_default().into(),
                desired_count: s.desired_count(),
                running_count: s.running_count(),
                pending_count: s.pending_count(),
                task_definition: s.task_definition().map(str::to_owned),
                deployments: s
                    .deployments()
                    .iter()
                    .map(|d| Deployment {
                        id: d.id().unwrap_or_default().to_owned(),
                        status: d.status().unwrap_or_default().into(),
                        task_definition: d.task_definition().unwrap_or_default().to_owned(),
                        desired_count: d.desired_count(),
                        running_count: d.running_count(),
                        pending_count: d.pending_count(),
                        failed_tasks: d.failed_tasks(),
                        rollout_state: d.rollout_state().map(|r| r.as_str().into()),
                        rollout_state_reason: d.rollout_state_reason().map(str::to_owned),
                        created_at: time(d.created_at()),
                    })
                    .collect(),
                events: s
                    .events()
                    .iter()
                    .map(|e| Event {
                        id: e.id().map(str::to_owned),
                        created_at: time(e.created_at()),
                        message: e.message().unwrap_or_default().to_owned(),
                    })
                    .collect(),
                deployment_controller: s
                    .deployment_controller()
                    .map(|c| c.r#type().as_str().to_owned()),
                circuit_breaker: s
                    .deployment_configuration()
                    .and_then(|c| c.deployment_circuit_breaker())
                    .map(|cb| (cb.enable(), cb.rollback())),
                target_groups: s
                    .load_balancers()
                    .iter()
                    .filter_map(|lb| lb.target_group_arn().map(str::to_owned))
                    .collect(),
            }
        }
    }

    /// DescribeServices calls in flight at once. ECS throttles per account and Region with a token
    /// bucket per group of actions (a burst, then a sustained rate: "Request throttling for the
    /// Amazon ECS API",
    /// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html>); a
    /// few at once stays inside the burst, and a throttled call is retried by the SDK
    /// ([`crate::aws::MAX_ATTEMPTS`]).
    pub const DESCRIBE_IN_FLIGHT: usize = 5;

    /// Describes `services` (in batches of 10 per cluster, [`DESCRIBE_IN_FLIGHT`] at once), in
    /// the order given. A service is a name in `cluster` or `CLUSTER/NAME` in another cluster
    /// ([`super::locate`]). A service ECS does not know comes back as `Err(reason)` (`MISSING`).
    pub async fn describe(
        client: &aws_sdk_ecs::Client,
        cluster: &str,
        services: &[String],
    ) -> anyhow::Result<Vec<Result<Service, String>>> {
        // Batches of at most 10 names of one cluster, each with the positions they answer.
        let mut by_cluster: Vec<(String, Vec<(usize, String)>)> = Vec::new();
        for (i, s) in services.iter().enumerate() {
            let (c, name) = super::locate(cluster, s);
            let entry = (i, name.to_owned());
            match by_cluster.iter_mut().find(|(k, _)| k == c) {
                Some((_, v)) => v.push(entry),
                None => by_cluster.push((c.to_owned(), vec![entry])),
            }
        }
        let batches: Vec<(&str, &[(usize, String)])> = by_cluster
            .iter()
            .flat_map(|(c, v)| v.chunks(10).map(move |chunk| (c.as_str(), chunk)))
            .collect();
        let mut out: Vec<Option<Result<Service, String>>> =
            (0..services.len()).map(|_| None).collect();
        for wave in batches.chunks(DESCRIBE_IN_FLIGHT) {
            let calls: Vec<_> = wave
                .iter()
                .map(|&(c, chunk)| describe_batch(client, c, chunk))
                .collect();
            for answer in futures_util::future::join_all(calls).await {
                for (i, r) in answer? {
                    out[i] = Some(r);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not returned".into())))
            .collect())
    }

    /// One DescribeServices call: `chunk`'s (position, name) in `cluster`.
    async fn describe_batch(
        client: &aws_sdk_ecs::Client,
        cluster: &str,
        chunk: &[(usize, String)],
    ) -> anyhow::Result<Vec<(usize, Result<Service, String>)>> {
        let names: Vec<String> = chunk.iter().map(|(_, n)| n.clone()).collect();
        let resp = client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(names.clone()))
            .send()
            .await
            .map_err(|e| {
                crate::aws::error(
                    &format!(
                        "couldn't describe services {} in cluster {cluster}",
                        names.join(", ")
                    ),
                    &e,
                )
            })?;
        Ok(chunk
            .iter()
            .map(|(i, name)| {
                let (i, name) = (*i, name.as_str());
                // Asked for by name or by ARN: ECS answers with both.
                let found = resp
                    .services()
                    .iter()
                    .find(|s| s.service_name() == Some(name) || s.service_arn() == Some(name));
                let r = match found {
                    Some(s) => Ok(Service::from(s)),
                    None => {
                        let reason = resp
                            .failures()
                            .iter()
                            .find(|f| f.arn().is_some_and(|a| a.ends_with(&format!("/{name}"))))
                            .and_then(|f| f.reason())
                            .unwrap_or("not returned");
                        Err(format!(
                            "service {name} not found in cluster {cluster} ({reason})"
                        ))
                    }
                };
                (i, r)
            })
            .collect())
    }
}

#[cfg(feature = "ecs")]
pub use fetch::describe;

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Service {
        let text = match name {
            "completed" => include_str!("../fixtures/ecs/completed.json"),
            "in-progress" => include_str!("../fixtures/ecs/in-progress.json"),
            "circuit-breaker" => include_str!("../fixtures/ecs/circuit-breaker-rollback.json"),
            "rolled-back" => include_str!("../fixtures/ecs/rolled-back-completed.json"),
            "failed" => include_str!("../fixtures/ecs/failed.json"),
            "draining" => include_str!("../fixtures/ecs/draining-old-tasks.json"),
            other => panic!("no fixture {other}"),
        };
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        serde_json::from_value(v["services"][0].clone()).unwrap()
    }

    #[test]
    fn completed_rollout_of_the_expected_revision() {
        let s = fixture("completed");
        assert_eq!(judge(&s, None), Rollout::Completed);
        assert_eq!(
            judge(&s, Some("afu9-control-center:42")),
            Rollout::Completed
        );
        assert_eq!(
            judge(
                &s,
                Some(
                    "arn:aws:ecs:eu-central-1:123456789012:task-definition/afu9-control-center:42"
                )
            ),
            Rollout::Completed
        );
        assert_eq!(judge(&s, Some("afu9-control-center")), Rollout::Completed);
    }

    #[test]
    fn in_progress_is_not_stable() {
        let r = judge(&fixture("in-progress"), Some("afu9-control-center:43"));
        assert!(
            matches!(&r, Rollout::InProgress(m) if m.contains("rollout of afu9-control-center:43 in progress: 1 of 2 new tasks running, 1 pending")),
            "{r:?}"
        );
    }

    #[test]
    fn circuit_breaker_rollback_is_a_failure() {
        let r = judge(&fixture("circuit-breaker"), Some("afu9-control-center:43"));
        assert!(
            matches!(&r, Rollout::Failed(m) if m.contains("FAILED (ECS deployment circuit breaker: tasks failed to start.)") && m.contains("rolled back to afu9-control-center:42")),
            "{r:?}"
        );
    }

    #[test]
    fn a_circuit_breaker_rolling_back_fails_at_once_without_an_expected_revision() {
        let r = judge(&fixture("circuit-breaker"), None);
        assert!(
            matches!(&r, Rollout::Failed(m) if m.contains("of afu9-control-center:43 FAILED") && m.contains("rolled back to afu9-control-center:42 (circuit breaker)")),
            "{r:?}"
        );
    }

    #[test]
    fn completed_rollback_to_the_old_revision_is_a_failure() {
        let s = fixture("rolled-back");
        // "Stable" by the counts, which is what `aws ecs wait services-stable` would accept:
        assert_eq!(judge(&s, None), Rollout::Completed);
        let r = judge(&s, Some("afu9-control-center:43"));
        assert!(
            matches!(&r, Rollout::Failed(m) if m.contains("PRIMARY deployment runs afu9-control-center:42, not the expected afu9-control-center:43")),
            "{r:?}"
        );
    }

    #[test]
    fn failed_primary_is_a_failure() {
        let r = judge(&fixture("failed"), None);
        assert!(
            matches!(&r, Rollout::Failed(m) if m.contains("FAILED: ECS deployment circuit breaker")),
            "{r:?}"
        );
    }

    #[test]
    fn old_tasks_draining_is_in_progress() {
        let r = judge(&fixture("draining"), Some("afu9-control-center:43"));
        assert!(
            matches!(&r, Rollout::InProgress(m) if m.contains("2 deployments still active")),
            "{r:?}"
        );
    }

    #[test]
    fn task_definition_names() {
        assert_eq!(
            family_revision("arn:aws:ecs:r:1:task-definition/web:3"),
            "web:3"
        );
        assert!(td_matches("arn:aws:ecs:r:1:task-definition/web:3", "web"));
        assert!(!td_matches(
            "arn:aws:ecs:r:1:task-definition/web:3",
            "web:4"
        ));
        assert!(!td_matches(
            "arn:aws:ecs:r:1:task-definition/webapp:3",
            "web"
        ));
    }
}
