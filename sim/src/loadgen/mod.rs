//! An open-loop HTTP load generator, for the benches and the demo.
//!
//! - **Open loop**: requests are sent on schedule (the arrival rate is a
//!   function of time), whether or not earlier ones have returned; an
//!   overloaded server cannot slow the generator down and hide its own
//!   latency.
//! - **No coordinated omission**: latency is measured from the *intended*
//!   send time, so time spent waiting for a connection counts.
//! - **A mix of paths** with weights; each path's outcomes are counted
//!   (2xx, apology by reason, other 5xx, timeouts, connection errors) with an
//!   HDR histogram of latency to response headers; a response counts as a
//!   success only when its whole body has arrived.
//! - **Retry-After**: a shed client can come back after the server's
//!   `Retry-After` (honouring) or after a fixed short pause (ignoring), to
//!   model recovery herds and retry storms.

mod report;
pub mod stampede;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

pub use report::{Outcome, PathReport, Report, Second};

/// One path of the mix.
#[derive(Debug, Clone)]
pub struct Target {
    /// Request path (and query).
    pub path: String,
    /// Relative weight in the mix.
    pub weight: u32,
    /// Counted as the primary path in summaries.
    pub primary: bool,
}

/// What a shed client does next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Goes away.
    Never,
    /// Comes back after the server's `Retry-After`.
    Honour,
    /// Comes back after this pause, whatever the server said.
    Ignore(Duration),
}

/// A load plan.
pub struct Plan {
    /// `http://host:port`.
    pub base: String,
    /// Paths and weights.
    pub mix: Vec<Target>,
    /// Requests per second at `t` seconds from the start.
    pub rate: Box<dyn Fn(f64) -> f64 + Send + Sync>,
    /// How long to keep sending.
    pub duration: Duration,
    /// Per-request timeout (headers and body).
    pub timeout: Duration,
    /// What shed clients do.
    pub retry: Retry,
}

struct Shared {
    client: Client<HttpConnector, Empty<Bytes>>,
    report: Mutex<Report>,
    start: Instant,
    end: Instant,
    timeout: Duration,
    retry: Retry,
}

/// Runs `plan`, calling `tick` once a second with the report so far; returns
/// the report once every request has finished or timed out.
pub async fn run(plan: Plan, tick: impl FnMut(&Report)) -> Report {
    run_from(plan, None, tick).await
}

/// [`run`], with every connection made from the local address `from`
/// (e.g. `127.0.0.2`: clients that lifeboat sees as another address).
pub async fn run_from(
    plan: Plan,
    from: Option<std::net::IpAddr>,
    mut tick: impl FnMut(&Report),
) -> Report {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_local_address(from);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        client,
        report: Mutex::new(Report::new(&plan.mix)),
        start,
        end: start + plan.duration,
        timeout: plan.timeout,
        retry: plan.retry,
    });
    let total_weight: u32 = plan.mix.iter().map(|t| t.weight).sum::<u32>().max(1);
    let mut tasks = Vec::new();
    let mut t = 0.0f64;
    let mut next_tick = 1.0;
    let mut n: u64 = 0;
    while t < plan.duration.as_secs_f64() {
        let rate = (plan.rate)(t).max(0.0);
        if rate < 1e-3 {
            t += 0.01;
            continue;
        }
        t += 1.0 / rate;
        let at = start + Duration::from_secs_f64(t);
        if t >= next_tick {
            tokio::time::sleep_until(start + Duration::from_secs_f64(next_tick)).await;
            if let Ok(r) = shared.report.lock() {
                tick(&r);
            }
            next_tick += 1.0;
        }
        tokio::time::sleep_until(at).await;
        // Weighted choice by a deterministic sequence: the mix is exact.
        let mut pick = ((n * 7919) % u64::from(total_weight)) as u32;
        n += 1;
        let index = plan.mix.iter().position(|tg| {
            if pick < tg.weight {
                return true;
            }
            pick -= tg.weight;
            false
        });
        let Some(index) = index else { continue };
        let uri = format!("{}{}", plan.base, plan.mix[index].path);
        tasks.push(tokio::spawn(send(shared.clone(), index, uri, at, false)));
    }
    for task in tasks {
        let _ = task.await;
    }
    let report = shared
        .report
        .lock()
        .map(|r| r.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    tick(&report);
    report
}

/// Sends one request intended for `at`, records it, and schedules a retry
/// if the client model says so.
fn send(
    shared: Arc<Shared>,
    index: usize,
    uri: String,
    at: Instant,
    is_retry: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let outcome = exchange(&shared, &uri, at).await;
        let second = (at - shared.start).as_secs_f64();
        let retry_after = match &outcome.0 {
            Outcome::Shed(_, retry_after) => Some(*retry_after),
            _ => None,
        };
        if let Ok(mut r) = shared.report.lock() {
            r.record(index, second, &outcome.0, outcome.1, is_retry);
        }
        let pause = match (shared.retry, retry_after) {
            (Retry::Honour, Some(secs)) => Some(Duration::from_secs(secs)),
            (Retry::Ignore(d), Some(_)) => Some(d),
            _ => None,
        };
        if let Some(pause) = pause {
            let again = Instant::now() + pause;
            if again < shared.end {
                tokio::time::sleep_until(again).await;
                send(shared.clone(), index, uri, again, true).await;
            }
        }
    })
}

async fn exchange(shared: &Shared, uri: &str, at: Instant) -> (Outcome, Option<Duration>) {
    let Ok(uri) = uri.parse::<Uri>() else {
        return (Outcome::Error, None);
    };
    let Ok(req) = Request::get(uri)
        .header("user-agent", "lifeboat-loadgen")
        .body(Empty::new())
    else {
        return (Outcome::Error, None);
    };
    let deadline = at + shared.timeout;
    let resp = match tokio::time::timeout_at(deadline, shared.client.request(req)).await {
        Err(_) => return (Outcome::Timeout, None),
        Ok(Err(_)) => return (Outcome::Error, None),
        Ok(Ok(r)) => r,
    };
    let latency = at.elapsed();
    let status = resp.status();
    let shed = resp
        .headers()
        .get("x-lifeboat-shed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = resp.into_body();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return (Outcome::Timeout, Some(latency)),
            Ok(Some(Err(_))) => return (Outcome::Error, Some(latency)),
            Ok(Some(Ok(_))) => {}
            Ok(None) => break,
        }
    }
    let outcome = match (status.as_u16(), shed) {
        (_, Some(reason)) => Outcome::Shed(reason, retry_after),
        (200..=399, None) => Outcome::Ok,
        (500..=599, None) => Outcome::ServerError,
        _ => Outcome::OtherStatus,
    };
    (outcome, Some(latency))
}
