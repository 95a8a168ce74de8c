//! The gates that count only once the probes are healthy: the bake window (alarms watched a while
//! longer), the ALB's target 5xx count, and the deployed version confirmed by the health bodies.

use deploy_core::{Check, Status};

use crate::plan::{AlbGate, Plan};
use crate::probe::Ctx;
use crate::wait::{self, Interrupt, Waited};

/// The gates' checks and what they decided.
#[derive(Debug)]
pub(crate) struct Gates {
    pub checks: Vec<Check>,
    /// Healthy after the wait and the gates.
    pub healthy: bool,
    /// The signal that cut the wait or the bake short.
    pub interrupted: Option<&'static str>,
}

/// Bake, then the ALB gate, each only while everything still holds.
pub(crate) async fn after_wait(
    ctx: &Ctx,
    plan: &Plan,
    waited: &Waited,
    interrupt: Interrupt<'_>,
) -> anyhow::Result<Gates> {
    let mut gates = Gates {
        checks: Vec::new(),
        healthy: waited.healthy(),
        interrupted: waited.interrupted(),
    };
    if !plan.bake.is_zero() && !plan.alarms_on() {
        tracing::warn!(
            "--bake has no alarms to watch: set --alarm, --alarm-prefix or the environment's alarms"
        );
    }
    if gates.healthy && !plan.bake.is_zero() && plan.alarms_on() {
        let (check, signal) = wait::bake(ctx, plan, interrupt).await?;
        gates.healthy &= check.status != Status::Failed;
        gates.interrupted = gates.interrupted.or(signal);
        gates.checks.push(check);
    }
    if gates.healthy
        && gates.interrupted.is_none()
        && let (Some(alb), Some(cw)) = (&plan.alb, &ctx.cloudwatch)
    {
        let check = alb_5xx(cw, alb).await?;
        gates.healthy &= check.status == Status::Passed;
        gates.checks.push(check);
    }
    Ok(gates)
}

async fn alb_5xx(
    cw: &deploy_core::aws_sdk_cloudwatch::Client,
    gate: &AlbGate,
) -> anyhow::Result<Check> {
    let (limit, lb) = (gate.threshold, &gate.load_balancer);
    let sum = deploy_core::cloudwatch::alb_5xx_sum(cw, lb, gate.window).await?;
    let name = format!("ALB 5xx (last {})", humantime::format_duration(gate.window));
    Ok(if sum <= limit as f64 {
        Check::new(name, Status::Passed)
            .reason(format!("{sum} target 5xx responses, threshold {limit}"))
    } else {
        Check::new(name, Status::Failed).reason(format!(
            "{sum} target 5xx responses on {lb}, more than the threshold {limit}"
        ))
    })
}

/// `--expect-version`: confirmed when the health bodies carried the field (the probes already
/// required it to match in `threshold` responses in a row).
pub(crate) fn version(plan: &Plan, want: &str, versions: &[String]) -> Check {
    let field = &plan.version_field;
    if versions.is_empty() {
        Check::new("Deployed version", Status::Failed).reason(format!(
            "no health response carried {field}, so {want} could not be confirmed"
        ))
    } else {
        Check::new("Deployed version", Status::Passed).reason(format!(
            "{field} is {want} in {} consecutive responses",
            plan.threshold
        ))
    }
}
