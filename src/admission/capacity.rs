//! The origin's capacity, learned from its own time to first byte: how many
//! requests it can hold at once before they start to queue inside it.
//!
//! The idea is Vegas's, as in Netflix's concurrency-limits and Envoy's
//! adaptive concurrency filter: compare what requests take now with what
//! they take when nothing queues ahead of them, and move the limit so the
//! origin is always busy but holds almost no queue of its own. What users of
//! those report going wrong, and what is done here about it:
//!
//! - **Mixed requests** (2 ms downloads beside 20 ms pages) make a single
//!   minimum RTT meaningless. Here each class has its own baseline, and the
//!   congestion ratio is *total time over total expected time*
//!   (Σ ttfb / Σ baseline), so a queue at the origin, which delays every
//!   class by the same amount, is weighed by what it costs, not blown up by
//!   the fastest class.
//! - **Stale baselines** (the origin got slower, or faster) pin the limit to
//!   a wrong floor. A baseline sample is any request that met at most a
//!   quarter of the limit at the origin when it was sent (`depth` ≤
//!   `low_mark`): FIFO at the origin means nothing queued ahead of it.
//!   While the origin is kept full no such request exists, so every
//!   [`PROBE_EVERY`] (and at once when two decreases in a row did not help)
//!   the limit is halved for [`PROBE_INTERVALS`] intervals — a probe — and
//!   the requests sent meanwhile re-measure the baseline.
//! - **Limit collapse on a quiet site**: the limit only falls when the
//!   origin is congested *and* lifeboat was pressing on it (more in flight
//!   than `low_mark`); one slow request weighs at most [`OUTLIER`] × its
//!   baseline, and fewer than [`MIN_SAMPLES`] samples decide nothing. Only
//!   2xx answers are samples: a burst of fast 404s says nothing about pages.
//! - **Transfers that fill the limit** (a release day's long downloads, or
//!   responses held at their visitor's pace when the spool is full) send no
//!   answers for seconds, so there is nothing to learn from, and a probe
//!   cannot drain slots that bodies hold. When most of a pressed limit is
//!   held by answers still sending their bodies and few requests wait for
//!   their head, the origin is answering as fast as it is asked: the limit
//!   doubles each interval (TCP's slow start), or grows at once to take
//!   the downloads waiting in lifeboat's queue, or holds if the answers that
//!   did come were slow. An origin whose workers the bodies hold shows a
//!   queue at once: its new requests wait for their head, the rule no
//!   longer applies, and the ordinary one lowers the limit.
//! - **Sub-millisecond baselines** make the ratio noise: a static file's
//!   head that takes 0.8 ms instead of 0.3 ms on a busy core is not a
//!   queue. A baseline counts as at least 2 ms in the ratio.
//! - **Oscillation**: between [`INCREASE_BELOW`] and [`DECREASE_ABOVE`] the
//!   limit holds still; it grows by one (or 10 %) per interval, and falls
//!   in proportion to the congestion, by half at most.
//!
//! Pure: [`Learner::step`] takes the time and one interval's observations
//! and returns the new limit. The ticker drives it every [`INTERVAL`];
//! tests drive it with synthetic latency curves.

use std::time::Duration;

use tokio::time::Instant;

