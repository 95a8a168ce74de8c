//! How many requests are in flight: as many as the server sustains, up to the cap. It starts at
//! the cap (`--concurrency`, `smoke.concurrency`, else [`crate::DEFAULT_CONCURRENCY`]) and
//! follows the server the way TCP follows a network (additive increase, multiplicative decrease):
//! an answer 429 or 503, or one that took more than twice the fastest answer seen plus 50 ms,
//! halves the limit once for all the requests in flight when it came (an answer to a request
//! sent before the last cut is of the old window, as TCP counts one loss per window, so one burst
//! of refusals counts once however long its answers take to come back); every other
//! answer grows it by one per limit's worth of answers, back up to the cap. A slot is held for one
//! attempt, not for a check's pauses between attempts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// What an attempt's answer says of the server's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// 429 or 503: the server asks for less.
    Overloaded,
    /// An answer, after this long.
    Answered(Duration),
    /// No answer to judge the load by (a refused connection, a timeout).
    Neither,
}

impl Signal {
    /// The signal of an attempt that got `status` after `latency`.
    pub(crate) fn of(status: Option<u16>, latency: Duration) -> Signal {
        match status {
            Some(429 | 503) => Signal::Overloaded,
            Some(_) => Signal::Answered(latency),
            None => Signal::Neither,
        }
    }
}

/// A slot held for one request, and when that request went out.
pub(crate) struct Slot<'a> {
    permit: Option<SemaphorePermit<'a>>,
    sent: Instant,
}

/// The adaptive limit (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Limiter {
    cap: usize,
    slots: Semaphore,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: usize,
    /// Slots the limit no longer has that are still held: forgotten as they come back.
    debt: usize,
    /// Growth credit: one more slot per `limit` answers.
    credit: usize,
    /// The fastest answer seen.
    floor: Option<Duration>,
    last_cut: Option<Instant>,
    lowest: usize,
    cuts: u32,
}

/// How the limit moved during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub cap: usize,
    pub lowest: usize,
    pub cuts: u32,
}

/// An answer this much slower than the fastest seen (and twice as slow) means queueing.
const SLOW_MARGIN: Duration = Duration::from_millis(50);

