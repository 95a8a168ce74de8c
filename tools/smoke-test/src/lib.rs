//! `smoke-test`: runs a declarative suite of HTTP checks in parallel (bounded), each with its own
//! retry-until-pass window inside the suite deadline. The suite is `[smoke]` of deploy.toml, a
//! `--suite` file, or the Control Center contract's own five smoke tests (runbook 4.2).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deploy_core::checks::{self, Policy, Prepared};
use deploy_core::config::{Config, EMBEDDED_SMOKE, StatusSet, setting};
use deploy_core::duration::parse as parse_duration;
use deploy_core::http::{HttpClient, HttpOptions};
use deploy_core::retry::{self, Cadence, Deadline, Schedule};
use deploy_core::settings::ProbeArgs;
use deploy_core::{Check, Exit, Report, Status, exit};

mod limit;

/// Requests in flight at most unless configured: HTTP checks wait on the network, not the CPU,
/// so a suite of up to 128 checks goes out in one round trip (hurl needs `--jobs 100` for the
/// same). Fewer while the server answers 429/503 or slows down ([`limit`]).
pub const DEFAULT_CONCURRENCY: usize = 128;

/// Run a declarative suite of HTTP checks in parallel.
#[derive(Debug, clap::Parser)]
#[command(name = "smoke-test", version, about, long_about = None)]
pub struct Args {
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub cert: deploy_core::settings::CertArgs,
    /// Suite file (TOML with [smoke] and [[smoke.checks]]) instead of deploy.toml's [smoke].
    #[arg(long, value_name = "FILE")]
    pub suite: Option<PathBuf>,
    /// Requests in flight at most; fewer while the server answers 429/503 or slows down (default:
    /// smoke.concurrency, else 128).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Option<u32>,
    /// Deadline of the whole suite (default: smoke.timeout, else 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// How long each check may be retried until it passes; 0s for one attempt (default:
    /// smoke.retry_for, else 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retry_for: Option<Duration>,
    /// Statuses retried within a check's window, replacing the default 408,429,502-504.
    #[arg(long, value_name = "STATUS,...", value_delimiter = ',')]
    pub retry_on: Vec<String>,
    /// Retry 401/403 too (normally a wrong token fails at once).
    #[arg(long)]
    pub retry_unauthorized: bool,
    /// Per-request timeout when a check sets none.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub request_timeout: Duration,
}

/// Parses `--retry-on` values (`404`, `5xx`, `500-504`).
pub fn status_list(items: &[String]) -> anyhow::Result<Option<StatusSet>> {
    if items.is_empty() {
        return Ok(None);
    }
    items
        .iter()
        .map(|s| StatusSet::parse_one(s).map_err(|e| exit::usage(format!("--retry-on: {e}"))))
        .collect::<anyhow::Result<Vec<_>>>()
        .map(|v| Some(StatusSet(v)))
}

/// The sections of deploy.toml smoke-test reads: a `${VAR}` elsewhere may be unset.
const CONFIG_READS: &[&str] = &["defaults", "environments", "smoke"];

/// The suite, planned: checks prepared, policy, concurrency, deadline and default window.
struct Plan {
    label: String,
    checks: Vec<Prepared>,
    /// For each check, the earlier checks whose captures it uses.
    deps: Vec<Vec<usize>>,
    policy: Arc<Policy>,
    concurrency: usize,
    deadline: Deadline,
    default_window: Duration,
}

/// Runs the tool: plan the suite, run its checks, report.
pub async fn run(args: Args) -> anyhow::Result<Exit> {
    match deploy_core::cli::catching(suite(&args)).await {
        Ok(exit) => Ok(exit),
        // A run that stops on an error still answers its check run (--publish).
        Err(e) => Err(args
            .probe
            .publish
            .answer_error(e, &args.probe.common, "smoke-test")
            .await),
    }
}

async fn suite(args: &Args) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let plan = plan(args)?;
    let label = plan.label.clone();
    let (results, names, interrupted, load) = run_all(args, plan).await?;
    let mut report = Report::new("smoke-test", env!("CARGO_PKG_VERSION"), label);
    report.output("concurrency", load.lowest);
    if load.cuts > 0 {
        tracing::warn!(
            "the server refused or slowed down: requests in flight went from {} down to {} ({} cut(s))",
            load.cap,
            load.lowest,
            load.cuts
        );
    }
    for (i, r) in results.into_iter().enumerate() {
        report.push(r.unwrap_or_else(|| {
            Check::new(&names[i], Status::Skipped).reason(match interrupted {
                Some(s) => format!("not finished: interrupted by {s}"),
                None => "not finished".to_owned(),
            })
        }));
    }
    let (passed, failed, errors, skipped) = report.counts();
    report.output("passed", passed);
    report.output("failed", failed + errors);
    report.output("skipped", skipped);
    if let Some(s) = interrupted {
        report.interrupted(s, format!("interrupted by {s}: partial report"));
    }
    report.finish(started.elapsed());
    if report.outcome == Exit::Failed && interrupted.is_none() {
        report.summary = format!(
            "{} of {} smoke checks failed",
            failed + errors,
            report.checks.len()
        );
    }
    let path = annotation_path(args);
    args.probe
        .publish
        .publish_and_emit(report, &args.probe.common, &path, || started.elapsed())
        .await
}