/// How often the limit is re-evaluated: often enough to follow an origin
/// that halves its speed within a second, long enough to collect a few
/// samples from a small origin (200 requests/s → 20 a step).
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Below this congestion ratio the origin has room: the limit grows.
pub const INCREASE_BELOW: f64 = 1.2;
/// Above this the origin is queueing: the limit falls. Between the two
/// the limit holds: a small origin (4 workers) settles at one or two
/// requests queued inside it (ratio 1.25 to 1.5), enough to keep it busy
/// between lifeboat's hand-offs; a large one (64 workers) at 13 to 32.
/// (A band of 1.1 to 1.3 was tried on the stampede bench: downloads were
/// no faster, and an origin at half speed lost 6 points of goodput.)
pub const DECREASE_ABOVE: f64 = 1.5;
/// What a decrease aims for: limit × TARGET / ratio.
const TARGET: f64 = 1.3;
/// Fewer samples than this in an interval decide nothing.
pub const MIN_SAMPLES: u64 = 5;
/// Fewer baseline samples than this in a class leave its baseline alone.
const MIN_LOW_SAMPLES: u64 = 3;
/// One request counts for at most this many times its baseline: a single
/// slow request cannot make an interval look congested.
pub const OUTLIER: f64 = 4.0;
/// A baseline counts as at least this (µs) in the congestion ratio: below
/// a couple of milliseconds a time to first byte is the scheduler's noise
/// as much as the origin's (a static file's head in 0.3 ms becomes 0.8 ms
/// whenever a core is busy with the bodies), and a queue that costs less
/// than a millisecond is no queue worth refusing anyone for.
const BASELINE_FLOOR_US: f64 = 2_000.0;
/// Weight of a new passive baseline measurement (a probe's replaces it).
const BASELINE_EMA: f64 = 0.3;
/// A probe at least this often while the limit is pressed: the baseline
/// never gets older than a few seconds during a wave.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// A probe lasts this many intervals: the first lets the origin drain to
/// the probe's depth, the second measures.
pub const PROBE_INTERVALS: u32 = 2;
/// ... and up to this many more while a class that has traffic still has
/// fewer than `MIN_PROBE_SAMPLES` baseline samples (a slow page at a
/// small probe limit completes only once or twice in 100 ms).
pub const PROBE_EXTRA: u32 = 3;
/// A probe's samples are trusted from two on: each met nothing queued.
const MIN_PROBE_SAMPLES: u64 = 2;
/// Intervals are gathered into one decision for up to 1 s when they hold
/// fewer than [`MIN_SAMPLES`] answers: an origin of 20 pages a second, or
/// one held at a small limit, still gets decisions, never a frozen limit.
pub const GATHER: Duration = Duration::from_secs(1);

/// Bounds on the learned limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Never below this.
    pub min: usize,
    /// Never above this.
    pub max: usize,
    /// Where learning starts.
    pub initial: usize,
}

/// Time-to-first-byte samples of one class in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Acc {
    /// Sum of TTFBs, µs.
    pub sum_us: u64,
    /// Number of samples.
    pub count: u64,
}

impl Acc {
    fn add(&mut self, other: &Acc) {
        self.sum_us += other.sum_us;
        self.count += other.count;
    }

    fn mean_us(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us as f64 / self.count as f64)
    }
}

/// One interval's observations of the origin, per class (primary, keep,
/// normal).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interval {
    /// Each 2xx answer's TTFB, capped at [`OUTLIER`] × its class's baseline
    /// when one is known (see [`Learner::cap_us`]).
    pub all: [Acc; 3],
    /// The same, for requests sent with at most `low_mark` at the origin.
    pub low: [Acc; 3],
    /// Most requests at the origin at once during the interval.
    pub peak: usize,
    /// Requests that found no free slot (queued or refused).
    pub pressed: u64,
    /// Requests at the origin at the interval's end.
    pub at_origin: usize,
    /// Of those, answered and still sending their body (transfers).
    pub streaming: usize,
    /// Downloads (the primary class) waiting in lifeboat's queue for this
    /// origin, at the interval's end.
    pub waiting_primary: usize,
}

impl Interval {
    /// Adds `other` to this one: sums, the higher peak.
    fn absorb(&mut self, other: &Interval) {
        for (a, b) in self.all.iter_mut().zip(&other.all) {
            a.add(b);
        }
        for (a, b) in self.low.iter_mut().zip(&other.low) {
            a.add(b);
        }
        self.peak = self.peak.max(other.peak);
        self.pressed += other.pressed;
        self.at_origin = other.at_origin;
        self.streaming = other.streaming;
        self.waiting_primary = other.waiting_primary;
    }
}

/// What the learner says after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The limit to apply now (halved during a probe).
    pub limit: usize,
    /// The learned limit, outside any probe: what is reported.
    pub learned: usize,
    /// Requests sent with at most this many at the origin are baseline
    /// samples.
    pub low_mark: usize,
    /// Σ ttfb / Σ baseline over the interval, when it had enough samples.
    pub ratio: Option<f64>,
    /// Whether a probe is under way.
    pub probing: bool,
    /// Whether the limit is growing because transfers fill it: it may
    /// double again at the next interval.
    pub growing: bool,
}

