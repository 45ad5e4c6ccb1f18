//! The learned origin limit at run time: the hot path's samples (relaxed
//! atomics), and the step the ticker takes every [`capacity::INTERVAL`]:
//! collect the interval, run the pure [`Learner`], apply its limit and
//! reserve to the origin [`Limiter`], and measure how fast slots are freed
//! (what the limiter's expected waits are computed from).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::capacity::{self, Acc, Bounds, Interval, Learner, Step};
use super::limiter::Limiter;
use crate::classify::RouteClass;
use crate::config::{Config, OriginLimit};

/// Weight of the newest interval in the drain rate: about a second of
/// memory at one interval per 100 ms.
const DRAIN_EMA: f64 = 0.2;

/// One class's accumulators: all samples, and baseline (low) samples.
#[derive(Default)]
struct ClassAcc {
    sum_us: AtomicU64,
    count: AtomicU64,
    low_sum_us: AtomicU64,
    low_count: AtomicU64,
    /// The most one sample may weigh (µs), from the learner.
    cap_us: AtomicU64,
}

/// Origin TTFB samples for the learner, written by every request that got
/// a 2xx: four relaxed adds, no lock.
#[derive(Default)]
pub struct Samples {
    classes: [ClassAcc; 3],
    low_mark: AtomicUsize,
}

impl Samples {
    /// Records one 2xx answer of `class` that came `ttfb` after it was sent
    /// with `depth` requests (itself included) at the origin.
    pub fn record(&self, class: RouteClass, ttfb: Duration, depth: usize) {
        let c = &self.classes[class.index()];
        let cap = match c.cap_us.load(Relaxed) {
            0 => u64::MAX,
            cap => cap,
        };
        let us = (ttfb.as_micros() as u64).min(cap);
        c.sum_us.fetch_add(us, Relaxed);
        c.count.fetch_add(1, Relaxed);
        if depth <= self.low_mark.load(Relaxed) {
            c.low_sum_us.fetch_add(us, Relaxed);
            c.low_count.fetch_add(1, Relaxed);
        }
    }

    /// Everything recorded since the last call.
    fn take(&self) -> ([Acc; 3], [Acc; 3]) {
        let take = |sum: &AtomicU64, count: &AtomicU64| Acc {
            sum_us: sum.swap(0, Relaxed),
            count: count.swap(0, Relaxed),
        };
        let all = std::array::from_fn(|i| take(&self.classes[i].sum_us, &self.classes[i].count));
        let low =
            std::array::from_fn(|i| take(&self.classes[i].low_sum_us, &self.classes[i].low_count));
        (all, low)
    }
}

/// What `GET /mode`, the status JSON, the journal and the metrics show of
/// the origin's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Whether the limit is learned (`false`: pinned by the config).
    pub learned: bool,
    /// The limit (the learned one, outside any probe).
    pub limit: usize,
    /// The limit in force now (halved during a probe).
    pub applied: usize,
    /// Slots only the primary class may take.
    pub reserved: usize,
    /// The last interval's Σ ttfb / Σ baseline.
    pub ratio: Option<f64>,
    /// Pages' (normal class) TTFB with nothing queued ahead.
    pub baseline: Option<Duration>,
    /// Slots freed per second lately, all classes.
    pub drain_per_s: f64,
}

/// The learner and its bookkeeping; the ticker calls [`Learn::step`].
pub struct Learn {
    learner: Mutex<Learner>,
    shown: Mutex<Capacity>,
    /// Per priority: releases seen at the last step, and the smoothed rate.
    drain: Mutex<([u64; 3], [f64; 3], Instant)>,
    /// This instance's share of a fleet's fixed limit (0: none).
    share: std::sync::atomic::AtomicUsize,
}

fn bounds(limit: OriginLimit) -> Option<Bounds> {
    match limit {
        OriginLimit::Auto { min, max, initial } => Some(Bounds { min, max, initial }),
        OriginLimit::Fixed(_) => None,
    }
}

