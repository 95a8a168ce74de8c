//! The one polling and retry engine: every loop that waits or retries runs on [`poll`].
//!
//! - **Deadline first**: no pause reaches past the [`Deadline`] and no attempt starts after it.
//! - **Steady cadence with jitter** ([`Cadence::steady`]): attempts start one interval apart
//!   (measured start to start, up to a fifth early so that clients spread out, never late), so a
//!   service that turns ready is seen within one interval. Waiting is not a retry storm.
//! - **Backoff only where it helps**: when the server asks for it ([`Pace::After`], its
//!   `Retry-After`) or refuses or sheds load ([`Pace::BackOff`]: connection refused, a 429 with no
//!   `Retry-After`). [`Cadence::exponential`] is for retrying a failed operation (an upload, a
//!   smoke check's window), where growing pauses are the point.
//! - **Pass streaks**: done after N passes in a row, not just one.
//! - **Cancellation**: a signal future ends the wait at once, mid-attempt or mid-pause.
//!
//! Attempts are counted and reported; a cap on them is optional, never the only limit.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

/// A point in time after which no new attempt starts and no sleep reaches past.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    end: Instant,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        let start = Instant::now();
        // A budget too large for the clock (`--wait 500y`) is "no deadline in practice".
        let end = start
            .checked_add(budget)
            .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 86_400));
        Deadline { start, end }
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Time since the deadline was set.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The whole budget.
    pub fn budget(&self) -> Duration {
        self.end - self.start
    }
}

/// What one attempt (or one polling round) means for the loop: the one verdict type of the
/// workspace (HTTP checks, ECS rollouts, alarms, uploads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// Not (yet): waiting may help.
    Retry {
        /// What failed, for the report.
        reason: String,
        /// What the server said about waiting.
        pace: Pace,
    },
    /// Failed in a way waiting will not fix (401, a FAILED deployment...): stop now.
    Fatal {
        /// What failed.
        reason: String,
    },
}

impl Verdict {
    /// "Not yet" at the steady cadence.
    pub fn retry(reason: impl Into<String>) -> Self {
        Verdict::Retry {
            reason: reason.into(),
            pace: Pace::Steady,
        }
    }

    /// Failed for good.
    pub fn fatal(reason: impl Into<String>) -> Self {
        Verdict::Fatal {
            reason: reason.into(),
        }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    /// Whether it failed for good.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Verdict::Fatal { .. })
    }

    /// The failure reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Pass => None,
            Verdict::Retry { reason, .. } | Verdict::Fatal { reason } => Some(reason),
        }
    }

    /// How the next attempt should be paced after this one.
    pub fn pace(&self) -> Pace {
        match self {
            Verdict::Retry { pace, .. } => *pace,
            Verdict::Pass | Verdict::Fatal { .. } => Pace::Steady,
        }
    }
}

/// What a failed attempt says about the pause before the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// Nothing: keep the cadence (a 503 "not ready yet" is the service talking, not overload).
    #[default]
    Steady,
    /// The server refuses connections or sheds load without saying for how long: back off.
    BackOff,
    /// The server's `Retry-After`: never sooner than this.
    After(Duration),
}

