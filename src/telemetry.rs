//! Prometheus metrics through the `metrics` facade, and lifeboat's own
//! histograms.
//!
//! The recorder is installed once per process (tests run several lifeboats
//! in one process and share it). Counters are recorded where things happen;
//! gauges that describe the present (in-flight, queue depth, mode,
//! generation) are set when `/metrics` is scraped, so the hot path pays
//! nothing for them.
//!
//! Histograms do not go through the facade. The Prometheus exporter keeps
//! every histogram sample (value and timestamp) until the next scrape or
//! upkeep, so a lifeboat nobody scrapes grew by about 40 bytes a request,
//! gigabytes an hour under load. A [`Histogram`] here is a fixed row of
//! atomic bucket counters: recording is two additions, and its size never
//! changes.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for origin TTFB and queue wait, seconds: 1 ms to 30 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Time from sending a request to the origin to its response headers.
pub static ORIGIN_TTFB: Histogram = Histogram::new(
    "lifeboat_origin_ttfb_seconds",
    "Time from sending a request to the origin to its response headers.",
);

/// Time a request waited for a slot at the origin (zero when one was free).
pub static QUEUE_WAIT: Histogram = Histogram::new(
    "lifeboat_queue_wait_seconds",
    "Time a request waited in lifeboat's queue for a slot at the origin.",
);

/// A Prometheus histogram over `BUCKETS`, kept in atomics.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    /// `counts[i]` holds samples in `(BUCKETS[i-1], BUCKETS[i]]`; the last
    /// one holds those above every bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram named `name`.
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Histogram {
            name,
            help,
            counts: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one sample.
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = BUCKETS.partition_point(|&bound| bound < secs);
        self.counts[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Appends the histogram in the Prometheus text format: cumulative
    /// buckets, then sum and count.
    pub fn render_into(&self, out: &mut String) {
        let name = self.name;
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut seen = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count.load(Relaxed);
            match BUCKETS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {seen}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {seen}");
                }
            }
        }
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {seen}");
    }
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (first call only); `None` if another recorder got
/// there first. (`admin::metrics::install` also makes the alerting
/// counters exist at zero.)
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{text}"))
            .trim()
    }

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new("t_seconds", "test");
        h.record(Duration::from_millis(1)); // on the first bound: counts in it
        h.record(Duration::from_micros(1_500));
        h.record(Duration::from_millis(2_500));
        h.record(Duration::from_secs(60)); // above every bound
        let mut text = String::new();
        h.render_into(&mut text);
        assert_eq!(line(&text, "t_seconds_bucket{le=\"0.001\"}"), "1");
        assert_eq!(line(&text, "t_seconds_bucket{le=\"0.0025\"}"), "2");
        assert_eq!(line(&text, "t_seconds_bucket{le=\"1\"}"), "2");
        assert_eq!(line(&text, "t_seconds_bucket{le=\"2.5\"}"), "3");
        assert_eq!(line(&text, "t_seconds_bucket{le=\"30\"}"), "3");
        assert_eq!(line(&text, "t_seconds_bucket{le=\"+Inf\"}"), "4");
        assert_eq!(line(&text, "t_seconds_count"), "4");
        let sum: f64 = line(&text, "t_seconds_sum").parse().expect("a number");
        assert!((sum - 62.5025).abs() < 1e-9, "sum {sum}");
        assert!(text.starts_with("# HELP t_seconds test\n# TYPE t_seconds histogram\n"));
    }

    #[test]
    fn an_empty_histogram_renders_zeros() {
        let h = Histogram::new("e_seconds", "empty");
        let mut text = String::new();
        h.render_into(&mut text);
        assert_eq!(line(&text, "e_seconds_bucket{le=\"+Inf\"}"), "0");
        assert_eq!(line(&text, "e_seconds_sum"), "0");
        assert_eq!(line(&text, "e_seconds_count"), "0");
        assert_eq!(text.lines().count(), 2 + BUCKETS.len() + 1 + 2);
    }
}