impl Limiter {
    pub(crate) fn new(cap: usize) -> Limiter {
        let cap = cap.max(1);
        Limiter {
            cap,
            slots: Semaphore::new(cap),
            state: Mutex::new(State {
                limit: cap,
                debt: 0,
                credit: 0,
                floor: None,
                last_cut: None,
                lowest: cap,
                cuts: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock still holds consistent numbers (every update is a few assignments).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot (its permit is `None` only if the semaphore were closed, which it never
    /// is), stamped with when its request goes out.
    pub(crate) async fn acquire(&self) -> Slot<'_> {
        Slot {
            permit: self.slots.acquire().await.ok(),
            sent: Instant::now(),
        }
    }

    /// Gives the slot back, with what the attempt's answer said.
    pub(crate) fn release(&self, slot: Slot<'_>, signal: Signal) {
        let Slot { permit, sent } = slot;
        let mut st = self.state();
        match signal {
            Signal::Overloaded => self.cut(&mut st, sent),
            Signal::Answered(latency) => {
                let floor = *st.floor.get_or_insert(latency);
                if latency < floor {
                    st.floor = Some(latency);
                }
                if latency > floor * 2 + SLOW_MARGIN {
                    self.cut(&mut st, sent);
                } else {
                    self.grow(&mut st);
                }
            }
            Signal::Neither => {}
        }
        if let Some(permit) = permit
            && st.debt > 0
        {
            st.debt -= 1;
            permit.forget();
        }
    }

    fn cut(&self, st: &mut State, sent: Instant) {
        // Sent before the last cut: that cut already answered for it.
        if st.last_cut.is_some_and(|t| sent <= t) || st.limit == 1 {
            return;
        }
        let new = (st.limit / 2).max(1);
        let less = st.limit - new;
        st.limit = new;
        st.credit = 0;
        st.last_cut = Some(Instant::now());
        st.lowest = st.lowest.min(new);
        st.cuts += 1;
        let free = self.slots.forget_permits(less);
        st.debt += less - free;
        tracing::info!("the server is loaded: {new} request(s) in flight at most now");
    }

    fn grow(&self, st: &mut State) {
        if st.limit >= self.cap {
            return;
        }
        st.credit += 1;
        if st.credit < st.limit {
            return;
        }
        st.credit = 0;
        st.limit += 1;
        if st.debt > 0 {
            st.debt -= 1;
        } else {
            self.slots.add_permits(1);
        }
    }

    pub(crate) fn summary(&self) -> Summary {
        let st = self.state();
        Summary {
            cap: self.cap,
            lowest: st.lowest,
            cuts: st.cuts,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FAST: Signal = Signal::Answered(Duration::from_millis(5));

    #[tokio::test]
    async fn starts_at_the_cap() {
        let l = Limiter::new(8);
        let held: Vec<_> = futures_held(&l, 8).await;
        assert_eq!(held.len(), 8);
        assert_eq!(l.slots.available_permits(), 0);
    }

    async fn futures_held(l: &Limiter, n: usize) -> Vec<Slot<'_>> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(l.acquire().await);
        }
        v
    }

    #[tokio::test]
    async fn a_burst_of_refusals_halves_once_and_held_slots_are_not_given_back() {
        let l = Limiter::new(8);
        let mut held = futures_held(&l, 8).await;
        // Three 429s of the same round: one cut, 8 -> 4.
        for _ in 0..3 {
            l.release(held.pop().unwrap(), Signal::Overloaded);
        }
        assert_eq!(
            l.summary(),
            Summary {
                cap: 8,
                lowest: 4,
                cuts: 1
            }
        );
        // 5 still held, the limit is 4: the next one back is forgotten, so 4 remain in use.
        l.release(held.pop().unwrap(), FAST);
        assert_eq!(l.slots.available_permits(), 0);
        l.release(held.pop().unwrap(), FAST);
        assert_eq!(l.slots.available_permits(), 1);
    }

    #[tokio::test]
    async fn refusals_that_come_back_late_still_count_once() {
        let l = Limiter::new(128);
        let mut held = futures_held(&l, 50).await;
        // The first refusal cuts; the others, of requests sent before it, come back over the
        // next half second and do not cut again.
        l.release(held.pop().unwrap(), Signal::Overloaded);
        std::thread::sleep(Duration::from_millis(150));
        while let Some(s) = held.pop() {
            l.release(s, Signal::Overloaded);
        }
        assert_eq!(l.summary().cuts, 1);
        assert_eq!(l.state().limit, 64);
        // A request sent after the cut and refused cuts again.
        let s = l.acquire().await;
        l.release(s, Signal::Overloaded);
        assert_eq!(l.state().limit, 32);
    }

    #[tokio::test]
    async fn answers_grow_it_back_to_the_cap_and_no_further() {
        let l = Limiter::new(4);
        let p = l.acquire().await;
        l.release(p, Signal::Overloaded);
        assert_eq!(l.state().limit, 2);
        for _ in 0..20 {
            let p = l.acquire().await;
            l.release(p, FAST);
        }
        assert_eq!(l.state().limit, 4);
        assert_eq!(l.slots.available_permits(), 4);
    }

    #[tokio::test]
    async fn a_slow_answer_counts_as_load() {
        let l = Limiter::new(16);
        let p = l.acquire().await;
        l.release(p, Signal::Answered(Duration::from_millis(50)));
        let p = l.acquire().await;
        l.release(p, Signal::Answered(Duration::from_millis(120)));
        assert_eq!(l.state().limit, 16, "within twice the floor plus 50 ms");
        let p = l.acquire().await;
        l.release(p, Signal::Answered(Duration::from_millis(400)));
        assert_eq!(l.state().limit, 8);
    }

    #[test]
    fn statuses_map_to_signals() {
        let d = Duration::from_millis(3);
        assert_eq!(Signal::of(Some(429), d), Signal::Overloaded);
        assert_eq!(Signal::of(Some(503), d), Signal::Overloaded);
        assert_eq!(Signal::of(Some(500), d), Signal::Answered(d));
        assert_eq!(Signal::of(None, d), Signal::Neither);
    }
}
