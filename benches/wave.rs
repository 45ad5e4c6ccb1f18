//! `cargo bench --bench wave`: an open-loop wave at any base URL, the same
//! for every front (nothing, HAProxy, lifeboat), so their rows compare.
//!
//! `benches/compare/stampede.sh` drives it at a real app server (gunicorn);
//! it can be run on its own at anything that serves pages and
//! `/download/…`:
//!
//! ```text
//! WAVE_URL=http://127.0.0.1:8080 cargo bench --locked --bench wave
//! ```
//!
//! Environment: `WAVE_URL` (required), `WAVE_PAGES_PER_S` (2000),
//! `WAVE_DOWNLOADS_PER_S` (20), `WAVE_SECONDS` (15), `WAVE_TIMEOUT` (10 s,
//! from the intended send time to the last byte), `WAVE_LABEL` (copied into
//! the output), `WAVE_VISITORS` (1000: the requests come in turn from that
//! many loopback addresses, 127.1.x.y, as a crowd does; 1 sends everything
//! from 127.0.0.1, which lifeboat's per-address apology budget treats as
//! one greedy client). With `WAVE_WORKERS`, `WAVE_PAGE_MS` and `WAVE_DOWNLOAD_MS`
//! (the origin's workers and what a page and a download hold one for,
//! measured unloaded) it also reports goodput: pages served ÷ pages the
//! origin could have served, second by second (its worker time less that
//! second's downloads, over a page's time, never more than were offered).
//! `WAVE_CONCURRENCY=N` runs a closed loop instead: N clients sending pages
//! back to back for `WAVE_SECONDS` (an origin's saturated throughput,
//! `pages_ok_per_s`).
//!
//! The driver is its own and small rather than `lifeboat_sim::loadgen`, which
//! recognises a refusal by lifeboat's `x-lifeboat-shed` header only:
//! here every answer with a status of 400 or more is a refusal, whoever
//! sent it (HAProxy's queue-timeout 503 included), and the time to its
//! headers is how fast the visitor was told. Each request is recorded with
//! its status, its time to headers and to the last byte, both from the
//! *intended* send time (open loop: a slow server cannot slow the sender,
//! and time waiting for a connection counts).
//!
//! Output: one JSON line on stdout; progress on stderr.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::time::Instant;

/// Page paths and their weights in the mix (any path but `/download/…`
/// is a page the app renders).
const PAGES: [(&str, u32); 4] = [("/", 3), ("/news", 3), ("/docs", 2), ("/about", 2)];
/// The download: the primary path.
const DOWNLOAD: &str = "/download/example-os-3.0.iso";

struct Settings {
    url: String,
    pages_per_s: f64,
    downloads_per_s: f64,
    seconds: f64,
    timeout: Duration,
    label: String,
    /// Distinct client addresses the requests come from, in turn.
    visitors: usize,
    /// Closed loop instead: this many clients, each sending the next page
    /// as soon as the last one is answered (the origin's saturated
    /// throughput).
    concurrency: Option<usize>,
    /// (workers, page ms, download ms) of the origin, for goodput.
    origin: Option<(f64, f64, f64)>,
}

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: expected a number, found {v:?}")),
    }
}