/// The controller.
#[derive(Debug, Clone)]
pub struct Learner {
    bounds: Bounds,
    limit: f64,
    /// Per class, µs: TTFB with nothing queued ahead.
    baseline: [Option<f64>; 3],
    /// Per class: when its baseline was last measured.
    measured: [Instant; 3],
    /// Intervals of probe left, and extra ones already granted.
    probe_left: u32,
    probe_extra: u32,
    /// The probe's baseline samples so far, per class.
    probe_acc: [Acc; 3],
    /// Intervals gathered for the next decision, and since when.
    pending: Interval,
    pending_since: Instant,
    /// The probe's limit.
    probe_to: usize,
    decreases_in_a_row: u32,
}

impl Learner {
    /// Starts at `bounds.initial` at `now`.
    pub fn new(bounds: Bounds, now: Instant) -> Self {
        Learner {
            bounds,
            limit: bounds.initial.clamp(bounds.min, bounds.max) as f64,
            baseline: [None; 3],
            measured: [now; 3],
            probe_left: 0,
            probe_extra: 0,
            probe_acc: [Acc::default(); 3],
            pending: Interval::default(),
            pending_since: now,
            probe_to: bounds.min,
            decreases_in_a_row: 0,
        }
    }

    /// New bounds (a reload); the learned limit is kept within them.
    pub fn set_bounds(&mut self, bounds: Bounds) {
        self.bounds = bounds;
        self.limit = self.limit.clamp(bounds.min as f64, bounds.max as f64);
    }

    /// Its bounds.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// The learned limit.
    pub fn learned(&self) -> usize {
        self.limit.round() as usize
    }

    /// A class's baseline TTFB, if measured.
    pub fn baseline(&self, class: usize) -> Option<Duration> {
        self.baseline
            .get(class)
            .copied()
            .flatten()
            .map(|us| Duration::from_micros(us as u64))
    }

    /// The most one sample of `class` may weigh, µs (no cap before its
    /// baseline is known).
    pub fn cap_us(&self, class: usize) -> u64 {
        self.baseline
            .get(class)
            .copied()
            .flatten()
            .map_or(u64::MAX, |b| (b * OUTLIER) as u64)
    }

    fn low_mark(&self) -> usize {
        if self.probe_left > 0 {
            self.probe_to
        } else {
            ((self.limit / 4.0).floor() as usize).max(1)
        }
    }

    fn step_result(&self, ratio: Option<f64>) -> Step {
        let learned = self.learned();
        Step {
            limit: if self.probe_left > 0 {
                self.probe_to
            } else {
                learned
            },
            learned,
            low_mark: self.low_mark(),
            ratio,
            probing: self.probe_left > 0,
            growing: false,
        }
    }

    /// The step at rest, before any interval: what to apply at start.
    pub fn current(&self) -> Step {
        self.step_result(None)
    }

    /// Takes one interval's observations at `now`; returns what to apply.
    /// Intervals with too few samples to decide on (a slow origin, a small
    /// limit) are gathered until there are enough, for up to [`GATHER`].
    pub fn step(&mut self, now: Instant, s: &Interval) -> Step {
        if let Some(step) = self.held_by_transfers(now, s) {
            return step;
        }
        if self.probe_left > 0 {
            let ratio = self.ratio(s);
            self.probe_step(now, s);
            self.pending = Interval::default();
            self.pending_since = now;
            return self.step_result(ratio);
        }
        self.pending.absorb(s);
        let samples: u64 = self.pending.all.iter().map(|a| a.count).sum();
        if samples < MIN_SAMPLES && now.saturating_duration_since(self.pending_since) < GATHER {
            return self.step_result(None);
        }
        let s = &std::mem::take(&mut self.pending);
        self.pending_since = now;
        let ratio = self.ratio(s);
        self.learn_passively(now, s);
        let low_mark = self.low_mark();
        let pressed = s.pressed > 0 || s.peak + 1 >= self.learned();
        match ratio {
            Some(r) if r > DECREASE_ABOVE && s.peak > low_mark => {
                // The concurrency that produced this ratio is what was at
                // the origin, which may be less than the limit.
                let from = self.limit.min(s.peak as f64);
                self.limit = (from * (TARGET / r).max(0.5)).max(self.bounds.min as f64);
                self.decreases_in_a_row += 1;
                if self.decreases_in_a_row >= 2 {
                    // Cutting did not bring the time down: the baseline may
                    // be stale (the origin itself got slower). Measure it.
                    self.start_probe();
                }
            }
            Some(r) if r < INCREASE_BELOW && pressed => {
                self.limit = (self.limit + (self.limit * 0.1).max(1.0)).min(self.bounds.max as f64);
                self.decreases_in_a_row = 0;
            }
            _ => self.decreases_in_a_row = 0,
        }
        // Pressed with no baseline at all (a wave met a cold start), or
        // with an old one for a class that has traffic: measure it.
        let unknown = self.baseline.iter().all(Option::is_none);
        let old = (0..3).any(|c| {
            s.all[c].count > 0 && now.saturating_duration_since(self.measured[c]) >= PROBE_EVERY
        });
        if pressed && (unknown || old) {
            self.start_probe();
        }
        self.step_result(ratio)
    }

