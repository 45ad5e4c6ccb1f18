//! The learned origin limit at run time: the hot path's samples (relaxed
//! atomics), and the step the ticker takes every [`capacity::INTERVAL`]:
//! collect each server's interval, run its pure [`Learner`], apply the sum
//! of the servers' limits (those in rotation) and the reserve to the
//! origin [`Limiter`], and measure how fast slots are freed (what the
//! limiter's expected waits are computed from).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::capacity::{self, Acc, Bounds, Interval, Learner};
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

/// The origin's limit and its bookkeeping; the ticker calls
/// [`Learn::step`]. Each server learns its own limit ([`ServerLearn`]); the
/// origin's is their sum over the servers in rotation.
pub struct Learn {
    shown: Mutex<Capacity>,
    /// Per priority: releases seen at the last step, and the smoothed rate.
    drain: Mutex<([u64; 3], [f64; 3], Instant)>,
    /// This instance's share of a fleet's fixed limit (0: none).
    share: std::sync::atomic::AtomicUsize,
}

/// One server's learner: its samples and the limit learned (or pinned)
/// for it. It lives as long as the server is configured, across reloads.
pub struct ServerLearn {
    /// Its TTFB samples.
    pub samples: Samples,
    learner: Mutex<Learner>,
    /// The limit in force now (halved during a probe).
    applied: AtomicUsize,
    /// The limit outside any probe.
    learned: AtomicUsize,
    /// Slots it may still grow by while transfers fill it (0: not growing).
    headroom: AtomicUsize,
}

/// What the ticker knows of one server at a step.
pub struct ServerStep<'a> {
    /// Its learner.
    pub learn: &'a ServerLearn,
    /// Most requests at it at once since the last step.
    pub peak: usize,
    /// Requests at it now.
    pub at_origin: usize,
    /// Of those, answered and still sending their body.
    pub streaming: usize,
    /// Whether it takes new requests (not ejected).
    pub in_rotation: bool,
}

impl ServerLearn {
    /// A learner for a server of `config`'s origin, at the initial limit.
    pub fn new(config: &Config) -> Self {
        let limit = config.origin.max_inflight.initial();
        let fallback = Bounds {
            min: 1,
            max: 1,
            initial: 1,
        };
        let b = bounds(config.origin.max_inflight).unwrap_or(fallback);
        ServerLearn {
            samples: Samples::default(),
            learner: Mutex::new(Learner::new(b, Instant::now())),
            applied: AtomicUsize::new(limit),
            learned: AtomicUsize::new(limit),
            headroom: AtomicUsize::new(0),
        }
    }

    /// Applies a reloaded config: new bounds, or a pinned limit.
    pub fn reconfigure(&self, config: &Config) {
        match config.origin.max_inflight {
            OriginLimit::Fixed(n) => {
                self.applied.store(n, Relaxed);
                self.learned.store(n, Relaxed);
            }
            limit => {
                if let Some(b) = bounds(limit) {
                    lock(&self.learner).set_bounds(b);
                }
            }
        }
    }

    /// The limit in force now.
    pub fn limit(&self) -> usize {
        self.applied.load(Relaxed)
    }

    /// The learned (or pinned) limit, outside any probe.
    pub fn learned(&self) -> usize {
        self.learned.load(Relaxed)
    }

    /// One interval for this server: its samples, its peak, and whether
    /// lifeboat's queue was pressing. Returns the ratio, if measured.
    fn step(
        &self,
        now: Instant,
        config: &Config,
        at: &ServerStep,
        (pressed, waiting_primary): (u64, usize),
    ) -> Option<f64> {
        let OriginLimit::Auto { .. } = config.origin.max_inflight else {
            let n = config.origin.max_inflight.initial();
            self.applied.store(n, Relaxed);
            self.learned.store(n, Relaxed);
            return None;
        };
        let (all, low) = self.samples.take();
        let interval = Interval {
            all,
            low,
            peak: at.peak,
            pressed,
            at_origin: at.at_origin,
            streaming: at.streaming,
            waiting_primary,
        };
        let mut learner = lock(&self.learner);
        let s = learner.step(now, &interval);
        for class in RouteClass::ALL {
            let cap = learner.cap_us(class.index());
            self.samples.classes[class.index()]
                .cap_us
                .store(if cap == u64::MAX { 0 } else { cap }, Relaxed);
        }
        self.samples.low_mark.store(s.low_mark, Relaxed);
        self.applied.store(s.limit, Relaxed);
        self.learned.store(s.learned, Relaxed);
        let room = if s.growing {
            learner.bounds().max.saturating_sub(s.learned)
        } else {
            0
        };
        self.headroom.store(room, Relaxed);
        s.ratio
    }

