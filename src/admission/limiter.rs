//! A cap on requests outstanding at the origin, with lifeboat's own bounded
//! priority queue behind it, so the queue lives where it can be prioritised
//! and shed, not in the origin's listen backlog.
//!
//! - fast path: a compare-and-swap on the in-flight count; no lock;
//! - otherwise the request waits in one of three FIFO queues (primary, keep,
//!   normal), served strictly in that order, bounded in length and in time;
//! - `reserved` slots are for priority 0 (the primary path) only: the other
//!   classes may fill at most `limit - reserved`, so a download never waits
//!   behind page renders that took every slot; and while fewer than
//!   `reserved` downloads hold slots, a download gets one even when the
//!   limit has just been lowered below what long requests still hold (a
//!   probe of the learned limit): the reserve is the primary path's own;
//! - a request joins the queue only if the wait it can expect (the waiters
//!   ahead of it in its class's queue over the rate at which its class gets
//!   slots) fits within what it may wait; otherwise it is refused at once:
//!   nobody is turned away after waiting out a timeout it could never have
//!   met, and a FIFO queue never fills with requests that will all time
//!   out (which would serve nobody);
//! - a finished request hands its slot straight to the best waiter;
//! - a waiter that gives up (timeout, client gone) withdraws from the queue,
//!   and a slot granted to it at that very moment is given back: no slot is
//!   ever lost, none is ever double-counted.
//!
//! The mutex is taken only when there is a queue, i.e. under overload.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue was full, or waiting was not allowed.
    Full,
    /// Waited `queue_timeout` without getting a slot.
    Timeout,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<()>,
}

#[derive(Default)]
struct Queues {
    next_id: u64,
    by_priority: [VecDeque<Waiter>; 3],
}

/// A resizable concurrency limit with a priority queue.
pub struct Limiter {
    limit: AtomicUsize,
    reserved: AtomicUsize,
    max_queue: AtomicUsize,
    inflight: AtomicUsize,
    queued: AtomicUsize,
    queues: Mutex<Queues>,
    /// Most slots in use at once since the last [`Limiter::take_pressure`].
    peak: AtomicUsize,
    /// Requests that found no free slot since then.
    pressed: AtomicU64,
    /// Slots given since start, per priority: under pressure, what its
    /// waiters were served at, slots freed and the limit's growth alike.
    granted: [AtomicU64; 3],
    /// Slots the learned limit is about to grow by (the learner says so
    /// while transfers fill it): a newcomer no further back in its queue
    /// will get one of them, whatever the rate slots were freed at.
    headroom: AtomicUsize,
    /// Slots held by priority 0 now.
    primary_held: AtomicUsize,
    /// Slots released per second lately, per priority (f64 bits; 0: not
    /// measured yet).
    drain_per_s: [AtomicU64; 3],
}

/// One slot at the origin; released when dropped.
pub struct Permit {
    limiter: Arc<Limiter>,
    depth: usize,
    priority: usize,
}

impl Permit {
    /// Slots in use when this one was taken, itself included: how many
    /// requests this one found at the origin, plus one.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.inflight.fetch_sub(1, SeqCst);
        if self.priority == 0 {
            self.limiter.primary_held.fetch_sub(1, SeqCst);
        }
        self.limiter.dispatch();
    }
}

impl Limiter {
    /// A limiter of `limit` slots and a queue of `max_queue` waiters.
    pub fn new(limit: usize, max_queue: usize) -> Arc<Self> {
        Arc::new(Limiter {
            limit: AtomicUsize::new(limit),
            reserved: AtomicUsize::new(0),
            max_queue: AtomicUsize::new(max_queue),
            inflight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            queues: Mutex::new(Queues::default()),
            peak: AtomicUsize::new(0),
            pressed: AtomicU64::new(0),
            granted: Default::default(),
            headroom: AtomicUsize::new(0),
            primary_held: AtomicUsize::new(0),
            drain_per_s: Default::default(),
        })
    }

