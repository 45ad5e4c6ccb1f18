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

/// The benches' runtime: multi-threaded, with I/O and time.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Starts the simulated origin on a free loopback port; its address.
pub async fn sim_origin(sim: lifeboat::origin_sim::SimConfig) -> SocketAddr {
    let origin = lifeboat::origin_sim::SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sim)
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
    /// Responses read in full.
    pub requests: u64,
    /// Body bytes read.
    pub bytes: u64,
    /// Failed exchanges.
    pub errors: u64,
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

/// One keep-alive connection sending `path` back to back until `stop`.
async fn worker(
    addr: SocketAddr,
    path: &'static str,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> (u64, u64, u64, Histogram<u64>) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut requests, mut bytes, mut errors) = (0, 0, 0);
    'reconnect: while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            errors += 1;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            let req = http::Request::get(path)
                .header("host", "bench")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let started = Instant::now();
            let Ok(resp) = sender.send_request(req).await else {
                errors += 1;
                continue 'reconnect;
            };
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
            }
            if measuring.load(Ordering::Relaxed) {
                requests += 1;
                bytes += n;
                let _ = hist.record(started.elapsed().as_micros() as u64);
            }
        }
    }
    (requests, bytes, errors, hist)
}

/// Drives `addr` with `connections` keep-alive connections requesting `path`.
pub async fn drive(addr: SocketAddr, path: &'static str, connections: usize) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(worker(addr, path, stop.clone(), measuring.clone())))
        .collect();
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(RUN).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        requests: 0,
        bytes: 0,
        errors: 0,
        elapsed,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    };
    for t in tasks {
        let (r, b, e, h) = t.await.expect("worker");
        out.requests += r;
        out.bytes += b;
        out.errors += e;
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

/// A `lifeboat` binary started as its own process, so its RSS is its own.
/// Killed, and its directory removed, when dropped.
pub struct LifeboatProcess {
    child: std::process::Child,
    dir: std::path::PathBuf,
    /// The HTTP listener.
    pub addr: SocketAddr,
}

impl LifeboatProcess {
    /// Writes `toml` (which must listen on `127.0.0.1:0` and log at `info`
    /// or lower, so the listening line is printed) and starts the binary.
    pub fn start(name: &str, toml: &str) -> Self {
        use std::io::BufRead;
        let dir = std::env::temp_dir().join(format!("lifeboat-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("lifeboat.toml");
        std::fs::write(&config, toml).expect("config");
        // LIFEBOAT_BIN measures another build (an older one, say) instead.
        let bin = std::env::var_os("LIFEBOAT_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_lifeboat").into());
        let mut child = std::process::Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn lifeboat");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let addr: SocketAddr = loop {
            let line = lines
                .next()
                .and_then(Result::ok)
                .expect("lifeboat exited before listening");
            if let Some(a) = line
                .split("address=")
                .nth(1)
                .filter(|_| line.contains("listening (HTTP/1.1"))
            {
                break a
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .parse()
                    .expect("address");
            }
        };
        // Keep reading its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        LifeboatProcess { child, dir, addr }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident set size now, in KiB (0 if it cannot be read).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for LifeboatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
