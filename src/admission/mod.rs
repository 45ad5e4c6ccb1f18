//! Admission: whether a request goes on to the origin, and when.
//!
//! - [`signals`]: in-flight counts and a sliding window of origin TTFB,
//!   failures and queue waits, written with relaxed atomics on the hot path;
//! - [`mode`]: the pure mode machine (normal → degraded → recovering);
//! - [`decide()`]: the pure per-request decision;
//! - [`limiter`]: the cap on requests at the origin and lifeboat's own
//!   priority queue behind it;
//! - [`capacity`]: the pure controller that learns that cap from the
//!   origin's time to first byte, and [`learn`], its samples and step;
//!
//! The ticker that summarises the signals, drives the machine and publishes
//! the mode is `control::ticker`, above the shared state it reads.
//!
//! The hot path reads the published mode with one atomic load. Nothing here
//! awaits except waiting in the queue.

mod admit;
pub mod capacity;
pub mod clients;
mod decide;
pub mod latency;
pub mod learn;
pub mod limiter;
pub mod mode;
mod reason;
pub mod signals;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use admit::Answered;
pub use decide::{Decision, Wait, decide};
pub use learn::{Capacity, Learn, Samples, ServerLearn, ServerStep};
pub use limiter::{Limiter, Permit, Refused};
pub use mode::{Machine, Mode, Transition};
pub use reason::ShedReason;
pub use signals::{InFlight, InFlightGuard, Signals, Window};

use crate::config::{Config, ModeSetting};

/// What a request holds while the origin works on it: its in-flight count
/// and its slots. Released when the origin's body has ended (read ahead by
/// the spool, that is at the origin's pace, not the visitor's), or when the
/// response body ends or is dropped if it is not read ahead.
#[derive(Default)]
pub struct Held {
    /// Counted in the in-flight signal.
    pub inflight: Option<InFlightGuard>,
    /// The primary class's own slot.
    pub primary: Option<Permit>,
    /// A slot at the origin.
    pub origin: Option<Permit>,
    /// The request counted at the server it was sent to.
    pub server: Option<Count>,
    /// Counted as a transfer at that server (answered, its body still
    /// coming from the origin).
    pub streaming: Option<Count>,
}

/// One unit held in a shared counter (requests at a server): entered now,
/// left when dropped. Admission holds it without knowing whose it is.
pub struct Count(Arc<std::sync::atomic::AtomicUsize>);

impl Count {
    /// Enters `counter`; the count, and the counter's value with it.
    pub fn enter(counter: &Arc<std::sync::atomic::AtomicUsize>) -> (Count, usize) {
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        (Count(counter.clone()), now)
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Outcome counts since start, per class and per shed reason (relaxed
/// atomics, one add per request). The ticker turns them into rates.
#[derive(Default)]
pub struct Tally {
    /// Requests per class, all outcomes.
    pub requests: [AtomicU64; 3],
    /// Requests per class answered by the origin (any status).
    pub proxied: [AtomicU64; 3],
    /// Requests per class answered by the origin without a 5xx.
    pub served: [AtomicU64; 3],
    /// Apologies per class.
    pub refused: [AtomicU64; 3],
    /// Apologies per reason (`ShedReason as usize`).
    pub shed: [AtomicU64; 7],
    /// Dry run: apologies that would have been served, per reason.
    pub would_shed: [AtomicU64; 7],
    /// Downloads' time from admission to the origin's response headers
    /// (their wait in lifeboat's queue included).
    pub primary_ttfb: latency::Latency,
}

impl Tally {
    /// A copy of every counter.
    pub fn snapshot(&self) -> TallySnapshot {
        let load = |a: &[AtomicU64]| {
            a.iter()
                .map(|x| x.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        };
        TallySnapshot {
            requests: load(&self.requests),
            proxied: load(&self.proxied),
            served: load(&self.served),
            refused: load(&self.refused),
            shed: load(&self.shed),
            would_shed: load(&self.would_shed),
        }
    }
}

/// Counter values at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TallySnapshot {
    /// Per class.
    pub requests: Vec<u64>,
    /// Per class.
    pub proxied: Vec<u64>,
    /// Per class.
    pub served: Vec<u64>,
    /// Per class.
    pub refused: Vec<u64>,
    /// Per reason.
    pub shed: Vec<u64>,
    /// Per reason (dry run).
    pub would_shed: Vec<u64>,
}

impl TallySnapshot {
    /// `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &TallySnapshot) -> TallySnapshot {
        let sub = |a: &[u64], b: &[u64]| {
            a.iter()
                .enumerate()
                .map(|(i, x)| x - b.get(i).copied().unwrap_or(0))
                .collect()
        };
        TallySnapshot {
            requests: sub(&self.requests, &earlier.requests),
            proxied: sub(&self.proxied, &earlier.proxied),
            served: sub(&self.served, &earlier.served),
            refused: sub(&self.refused, &earlier.refused),
            shed: sub(&self.shed, &earlier.shed),
            would_shed: sub(&self.would_shed, &earlier.would_shed),
        }
    }
}

/// The published mode: what every request reads, with one load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Current mode.
    pub mode: Mode,
    /// Share of normal traffic admitted (the ramp).
    pub admit_fraction: f64,
    /// Degraded by force (config or override): primary and keep only, in
    /// the strict sense. In `auto`, degraded still fills the origin's room.
    pub strict: bool,
}

/// State that lives for the whole process, across config reloads.
pub struct Admission {
    /// Origin observations.
    pub window: Window,
    /// Requests inside lifeboat, per class.
    pub inflight: Arc<InFlight>,
    /// Slots at the origin, all classes.
    pub origin: Arc<Limiter>,
    /// The primary class's own slots (unlimited when not configured).
    pub primary: Arc<Limiter>,
    /// Outcome counts.
    pub tally: Tally,
    /// The learned (or pinned) origin limit.
    pub learn: Learn,
    /// Apologies per client address (retry storms).
    pub clients: clients::ClientBudget,
    view: AtomicU64,
    machine: Mutex<Machine>,
    since: Mutex<SystemTime>,
    changes: AtomicU64,
    /// Arrival and throughput rates, computed by the ticker every tick over
    /// the last 3 seconds.
    rates: Mutex<(Option<f64>, Option<f64>)>,
}

impl Admission {
    /// Fresh state for `config`; a forced mode applies from the first request.
    pub fn new(config: &Config) -> Self {
        let mode = match config.shedding.mode {
            ModeSetting::Degraded => Mode::Degraded,
            ModeSetting::Auto | ModeSetting::Normal => Mode::Normal,
        };
        let o = &config.origin;
        let origin = Limiter::new(o.max_inflight.initial(), o.queue_max);
        let learn = Learn::new(config, &origin);
        let a = Admission {
            window: Window::new(config.shedding.window_secs),
            inflight: Arc::new(InFlight::default()),
            origin,
            primary: Limiter::new(
                config.shedding.primary_max_inflight.unwrap_or(usize::MAX),
                o.queue_max,
            ),
            tally: Tally::default(),
            learn,
            clients: clients::ClientBudget::default(),
            view: AtomicU64::new(0),
            machine: Mutex::new(Machine::new(mode, tokio::time::Instant::now())),
            since: Mutex::new(SystemTime::now()),
            changes: AtomicU64::new(0),
            rates: Mutex::new((None, None)),
        };
        a.publish(View {
            mode,
            admit_fraction: if mode == Mode::Normal { 1.0 } else { 0.0 },
            strict: mode == Mode::Degraded,
        });
        a
    }