/// Slots kept for the primary class under `limit`: as configured, or an
/// eighth of the limit (at least one when it is learned), and always at
/// least one slot left for the others.
pub fn reserved(config: &Config, limit: usize) -> usize {
    let o = &config.origin;
    let r = match (o.primary_reserved, o.max_inflight) {
        (Some(n), _) => n,
        (None, OriginLimit::Fixed(n)) => n / 8,
        (None, OriginLimit::Auto { .. }) => limit.div_ceil(8).max(1),
    };
    r.min(limit.saturating_sub(1))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each guarded value is replaced whole; a panic cannot leave it half-done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Learn {
    /// Starts learning (or holding a fixed limit) for `config`, applying the
    /// first limit to `origin`.
    pub fn new(config: &Config, origin: &Limiter, samples: &Samples) -> Self {
        let now = Instant::now();
        let fallback = Bounds {
            min: 1,
            max: 1,
            initial: 1,
        };
        let learner = Learner::new(bounds(config.origin.max_inflight).unwrap_or(fallback), now);
        let learn = Learn {
            learner: Mutex::new(learner),
            shown: Mutex::new(Capacity {
                learned: false,
                limit: 0,
                applied: 0,
                reserved: 0,
                ratio: None,
                baseline: None,
                drain_per_s: 0.0,
            }),
            drain: Mutex::new(([0; 3], [0.0; 3], now)),
            share: Default::default(),
        };
        learn.apply(config, origin, samples, None);
        learn
    }

    /// Applies a reloaded config: new bounds, or a pinned limit.
    pub fn reconfigure(&self, config: &Config, origin: &Limiter, samples: &Samples) {
        if let Some(b) = bounds(config.origin.max_inflight) {
            lock(&self.learner).set_bounds(b);
        }
        self.apply(config, origin, samples, None);
    }

    /// Sets this instance's share of the fleet's fixed limit (`None`: the
    /// config's own); applied at the next step.
    pub fn set_share(&self, share: Option<usize>) {
        self.share.store(share.unwrap_or(0), Relaxed);
    }

    /// What is shown of the limit.
    pub fn capacity(&self) -> Capacity {
        *lock(&self.shown)
    }

    /// One interval: measure, learn, apply.
    pub fn step(&self, now: Instant, config: &Config, origin: &Limiter, samples: &Samples) {
        let (peak, pressed) = origin.take_pressure();
        self.measure_drain(now, origin);
        let step = if bounds(config.origin.max_inflight).is_some() {
            let (all, low) = samples.take();
            let interval = Interval {
                all,
                low,
                peak,
                pressed,
            };
            Some(lock(&self.learner).step(now, &interval))
        } else {
            None
        };
        self.apply(config, origin, samples, step);
    }

    /// Slots freed per second, per priority, smoothed over about a second.
    fn measure_drain(&self, now: Instant, origin: &Limiter) {
        let released = origin.released();
        let mut d = lock(&self.drain);
        let (before, rates, at) = &mut *d;
        let secs = now.saturating_duration_since(*at).as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        *at = now;
        for p in 0..3 {
            let rate = released[p].saturating_sub(before[p]) as f64 / secs;
            rates[p] = if rates[p] == 0.0 {
                rate
            } else {
                rates[p] + DRAIN_EMA * (rate - rates[p])
            };
            origin.set_drain_rate(p, rates[p]);
        }
        *before = released;
    }

    fn apply(&self, config: &Config, origin: &Limiter, samples: &Samples, step: Option<Step>) {
        let learner = lock(&self.learner);
        let (learned, limit, applied, ratio) = match config.origin.max_inflight {
            OriginLimit::Fixed(n) => {
                let n = match self.share.load(Relaxed) {
                    0 => n,
                    share => share,
                };
                (false, n, n, None)
            }
            OriginLimit::Auto { .. } => {
                let s = step.unwrap_or_else(|| learner.current());
                for class in RouteClass::ALL {
                    let cap = learner.cap_us(class.index());
                    samples.classes[class.index()]
                        .cap_us
                        .store(if cap == u64::MAX { 0 } else { cap }, Relaxed);
                }
                samples.low_mark.store(s.low_mark, Relaxed);
                (true, s.learned, s.limit, s.ratio)
            }
        };
        let reserved = reserved(config, applied);
        origin.set_reserved(reserved);
        origin.set_limit(applied);
        *lock(&self.shown) = Capacity {
            learned,
            limit,
            applied,
            reserved,
            ratio,
            baseline: learner.baseline(RouteClass::Normal.index()),
            drain_per_s: lock(&self.drain).1.iter().sum(),
        };
    }
}

/// The interval the ticker learns at.
pub const INTERVAL: Duration = capacity::INTERVAL;
