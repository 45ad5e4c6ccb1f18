//! Prometheus metrics through the `metrics` facade.
//!
//! The recorder is installed once per process (tests run several lifeboats
//! in one process and share it). Counters and histograms are recorded where
//! things happen; gauges that describe the present (in-flight, queue depth,
//! mode, generation) are set when `/metrics` is scraped, so the hot path
//! pays nothing for them.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::admission::Mode;
use crate::classify::RouteClass;
use crate::runtime::Shared;

/// Histogram buckets for origin TTFB and queue wait, seconds: 1 ms to 30 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (first call only); `None` if another recorder got
/// there first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(&BUCKETS).ok()?;
            builder
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

/// The Prometheus text, with the live gauges refreshed first.
pub fn render(shared: &Shared) -> String {
    let Some(handle) = install() else {
        return String::from("# metrics recorder unavailable\n");
    };
    let a = &shared.admission;
    for class in RouteClass::ALL {
        metrics::gauge!("lifeboat_inflight", "class" => class.as_str())
            .set(a.inflight.get(class) as f64);
    }
    metrics::gauge!("lifeboat_origin_inflight").set(a.origin.inflight() as f64);
    metrics::gauge!("lifeboat_queue_depth", "queue" => "origin").set(a.origin.queued() as f64);
    metrics::gauge!("lifeboat_queue_depth", "queue" => "primary").set(a.primary.queued() as f64);
    let current = a.view().mode;
    for mode in [Mode::Normal, Mode::Degraded, Mode::Recovering] {
        metrics::gauge!("lifeboat_mode", "mode" => mode.as_str()).set(if mode == current {
            1.0
        } else {
            0.0
        });
    }
    metrics::gauge!("lifeboat_config_generation").set(shared.generation() as f64);
    handle.run_upkeep();
    handle.render()
}
