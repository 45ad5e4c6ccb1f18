//! The release-day stampede, as a reusable scenario: a simulated origin of
//! fixed capacity C, and a wave of open-loop load that ramps from 0 to a
//! multiple of C, holds, and ramps back down, 90 % page views and 10 %
//! downloads. Used by `cargo bench --bench stampede` and `lifeboat demo
//! --stampede`.

use std::time::Duration;

use super::Target;
use crate::origin_sim::SimConfig;

/// The shape of the wave.
#[derive(Debug, Clone)]
pub struct Wave {
    /// Peak arrival rate as a multiple of the origin's capacity.
    pub peak: f64,
    /// Time to climb from 0 to the peak (and to come back down).
    pub ramp: Duration,
    /// Time at the peak.
    pub hold: Duration,
}

impl Wave {
    /// The default release-day wave: 10x capacity, 7 s up, 6 s at the top, 7 s down.
    pub fn release_day() -> Self {
        Wave {
            peak: 10.0,
            ramp: Duration::from_secs(7),
            hold: Duration::from_secs(6),
        }
    }

    /// Total duration.
    pub fn duration(&self) -> Duration {
        self.ramp * 2 + self.hold
    }

    /// Arrival rate at `t` seconds for an origin of `capacity` req/s.
    pub fn rate(&self, capacity: f64) -> impl Fn(f64) -> f64 + Send + Sync + 'static {
        let (peak, ramp, hold) = (
            self.peak * capacity,
            self.ramp.as_secs_f64(),
            self.hold.as_secs_f64(),
        );
        move |t| {
            let level = if t < ramp {
                t / ramp
            } else if t < ramp + hold {
                1.0
            } else {
                (1.0 - (t - ramp - hold) / ramp).max(0.0)
            };
            // Never quite zero: a trickle of visitors at the edges.
            (peak * level).max(capacity * 0.1)
        }
    }

    /// When the offered load first exceeds `capacity`, seconds from the start.
    pub fn crosses_capacity_at(&self) -> f64 {
        self.ramp.as_secs_f64() / self.peak.max(1.0)
    }

    /// When it falls back below `capacity`.
    pub fn back_below_at(&self) -> f64 {
        self.duration().as_secs_f64() - self.crosses_capacity_at()
    }
}

/// The simulated origin of the scenario: 4 workers, 20 ms per page (a
/// capacity C of 200 pages/s), 2 ms per download before its bytes stream.
pub fn origin() -> SimConfig {
    SimConfig {
        workers: 4,
        service_time: Duration::from_millis(20),
        download_service_time: Duration::from_millis(2),
        download_size: 256 * 1024,
    }
}

/// 90 % pages, 10 % downloads.
pub fn mix() -> Vec<Target> {
    let page = |path: &str, weight| Target {
        path: path.into(),
        weight,
        primary: false,
    };
    vec![
        page("/", 30),
        page("/news", 30),
        page("/docs", 20),
        page("/about", 10),
        Target {
            path: "/download/example-os-3.0.iso".into(),
            weight: 10,
            primary: true,
        },
    ]
}

/// How lifeboat is set up in front of the scenario's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The documented defaults: no capacity told, the limit is learned.
    Defaults,
    /// The operator pinned `max_inflight` to this (the origin's 4 workers
    /// is the right guess), one slot kept for downloads.
    HandSet(usize),
    /// Thresholds tuned for a wave of seconds rather than minutes (enter
    /// after 1 s, exit after 3 s, a 4 s ramp), the limit still learned: the
    /// tests use it so a run fits in a few seconds.
    Quick,
}

/// lifeboat in front of the scenario's origin: the site's routes and
/// words, and `setup` for the rest. `admin` is the admin listener's
/// address, or `off`.
pub fn lifeboat_config(
    origin_url: &str,
    listen: &str,
    admin: &str,
    journal: Option<&std::path::Path>,
    setup: Setup,
) -> String {
    let journal = journal.map_or(String::new(), |p| {
        format!(
            "[journal]\npath = {:?}\ncounters_every = \"2s\"\n",
            p.display().to_string()
        )
    });
    let tuning = match setup {
        Setup::Defaults => String::new(),
        Setup::HandSet(n) => format!("max_inflight = {n}\nprimary_reserved = 1\n"),
        Setup::Quick => String::new(),
    };
    let shedding = match setup {
        Setup::Quick => QUICK,
        _ => "",
    };
    format!(
        r#"[listen]
http = "{listen}"

[origin]
url = "{origin_url}"
ttfb_timeout = "10s"
{tuning}
{shedding}
[[route]]
name = "downloads"
match = "/download/*"
class = "primary"

[[route]]
name = "stylesheet"
match = "/static/*"
class = "keep"

[apology]
signed = "Ada, for the Example OS release team"
message = "Release day: far more of you came than we planned for. Downloads have priority."

[admin]
listen = "{admin}"

[log]
level = "error"
access = false

{journal}"#
    )
}

/// `Setup::Quick`'s thresholds.
const QUICK: &str = r#"[shedding]
mode = "auto"
tick = "100ms"
window = "4s"
min_dwell = "2s"

[shedding.enter]
ttfb_p95 = "400ms"
queue_wait_p95 = "150ms"
after = "1s"

[shedding.exit]
after = "3s"
ramp = "4s"
ramp_start = 0.2
"#;
