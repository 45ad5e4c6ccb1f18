//! `GET /metrics`: the Prometheus text, with the live gauges read from the
//! shared state at scrape time (so the hot path pays nothing for them),
//! and the counters the shipped alerts use made to exist from the start.

use std::sync::Once;

use crate::admission::Mode;
use crate::classify::RouteClass;
use crate::runtime::Shared;
use crate::telemetry::{ORIGIN_TTFB, QUEUE_WAIT};

/// Installs the recorder (first call only) and registers every alerting
/// counter at zero.
pub fn install() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static ZEROES: Once = Once::new();
    let handle = crate::telemetry::install();
    if handle.is_some() {
        ZEROES.call_once(register_zeroes);
    }
    handle
}

/// Every counter the shipped alert rules and dashboard use exists from the
/// start, at zero: a series that appears only with its first event makes
/// `rate()` and `increase()` blind to that first event, and an alert on it
/// can never fire the first time.
fn register_zeroes() {
    use crate::admission::ShedReason;
    use crate::classify::RouteClass;
    for class in RouteClass::ALL {
        for outcome in ["proxied", "shed", "client-error"] {
            metrics::counter!("lifeboat_requests_total", "class" => class.as_str(), "outcome" => outcome)
                .increment(0);
        }
    }
    for reason in ShedReason::ALL {
        metrics::counter!("lifeboat_shed_total", "reason" => reason.as_str()).increment(0);
        metrics::counter!("lifeboat_would_shed_total", "reason" => reason.as_str()).increment(0);
    }
    for kind in ["5xx", "origin-down", "origin-timeout"] {
        metrics::counter!("lifeboat_origin_failures_total", "kind" => kind).increment(0);
    }
    for result in ["accepted", "rejected"] {
        metrics::counter!("lifeboat_config_reloads_total", "result" => result).increment(0);
    }
    for (from, to) in [
        ("normal", "degraded"),
        ("degraded", "recovering"),
        ("recovering", "normal"),
        ("recovering", "degraded"),
    ] {
        metrics::counter!("lifeboat_mode_changes_total", "from" => from, "to" => to).increment(0);
    }
    metrics::counter!("lifeboat_journal_errors_total").increment(0);
    metrics::counter!("lifeboat_client_budget_exceeded_total").increment(0);
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
    metrics::gauge!("lifeboat_tunnels").set(shared.tunnels.count() as f64);
    let spool = shared.spool.usage();
    metrics::gauge!("lifeboat_transfers").set(spool.transfers as f64);
    metrics::gauge!("lifeboat_transfers_origin_sending").set(spool.reading as f64);
    metrics::gauge!("lifeboat_spool_bytes").set(spool.bytes as f64);
    metrics::counter!("lifeboat_spool_spilled_bytes_total").absolute(spool.spilled);
    metrics::counter!("lifeboat_spool_backpressured_total").absolute(spool.backpressured);
    metrics::counter!("lifeboat_spool_errors_total").absolute(spool.errors);
    let capacity = a.capacity();
    metrics::gauge!("lifeboat_origin_limit").set(capacity.limit as f64);
    metrics::gauge!("lifeboat_origin_limit_applied").set(capacity.applied as f64);
    metrics::gauge!("lifeboat_origin_limit_learned").set(if capacity.learned { 1.0 } else { 0.0 });
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
    for s in shared.runtime().upstream.pool.report() {
        let server = s.server;
        let in_rotation = if s.state == "in-rotation" { 1.0 } else { 0.0 };
        metrics::gauge!("lifeboat_origin_server_in_rotation", "server" => server.clone())
            .set(in_rotation);
        metrics::gauge!("lifeboat_origin_server_inflight", "server" => server.clone())
            .set(s.inflight as f64);
        metrics::gauge!("lifeboat_origin_server_limit", "server" => server.clone())
            .set(s.limit as f64);
        metrics::counter!("lifeboat_origin_server_requests_total", "server" => server.clone())
            .absolute(s.requests);
        metrics::counter!("lifeboat_origin_server_failures_total", "server" => server.clone())
            .absolute(s.failures);
        metrics::counter!("lifeboat_origin_server_ejections_total", "server" => server)
            .absolute(s.ejections);
    }
    let mut text = handle.render();
    for histogram in [&ORIGIN_TTFB, &QUEUE_WAIT] {
        histogram.render_into(&mut text);
    }
    text
}
