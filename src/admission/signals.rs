//! Load signals, measured on the hot path with relaxed atomics only (no
//! lock, no await), and summarised once per tick by the ticker task.
//!
//! A [`Window`] is a ring of one-second slots. Writers add to the current
//! slot; the ticker moves `current` forward once a second after clearing the
//! slot it moves into. Percentiles come from histograms that split each
//! power of two into four equal buckets (a bucket spans at most 25 % of its
//! lower bound: the first quarter of each power), good enough to compare
//! against a threshold.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::classify::RouteClass;

/// Histogram buckets: 4 per power of two of microseconds, up to 2^40 µs.
const BUCKETS: usize = 160;

fn bucket_of(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let log = 63 - us.leading_zeros() as usize; // floor(log2), >= 2
    let sub = ((us >> (log - 2)) & 3) as usize; // next two bits
    (log * 4 + sub).min(BUCKETS - 1)
}

/// Upper bound of a bucket, in microseconds.
fn bucket_upper(b: usize) -> u64 {
    if b < 4 {
        return b as u64;
    }
    let (log, sub) = (b / 4, (b % 4) as u64);
    ((4 + sub + 1) << (log - 2)) - 1
}

struct Histo([AtomicU64; BUCKETS]);

impl Histo {
    fn new() -> Self {
        Histo(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

struct Slot {
    ttfb: Histo,
    queue_wait: Histo,
    outcomes: AtomicU64,
    failures: AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            ttfb: Histo::new(),
            queue_wait: Histo::new(),
            outcomes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn clear(&self) {
        for h in [&self.ttfb, &self.queue_wait] {
            h.0.iter().for_each(|b| b.store(0, Ordering::Relaxed));
        }
        self.outcomes.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
    }
}

/// A sliding window of origin observations.
pub struct Window {
    slots: Box<[Slot]>,
    current: AtomicUsize,
}

/// Summary of a window plus live gauges: what the mode machine looks at.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Signals {
    /// Requests inside lifeboat now (queued or at the origin), all classes.
    pub inflight: usize,
    /// Origin time to first byte, 95th percentile over the window.
    pub ttfb_p95: Option<Duration>,
    /// Share of origin exchanges that failed (connect error, timeout, 5xx).
    pub failure_rate: Option<f64>,
    /// Time spent in lifeboat's origin queue, 95th percentile.
    pub queue_wait_p95: Option<Duration>,
    /// Origin exchanges in the window.
    pub samples: u64,
    /// Requests arriving per second, all classes, shed ones included (the
    /// demand, which shedding does not lower), over the last few seconds.
    pub arrivals_per_s: Option<f64>,
    /// Requests the origin answered per second (the throughput, which at
    /// saturation is its capacity), over the last few seconds.
    pub served_per_s: Option<f64>,
}

impl Window {
    /// A window of `seconds` one-second slots (at least 2).
    pub fn new(seconds: usize) -> Self {
        Window {
            slots: (0..seconds.max(2)).map(|_| Slot::new()).collect(),
            current: AtomicUsize::new(0),
        }
    }

    fn slot(&self) -> &Slot {
        &self.slots[self.current.load(Ordering::Relaxed) % self.slots.len()]
    }

    /// Records one origin exchange: its time to first byte (if headers came)
    /// and whether it failed.
    pub fn record_origin(&self, ttfb: Option<Duration>, failed: bool) {
        let slot = self.slot();
        if let Some(t) = ttfb {
            slot.ttfb.0[bucket_of(t.as_micros() as u64)].fetch_add(1, Ordering::Relaxed);
        }
        slot.outcomes.fetch_add(1, Ordering::Relaxed);
        if failed {
            slot.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records how long a request waited in lifeboat's origin queue.
    pub fn record_queue_wait(&self, wait: Duration) {
        self.slot().queue_wait.0[bucket_of(wait.as_micros() as u64)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Advances to the next slot, clearing it first (ticker only, once a second).
    pub fn rotate(&self) {
        let next = (self.current.load(Ordering::Relaxed) + 1) % self.slots.len();
        self.slots[next].clear();
        self.current.store(next, Ordering::Relaxed);
    }

    /// Percentiles and rates over the whole window. Percentiles need at
    /// least `min_samples` observations, so one slow request on a quiet site
    /// is not an overload.
    pub fn summarise(&self, min_samples: u64) -> Signals {
        let mut ttfb = [0u64; BUCKETS];
        let mut wait = [0u64; BUCKETS];
        let (mut outcomes, mut failures) = (0, 0);
        for slot in self.slots.iter() {
            for i in 0..BUCKETS {
                ttfb[i] += slot.ttfb.0[i].load(Ordering::Relaxed);
                wait[i] += slot.queue_wait.0[i].load(Ordering::Relaxed);
            }
            outcomes += slot.outcomes.load(Ordering::Relaxed);
            failures += slot.failures.load(Ordering::Relaxed);
        }
        Signals {
            inflight: 0,
            ttfb_p95: percentile(&ttfb, 0.95, min_samples),
            failure_rate: (outcomes >= min_samples.max(1))
                .then(|| failures as f64 / outcomes as f64),
            queue_wait_p95: percentile(&wait, 0.95, min_samples),
            samples: outcomes,
            arrivals_per_s: None,
            served_per_s: None,
        }
    }
}

fn percentile(buckets: &[u64; BUCKETS], q: f64, min_samples: u64) -> Option<Duration> {
    let total: u64 = buckets.iter().sum();
    if total == 0 || total < min_samples {
        return None;
    }
    let rank = ((total as f64) * q).ceil() as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(Duration::from_micros(bucket_upper(i)));
        }
    }
    None
}

/// Requests inside lifeboat, per class, from admission until their response
/// body ends.
#[derive(Default)]
pub struct InFlight([AtomicUsize; 3]);

impl InFlight {
    /// Counts a request in; the guard counts it out.
    pub fn enter(self: &std::sync::Arc<Self>, class: RouteClass) -> InFlightGuard {
        self.0[class.index()].fetch_add(1, Ordering::Relaxed);
        InFlightGuard {
            counts: self.clone(),
            class,
        }
    }

    /// Requests in flight for one class.
    pub fn get(&self, class: RouteClass) -> usize {
        self.0[class.index()].load(Ordering::Relaxed)
    }

    /// Requests in flight, all classes.
    pub fn total(&self) -> usize {
        RouteClass::ALL.iter().map(|c| self.get(*c)).sum()
    }
}

/// Counts one request out of [`InFlight`] when dropped.
pub struct InFlightGuard {
    counts: std::sync::Arc<InFlight>,
    class: RouteClass,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.counts.0[self.class.index()].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for us in [0u64, 1, 3, 4, 5, 7, 8, 100, 1000, 123_456, 10_000_000] {
            let b = bucket_of(us);
            assert!(b >= last);
            last = b;
            assert!(bucket_upper(b) >= us, "{us} above its bucket's bound");
            assert!(
                bucket_upper(b) as f64 <= us as f64 * 1.25 + 1.0,
                "{us}: bucket too wide"
            );
        }
    }

    #[test]
    fn p95_over_the_window() {
        let w = Window::new(10);
        for _ in 0..95 {
            w.record_origin(Some(Duration::from_millis(10)), false);
        }
        for _ in 0..5 {
            w.record_origin(Some(Duration::from_millis(900)), true);
        }
        let s = w.summarise(20);
        let p95 = s.ttfb_p95.unwrap();
        assert!(
            p95 >= Duration::from_millis(10) && p95 < Duration::from_millis(13),
            "{p95:?}"
        );
        assert_eq!(s.failure_rate, Some(0.05));
        assert_eq!(s.samples, 100);
        assert_eq!(w.summarise(1000).ttfb_p95, None, "too few samples");
    }

    #[test]
    fn old_slots_fall_out_of_the_window() {
        let w = Window::new(3);
        w.record_origin(Some(Duration::from_secs(2)), true);
        for _ in 0..3 {
            w.rotate();
        }
        let s = w.summarise(1);
        assert_eq!(s.samples, 0);
        assert_eq!(s.ttfb_p95, None);
    }
}