impl Pace {
    /// The pace of a round of attempts: the longest `Retry-After`, else a backoff if any asked.
    pub fn combine(paces: impl IntoIterator<Item = Pace>) -> Pace {
        paces
            .into_iter()
            .fold(Pace::Steady, |acc, p| match (acc, p) {
                (Pace::After(a), Pace::After(b)) => Pace::After(a.max(b)),
                (Pace::After(a), _) | (_, Pace::After(a)) => Pace::After(a),
                (Pace::BackOff, _) | (_, Pace::BackOff) => Pace::BackOff,
                _ => Pace::Steady,
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Growth {
    /// One interval start to start; grows only on [`Pace::BackOff`].
    Steady,
    /// Doubles after every failed attempt, pausing after the attempt ends.
    Exponential,
}

/// How far apart attempts are.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    growth: Growth,
    /// The steady interval, or the first pause of an exponential cadence.
    pub interval: Duration,
    /// The longest pause a backoff grows to.
    pub max: Duration,
    /// Fraction of each pause drawn at random and taken off it (0 for exact figures in tests).
    pub jitter: f64,
}

impl Cadence {
    /// Attempts `interval` apart, start to start, up to a fifth early; on [`Pace::BackOff`] the
    /// pause doubles per refused attempt up to four intervals (at least 1 s).
    pub fn steady(interval: Duration) -> Self {
        Cadence {
            growth: Growth::Steady,
            interval,
            max: interval.saturating_mul(4).max(Duration::from_secs(1)),
            jitter: 0.2,
        }
    }

    /// Pauses after each failed attempt doubling from `initial` up to `max`, with full jitter
    /// (each drawn from `[p/2, p]`): for retrying an operation that failed.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Cadence {
            growth: Growth::Exponential,
            interval: initial,
            max,
            jitter: 0.5,
        }
    }

    /// `base * 2^n`, capped at `max`.
    fn grown(&self, n: u32) -> Duration {
        let secs = self.interval.as_secs_f64() * 2f64.powi(n.min(62) as i32);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64().max(self.interval.as_secs_f64())))
    }

    fn jittered(&self, base: Duration) -> Duration {
        let off = self.jitter.clamp(0.0, 1.0) * fastrand::f64();
        base.mul_f64(1.0 - off)
    }

    /// The pause after a failed attempt, given the failed attempts in a row (`retries`, from 1)
    /// and the refused ones among the last of them (`refused`, from 0).
    fn pause(&self, retries: u32, refused: u32, pace: Pace) -> Duration {
        let base = match self.growth {
            Growth::Exponential => self.grown(retries.saturating_sub(1)),
            Growth::Steady if refused > 0 => self.grown(refused - 1),
            Growth::Steady => self.interval,
        };
        let pause = self.jittered(base);
        match pace {
            Pace::After(d) => pause.max(d),
            Pace::Steady | Pace::BackOff => pause,
        }
    }
}

/// Counts consecutive successes: a check holds only after `threshold` passes in a row; any
/// failure resets the streak.
#[derive(Debug, Clone, Copy)]
pub struct Streak {
    threshold: u32,
    current: u32,
}

impl Streak {
    /// A streak that needs `threshold` (at least 1) passes in a row.
    pub fn new(threshold: u32) -> Self {
        Streak {
            threshold: threshold.max(1),
            current: 0,
        }
    }

    /// Records one result; returns whether the threshold is now met.
    pub fn record(&mut self, passed: bool) -> bool {
        self.current = if passed { self.current + 1 } else { 0 };
        self.met()
    }

    /// Whether the threshold is met.
    pub fn met(&self) -> bool {
        self.current >= self.threshold
    }

    /// Passes in a row so far.
    pub fn current(&self) -> u32 {
        self.current
    }
}

/// What to wait for and how: the deadline, the cadence, and when it counts as done.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// No attempt starts after it.
    pub deadline: Deadline,
    /// How far apart attempts are.
    pub cadence: Cadence,
    /// Passes in a row that count as done (at least 1).
    pub passes: u32,
    /// A cap on attempts besides the deadline (an upload's retries).
    pub max_attempts: Option<u32>,
    /// A pause before the first attempt, inside the deadline (health-check's `--stabilize`).
    pub first_after: Duration,
    /// When the deadline cuts a pause short: `true` sleeps to it and looks one last time (a health
    /// wait uses its whole budget), `false` stops at once (a retry window that is over).
    pub last_look: bool,
}

impl Schedule {
    /// Until `deadline`, at `cadence`, done on the first pass, with a last look at the deadline.
    pub fn new(deadline: Deadline, cadence: Cadence) -> Self {
        Schedule {
            deadline,
            cadence,
            passes: 1,
            max_attempts: None,
            first_after: Duration::ZERO,
            last_look: true,
        }
    }

    /// Done only after `n` passes in a row.
    pub fn passes(self, n: u32) -> Self {
        Schedule {
            passes: n.max(1),
            ..self
        }
    }

    /// At most `n` attempts.
    pub fn max_attempts(self, n: u32) -> Self {
        Schedule {
            max_attempts: Some(n.max(1)),
            ..self
        }
    }

    /// Waits `d` before the first attempt.
    pub fn first_after(self, d: Duration) -> Self {
        Schedule {
            first_after: d,
            ..self
        }
    }