    fn baseline(&self) -> Option<Duration> {
        lock(&self.learner).baseline(RouteClass::Normal.index())
    }
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
    /// Starts with every one of `config`'s servers at its initial limit,
    /// applying their sum to `origin`.
    pub fn new(config: &Config, origin: &Limiter) -> Self {
        let learn = Learn {
            shown: Mutex::new(Capacity {
                learned: false,
                limit: 0,
                applied: 0,
                reserved: 0,
                ratio: None,
                baseline: None,
                drain_per_s: 0.0,
            }),
            drain: Mutex::new(([0; 3], [0.0; 3], Instant::now())),
            share: Default::default(),
        };
        learn.reconfigure(config, origin);
        learn
    }

    /// Applies a reloaded config at once where it pins the limit (each of
    /// its servers at the pinned limit); a learned limit is summed again
    /// at the next step.
    pub fn reconfigure(&self, config: &Config, origin: &Limiter) {
        let n = config.origin.servers.len();
        let shown = self.capacity();
        let (learned, limit, applied) = match config.origin.max_inflight {
            OriginLimit::Fixed(per) => (false, per * n, per * n),
            OriginLimit::Auto { initial, .. } if shown.limit == 0 => {
                (true, initial * n, initial * n)
            }
            OriginLimit::Auto { .. } => (true, shown.limit, shown.applied),
        };
        self.apply(
            config,
            origin,
            learned,
            (limit, applied),
            shown.ratio,
            shown.baseline,
        );
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

    /// One interval: measure, let each server learn, apply their sum.
    pub fn step(&self, now: Instant, config: &Config, origin: &Limiter, servers: &[ServerStep]) {
        let (_, pressed) = origin.take_pressure();
        self.measure_drain(now, origin);
        let (mut limit, mut applied, mut ratio, mut baseline) = (0, 0, None::<f64>, None);
        let mut headroom = 0;
        let in_rotation = servers.iter().filter(|s| s.in_rotation).count().max(1);
        let waiting_primary = origin.queued_at(0).div_ceil(in_rotation);
        for s in servers {
            let r = s.learn.step(now, config, s, (pressed, waiting_primary));
            if s.in_rotation {
                limit += s.learn.learned();
                applied += s.learn.limit();
                headroom += s.learn.headroom.load(Relaxed);
                ratio = match (ratio, r) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                baseline = baseline.or_else(|| s.learn.baseline());
            }
        }
        let learned = matches!(config.origin.max_inflight, OriginLimit::Auto { .. });
        // Never a limit of nothing: the last server in rotation is never
        // ejected, so only a step without servers could sum to zero.
        let (limit, applied) = if limit == 0 {
            let n = config.origin.max_inflight.initial().max(1);
            (n, n)
        } else {
            (limit, applied.max(1))
        };
        origin.set_headroom(if learned { headroom } else { 0 });
        self.apply(config, origin, learned, (limit, applied), ratio, baseline);
    }

    /// Slots given per second, per priority, smoothed over about a second.
    /// An interval in which a class got no slot at all measured nothing
    /// (its slots were all held by long transfers, or it had no traffic):
    /// the rate it had stands, and one never measured stays unknown (a
    /// newcomer may wait), never zero.
    fn measure_drain(&self, now: Instant, origin: &Limiter) {
        let granted = origin.granted();
        let mut d = lock(&self.drain);
        let (before, rates, at) = &mut *d;
        let secs = now.saturating_duration_since(*at).as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        *at = now;
        for p in 0..3 {
            let given = granted[p].saturating_sub(before[p]);
            if given == 0 {
                continue;
            }
            let rate = given as f64 / secs;
            rates[p] = if rates[p] == 0.0 {
                rate
            } else {
                rates[p] + DRAIN_EMA * (rate - rates[p])
            };
            origin.set_drain_rate(p, rates[p]);
        }
        *before = granted;
    }

    fn apply(
        &self,
        config: &Config,
        origin: &Limiter,
        learned: bool,
        (limit, applied): (usize, usize),
        ratio: Option<f64>,
        baseline: Option<Duration>,
    ) {
        // A fleet's fixed limit, divided among the live instances, is this
        // instance's whole share, whatever its servers.
        let (limit, applied) = match self.share.load(Relaxed) {
            share if share > 0 && !learned => (share, share),
            _ => (limit, applied),
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
            baseline,
            drain_per_s: lock(&self.drain).1.iter().sum(),
        };
    }
}

/// The interval the ticker learns at.
pub const INTERVAL: Duration = capacity::INTERVAL;