impl Settings {
    fn from_env() -> Self {
        let url = std::env::var("WAVE_URL")
            .expect("WAVE_URL: the base URL to send the wave at, like http://127.0.0.1:8080");
        let timeout = std::env::var("WAVE_TIMEOUT").map_or(Duration::from_secs(10), |v| {
            humantime::parse_duration(v.trim())
                .or_else(|_| v.trim().parse::<f64>().map(Duration::from_secs_f64))
                .unwrap_or_else(|_| {
                    panic!("WAVE_TIMEOUT: expected \"10s\" or seconds, found {v:?}")
                })
        });
        let origin = match (std::env::var("WAVE_WORKERS"), std::env::var("WAVE_PAGE_MS")) {
            (Ok(_), Ok(_)) => Some((
                env_f64("WAVE_WORKERS", 0.0),
                env_f64("WAVE_PAGE_MS", 0.0),
                env_f64("WAVE_DOWNLOAD_MS", 0.0),
            )),
            _ => None,
        };
        Settings {
            url: url.trim_end_matches('/').to_string(),
            pages_per_s: env_f64("WAVE_PAGES_PER_S", 2000.0).max(0.0),
            downloads_per_s: env_f64("WAVE_DOWNLOADS_PER_S", 20.0).max(0.0),
            seconds: env_f64("WAVE_SECONDS", 15.0).max(0.0),
            timeout,
            label: std::env::var("WAVE_LABEL").unwrap_or_default(),
            visitors: env_f64("WAVE_VISITORS", 1000.0).clamp(1.0, 62_500.0) as usize,
            concurrency: std::env::var("WAVE_CONCURRENCY")
                .ok()
                .map(|_| env_f64("WAVE_CONCURRENCY", 1.0).max(1.0) as usize),
            origin,
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// 2xx or 3xx, the whole body within the timeout.
    Ok,
    /// A status of 400 or more: the visitor was told (the body read too).
    Refused(u16),
    /// Headers or body not in within the timeout.
    Timeout,
    /// The connection failed (refused, reset, out of descriptors...).
    Error(String),
    /// A 1xx the client did not absorb, or anything else unexpected.
    Other(u16),
}

impl End {
    fn label(&self) -> String {
        match self {
            End::Ok => "ok".into(),
            End::Refused(s) => format!("refused:{s}"),
            End::Timeout => "timeout".into(),
            End::Error(kind) => format!("error:{kind}"),
            End::Other(s) => format!("other:{s}"),
        }
    }
}

/// One request's record.
struct Record {
    download: bool,
    /// Intended send time, seconds from the start.
    at: f64,
    end: End,
    /// Time to response headers, from the intended send time.
    headers: Option<Duration>,
    /// Time to the last byte (for `Ok`).
    done: Option<Duration>,
    /// `x-lifeboat-shed`, when present.
    shed_reason: Option<String>,
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// One client per visitor, each connecting from its own loopback address
/// (127.1.x.y; all of 127/8 is local on Linux), so that a front sees a
/// crowd rather than one greedy address; `visitors = 1`: all from the
/// system's choice (127.0.0.1).
fn clients(visitors: usize) -> Vec<Arc<HttpClient>> {
    (0..visitors.max(1))
        .map(|k| {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            if visitors > 1 {
                let (hi, lo) = ((k / 250) as u8, (1 + k % 250) as u8);
                connector.set_local_address(Some(std::net::Ipv4Addr::new(127, 1, hi, lo).into()));
            }
            Arc::new(
                Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(4096)
                    .build(connector),
            )
        })
        .collect()
}

/// What went wrong with a connection, as a short kind ("connect:TimedOut").
fn error_kind(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let prefix = if e.is_connect() { "connect:" } else { "" };
            // Linux errno values the kinds do not name.
            return match io.raw_os_error() {
                Some(24) => format!("{prefix}too-many-open-files(sender)"),
                Some(99) => format!("{prefix}no-free-local-port"),
                _ => format!("{prefix}{:?}", io.kind()),
            };
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                return "closed-early".into();
            }
            if h.is_closed() || h.is_canceled() {
                return "closed".into();
            }
        }
        source = s.source();
    }
    if e.is_connect() {
        "connect".into()
    } else {
        "other".into()
    }
}

async fn exchange(
    client: &HttpClient,
    uri: Uri,
    download: bool,
    start: Instant,
    at: Instant,
    timeout: Duration,
) -> Record {
    let mut record = Record {
        download,
        at: (at - start).as_secs_f64(),
        end: End::Timeout,
        headers: None,
        done: None,
        shed_reason: None,
    };
    let req = match Request::get(uri)
        .header("user-agent", "lifeboat-wave")
        .body(Empty::new())
    {
        Ok(r) => r,
        Err(e) => {
            record.end = End::Error(format!("request:{e}"));
            return record;
        }
    };
    let deadline = at + timeout;
    let resp = match tokio::time::timeout_at(deadline, client.request(req)).await {
        Err(_) => return record,
        Ok(Err(e)) => {
            record.end = End::Error(error_kind(&e));
            return record;
        }
        Ok(Ok(r)) => r,
    };
    record.headers = Some(at.elapsed());
    let status = resp.status().as_u16();
    record.shed_reason = resp
        .headers()
        .get("x-lifeboat-shed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = resp.into_body();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return record,
            Ok(Some(Err(_))) => {
                record.end = End::Error("body".into());
                return record;
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) => break,
        }
    }
    record.done = Some(at.elapsed());
    record.end = match status {
        200..=399 => End::Ok,
        400.. => End::Refused(status),
        _ => End::Other(status),
    };
    record
}

