//! A closed-loop HTTP/1.1 load driver for the benches: N keep-alive
//! connections, each sending the next request as soon as the last response
//! has been read, for a fixed time after a warm-up; and what every bench
//! starts with (runtime, simulated origin). Included with `#[path]`.

// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// The tests' handle on the binary as a process.
#[path = "../../tests/support/process.rs"]
pub mod process;

/// The benches' runtime: multi-threaded, with I/O and time.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Starts the simulated origin on a free loopback port; its address.
pub async fn sim_origin(sim: lifeboat_sim::origin_sim::SimConfig) -> SocketAddr {
    let origin =
        lifeboat_sim::origin_sim::SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sim)
            .await
            .expect("origin");
    let addr = origin.addr().expect("origin addr");
    tokio::spawn(origin.run());
    addr
}

/// Measured time per target; long enough for a stable figure on 2 cores.
pub const RUN: Duration = Duration::from_secs(4);
/// Warm-up before each measurement (pools, allocator, CPU caches).
pub const WARMUP: Duration = Duration::from_millis(500);

/// What one run measured.
pub struct Outcome {
    /// Responses read in full (for [`Conns::GiveUp`], to their first frame).
    pub requests: u64,
    /// Body bytes read.
    pub bytes: u64,
    /// Failed exchanges.
    pub errors: u64,
    /// Responses with a status other than 2xx.
    pub non_2xx: u64,
    /// Measured time.
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn mib_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / (1 << 20) as f64
    }
    pub fn p(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// How a driver's connections behave.
#[derive(Clone)]
pub enum Conns {
    /// HTTP/1.1 keep-alive: the next request as soon as the last answer
    /// has been read.
    KeepAlive,
    /// HTTP/1.1 with a new connection for every request.
    PerRequest,
    /// HTTP/2 with prior knowledge (h2c), one connection a worker.
    H2,
    /// HTTP/1.1 over TLS (to `addr`, as `localhost`), a new connection and
    /// handshake for every request.
    TlsPerRequest(Arc<rustls::ClientConfig>),
    /// HTTP/1.1, a new connection for every request, closed after the
    /// first frame of the body: a client that gives up mid-download.
    GiveUp,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// Opens one connection the way `conns` says; `None` if that failed.
async fn connect(addr: SocketAddr, conns: &Conns) -> Option<Sender> {
    use hyper::client::conn::{http1, http2};
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    match conns {
        Conns::KeepAlive | Conns::PerRequest | Conns::GiveUp => {
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
            tokio::spawn(conn);
            Some(Sender::H1(sender))
        }
        Conns::H2 => {
            let (sender, conn) =
                http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(conn);
            Some(Sender::H2(sender))
        }
        Conns::TlsPerRequest(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, stream)
                .await
                .ok()?;
            let (sender, conn) = http1::handshake(TokioIo::new(tls)).await.ok()?;
            tokio::spawn(conn);
            Some(Sender::H1(sender))
        }
    }
}

/// One connection after another (as `conns` says) sending `path` back to
/// back until `stop`.
async fn worker(
    addr: SocketAddr,
    path: &'static str,
    conns: Conns,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> (u64, u64, u64, u64, Histogram<u64>) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut requests, mut bytes, mut errors, mut non_2xx) = (0, 0, 0, 0);
    let give_up = matches!(conns, Conns::GiveUp);
    let reuse = matches!(conns, Conns::KeepAlive | Conns::H2);
    // HTTP/2 needs the scheme and authority in the request itself.
    let uri = match conns {
        Conns::H2 => format!("http://{addr}{path}"),
        _ => path.to_string(),
    };
    'reconnect: while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let Some(mut sender) = connect(addr, &conns).await else {
            errors += 1;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            // HTTP/2 names the host in the request's authority; a Host
            // header that disagrees with it is refused (`screen`).
            let mut req = http::Request::get(uri.as_str());
            if !matches!(conns, Conns::H2) {
                req = req.header("host", "bench");
            }
            let req = req.body(Empty::<Bytes>::new()).expect("request");
            let started = if reuse { Instant::now() } else { started };
            let sent = match &mut sender {
                Sender::H1(s) => s.send_request(req).await,
                Sender::H2(s) => s.send_request(req).await,
            };
            let Ok(resp) = sent else {
                errors += 1;
                continue 'reconnect;
            };
            let success = resp.status().is_success();
            let mut body = resp.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => {
                        errors += 1;
                        continue 'reconnect;
                    }
                }
                if give_up && n > 0 {
                    break;
                }
            }
            if measuring.load(Ordering::Relaxed) {
                requests += 1;
                bytes += n;
                non_2xx += u64::from(!success);
                let _ = hist.record(started.elapsed().as_micros() as u64);
            }
            if !reuse {
                continue 'reconnect;
            }
        }
    }
    (requests, bytes, errors, non_2xx, hist)
}

/// Drives `addr` with `connections` keep-alive connections requesting
/// `path` for [`RUN`] after [`WARMUP`].
pub async fn drive(addr: SocketAddr, path: &'static str, connections: usize) -> Outcome {
    drive_with(addr, path, connections, &Conns::KeepAlive, RUN).await
}

/// Drives `addr` with `connections` workers whose connections behave as
/// `conns`, for `run` after [`WARMUP`].
pub async fn drive_with(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    conns: &Conns,
    run: Duration,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let worker = worker(addr, path, conns.clone(), stop.clone(), measuring.clone());
            tokio::spawn(worker)
        })
        .collect();
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(run).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        requests: 0,
        bytes: 0,
        errors: 0,
        non_2xx: 0,
        elapsed,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    };
    for t in tasks {
        let (r, b, e, x, h) = t.await.expect("worker");
        out.requests += r;
        out.bytes += b;
        out.errors += e;
        out.non_2xx += x;
        let _ = out.latency.add(h);
    }
    out
}

/// Starts an in-process lifeboat from TOML text; returns its address.
pub async fn start_lifeboat(toml: &str) -> SocketAddr {
    let config = lifeboat::config::from_str(toml, "bench.toml", std::path::Path::new("."))
        .expect("bench config");
    let lb = lifeboat::Lifeboat::bind(config)
        .await
        .expect("bind lifeboat");
    let addr = lb.http_addr().expect("lifeboat address");
    tokio::spawn(lb.run(std::future::pending()));
    addr
}

/// Starts the `lifeboat` binary as its own process (so its RSS is its
/// own) with `toml` as its configuration, which must listen on
/// `127.0.0.1:0` and log at `info` or lower. `LIFEBOAT_BIN` runs another
/// build instead, for an A/B comparison. The directory holds the
/// configuration; keep it as long as the process.
pub fn lifeboat_process(toml: &str) -> (process::Process, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process::write_config(dir.path(), toml);
    let lb = match std::env::var_os("LIFEBOAT_BIN") {
        Some(binary) => process::Process::start_binary(&binary, &config),
        None => process::Process::start(&config),
    };
    (lb, dir)
}

/// Seconds since the Unix epoch, for the JSON lines.
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Appends one JSON line to `target/bench-results/NAME.jsonl`.
pub fn record(name: &str, line: serde_json::Value) {
    use std::io::Write;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.jsonl")))
    {
        let _ = writeln!(f, "{line}");
    }
}