    /// Stops when the next attempt could not start before the deadline, without a last look.
    pub fn no_last_look(self) -> Self {
        Schedule {
            last_look: false,
            ..self
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The passes in a row were reached.
    Done,
    /// An attempt was fatal.
    Fatal,
    /// The deadline passed.
    Deadline,
    /// The attempt cap was reached.
    Exhausted,
    /// A signal arrived (its name).
    Interrupted(&'static str),
}

/// What a wait did: the attempts, the time taken, the last value and verdict, and how it ended.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The last finished attempt's value (whatever its verdict).
    pub last: Option<T>,
    /// That attempt's verdict.
    pub verdict: Option<Verdict>,
    /// Attempts finished.
    pub attempts: u32,
    /// Time spent in total.
    pub elapsed: Duration,
    /// How it ended.
    pub ended: Ended,
}

impl<T> Outcome<T> {
    /// Whether the wait ended with the passes it needed.
    pub fn is_done(&self) -> bool {
        self.ended == Ended::Done
    }

    /// The last failure reason, if the last attempt failed.
    pub fn reason(&self) -> Option<&str> {
        self.verdict.as_ref().and_then(Verdict::reason)
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Stop(Ended),
    Pause(Duration),
}

/// The engine's state between attempts, apart from the waiting itself (so it is tested without
/// a clock).
#[derive(Debug)]
struct Pacer {
    schedule: Schedule,
    attempts: u32,
    streak: Streak,
    retries: u32,
    refused: u32,
}

impl Pacer {
    fn new(schedule: Schedule) -> Self {
        Pacer {
            schedule,
            attempts: 0,
            streak: Streak::new(schedule.passes),
            retries: 0,
            refused: 0,
        }
    }

    /// Records an attempt that started at `started` and ended with `verdict`.
    fn next(&mut self, verdict: &Verdict, started: Instant) -> Step {
        self.attempts += 1;
        let s = &self.schedule;
        match verdict {
            Verdict::Fatal { .. } => return Step::Stop(Ended::Fatal),
            Verdict::Pass => {
                (self.retries, self.refused) = (0, 0);
                if self.streak.record(true) {
                    return Step::Stop(Ended::Done);
                }
            }
            Verdict::Retry { pace, .. } => {
                self.streak.record(false);
                self.retries += 1;
                self.refused = if *pace == Pace::BackOff {
                    self.refused + 1
                } else {
                    0
                };
            }
        }
        if s.max_attempts.is_some_and(|m| self.attempts >= m) {
            return Step::Stop(Ended::Exhausted);
        }
        if s.deadline.expired() {
            return Step::Stop(Ended::Deadline);
        }
        let pause = match verdict {
            Verdict::Pass => s.cadence.jittered(s.cadence.interval),
            _ => s.cadence.pause(self.retries, self.refused, verdict.pace()),
        };
        // A steady cadence counts from the attempt's start, so a slow attempt does not add lag;
        // a server's Retry-After counts from its answer, so it is never cut short.
        let pause = match (s.cadence.growth, verdict.pace()) {
            (Growth::Steady, Pace::After(after)) => {
                pause.saturating_sub(started.elapsed()).max(after)
            }
            (Growth::Steady, _) => pause.saturating_sub(started.elapsed()),
            (Growth::Exponential, _) => pause,
        };
        let remaining = s.deadline.remaining();
        if pause < remaining {
            Step::Pause(pause)
        } else if s.last_look {
            Step::Pause(remaining)
        } else {
            Step::Stop(Ended::Deadline)
        }
    }
}

/// Runs `attempt` until `judge` has seen the schedule's passes in a row, an attempt is fatal, the
/// deadline (or attempt cap) is reached, or `cancel` finishes. `attempt` gets the attempt number
/// (from 0). Pass `std::future::pending()` as `cancel` where the caller handles signals itself.
pub async fn poll<T, F, Fut, J, C>(
    schedule: Schedule,
    cancel: C,
    mut attempt: F,
    mut judge: J,
) -> Outcome<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = T>,
    J: FnMut(&T) -> Verdict,
    C: Future<Output = &'static str>,
{
    let mut cancel = std::pin::pin!(cancel);
    let mut pacer = Pacer::new(schedule);
    let mut last: Option<(T, Verdict)> = None;
    let outcome = |pacer: &Pacer, last: Option<(T, Verdict)>, ended| {
        let (last, verdict) = last.map_or((None, None), |(t, v)| (Some(t), Some(v)));
        Outcome {
            last,
            verdict,
            attempts: pacer.attempts,
            elapsed: schedule.deadline.elapsed(),
            ended,
        }
    };
    let mut pause = schedule.first_after.min(schedule.deadline.remaining());
    loop {
        if !pause.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                s = &mut cancel => return outcome(&pacer, last, Ended::Interrupted(s)),
            }
        }
        let started = Instant::now();
        let value = tokio::select! {
            v = attempt(pacer.attempts) => v,
            s = &mut cancel => return outcome(&pacer, last, Ended::Interrupted(s)),
        };
        let verdict = judge(&value);
        let step = pacer.next(&verdict, started);
        last = Some((value, verdict));
        match step {
            Step::Stop(ended) => return outcome(&pacer, last, ended),
            Step::Pause(d) => pause = d,
        }
    }
}

/// Parses an HTTP `Retry-After` value: delay-seconds or an HTTP date (any of the three forms
/// RFC 9110 allows, via `httpdate`). A date in the past is zero.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;

