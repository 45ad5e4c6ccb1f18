//! The ticker: every `[shedding] tick`, summarise the signals, advance the
//! mode machine (or apply the operator's override, or the configured forced
//! mode), publish the result; on a change, log it with its cause, count it,
//! journal it and re-render the apology page. Every tick it also measures
//! the arrival and throughput rates recovery needs. Once a second it slides
//! the signal window, renders the status endpoint from the tallies, adds
//! the dashboard's point, and,
//! while not normal, journals counters every `[journal] counters_every`.
//! One task; the hot path never waits for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::admission::ShedReason;
use crate::admission::{Mode, TallySnapshot, Transition};
use crate::classify::RouteClass;
use crate::config::ModeSetting;
use crate::runtime::Shared;
use crate::story::Event;
use crate::story::status::Numbers;

/// The status page's numbers are averaged over the last minute.
const STATUS_SECONDS: usize = 60;
/// Seconds over which arrival and throughput rates are averaged.
const RATE_SECONDS: u64 = 3;
/// Rates over less than this are too noisy to act on.
const MIN_RATE_SPAN: Duration = Duration::from_millis(400);

/// `x` with `digits` decimals: journal numbers people read
/// (`4.777`, not `4.7774019469999995`).
fn round_to(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Runs until the process ends.
pub async fn run(shared: Arc<Shared>) {
    let mut last_second = Instant::now();
    let mut report = Reporter::new(&shared);
    loop {
        let tick = shared.runtime().config.shedding.tick;
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        while now - last_second >= Duration::from_secs(1) {
            shared.admission.window.rotate();
            last_second += Duration::from_secs(1);
            report.second(&shared, now);
        }
        report.peak_inflight = report.peak_inflight.max(shared.admission.inflight.total());
        report.rates(&shared, now);
        if let Some(t) = step(&shared, now) {
            report.transition(&shared, &t, now);
        }
    }
}

/// Learns the origin's limit every [`crate::admission::learn::INTERVAL`], until the
/// process ends: a task of its own, so the mode machine's `tick` does not
/// slow the limit down.
pub async fn learn(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(crate::admission::learn::INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = every.tick().await;
        let rt = shared.runtime();
        let a = &shared.admission;
        a.learn
            .step(now, &rt.config, &a.origin, &rt.upstream.pool.steps());
    }
}

/// One evaluation at `now`. Public for tests that drive time themselves.
pub fn step(shared: &Shared, now: Instant) -> Option<Transition> {
    shared.expire_override(now);
    let rt = shared.runtime();
    let cfg = &rt.config.shedding;
    let admission = &shared.admission;
    let signals = admission.signals(cfg.min_samples);
    let forced = match (shared.override_mode(), cfg.mode) {
        (Some(o), _) => Some((o.mode, "operator override")),
        (None, ModeSetting::Degraded) => Some((Mode::Degraded, "forced by config")),
        (None, ModeSetting::Normal) => Some((Mode::Normal, "forced by config")),
        (None, ModeSetting::Auto) => None,
    };
    let transition = admission.advance(now, forced, &signals, cfg);
    if let Some(t) = &transition {
        metrics::counter!("lifeboat_mode_changes_total", "from" => t.from.as_str(), "to" => t.to.as_str()).increment(1);
        shared.rerender_pages();
        tracing::warn!(
            from = t.from.as_str(),
            to = t.to.as_str(),
            cause = %t.cause,
            inflight = t.signals.inflight,
            ttfb_p95_ms = t.signals.ttfb_p95.map(|d| d.as_millis() as u64),
            failure_rate = t.signals.failure_rate,
            queue_wait_p95_ms = t.signals.queue_wait_p95.map(|d| d.as_millis() as u64),
            samples = t.signals.samples,
            "mode changed"
        );
        shared.events.emit(Event::ModeChanged {
            from: t.from.as_str().into(),
            to: t.to.as_str().into(),
            cause: t.cause.clone(),
            inflight: t.signals.inflight,
            ttfb_p95_ms: t.signals.ttfb_p95.map(|d| d.as_millis() as u64),
            failure_rate: t.signals.failure_rate.map(|r| round_to(r, 4)),
            queue_wait_p95_ms: t.signals.queue_wait_p95.map(|d| d.as_millis() as u64),
            origin_limit: Some(admission.capacity().limit),
        });
    }
    transition
}

/// Bookkeeping beside the machine: rates (every tick), status numbers and
/// journaled counters (every second).
struct Reporter {
    /// One snapshot a second for the last minute: the status page's numbers.
    minute: std::collections::VecDeque<TallySnapshot>,
    /// Snapshots of the last few seconds, one per tick, for arrival and
    /// throughput rates.
    history: std::collections::VecDeque<(Instant, TallySnapshot)>,
    at_counters: TallySnapshot,
    counters_since: Instant,
    peak_inflight: usize,
    /// The dashboard's point a second.
    live: super::sampler::Sampler,
}

impl Reporter {
    fn new(shared: &Shared) -> Self {
        let t = shared.admission.tally.snapshot();
        Reporter {
            minute: std::collections::VecDeque::from([t.clone()]),
            history: std::collections::VecDeque::new(),
            at_counters: t,
            counters_since: Instant::now(),
            peak_inflight: 0,
            live: super::sampler::Sampler::new(shared),
        }
    }

    fn second(&mut self, shared: &Shared, now: Instant) {
        let t = shared.admission.tally.snapshot();
        // The status page averages over the last minute: a burst a few
        // seconds ago is not a zero, and one second is not a trend.
        self.minute.push_back(t.clone());
        while self.minute.len() > STATUS_SECONDS + 1 {
            self.minute.pop_front();
        }
        let span = (self.minute.len() - 1).max(1) as u64;
        let d = self
            .minute
            .front()
            .map_or_else(TallySnapshot::default, |first| t.since(first));
        let p = RouteClass::Primary.index();
        let primary = d.requests.get(p).copied().unwrap_or(0);
        let servers = shared.runtime().upstream.pool.report();
        shared.render_status(Numbers {
            origin_servers: servers.len(),
            origin_servers_in_rotation: servers.iter().filter(|s| s.state == "in-rotation").count(),
            origin_server_states: servers.iter().map(|s| s.state).collect(),
            requests_per_s: d.requests.iter().sum::<u64>() as f64 / span as f64,
            shed_per_s: d.shed.iter().sum::<u64>() as f64 / span as f64,
            window_s: span,
            inflight: shared.admission.inflight.total(),
            primary_success_rate: (primary > 0)
                .then(|| d.served.get(p).copied().unwrap_or(0) as f64 / primary as f64),
            origin_limit: shared.admission.capacity().limit,
            origin_limit_learned: shared.admission.capacity().learned,
            fleet: shared.fleet.as_ref().and_then(|link| {
                let members = link.members();
                (!members.is_empty()).then(|| crate::fleet::count(&members))
            }),
        });
        if let Some(point) = self.live.sample(shared, now) {
            shared.live.push(point);
        }
        let every = shared.runtime().config.story.counters_every;
        if shared.admission.view().mode != Mode::Normal && now - self.counters_since >= every {
            self.counters(shared, now);
        }
    }

    /// Arrival and throughput rates over the last (up to) 3 seconds, every
    /// tick: steadier than one second, quick enough to see a wave pass, and
    /// available a fraction of a second after traffic starts. A wave that
    /// clears the boards within its first second still leaves a capacity
    /// measurement behind, without which recovery could not tell whether the
    /// demand has passed.
    fn rates(&mut self, shared: &Shared, now: Instant) {
        self.history
            .push_back((now, shared.admission.tally.snapshot()));
        while self.history.len() > 2
            && self
                .history
                .get(1)
                .is_some_and(|(t, _)| now - *t >= Duration::from_secs(RATE_SECONDS))
        {
            self.history.pop_front();
        }
        let (Some((since, old)), Some((_, new))) = (self.history.front(), self.history.back())
        else {
            return;
        };
        let span = (now - *since).as_secs_f64();
        if span < MIN_RATE_SPAN.as_secs_f64() {
            return;
        }
        let d = new.since(old);
        let per_s = |v: &[u64]| v.iter().sum::<u64>() as f64 / span;
        shared
            .admission
            .set_rates(per_s(&d.requests), per_s(&d.served));
    }

    fn transition(&mut self, shared: &Shared, t: &Transition, now: Instant) {
        if t.from == Mode::Normal {
            // An episode starts: count from here.
            self.at_counters = shared.admission.tally.snapshot();
            self.counters_since = now;
            self.peak_inflight = shared.admission.inflight.total();
        } else if t.to == Mode::Normal {
            // The episode ends: the last counters close it.
            self.counters(shared, now);
        }
    }

    fn counters(&mut self, shared: &Shared, now: Instant) {
        let t = shared.admission.tally.snapshot();
        let d = t.since(&self.at_counters);
        let served = |c: RouteClass| d.served.get(c.index()).copied().unwrap_or(0);
        let by_reason = |counts: &[u64]| -> BTreeMap<String, u64> {
            ShedReason::ALL
                .iter()
                .filter_map(|r| {
                    counts
                        .get(*r as usize)
                        .filter(|n| **n > 0)
                        .map(|n| (r.as_str().to_string(), *n))
                })
                .collect()
        };
        let min_samples = shared.runtime().config.shedding.min_samples;
        shared.events.emit(Event::Counters {
            mode: shared.admission.view().mode.as_str().into(),
            seconds: round_to((now - self.counters_since).as_secs_f64(), 3),
            primary_served: served(RouteClass::Primary),
            keep_served: served(RouteClass::Keep),
            normal_served: served(RouteClass::Normal),
            shed: by_reason(&d.shed),
            would_shed: by_reason(&d.would_shed),
            origin_limit: Some(shared.admission.capacity().limit),
            peak_inflight: self.peak_inflight,
            ttfb_p95_ms: shared
                .admission
                .signals(min_samples)
                .ttfb_p95
                .map(|d| d.as_millis() as u64),
        });
        self.at_counters = t;
        self.counters_since = now;
        self.peak_inflight = shared.admission.inflight.total();
    }
}
