//! Probes and one polling round over all of them: the HTTP checks concurrently, the ECS services
//! in one DescribeServices call, the alarms in one query. AWS errors end the run (exit 3): the SDK
//! already retried throttling and transient faults.

use std::collections::BTreeMap;
use std::sync::Arc;

use deploy_core::checks::{self, Attempt, Policy, Prepared, Verdict};
use deploy_core::ecs::{self, Rollout, Service};
use deploy_core::http::HttpClient;
use deploy_core::retry::Deadline;

/// What a probe looks at.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Http(Box<Prepared>),
    Ecs {
        service: String,
        expected: Option<String>,
    },
    Alarms,
}

/// One thing every round polls.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub name: String,
    pub kind: Kind,
}

/// The clients a round needs.
pub(crate) struct Ctx {
    pub http: HttpClient,
    pub policy: Arc<Policy>,
    pub ecs: Option<(deploy_core::aws_sdk_ecs::Client, String)>,
    pub cloudwatch: Option<deploy_core::aws_sdk_cloudwatch::Client>,
    pub alarm_names: Vec<String>,
    pub alarm_prefix: Option<String>,
}

impl Ctx {
    /// The alarms in ALARM now.
    pub async fn firing(
        &self,
        cw: &deploy_core::aws_sdk_cloudwatch::Client,
    ) -> anyhow::Result<Vec<deploy_core::cloudwatch::Firing>> {
        deploy_core::cloudwatch::firing_alarms(cw, &self.alarm_names, self.alarm_prefix.as_deref())
            .await
    }
}

/// An attempt with no HTTP response behind it.
pub(crate) fn attempt_of(verdict: Verdict) -> Attempt {
    Attempt::without_response(verdict)
}

/// One polling round over every probe, HTTP and AWS concurrently; one attempt per probe, in order.
pub(crate) async fn round(
    ctx: &Ctx,
    probes: &[Probe],
    deadline: Deadline,
) -> anyhow::Result<Vec<Attempt>> {
    let (http, ecs, alarms) = tokio::join!(
        http_round(ctx, probes, deadline),
        ecs_round(ctx, probes),
        alarms_round(ctx, probes)
    );
    let (mut http, mut ecs, mut alarms) = (http?, ecs?, alarms?);
    Ok((0..probes.len())
        .map(|i| {
            http.remove(&i)
                .or_else(|| ecs.remove(&i))
                .or_else(|| alarms.remove(&i))
                .unwrap_or_else(|| attempt_of(Verdict::fatal("probe did not run")))
        })
        .collect())
}

async fn http_round(
    ctx: &Ctx,
    probes: &[Probe],
    deadline: Deadline,
) -> anyhow::Result<BTreeMap<usize, Attempt>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, p) in probes.iter().enumerate() {
        if let Kind::Http(check) = &p.kind {
            let (client, policy, check) = (ctx.http.clone(), ctx.policy.clone(), check.clone());
            let cap = deadline.remaining();
            set.spawn(async move {
                (
                    i,
                    checks::attempt(&client, &check, &policy, Some(cap)).await,
                )
            });
        }
    }
    let mut out = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        let (i, a) = r?;
        out.insert(i, a);
    }
    Ok(out)
}

async fn ecs_round(ctx: &Ctx, probes: &[Probe]) -> anyhow::Result<BTreeMap<usize, Attempt>> {
    let mut out = BTreeMap::new();
    let Some((client, cluster)) = &ctx.ecs else {
        return Ok(out);
    };
    let wanted: Vec<(usize, &String, &Option<String>)> = probes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.kind {
            Kind::Ecs { service, expected } => Some((i, service, expected)),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(out);
    }
    let names: Vec<String> = wanted.iter().map(|(_, s, _)| (*s).clone()).collect();
    let found = ecs::describe(client, cluster, &names).await?;
    for ((i, _, expected), svc) in wanted.into_iter().zip(found) {
        let mut a = match svc {
            Err(reason) => attempt_of(Verdict::Fatal { reason }),
            Ok(svc) => service_attempt(&svc, expected.as_deref()),
        };
        a.details.dedup();
        out.insert(i, a);
    }
    Ok(out)
}

/// An ECS service's rollout as an attempt: the PRIMARY deployment, and the latest events while
/// it is not done.
fn service_attempt(svc: &Service, expected: Option<&str>) -> Attempt {
    let mut a = attempt_of(match ecs::judge(svc, expected) {
        Rollout::Completed => Verdict::Pass,
        Rollout::InProgress(reason) => Verdict::retry(reason),
        Rollout::Failed(reason) => Verdict::Fatal { reason },
    });
    a.details.extend(ecs::primary_detail(svc));
    if !a.verdict.passed() {
        for e in svc.events.iter().take(5) {
            a.details.push(("event".into(), e.message.clone()));
        }
    }
    a
}

async fn alarms_round(ctx: &Ctx, probes: &[Probe]) -> anyhow::Result<BTreeMap<usize, Attempt>> {
    let mut out = BTreeMap::new();
    if let Some(cw) = &ctx.cloudwatch
        && let Some(i) = probes.iter().position(|p| matches!(p.kind, Kind::Alarms))
    {
        let firing = ctx.firing(cw).await?;
        let mut a = attempt_of(if firing.is_empty() {
            Verdict::Pass
        } else {
            Verdict::fatal(deploy_core::cloudwatch::gate_reason(&firing))
        });
        a.details = firing.into_iter().map(|f| (f.name, f.reason)).collect();
        out.insert(i, a);
    }
    Ok(out)
}