/// Sends the wave: pages and downloads interleaved evenly at their rates.
async fn wave(s: &Settings) -> Vec<Record> {
    let clients = clients(s.visitors);
    let base: Arc<str> = s.url.as_str().into();
    let total_rate = s.pages_per_s + s.downloads_per_s;
    let mut tasks = Vec::new();
    if total_rate <= 0.0 || s.seconds <= 0.0 {
        return Vec::new();
    }
    let n = (total_rate * s.seconds).round() as u64;
    let download_share = s.downloads_per_s / total_rate;
    let page_weights: u32 = PAGES.iter().map(|(_, w)| w).sum();
    let start = Instant::now();
    let (mut owed, mut pages) = (0.0f64, 0u32);
    let mut next_report = 1.0;
    for i in 0..n {
        let t = i as f64 / total_rate;
        // Downloads at exactly their share, spread evenly through the pages.
        owed += download_share;
        let download = owed >= 1.0 - 1e-9;
        let path = if download {
            owed -= 1.0;
            DOWNLOAD
        } else {
            let mut pick = pages % page_weights;
            pages += 1;
            PAGES
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        return true;
                    }
                    pick -= w;
                    false
                })
                .map_or("/", |(p, _)| p)
        };
        let at = start + Duration::from_secs_f64(t);
        tokio::time::sleep_until(at).await;
        if t >= next_report {
            eprintln!("  {:>5.1} s: {} sent", t, tasks.len());
            next_report += 1.0;
        }
        let uri: Uri = match format!("{base}{path}").parse() {
            Ok(u) => u,
            Err(e) => panic!("WAVE_URL: {base}{path} is not a URI: {e}"),
        };
        let client = clients[i as usize % clients.len()].clone();
        let timeout = s.timeout;
        tasks.push(tokio::spawn(async move {
            exchange(&client, uri, download, start, at, timeout).await
        }));
    }
    let late = Instant::now().saturating_duration_since(start + Duration::from_secs_f64(s.seconds));
    if late > Duration::from_millis(100) {
        eprintln!(
            "  warning: the sender finished {} ms behind schedule (the load generator was short of CPU)",
            late.as_millis()
        );
    }
    let mut records = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(r) = task.await {
            records.push(r);
        }
    }
    records
}

/// Closed loop: `concurrency` clients sending pages back to back for the
/// run's seconds.
async fn saturate(s: &Settings, concurrency: usize) -> Vec<Record> {
    let clients = clients(concurrency);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(s.seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(k, client)| {
            let (base, timeout) = (s.url.clone(), s.timeout);
            tokio::spawn(async move {
                let mut records = Vec::new();
                let mut n = k;
                while Instant::now() < end {
                    let path = PAGES[n % PAGES.len()].0;
                    n += 1;
                    let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
                        break;
                    };
                    let at = Instant::now();
                    records.push(exchange(&client, uri, false, start, at, timeout).await);
                }
                records
            })
        })
        .collect();
    let mut records = Vec::new();
    for task in tasks {
        if let Ok(mut r) = task.await {
            records.append(&mut r);
        }
    }
    records
}

fn histogram() -> Histogram<u64> {
    // µs, 1 µs to 10 min, 3 significant digits: constant bounds are valid.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| (h.value_at_quantile(q) as f64 / 10.0).round() / 100.0)
}

fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).max(1));
}

#[derive(Default, Clone, serde::Serialize)]
struct Second {
    pages_sent: u64,
    pages_ok: u64,
    downloads_sent: u64,
    downloads_ok: u64,
    refused: u64,
    timeouts: u64,
    errors: u64,
}