    fn exact(c: Cadence) -> Cadence {
        Cadence { jitter: 0.0, ..c }
    }

    fn secs(s: u64) -> Deadline {
        Deadline::after(Duration::from_secs(s))
    }

    #[test]
    fn exponential_grows_and_caps() {
        let c = exact(Cadence::exponential(
            Duration::from_millis(100),
            Duration::from_millis(400),
        ));
        let d: Vec<_> = (1..6)
            .map(|n| c.pause(n, 0, Pace::Steady).as_millis())
            .collect();
        assert_eq!(d, vec![100, 200, 400, 400, 400]);
    }

    #[test]
    fn steady_stays_steady_and_backs_off_only_when_refused() {
        let c = exact(Cadence::steady(Duration::from_secs(2)));
        for n in 1..10 {
            assert_eq!(c.pause(n, 0, Pace::Steady), Duration::from_secs(2));
        }
        let refused: Vec<_> = (1..5)
            .map(|r| c.pause(r, r, Pace::BackOff).as_secs())
            .collect();
        assert_eq!(refused, vec![2, 4, 8, 8]);
        assert_eq!(
            c.pause(1, 0, Pace::After(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let steady = Cadence::steady(Duration::from_millis(1000));
        let exp = Cadence::exponential(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..200 {
            let d = steady.pause(3, 0, Pace::Steady).as_millis();
            assert!((800..=1000).contains(&d), "{d}");
            let d = exp.pause(2, 0, Pace::Steady).as_millis();
            assert!((100..=200).contains(&d), "{d}");
        }
    }

    #[test]
    fn rounds_combine_their_paces() {
        use Pace::*;
        let s = Duration::from_secs;
        assert_eq!(Pace::combine([Steady, Steady]), Steady);
        assert_eq!(Pace::combine([Steady, BackOff]), BackOff);
        assert_eq!(
            Pace::combine([BackOff, After(s(3)), After(s(5))]),
            After(s(5))
        );
        assert_eq!(Pace::combine([]), Steady);
    }

    #[test]
    fn a_steady_pause_counts_from_the_attempt_start() {
        let mut p = Pacer::new(Schedule::new(
            secs(60),
            exact(Cadence::steady(Duration::from_secs(2))),
        ));
        let started = Instant::now() - Duration::from_millis(1500);
        match p.next(&Verdict::retry("503"), started) {
            Step::Pause(d) => assert!(d <= Duration::from_millis(500), "{d:?}"),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn the_deadline_cuts_the_last_pause() {
        let sched = Schedule::new(
            Deadline::after(Duration::from_millis(300)),
            exact(Cadence::steady(Duration::from_secs(10))),
        );
        match Pacer::new(sched).next(&Verdict::retry("503"), Instant::now()) {
            Step::Pause(d) => assert!(d <= Duration::from_millis(300), "{d:?}"),
            s => panic!("{s:?}"),
        }
        let mut window = Pacer::new(sched.no_last_look());
        assert_eq!(
            window.next(&Verdict::retry("503"), Instant::now()),
            Step::Stop(Ended::Deadline)
        );
    }

    #[tokio::test]
    async fn retries_until_done() {
        let out = poll(
            Schedule::new(secs(5), exact(Cadence::steady(Duration::from_millis(1)))),
            pending(),
            |n| async move { n },
            |n| {
                if *n < 2 {
                    Verdict::retry(format!("attempt {n}"))
                } else {
                    Verdict::Pass
                }
            },
        )
        .await;
        assert!(out.is_done());
        assert_eq!(out.attempts, 3);
        assert_eq!(out.last, Some(2));
    }

    #[tokio::test]
    async fn a_streak_needs_passes_in_a_row() {
        // pass, fail, pass, pass: done on the fourth attempt with two in a row.
        let out = poll(
            Schedule::new(secs(5), exact(Cadence::steady(Duration::from_millis(1)))).passes(2),
            pending(),
            |n| async move { n },
            |n| {
                if *n == 1 {
                    Verdict::retry("blip")
                } else {
                    Verdict::Pass
                }
            },
        )
        .await;
        assert!(out.is_done());
        assert_eq!(out.attempts, 4);
    }

    #[tokio::test]
    async fn fatal_stops_at_once() {
        let out = poll(
            Schedule::new(secs(5), Cadence::steady(Duration::from_millis(1))),
            pending(),
            |_| async { 401 },
            |_| Verdict::fatal("unauthorized"),
        )
        .await;
        assert_eq!(out.attempts, 1);
        assert_eq!(out.ended, Ended::Fatal);
        assert_eq!(out.reason(), Some("unauthorized"));
    }

    #[tokio::test]
    async fn the_attempt_cap_is_kept() {
        let out = poll(
            Schedule::new(
                secs(5),
                exact(Cadence::exponential(
                    Duration::from_millis(1),
                    Duration::from_millis(2),
                )),
            )
            .max_attempts(4),
            pending(),
            |_| async {},
            |()| Verdict::retry("500"),
        )
        .await;
        assert_eq!((out.attempts, out.ended), (4, Ended::Exhausted));
    }

    #[tokio::test]
    async fn deadline_is_kept_even_when_the_interval_is_long() {
        let start = Instant::now();
        let out = poll(
            Schedule::new(
                Deadline::after(Duration::from_millis(300)),
                exact(Cadence::steady(Duration::from_secs(10))),
            ),
            pending(),
            |_| async {},
            |()| Verdict::retry("503"),
        )
        .await;
        let took = start.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        // The first attempt, then the last look at the deadline.
        assert_eq!((out.attempts, out.ended), (2, Ended::Deadline));
        assert_eq!(out.reason(), Some("503"));
    }

    #[tokio::test]
    async fn retry_after_lengthens_the_wait() {
        let start = Instant::now();
        let out = poll(
            Schedule::new(secs(5), exact(Cadence::steady(Duration::from_millis(1)))),
            pending(),
            |n| async move { n },
            |n| {
                if *n == 0 {
                    Verdict::Retry {
                        reason: "429".into(),
                        pace: Pace::After(Duration::from_millis(400)),
                    }
                } else {
                    Verdict::Pass
                }
            },
        )
        .await;
        assert!(out.is_done());
        assert!(start.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn cancellation_ends_a_pause_at_once() {
        let start = Instant::now();
        let out = poll(
            Schedule::new(secs(60), Cadence::steady(Duration::from_secs(30))),
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                "SIGTERM"
            },
            |_| async {},
            |()| Verdict::retry("not yet"),
        )
        .await;
        assert_eq!(out.ended, Ended::Interrupted("SIGTERM"));
        assert_eq!(out.attempts, 1);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn streak_resets_on_failure() {
        let mut s = Streak::new(2);
        assert!(!s.record(true));
        assert!(!s.record(false));
        assert!(!s.record(true));
        assert!(s.record(true));
        assert_eq!(s.current(), 2);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        // The obsolete forms RFC 9110 still asks recipients to accept.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994"),
            Some(Duration::ZERO)
        );
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        let d = parse_retry_after(&soon).unwrap();
        assert!(
            (Duration::from_secs(3590)..=Duration::from_secs(3600)).contains(&d),
            "{soon}: {d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        // A hostile date must not overflow the clock.
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 400000000000 00:00:00 GMT"),
            None
        );
        let _ = Deadline::after(Duration::MAX);
    }
}