    fn permit(self: &Arc<Self>, depth: usize, priority: usize) -> Permit {
        self.peak.fetch_max(depth, Relaxed);
        self.granted[priority.min(2)].fetch_add(1, Relaxed);
        if priority == 0 {
            self.primary_held.fetch_add(1, SeqCst);
        }
        Permit {
            limiter: self.clone(),
            depth,
            priority: priority.min(2),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit.load(SeqCst)
    }

    /// Slots reserved for priority 0.
    pub fn reserved(&self) -> usize {
        self.reserved.load(SeqCst)
    }

    /// Changes the limit alone (the learned limit, every interval).
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, SeqCst);
        self.dispatch();
    }

    /// The most slots in use at once, and the requests that found none,
    /// since the last call; both start again from now.
    pub fn take_pressure(&self) -> (usize, u64) {
        let peak = self.peak.swap(self.inflight(), Relaxed);
        (peak, self.pressed.swap(0, Relaxed))
    }

    /// Slots given since start, per priority.
    pub fn granted(&self) -> [u64; 3] {
        std::array::from_fn(|p| self.granted[p].load(Relaxed))
    }

    /// Sets how many slots the limit is about to grow by (0: none).
    pub fn set_headroom(&self, slots: usize) {
        self.headroom.store(slots, Relaxed);
    }

    /// Records how many slots priority `p` frees per second (the ticker
    /// measures it): under saturation, the rate at which its waiters are
    /// served.
    pub fn set_drain_rate(&self, p: usize, per_s: f64) {
        if let Some(d) = self.drain_per_s.get(p) {
            d.store(per_s.to_bits(), Relaxed);
        }
    }

    /// The wait a newcomer of priority `p` can expect with `ahead` waiters
    /// before it in its queue, if its class's drain rate is known and the
    /// limit is not about to make room for it. A rate
    /// that has decayed towards zero (the measured rate of a class that
    /// was idle for minutes) gives a wait too long for a `Duration`: that
    /// is the longest wait, not a panic.
    fn expected_wait(&self, p: usize, ahead: usize) -> Option<Duration> {
        if ahead < self.headroom.load(Relaxed) {
            return None;
        }
        let rate = f64::from_bits(self.drain_per_s[p.min(2)].load(Relaxed));
        (rate > 0.0).then(|| {
            Duration::try_from_secs_f64((ahead + 1) as f64 / rate).unwrap_or(Duration::MAX)
        })
    }

    /// Keeps `reserved` of the slots for priority 0 (capped below the limit).
    pub fn set_reserved(&self, reserved: usize) {
        self.reserved.store(reserved, SeqCst);
        self.dispatch();
    }

    /// Changes the limits (on reload); waiters are served if room appeared.
    pub fn set_limits(&self, limit: usize, max_queue: usize) {
        self.limit.store(limit, SeqCst);
        self.max_queue.store(max_queue, SeqCst);
        self.dispatch();
    }

    /// Slots in use.
    pub fn inflight(&self) -> usize {
        self.inflight.load(SeqCst)
    }

    /// Requests waiting.
    pub fn queued(&self) -> usize {
        self.queued.load(SeqCst)
    }

    /// Requests of priority `p` waiting.
    pub fn queued_at(&self, p: usize) -> usize {
        if self.queued() == 0 {
            return 0;
        }
        self.lock().by_priority.get(p).map_or(0, VecDeque::len)
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding this lock cannot leave the queues inconsistent
        // (every operation is a single push or remove), so a poisoned lock is usable.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot if one is free for `priority`; returns the depth.
    fn try_take(&self, priority: usize) -> Option<usize> {
        let limit = self.limit.load(SeqCst);
        let reserved = self.reserved.load(SeqCst);
        let own_reserve = priority == 0 && self.primary_held.load(SeqCst) < reserved;
        let limit = if priority == 0 {
            limit
        } else {
            limit.saturating_sub(reserved)
        };
        self.inflight
            .fetch_update(SeqCst, SeqCst, |n| {
                (n < limit || own_reserve).then_some(n + 1)
            })
            .ok()
            .map(|n| n + 1)
    }

    /// Takes a slot, waiting in queue `priority` (0 first) for up to
    /// `max_wait`, but only if the wait it can expect fits in `max_wait`:
    /// otherwise (or with `max_wait` zero) it is refused at once.
    pub async fn acquire(
        self: &Arc<Self>,
        priority: usize,
        max_wait: Duration,
    ) -> Result<Permit, Refused> {
        if let Some(depth) = self.try_take(priority) {
            return Ok(self.permit(depth, priority));
        }
        self.pressed.fetch_add(1, Relaxed);
        if max_wait.is_zero() {
            return Err(Refused::Full);
        }
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut q = self.lock();
            if self.queued.load(SeqCst) >= self.max_queue.load(SeqCst) {
                return Err(Refused::Full);
            }
            let ahead = q.by_priority[priority.min(2)].len();
            if self
                .expected_wait(priority, ahead)
                .is_some_and(|w| w > max_wait)
            {
                return Err(Refused::Full);
            }
            let id = q.next_id;
            q.next_id += 1;
            q.by_priority[priority.min(2)].push_back(Waiter { id, tx });
            self.queued.fetch_add(1, SeqCst);
            id
        };
        let mut ticket = Ticket {
            limiter: self,
            priority: priority.min(2),
            id,
            rx,
            settled: false,
        };
        // A slot may have been freed between the fast path and the enqueue.
        self.dispatch();
        let granted = matches!(
            tokio::time::timeout(max_wait, &mut ticket.rx).await,
            Ok(Ok(()))
        );
        if granted || !ticket.withdraw() {
            ticket.settled = true;
            // Granted by `dispatch`, which counted the slot in already.
            let depth = self.inflight();
            return Ok(self.permit(depth, priority));
        }
        ticket.settled = true;
        Err(Refused::Timeout)
    }

    /// Gives free slots to waiters, best priority first. A class that cannot
    /// get a slot stops the search: the classes after it have no more room.
    fn dispatch(&self) {
        while self.queued.load(SeqCst) > 0 {
            let waiter = {
                let mut q = self.lock();
                let Some(p) = q.by_priority.iter().position(|w| !w.is_empty()) else {
                    return;
                };
                if self.try_take(p).is_none() {
                    return;
                }
                self.queued.fetch_sub(1, SeqCst);
                q.by_priority[p].pop_front()
            };
            // The waiter is gone (request abandoned): the slot goes back, and
            // the loop looks again.
            if let Some(w) = waiter
                && w.tx.send(()).is_err()
            {
                self.inflight.fetch_sub(1, SeqCst);
            }
        }
    }
}

/// A place in the queue. Dropped unsettled (the request was abandoned), it
/// withdraws, and gives back a slot that was granted in the meantime.
struct Ticket<'a> {
    limiter: &'a Arc<Limiter>,
    priority: usize,
    id: u64,
    rx: oneshot::Receiver<()>,
    settled: bool,
}

impl Ticket<'_> {
    /// Removes this waiter from its queue; false if it had already been
    /// given a slot.
    fn withdraw(&mut self) -> bool {
        let mut q = self.limiter.lock();
        let queue = &mut q.by_priority[self.priority];
        match queue.iter().position(|w| w.id == self.id) {
            Some(i) => {
                queue.remove(i);
                self.limiter.queued.fetch_sub(1, SeqCst);
                true
            }
            None => false,
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.settled || self.withdraw() {
            return;
        }
        // Granted just as we gave up: if the grant already arrived, hand the
        // slot back; if not, dropping `rx` makes the sender give it back.
        if self.rx.try_recv().is_ok() {
            drop(self.limiter.permit(0, self.priority));
        }
    }
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