/// Reads the suite and settles every setting: the flag beats the file beats the default.
fn plan(args: &Args) -> anyhow::Result<Plan> {
    // With --suite, the embedded default is not needed (nor its ${API_TOKEN}).
    let resolved = match args.suite {
        Some(_) => args.probe.resolve("", &["defaults", "environments"])?,
        None => args.probe.resolve(EMBEDDED_SMOKE, CONFIG_READS)?,
    };
    let label = resolved.label();
    let cert = args.cert.resolve(&resolved.config);
    let suite = match &args.suite {
        Some(p) => {
            let c = Config::load(p)?;
            c.require(&["smoke"], args.probe.common.environment.as_deref())?;
            c.smoke
        }
        None => resolved.config.smoke,
    };
    let source = args.suite.as_ref().map_or_else(
        || resolved.config.source.clone(),
        |p| p.display().to_string(),
    );
    if suite.checks.is_empty() {
        return Err(exit::usage(format!("{source}: no [[smoke.checks]] to run")));
    }
    let checks = checks::prepare(&suite.checks, resolved.base_url.as_deref())?;
    let deps = dependencies(&checks).map_err(|e| exit::usage(format!("{source}: {e}")))?;
    Ok(Plan {
        label,
        deps,
        checks,
        policy: Arc::new(Policy {
            retry_statuses: status_list(&args.retry_on)?
                .or(suite.retry_on.clone())
                .unwrap_or_else(StatusSet::default_retry),
            retry_unauthorized: args.retry_unauthorized,
            expect_version: None,
            request_timeout: args.request_timeout,
            cert,
        }),
        concurrency: args
            .concurrency
            .map(|c| c as usize)
            .or(suite.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY)
            .max(1),
        deadline: Deadline::after(setting(
            args.timeout,
            suite.timeout,
            Duration::from_secs(60),
        )),
        default_window: setting(args.retry_for, suite.retry_for, Duration::from_secs(10)),
    })
}

/// For each check, the earlier checks that capture what it uses (`{{name}}`); a name no earlier
/// check captures, or one captured twice, is the error.
fn dependencies(checks: &[Prepared]) -> Result<Vec<Vec<usize>>, String> {
    let mut by_name: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    let mut deps = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        let mut mine = Vec::new();
        for name in c.uses() {
            match by_name.get(name.as_str()) {
                Some(&j) => mine.push(j),
                None => {
                    return Err(format!(
                        "check {:?} uses {{{{{name}}}}}, which no earlier check captures",
                        c.spec.name
                    ));
                }
            }
        }
        mine.sort_unstable();
        mine.dedup();
        deps.push(mine);
        for cap in &c.spec.captures {
            if let Some(j) = by_name.insert(&cap.name, i) {
                return Err(format!(
                    "capture {:?} is set by both check {:?} and check {:?}",
                    cap.name, checks[j].spec.name, c.spec.name
                ));
            }
        }
    }
    Ok(deps)
}

/// What a check that captures gives the checks that use it: its values, or why there are none.
type Given = Option<Result<checks::Captured, String>>;

/// Each check's result (None: not finished), the names, and the signal that ended the run.
type Results = (
    Vec<Option<Check>>,
    Vec<String>,
    Option<&'static str>,
    limit::Summary,
);

