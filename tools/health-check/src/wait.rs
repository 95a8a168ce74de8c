//! Act: the wait itself, on the one polling engine ([`deploy_core::retry::poll`]). Rounds start
//! a steady `--interval` apart (with jitter), so a service that turns ready is seen within one
//! interval; they back off only when a server asks (`Retry-After`) or refuses connections. The
//! bake window watches the alarms at the same cadence after success.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use deploy_core::checks::{Attempt, Verdict};
use deploy_core::retry::{self, Cadence, Deadline, Ended, Pace, Schedule, Streak};
use deploy_core::{Check, Status, exit};

use crate::plan::Plan;
use crate::probe::{self, Ctx};

/// The signal future a wait listens to (`deploy_core::cli::interrupted`), pinned by the caller so
/// the bake window hears the same one.
pub(crate) type Interrupt<'a> = Pin<&'a mut (dyn Future<Output = &'static str> + Send)>;

/// What one probe saw over the wait.
#[derive(Debug)]
pub(crate) struct Tally {
    pub attempts: u32,
    pub streak: Streak,
    pub last: Option<Attempt>,
    /// The probe's body has carried the version field: from then on it must always.
    pub carries_version: bool,
    /// The last attempts (as many as the picture draws, so a long wait holds no more): each its
    /// round's start (since the wait began), its latency, whether it passed.
    pub history: std::collections::VecDeque<(Duration, Duration, bool)>,
}

/// How the wait went.
#[derive(Debug)]
pub(crate) struct Waited {
    /// Why it stopped.
    pub ended: Ended,
    /// Polling rounds finished.
    pub rounds: u32,
    /// Per probe, in plan order.
    pub tallies: Vec<Tally>,
}

impl Waited {
    /// Every probe passed the threshold in a row.
    pub fn healthy(&self) -> bool {
        self.ended == Ended::Done
    }

    /// The signal that ended the wait, if one did.
    pub fn interrupted(&self) -> Option<&'static str> {
        match self.ended {
            Ended::Interrupted(s) => Some(s),
            _ => None,
        }
    }
}

/// Polls every probe in rounds until each has passed `threshold` times in a row, one is fatal,
/// the deadline passes or a signal comes. An AWS error ends the run (exit 3).
pub(crate) async fn until_healthy(
    ctx: &Ctx,
    plan: &Plan,
    interrupt: Interrupt<'_>,
) -> anyhow::Result<Waited> {
    if !plan.stabilize.is_zero() {
        tracing::info!(
            "waiting {} for the services to stabilise",
            humantime::format_duration(plan.stabilize)
        );
    }
    let deadline = Deadline::after(plan.wait);
    // Every probe is polled every round, so "each probe passed N rounds in a row" is "the last N
    // rounds all passed": the engine's streak decides, the tallies say how far each probe got.
    let schedule = Schedule::new(deadline, Cadence::steady(plan.interval))
        .passes(plan.threshold)
        .first_after(plan.stabilize);
    let mut tallies: Vec<Tally> = plan
        .probes
        .iter()
        .map(|_| Tally {
            attempts: 0,
            streak: Streak::new(plan.threshold),
            last: None,
            carries_version: false,
            history: std::collections::VecDeque::new(),
        })
        .collect();
    let began = Instant::now();
    let outcome = retry::poll(
        schedule,
        interrupt,
        |_| async move { (began.elapsed(), bounded_round(ctx, plan, deadline).await) },
        |(at, r)| match r {
            Ok(attempts) => record(ctx, &mut tallies, *at, attempts.clone()),
            Err(e) => Verdict::fatal(format!("{e:#}")),
        },
    )
    .await;
    if let Some((_, Err(e))) = outcome.last {
        return Err(e);
    }
    Ok(Waited {
        ended: outcome.ended,
        rounds: outcome.attempts,
        tallies,
    })
}

/// A round, bounded: AWS calls have no deadline of their own.
async fn bounded_round(ctx: &Ctx, plan: &Plan, deadline: Deadline) -> anyhow::Result<Vec<Attempt>> {
    let bound = deadline.remaining() + ctx.policy.request_timeout;
    match tokio::time::timeout(bound, probe::round(ctx, &plan.probes, deadline)).await {
        Ok(r) => r,
        Err(_) => Err(exit::dependency(format!(
            "a polling round did not finish within the deadline ({}) plus one request timeout",
            humantime::format_duration(plan.wait)
        ))),
    }
}

