//! A cap on requests outstanding at the origin, with lifeboat's own bounded
//! priority queue behind it, so the queue lives where it can be prioritised
//! and shed, not in the origin's listen backlog.
//!
//! - fast path: a compare-and-swap on the in-flight count; no lock;
//! - otherwise the request waits in one of three FIFO queues (primary, keep,
//!   normal), served strictly in that order, bounded in length and in time;
//! - `reserved` slots are for priority 0 (the primary path) only: the other
//!   classes may fill at most `limit - reserved`, so a download never waits
//!   behind page renders that took every slot;
//! - a finished request hands its slot straight to the best waiter;
//! - a waiter that gives up (timeout, client gone) withdraws from the queue,
//!   and a slot granted to it at that very moment is given back: no slot is
//!   ever lost, none is ever double-counted.
//!
//! The mutex is taken only when there is a queue, i.e. under overload.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
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
}

/// One slot at the origin; released when dropped.
pub struct Permit(Arc<Limiter>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, SeqCst);
        self.0.dispatch();
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

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding this lock cannot leave the queues inconsistent
        // (every operation is a single push or remove), so a poisoned lock is usable.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_take(&self, priority: usize) -> bool {
        let limit = self.limit.load(SeqCst);
        let limit = if priority == 0 {
            limit
        } else {
            limit.saturating_sub(self.reserved.load(SeqCst))
        };
        self.inflight
            .fetch_update(SeqCst, SeqCst, |n| (n < limit).then_some(n + 1))
            .is_ok()
    }

    /// Takes a slot, waiting up to `timeout` in queue `priority` (0 first) if
    /// `may_wait`.
    pub async fn acquire(
        self: &Arc<Self>,
        priority: usize,
        may_wait: bool,
        timeout: Duration,
    ) -> Result<Permit, Refused> {
        if self.try_take(priority) {
            return Ok(Permit(self.clone()));
        }
        if !may_wait || timeout.is_zero() {
            return Err(Refused::Full);
        }
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut q = self.lock();
            if self.queued.load(SeqCst) >= self.max_queue.load(SeqCst) {
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
            tokio::time::timeout(timeout, &mut ticket.rx).await,
            Ok(Ok(()))
        );
        if granted || !ticket.withdraw() {
            ticket.settled = true;
            return Ok(Permit(self.clone()));
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
                if !self.try_take(p) {
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
            drop(Permit(self.limiter.clone()));
        }
    }
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
