//! The mode state machine: `normal → degraded → recovering → normal`.
//!
//! Pure: [`Machine::tick`] takes the time and the signals and returns the
//! transition, if any. The ticker calls it; tests call it with made-up
//! instants, so hours of hysteresis are checked in microseconds.
//!
//! - **enter**: any enter condition (in-flight, TTFB p95, failure rate,
//!   queue wait p95) holding continuously for `enter.after` → `Degraded`;
//! - **exit**: every signal below `exit.fraction` × its enter level,
//!   continuously for `exit.after` → `Recovering`;
//! - **ramp**: in `Recovering` the admitted share of normal traffic grows
//!   linearly from `exit.ramp_start` to 1 over `exit.ramp`; any enter
//!   condition sends the machine back to `Degraded`; the end of the ramp is
//!   `Normal`;
//! - no mode is left before `min_dwell` has passed.

use std::time::Duration;

use tokio::time::Instant;

use super::signals::Signals;
use crate::config::Shedding;

/// How lifeboat is treating traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Everything is proxied.
    Normal,
    /// Only primary and keep routes are proxied; the rest get the apology.
    Degraded,
    /// Normal traffic is being re-admitted gradually.
    Recovering,
}

impl Mode {
    /// Lower-case name, as in the config, logs and the status endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Degraded => "degraded",
            Mode::Recovering => "recovering",
        }
    }
}

/// A change of mode, with the signals that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Mode before.
    pub from: Mode,
    /// Mode after.
    pub to: Mode,
    /// Why, in words (the condition that held).
    pub cause: String,
    /// The signals at the moment of the change.
    pub signals: Signals,
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    mode: Mode,
    since: Instant,
    /// When the mode last changed; start-up is not a change, so a stampede
    /// right after a deploy is not held back by the minimum dwell.
    changed: Option<Instant>,
    /// The origin's throughput when the boards were cleared: saturated, so
    /// its capacity. Recovery waits until demand fits in it again.
    capacity: Option<f64>,
    hot_since: Option<Instant>,
    cool_since: Option<Instant>,
}