/// Records a round's attempts in the tallies and judges the round: fatal when a probe is, a pass
/// when every probe passed, else "not yet" at the pace the servers asked for.
fn record(ctx: &Ctx, tallies: &mut [Tally], at: Duration, attempts: Vec<Attempt>) -> Verdict {
    let mut paces = Vec::new();
    let mut fatal = None;
    for (t, mut a) in tallies.iter_mut().zip(attempts) {
        t.attempts += 1;
        if let Some((field, _)) = &ctx.policy.expect_version {
            t.carries_version |= a.version.is_some();
            if t.carries_version && a.version.is_none() && a.verdict.passed() {
                a.verdict = Verdict::retry(format!("the response has no {field}: an older task?"));
            }
        }
        t.streak.record(a.verdict.passed());
        if t.history.len() == deploy_core::render::mermaid::MAX_BARS {
            t.history.pop_front();
        }
        t.history.push_back((at, a.latency, a.verdict.passed()));
        paces.push(a.verdict.pace());
        if a.verdict.is_fatal() && fatal.is_none() {
            fatal = a.verdict.reason().map(str::to_owned);
        }
        t.last = Some(a);
    }
    let passing = tallies
        .iter()
        .filter(|t| t.last.as_ref().is_some_and(|a| a.verdict.passed()))
        .count();
    let round = tallies.first().map_or(0, |t| t.attempts);
    tracing::info!(
        "round {round}: {passing} of {} probes passing",
        tallies.len()
    );
    match fatal {
        Some(reason) => Verdict::fatal(reason),
        None if passing == tallies.len() => Verdict::Pass,
        None => Verdict::Retry {
            reason: format!("{passing} of {} probes passing", tallies.len()),
            pace: Pace::combine(paces),
        },
    }
}

/// The bake window: after success, the alarms are watched at the polling interval until the
/// window closes; one in ALARM fails it. Returns the check and the signal that cut it short.
pub(crate) async fn bake(
    ctx: &Ctx,
    plan: &Plan,
    interrupt: Interrupt<'_>,
) -> anyhow::Result<(Check, Option<&'static str>)> {
    let started = Instant::now();
    let name = format!("Bake ({})", humantime::format_duration(plan.bake));
    let Some(cw) = &ctx.cloudwatch else {
        return Ok((Check::new(name, Status::Passed), None));
    };
    // Never done early: it holds until the window closes (the deadline) or an alarm fires.
    let schedule = Schedule::new(Deadline::after(plan.bake), Cadence::steady(plan.interval))
        .passes(u32::MAX)
        .first_after(plan.interval);
    let outcome = retry::poll(
        schedule,
        interrupt,
        |_| ctx.firing(cw),
        |r| match r {
            Ok(firing) if firing.is_empty() => Verdict::Pass,
            Ok(firing) => Verdict::fatal(deploy_core::cloudwatch::gate_reason(firing)),
            Err(e) => Verdict::fatal(format!("{e:#}")),
        },
    )
    .await;
    let check = match (outcome.last, outcome.ended) {
        (Some(Err(e)), _) => return Err(e),
        (_, Ended::Interrupted(_)) => Check::new(name, Status::Skipped).reason("interrupted"),
        (Some(Ok(firing)), Ended::Fatal) => {
            let mut c = Check::new(name, Status::Failed).reason(format!(
                "during the bake window: {}",
                deploy_core::cloudwatch::gate_reason(&firing)
            ));
            for f in firing {
                c = c.detail(f.name, f.reason);
            }
            c
        }
        _ => Check::new(name, Status::Passed),
    };
    let took: Duration = started.elapsed();
    Ok((check.took(took), outcome_signal(outcome.ended)))
}

fn outcome_signal(ended: Ended) -> Option<&'static str> {
    match ended {
        Ended::Interrupted(s) => Some(s),
        _ => None,
    }
}
