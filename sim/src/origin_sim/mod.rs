//! A simulated release-day origin: a small web site whose app server has a
//! **fixed capacity**, so that excess load queues and latency climbs the way
//! it does on a real one. Used by `lifeboat demo`, the tests and the benches.
//!
//! Capacity is `workers` slots, each held for `service_time` per page (a
//! page render) or `download_service_time` per download (opening a static
//! file and handing it to the kernel: far cheaper, as on a real site; the
//! bytes then stream without holding a worker). Requests beyond that wait
//! for a slot, in arrival order and without bound, like connections piling
//! up in an app server's listen backlog. Downloads are generated on the fly
//! from one shared pattern buffer: a 10 GiB file costs no memory.

mod pages;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Size of the generated chunks: large enough for throughput, small enough
/// to stream with constant memory.
const CHUNK: usize = 64 * 1024;

/// How the simulated origin behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Concurrent requests the app server can work on.
    pub workers: usize,
    /// Time a page request holds a worker.
    pub service_time: Duration,
    /// Time a download holds a worker before its bytes stream.
    pub download_service_time: Duration,
    /// Size of `/download/*` files unless `?size=N` asks otherwise.
    pub download_size: u64,
}

impl Default for SimConfig {
    /// Four workers at 20 ms: a capacity of 200 requests/s, small enough for
    /// the demo to overwhelm from one laptop.
    fn default() -> Self {
        SimConfig {
            workers: 4,
            service_time: Duration::from_millis(20),
            download_service_time: Duration::from_millis(2),
            download_size: 8 << 20,
        }
    }
}

impl SimConfig {
    /// Requests per second the origin can complete when saturated.
    pub fn capacity(&self) -> f64 {
        self.workers as f64 / self.service_time.as_secs_f64().max(1e-6)
    }
}

struct State {
    config: SimConfig,
    workers: Semaphore,
    pattern: Bytes,
    served: AtomicU64,
    /// Service times are multiplied by this (f64 bits): 2.0 is an origin
    /// at half speed.
    slowdown: AtomicU64,
    /// Time workers were really held (timer slack included), µs, and how
    /// many times: [pages, downloads].
    held_us: [AtomicU64; 2],
    holds: [AtomicU64; 2],
}

/// Changes a running origin's speed (a database that slows down mid-wave).
#[derive(Clone)]
pub struct Speed(Arc<State>);

impl Speed {
    /// Every service time from now on is `factor` times the configured one.
    pub fn slow_down(&self, factor: f64) {
        self.0.slowdown.store(factor.to_bits(), Ordering::Relaxed);
    }

    /// How long a page and a download really held a worker so far, on
    /// average (ms): what the origin's capacity is made of.
    pub fn mean_hold_ms(&self) -> (f64, f64) {
        let mean = |i: usize| {
            let n = self.0.holds[i].load(Ordering::Relaxed).max(1);
            self.0.held_us[i].load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
        };
        (mean(0), mean(1))
    }
}

/// A bound simulated origin.
pub struct SimOrigin {
    listener: TcpListener,
    state: Arc<State>,
}

impl SimOrigin {
    /// Binds to `addr` (use port 0 in tests).
    pub async fn bind(addr: SocketAddr, config: SimConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let pattern: Vec<u8> = (0..CHUNK)
            .map(|i| b"lifeboat-release-day-"[i % 21])
            .collect();
        let state = Arc::new(State {
            workers: Semaphore::new(config.workers.max(1)),
            config,
            pattern: Bytes::from(pattern),
            served: AtomicU64::new(0),
            slowdown: AtomicU64::new(1.0f64.to_bits()),
            held_us: Default::default(),
            holds: Default::default(),
        });
        Ok(SimOrigin { listener, state })
    }

    /// The bound address.
    pub fn addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that changes the origin's speed while it runs.
    pub fn speed(&self) -> Speed {
        Speed(self.state.clone())
    }

    /// Serves forever (until the task is dropped).
    pub async fn run(self) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = self.state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return Ok(page(StatusCode::OK, "text/plain", "ok\n"));
    }
    // Hold a worker for the service time, queueing (unboundedly) for one.
    // (A zero service time means an origin with no modelled cost: benches.)
    let download = usize::from(path.starts_with("/download/"));
    let cost = if download == 1 {
        state.config.download_service_time
    } else {
        state.config.service_time
    };
    let cost = cost.mul_f64(f64::from_bits(state.slowdown.load(Ordering::Relaxed)));
    if !cost.is_zero() {
        let permit = state.workers.acquire().await;
        let held = std::time::Instant::now();
        tokio::time::sleep(cost).await;
        state.held_us[download].fetch_add(held.elapsed().as_micros() as u64, Ordering::Relaxed);
        state.holds[download].fetch_add(1, Ordering::Relaxed);
        drop(permit);
    }
    state.served.fetch_add(1, Ordering::Relaxed);

    if path
        .strip_prefix("/download/")
        .is_some_and(|n| !n.is_empty())
    {
        let size = query_size(req.uri().query()).unwrap_or(state.config.download_size);
        let mut resp = Response::new(SimBody::Generated {
            remaining: size,
            pattern: state.pattern.clone(),
        });
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(CONTENT_LENGTH, HeaderValue::from(size));
        return Ok(resp);
    }
    Ok(match pages::lookup(&path) {
        Some((ctype, body)) => page(StatusCode::OK, ctype, body),
        None => page(
            StatusCode::NOT_FOUND,
            "text/html; charset=utf-8",
            pages::NOT_FOUND,
        ),
    })
}

fn query_size(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("size="))?
        .parse()
        .ok()
}

fn page(status: StatusCode, ctype: &'static str, body: &'static str) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::Page(Some(Bytes::from_static(body.as_bytes()))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// The origin's response bodies: static pages, or generated downloads.
pub enum SimBody {
    /// A page from memory.
    Page(Option<Bytes>),
    /// A download generated chunk by chunk.
    Generated {
        /// Bytes still to send.
        remaining: u64,
        /// The shared pattern buffer chunks are sliced from.
        pattern: Bytes,
    },
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match &mut *self {
            SimBody::Page(b) => b.take(),
            SimBody::Generated { remaining, pattern } => {
                let n = (*remaining).min(pattern.len() as u64) as usize;
                *remaining -= n as u64;
                (n > 0).then(|| pattern.slice(..n))
            }
        };
        Poll::Ready(frame.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Page(b) => b.is_none(),
            SimBody::Generated { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Page(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            SimBody::Generated { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}