impl Machine {
    /// Starts in `mode` at `now`.
    pub fn new(mode: Mode, now: Instant) -> Self {
        Machine {
            mode,
            since: now,
            changed: None,
            capacity: None,
            hot_since: None,
            cool_since: None,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// When the current mode began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Share of normal-class traffic admitted now: 1 in normal, 0 in
    /// degraded, the ramp in between.
    pub fn admit_fraction(&self, now: Instant, cfg: &Shedding) -> f64 {
        match self.mode {
            Mode::Normal => 1.0,
            Mode::Degraded => 0.0,
            Mode::Recovering => {
                let ramp = cfg.exit.ramp.as_secs_f64();
                let done = if ramp <= 0.0 {
                    1.0
                } else {
                    (now - self.since).as_secs_f64() / ramp
                };
                (cfg.exit.ramp_start + (1.0 - cfg.exit.ramp_start) * done).clamp(0.0, 1.0)
            }
        }
    }

    /// Puts the machine in `mode` now (an operator's override).
    pub fn force(
        &mut self,
        mode: Mode,
        now: Instant,
        cause: &str,
        signals: Signals,
    ) -> Option<Transition> {
        self.hot_since = None;
        self.cool_since = None;
        self.switch(mode, now, cause.to_string(), signals)
    }

    fn switch(
        &mut self,
        to: Mode,
        now: Instant,
        cause: String,
        signals: Signals,
    ) -> Option<Transition> {
        let from = self.mode;
        if from == to {
            return None;
        }
        // Throughput is a measure of capacity only when more was arriving
        // than the origin got through: then the origin set the pace. An
        // origin that turned slow under a modest load served what it was
        // asked, which says nothing of what it can do once it is fast again.
        let capacity_bound = signals.served_per_s.filter(|served| {
            signals
                .arrivals_per_s
                .is_some_and(|a| a > served * SATURATED)
        });
        self.capacity = match to {
            Mode::Normal => None,
            // Keep the highest throughput seen while saturated: a return to
            // degraded during the ramp must not lower the estimate.
            _ => match (self.capacity, capacity_bound) {
                (Some(c), Some(s)) => Some(c.max(s)),
                (c, s) => c.or(s),
            }
            .filter(|c| *c > 0.0),
        };
        self.mode = to;
        self.since = now;
        self.changed = Some(now);
        self.hot_since = None;
        self.cool_since = None;
        Some(Transition {
            from,
            to,
            cause,
            signals,
        })
    }

    /// Advances the machine; returns the transition if the mode changed.
    pub fn tick(&mut self, now: Instant, s: &Signals, cfg: &Shedding) -> Option<Transition> {
        let hot = hot(s, cfg);
        let cool = cool(s, cfg) && demand_fits(s, self.capacity, cfg);
        self.hot_since = if hot.is_some() {
            Some(self.hot_since.unwrap_or(now))
        } else {
            None
        };
        self.cool_since = if cool {
            Some(self.cool_since.unwrap_or(now))
        } else {
            None
        };
        if self.changed.is_some_and(|t| now - t < cfg.min_dwell) {
            return None;
        }
        let held = |since: Option<Instant>, d: Duration| since.is_some_and(|t| now - t >= d);
        match (self.mode, hot) {
            (Mode::Normal, Some(why)) if held(self.hot_since, cfg.enter.after) => self.switch(
                Mode::Degraded,
                now,
                format!("{why} for {:?}", cfg.enter.after),
                *s,
            ),
            (Mode::Recovering, Some(why)) => {
                self.switch(Mode::Degraded, now, format!("{why} during the ramp"), *s)
            }
            (Mode::Degraded, _) if held(self.cool_since, cfg.exit.after) => {
                let cause = format!(
                    "all signals below {:.0}% of their enter levels for {:?}",
                    cfg.exit.fraction * 100.0,
                    cfg.exit.after
                );
                self.switch(Mode::Recovering, now, cause, *s)
            }
            (Mode::Recovering, None) if now - self.since >= cfg.exit.ramp => self.switch(
                Mode::Normal,
                now,
                format!("ramp of {:?} completed", cfg.exit.ramp),
                *s,
            ),
            _ => None,
        }
    }
}

/// The first enter condition that holds, described.
fn hot(s: &Signals, cfg: &Shedding) -> Option<String> {
    let e = &cfg.enter;
    if let Some(limit) = e.inflight.filter(|l| s.inflight >= *l) {
        return Some(format!("in-flight {} >= {limit}", s.inflight));
    }
    if let (Some(limit), Some(v)) = (e.ttfb_p95, s.ttfb_p95)
        && v >= limit
    {
        return Some(format!("origin TTFB p95 {v:?} >= {limit:?}"));
    }
    if let (Some(limit), Some(v)) = (e.failure_rate, s.failure_rate)
        && v >= limit
    {
        return Some(format!(
            "origin failure rate {:.0}% >= {:.0}%",
            v * 100.0,
            limit * 100.0
        ));
    }
    if let (Some(limit), Some(v)) = (e.queue_wait_p95, s.queue_wait_p95)
        && v >= limit
    {
        return Some(format!("queue wait p95 {v:?} >= {limit:?}"));
    }
    None
}

/// Arrivals above throughput by this factor mean the origin, not the
/// demand, is setting the pace.
const SATURATED: f64 = 1.2;

/// Whether the demand (arrivals, shed ones included) fits within the exit
/// fraction of the capacity measured when the boards were cleared. Shedding
/// calms the origin's own signals at once; this is what says the wave has
/// actually passed. Without a measurement, it does not hold anything back.
fn demand_fits(s: &Signals, capacity: Option<f64>, cfg: &Shedding) -> bool {
    capacity
        .zip(s.arrivals_per_s)
        .is_none_or(|(cap, arrivals)| arrivals < cap * cfg.exit.fraction)
}

/// Whether every signal is below its exit level (`fraction` × enter level).
/// A signal without enough samples counts as calm.
fn cool(s: &Signals, cfg: &Shedding) -> bool {
    let (e, f) = (&cfg.enter, cfg.exit.fraction);
    let below = |v: f64, limit: f64| v < limit * f;
    e.inflight
        .is_none_or(|l| below(s.inflight as f64, l as f64))
        && e.ttfb_p95
            .zip(s.ttfb_p95)
            .is_none_or(|(l, v)| below(v.as_secs_f64(), l.as_secs_f64()))
        && e.failure_rate
            .zip(s.failure_rate)
            .is_none_or(|(l, v)| below(v, l))
        && e.queue_wait_p95
            .zip(s.queue_wait_p95)
            .is_none_or(|(l, v)| below(v.as_secs_f64(), l.as_secs_f64()))
}

#[cfg(test)]
#[path = "mode_tests.rs"]
mod tests;