/// Runs every check, at most `concurrency` requests in flight, until all finished or a signal
/// comes.
async fn run_all(args: &Args, plan: Plan) -> anyhow::Result<Results> {
    let client = HttpClient::new("smoke-test", HttpOptions::for_checks())?;
    let names: Vec<String> = plan.checks.iter().map(|p| p.spec.name.clone()).collect();
    let mut results: Vec<Option<Check>> = vec![None; plan.checks.len()];
    let limiter = Arc::new(limit::Limiter::new(plan.concurrency));
    let mut set = tokio::task::JoinSet::new();
    let mut ids = Vec::new();
    // A check that captures tells its dependants when it is done; the others do not wait.
    let (givers, takers): (Vec<_>, Vec<_>) = (0..plan.checks.len())
        .map(|_| tokio::sync::watch::channel::<Given>(None))
        .unzip();
    for (i, check) in plan.checks.into_iter().enumerate() {
        let (client, policy, limiter) = (client.clone(), plan.policy.clone(), limiter.clone());
        let waits: Vec<_> = plan.deps[i]
            .iter()
            .map(|&j| (names[j].clone(), takers[j].clone()))
            .collect();
        let give = givers[i].clone();
        // The flag beats the file: --retry-for, then the check's retry_for, then [smoke].
        let window = args
            .retry_for
            .or(check.spec.retry_for)
            .unwrap_or(plan.default_window);
        let deadline = plan.deadline;
        let handle = set.spawn(async move {
            let check = match wait_for(waits).await {
                Ok(values) if values.is_empty() => check,
                Ok(values) => check.with_captured(&values),
                Err(why) => {
                    let _ = give.send(Some(Err(format!("it was skipped ({why})"))));
                    let skipped = Check::new(&check.spec.name, Status::Skipped).reason(why);
                    return (i, skipped);
                }
            };
            let ctx = (&client, &*limiter);
            let (c, captured) = run_check(ctx, &check, &policy, deadline, window).await;
            let given = match (c.status, captured) {
                (Status::Passed, Some(values)) => Ok(values),
                _ => Err(format!(
                    "it failed: {}",
                    c.reason.as_deref().unwrap_or("did not pass")
                )),
            };
            let _ = give.send(Some(given));
            (i, c)
        });
        ids.push(handle.id());
    }
    let interrupted = tokio::select! {
        () = async {
            while let Some(joined) = set.join_next_with_id().await {
                match joined {
                    Ok((_, (i, c))) => results[i] = Some(c),
                    // A check task that panicked is a failed check, never a silent skip.
                    Err(e) => {
                        if let Some(i) = ids.iter().position(|id| *id == e.id()) {
                            results[i] = Some(
                                Check::new(&names[i], Status::Error).reason(format!("check crashed: {e}")),
                            );
                        }
                    }
                }
            }
        } => None,
        signal = deploy_core::cli::interrupted() => Some(signal),
    };
    set.abort_all();
    Ok((results, names, interrupted, limiter.summary()))
}

/// Waits for every check a check depends on (name, channel): the values they captured, or why
/// the check is skipped.
async fn wait_for(
    waits: Vec<(String, tokio::sync::watch::Receiver<Given>)>,
) -> Result<checks::Captured, String> {
    let mut values = checks::Captured::new();
    for (name, mut rx) in waits {
        let given = rx.wait_for(Option::is_some).await.map(|g| g.clone());
        match given {
            Ok(Some(Ok(v))) => values.extend(v),
            Ok(Some(Err(why))) => {
                return Err(format!(
                    "skipped: it uses what check {name:?} captures, and {why}"
                ));
            }
            _ => return Err(format!("skipped: check {name:?} did not finish")),
        }
    }
    Ok(values)
}

/// Where a failed check's annotation points: the suite or config file its checks come from.
fn annotation_path(args: &Args) -> String {
    args.suite.as_ref().map_or_else(
        || args.probe.common.config_label(),
        |p| p.display().to_string(),
    )
}

/// One check: attempts until it passes, fails for good, or its window (within the suite
/// deadline) closes, with a last attempt at the window's end when the next pause would pass it.
/// Pauses grow from 250 ms to 2 s: a smoke check retries a failure, it does not wait for a
/// rollout.
async fn run_check(
    (client, limiter): (&HttpClient, &limit::Limiter),
    check: &Prepared,
    policy: &Policy,
    suite: Deadline,
    window: Duration,
) -> (Check, Option<checks::Captured>) {
    let start = Instant::now();
    let schedule = Schedule::new(
        Deadline::after(window.min(suite.remaining())),
        Cadence::exponential(Duration::from_millis(250), Duration::from_secs(2)),
    );
    // Signals are the suite's business (`run` stops every check at once).
    let outcome = retry::poll(
        schedule,
        std::future::pending(),
        |_| async {
            let slot = limiter.acquire().await;
            // A check that waited for a slot past the suite's deadline is not sent at all: the
            // deadline is the suite's, not a time to start one more request after.
            if suite.remaining().is_zero() {
                limiter.release(slot, limit::Signal::Neither);
                return checks::Attempt::without_response(retry::Verdict::Fatal {
                    reason: "not run: the suite's deadline (--timeout) passed while it waited for a slot".into(),
                });
            }
            let a = checks::attempt(client, check, policy, Some(suite.remaining())).await;
            limiter.release(slot, limit::Signal::of(a.status, a.latency));
            a
        },
        |a| a.verdict.clone(),
    )
    .await;
    let captured = outcome
        .last
        .as_ref()
        .filter(|a| a.verdict.passed())
        .map(|a| {
            let secret = |n: &str| check.spec.captures.iter().any(|c| c.name == n && c.secret);
            a.captured
                .iter()
                .map(|(n, v)| (n.clone(), (v.clone(), secret(n))))
                .collect()
        });
    let c = checks::report_check(
        &check.spec.name,
        outcome.attempts,
        start.elapsed(),
        outcome.last.as_ref(),
    );
    (c, captured)
}