fn summarise(s: &Settings, records: &[Record]) -> serde_json::Value {
    let (mut page_ok, mut dl_ok_headers, mut dl_ok_done, mut told) =
        (histogram(), histogram(), histogram(), histogram());
    let mut seconds = vec![Second::default(); s.seconds.ceil().max(1.0) as usize];
    let (mut pages_out, mut downloads_out): (BTreeMap<String, u64>, BTreeMap<String, u64>) =
        Default::default();
    let mut shed_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for r in records {
        let i = (r.at.max(0.0) as usize).min(seconds.len() - 1);
        let sec = &mut seconds[i];
        let ok = r.end == End::Ok;
        if r.download {
            sec.downloads_sent += 1;
            sec.downloads_ok += u64::from(ok);
            *downloads_out.entry(r.end.label()).or_default() += 1;
        } else {
            sec.pages_sent += 1;
            sec.pages_ok += u64::from(ok);
            *pages_out.entry(r.end.label()).or_default() += 1;
        }
        match (&r.end, r.headers) {
            (End::Ok, Some(h)) if r.download => {
                record_us(&mut dl_ok_headers, h);
                if let Some(d) = r.done {
                    record_us(&mut dl_ok_done, d);
                }
            }
            (End::Ok, Some(h)) => record_us(&mut page_ok, h),
            (End::Refused(_), Some(h)) => {
                sec.refused += 1;
                record_us(&mut told, h);
            }
            (End::Timeout, _) => sec.timeouts += 1,
            (End::Error(_), _) => sec.errors += 1,
            _ => {}
        }
        if let Some(reason) = &r.shed_reason {
            *shed_reasons.entry(reason.clone()).or_default() += 1;
        }
    }
    let sum = |f: fn(&Second) -> u64| seconds.iter().map(f).sum::<u64>();
    let (pages_sent, pages_ok) = (sum(|s| s.pages_sent), sum(|s| s.pages_ok));
    let (downloads_sent, downloads_ok) = (sum(|s| s.downloads_sent), sum(|s| s.downloads_ok));
    let could_serve = s.origin.map(|(workers, page_ms, download_ms)| {
        seconds
            .iter()
            .map(|sec| {
                let busy = sec.downloads_sent as f64 * download_ms / 1000.0;
                let capacity = (workers - busy).max(0.0) / (page_ms / 1000.0).max(1e-6);
                capacity.min(sec.pages_sent as f64)
            })
            .sum::<f64>()
    });
    let share = |ok: u64, sent: u64| (sent > 0).then(|| ok as f64 / sent as f64 * 100.0);
    json!({
        "bench": "wave",
        "label": s.label,
        "url": s.url,
        "pages_per_s": s.pages_per_s,
        "downloads_per_s": s.downloads_per_s,
        "seconds": s.seconds,
        "timeout_s": s.timeout.as_secs_f64(),
        "visitors": s.visitors,
        "concurrency": s.concurrency,
        "pages_ok_per_s": pages_ok as f64 / s.seconds.max(1e-9),
        "downloads_sent": downloads_sent,
        "downloads_ok": downloads_ok,
        "downloads_ok_pct": share(downloads_ok, downloads_sent),
        "download_p50_ms": ms(&dl_ok_headers, 0.5),
        "download_p99_ms": ms(&dl_ok_headers, 0.99),
        "download_done_p50_ms": ms(&dl_ok_done, 0.5),
        "download_done_p99_ms": ms(&dl_ok_done, 0.99),
        "downloads": downloads_out,
        "pages_sent": pages_sent,
        "pages_ok": pages_ok,
        "page_p50_ms": ms(&page_ok, 0.5),
        "page_p99_ms": ms(&page_ok, 0.99),
        "pages": pages_out,
        "could_serve": could_serve,
        "goodput_pct": could_serve.map(|c| pages_ok as f64 / c.max(1.0) * 100.0),
        "refused": told.len(),
        "refused_p50_ms": ms(&told, 0.5),
        "refused_p90_ms": ms(&told, 0.9),
        "refused_p99_ms": ms(&told, 0.99),
        "shed_reasons": shed_reasons,
        "timeouts": sum(|s| s.timeouts),
        "errors": sum(|s| s.errors),
        "per_second": seconds,
    })
}

fn main() {
    let settings = Settings::from_env();
    // One socket per request in flight: a stalled origin holds thousands.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warning: could not raise the open-file limit: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match settings.concurrency {
        Some(n) => eprintln!(
            "wave {}: {n} clients back to back for {} s at {}",
            settings.label, settings.seconds, settings.url
        ),
        None => eprintln!(
            "wave {}: {} pages/s + {} downloads/s for {} s at {} from {} addresses (timeout {:?})",
            settings.label,
            settings.pages_per_s,
            settings.downloads_per_s,
            settings.seconds,
            settings.url,
            settings.visitors,
            settings.timeout
        ),
    }
    let records = match settings.concurrency {
        Some(n) => rt.block_on(saturate(&settings, n)),
        None => rt.block_on(wave(&settings)),
    };
    println!("{}", summarise(&settings, &records));
}