    /// The mode every request should see now.
    pub fn view(&self) -> View {
        let v = self.view.load(Ordering::Acquire);
        let mode = match (v >> 32) & 3 {
            1 => Mode::Degraded,
            2 => Mode::Recovering,
            _ => Mode::Normal,
        };
        View {
            mode,
            admit_fraction: f64::from(f32::from_bits(v as u32)),
            strict: v >> 34 & 1 == 1,
        }
    }

    fn publish(&self, v: View) {
        let mode = match v.mode {
            Mode::Normal => 0u64,
            Mode::Degraded => 1,
            Mode::Recovering => 2,
        };
        self.view.store(
            u64::from(v.strict) << 34 | mode << 32 | u64::from((v.admit_fraction as f32).to_bits()),
            Ordering::Release,
        );
    }

    /// Advances the mode machine at `now` (or forces `forced`, with why)
    /// and publishes the result for every request to read; a change is
    /// returned (and counted, and its time kept).
    pub fn advance(
        &self,
        now: tokio::time::Instant,
        forced: Option<(Mode, &str)>,
        signals: &Signals,
        cfg: &crate::config::Shedding,
    ) -> Option<Transition> {
        let (transition, view) = {
            let Ok(mut machine) = self.machine.lock() else {
                return None;
            };
            let t = match forced {
                Some((mode, why)) => machine.force(mode, now, why, *signals),
                None => machine.tick(now, signals, cfg),
            };
            (
                t,
                View {
                    mode: machine.mode(),
                    admit_fraction: machine.admit_fraction(now, cfg),
                    strict: forced.is_some(),
                },
            )
        };
        self.publish(view);
        if transition.is_some() {
            if let Ok(mut since) = self.since.lock() {
                *since = SystemTime::now();
            }
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
        transition
    }

    /// When the current mode began (wall clock, for people).
    pub fn since(&self) -> SystemTime {
        self.since
            .lock()
            .map(|s| *s)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Mode changes since start.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// The live signals, as the machine sees them.
    pub fn signals(&self, min_samples: u64) -> Signals {
        let (arrivals_per_s, served_per_s) = self.rates.lock().map(|r| *r).unwrap_or((None, None));
        Signals {
            inflight: self.inflight.total(),
            arrivals_per_s,
            served_per_s,
            ..self.window.summarise(min_samples)
        }
    }

    /// Records the arrival and throughput rates (the ticker, every tick).
    pub fn set_rates(&self, arrivals_per_s: f64, served_per_s: f64) {
        if let Ok(mut r) = self.rates.lock() {
            *r = (Some(arrivals_per_s), Some(served_per_s));
        }
    }

    /// Applies new limits from a reloaded config.
    pub fn reconfigure(&self, config: &Config) {
        let o = &config.origin;
        self.origin.set_limits(self.origin.limit(), o.queue_max);
        self.learn.reconfigure(config, &self.origin);
        self.primary.set_limits(
            config.shedding.primary_max_inflight.unwrap_or(usize::MAX),
            o.queue_max,
        );
    }

    /// This instance's share of the fleet's fixed origin limit.
    pub fn set_fleet_share(&self, share: Option<usize>) {
        self.learn.set_share(share);
    }

    /// The origin limit as shown to people.
    pub fn capacity(&self) -> Capacity {
        self.learn.capacity()
    }
}