    /// Halves the limit for a while (to the minimum when no baseline is
    /// known at all: a half of an unlearned limit may still queue).
    fn start_probe(&mut self) {
        let unknown = self.baseline.iter().all(Option::is_none);
        self.probe_to = if unknown {
            self.bounds.min
        } else {
            ((self.limit / 2.0).floor() as usize).max(self.bounds.min)
        };
        self.probe_left = PROBE_INTERVALS;
        self.probe_extra = 0;
        self.probe_acc = [Acc::default(); 3];
        self.decreases_in_a_row = 0;
    }

    /// Outside probes: an interval with enough baseline samples in a class
    /// moves its baseline part of the way.
    fn learn_passively(&mut self, now: Instant, s: &Interval) {
        for (class, low) in s.low.iter().enumerate() {
            let Some(mean) = low.mean_us().filter(|_| low.count >= MIN_LOW_SAMPLES) else {
                continue;
            };
            let b = &mut self.baseline[class];
            *b = Some(b.map_or(mean, |old| old + BASELINE_EMA * (mean - old)));
            self.measured[class] = now;
        }
    }

    /// During a probe: gather its baseline samples; at its end, each class
    /// with enough of them gets the probe's mean as its baseline (it met
    /// nothing queued: authoritative). A class with traffic but too few
    /// samples extends the probe, a few intervals at most.
    fn probe_step(&mut self, now: Instant, s: &Interval) {
        for (acc, low) in self.probe_acc.iter_mut().zip(&s.low) {
            acc.add(low);
        }
        self.probe_left -= 1;
        if self.probe_left > 0 {
            return;
        }
        let short =
            (0..3).any(|c| s.all[c].count > 0 && self.probe_acc[c].count < MIN_PROBE_SAMPLES);
        if short && self.probe_extra < PROBE_EXTRA {
            self.probe_extra += 1;
            self.probe_left = 1;
            return;
        }
        for class in 0..3 {
            let acc = self.probe_acc[class];
            if let Some(mean) = acc.mean_us().filter(|_| acc.count >= MIN_PROBE_SAMPLES) {
                self.baseline[class] = Some(mean);
                self.measured[class] = now;
            }
        }
    }

    /// Σ ttfb / Σ baseline over the classes with a baseline.
    fn ratio(&self, s: &Interval) -> Option<f64> {
        self.ratio_of(s, MIN_SAMPLES)
    }

    /// The same, from `min` samples on.
    fn ratio_of(&self, s: &Interval, min: u64) -> Option<f64> {
        let (mut took, mut expected, mut n) = (0.0, 0.0, 0);
        for (class, acc) in s.all.iter().enumerate() {
            if let Some(b) = self.baseline[class].filter(|b| *b > 0.0) {
                took += acc.sum_us as f64;
                expected += b.max(BASELINE_FLOOR_US) * acc.count as f64;
                n += acc.count;
            }
        }
        (n >= min.max(1) && expected > 0.0).then(|| took / expected)
    }
}

mod transfers;

#[cfg(test)]
#[path = "capacity_tests.rs"]
mod tests;
