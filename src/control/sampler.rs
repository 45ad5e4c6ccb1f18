//! The dashboard's point a second: the tallies' differences, the signals
//! and the fleet's heartbeats, as `dashboard::Point`.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::admission::{ShedReason, TallySnapshot, latency};
use crate::classify::RouteClass;
use crate::dashboard::{FleetPoint, Point, unix_ms};
use crate::runtime::Shared;

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0)
}

/// Makes one [`Point`] a second from the counters' differences.
pub struct Sampler {
    at: Instant,
    tally: TallySnapshot,
    primary_ttfb: Vec<u64>,
}

impl Sampler {
    /// Starts counting from now.
    pub fn new(shared: &Shared) -> Self {
        let tally = &shared.admission.tally;
        Sampler {
            at: Instant::now(),
            tally: tally.snapshot(),
            primary_ttfb: tally.primary_ttfb.snapshot(),
        }
    }

    /// The second (or so) since the last call; `None` when called again
    /// too soon to measure a rate (the ticker catching up after a stall).
    pub fn sample(&mut self, shared: &Shared, now: Instant) -> Option<Point> {
        let span = (now - self.at).as_secs_f64();
        if span < 0.5 {
            return None;
        }
        let a = &shared.admission;
        let tally = a.tally.snapshot();
        let primary_ttfb = a.tally.primary_ttfb.snapshot();
        let d = tally.since(&self.tally);
        let per_s = |n: u64| (n as f64 / span * 10.0).round() / 10.0;
        let sum = |v: &[u64]| v.iter().sum::<u64>();
        let p = RouteClass::Primary.index();
        let downloads = d.requests.get(p).copied().unwrap_or(0);
        // Of the downloads answered in this second (not those that arrived
        // in it: a download queued across a second boundary is not a
        // failure), the share the origin served.
        let at = |v: &[u64]| v.get(p).copied().unwrap_or(0);
        let answered = at(&d.proxied) + at(&d.refused);
        let downloads_ok = (answered > 0).then(|| {
            let ok = at(&d.served) as f64 / answered as f64;
            (ok.min(1.0) * 10_000.0).round() / 10_000.0
        });
        let shed = ShedReason::ALL
            .iter()
            .filter_map(|r| {
                let n = d.shed.get(*r as usize).copied().unwrap_or(0);
                (n > 0).then(|| (r.as_str(), per_s(n)))
            })
            .collect();
        let signals = a.signals(shared.runtime().config.shedding.min_samples);
        let spool = shared.spool.usage();
        let point = Point {
            t: unix_ms(SystemTime::now()),
            mode: a.view().mode.as_str(),
            overridden: shared.override_mode().is_some(),
            offered: per_s(sum(&d.requests)),
            proxied: per_s(sum(&d.proxied)),
            shed,
            downloads: per_s(downloads),
            downloads_ok,
            downloads_p99_ms: ms(latency::quantile(&primary_ttfb, &self.primary_ttfb, 0.99)),
            ttfb_p95_ms: ms(signals.ttfb_p95),
            failure_rate: signals
                .failure_rate
                .map(|r| (r * 10_000.0).round() / 10_000.0),
            inflight: a.origin.inflight(),
            limit: a.capacity().limit,
            queued: a.origin.queued(),
            queue_wait_p95_ms: ms(signals.queue_wait_p95),
            transfers: spool.transfers,
            transfers_reading: spool.reading,
            spooled_mib: (spool.bytes as f64 / f64::from(1 << 20) * 10.0).round() / 10.0,
            fleet: shared.fleet.as_ref().map_or_else(Vec::new, |link| {
                link.members()
                    .into_iter()
                    .map(|m| FleetPoint {
                        id: m.id,
                        mode: m.mode,
                        offered: m.offered_per_s,
                        shed: m.shed_per_s,
                        limit: m.limit,
                    })
                    .collect()
            }),
        };
        self.at = now;
        self.tally = tally;
        self.primary_ttfb = primary_ttfb;
        Some(point)
    }
}
