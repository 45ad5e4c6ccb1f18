//! `cargo bench --bench proxy`: the overhead of lifeboat in normal mode.
//!
//! Starts the simulated origin (no modelled service time) and lifeboat in
//! front of it, then drives each target with a closed-loop HTTP/1.1 load
//! (keep-alive connections sending back to back) for a fixed time:
//!
//! - `1KiB`: req/s, p50 and p99 latency, 32 connections;
//! - `10MiB`: MiB/s, 4 connections downloading repeatedly.
//!
//! Direct-to-origin and through-lifeboat run alternately in the same process
//! and the table reports their ratio, because absolute figures on a shared
//! machine drift from run to run. A JSON line per run is appended to
//! `target/bench-results/proxy.jsonl`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use lifeboat::origin_sim::{SimConfig, SimOrigin};

/// Measured time per scenario and target; long enough for a stable median
/// on 2 cores, short enough that the whole bench stays under a minute.
const RUN: Duration = Duration::from_secs(4);
/// Warm-up before each measurement (pools, allocator, CPU caches).
const WARMUP: Duration = Duration::from_millis(500);
/// Rounds of (direct, lifeboat) pairs; the median round is reported.
const ROUNDS: usize = 3;

struct Outcome {
    requests: u64,
    bytes: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn mib_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / (1 << 20) as f64
    }
    fn p(&self, q: f64) -> f64 {
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

async fn drive(addr: SocketAddr, path: &'static str, connections: usize) -> Outcome {
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

fn median<T: Copy>(mut v: Vec<(f64, T)>) -> (f64, T) {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sim = SimConfig { workers: 1, service_time: Duration::ZERO, download_size: 10 << 20 };
        let origin = SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sim).await.expect("origin");
        let origin_addr = origin.addr().expect("origin addr");
        tokio::spawn(origin.run());
        let toml = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nurl = \"http://{origin_addr}\"\n[log]\nlevel = \"error\"\naccess = false\n"
        );
        let config = lifeboat::config::from_str(&toml, "bench.toml", Path::new(".")).expect("config");
        let lb = lifeboat::Lifeboat::bind(config).await.expect("lifeboat");
        let lb_addr = lb.http_addr().expect("lifeboat addr");
        tokio::spawn(lb.run(std::future::pending()));

        println!("proxy bench: {ROUNDS} rounds x {RUN:?} per target, median round shown");
        let mut small = Vec::new();
        let mut large = Vec::new();
        for round in 0..ROUNDS {
            let d = drive(origin_addr, "/download/s?size=1024", 32).await;
            let l = drive(lb_addr, "/download/s?size=1024", 32).await;
            eprintln!("  round {} 1KiB: direct {:.0} req/s, lifeboat {:.0} req/s", round + 1, d.rps(), l.rps());
            small.push((l.rps() / d.rps(), (d.rps(), d.p(0.5), d.p(0.99), l.rps(), l.p(0.5), l.p(0.99), d.errors + l.errors)));
            let d = drive(origin_addr, "/download/big", 4).await;
            let l = drive(lb_addr, "/download/big", 4).await;
            eprintln!("  round {} 10MiB: direct {:.0} MiB/s, lifeboat {:.0} MiB/s", round + 1, d.mib_s(), l.mib_s());
            large.push((l.mib_s() / d.mib_s(), (d.mib_s(), l.mib_s(), d.errors + l.errors)));
        }
        let (r_small, (d_rps, d50, d99, l_rps, l50, l99, e1)) = median(small);
        let (r_large, (d_mib, l_mib, e2)) = median(large);
        println!();
        println!("| scenario | direct | through lifeboat | ratio |");
        println!("|---|---|---|---|");
        println!("| 1 KiB, 32 conns: req/s | {d_rps:.0} | {l_rps:.0} | {r_small:.2} |");
        println!("| 1 KiB: p50 / p99 ms | {d50:.2} / {d99:.2} | {l50:.2} / {l99:.2} | |");
        println!("| 10 MiB, 4 conns: MiB/s | {d_mib:.0} | {l_mib:.0} | {r_large:.2} |");
        println!("errors: {}", e1 + e2);
        let line = serde_json::json!({
            "bench": "proxy",
            "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "small": {"direct_rps": d_rps, "lifeboat_rps": l_rps, "ratio": r_small, "direct_p50_ms": d50, "direct_p99_ms": d99, "lifeboat_p50_ms": l50, "lifeboat_p99_ms": l99},
            "large": {"direct_mib_s": d_mib, "lifeboat_mib_s": l_mib, "ratio": r_large},
            "errors": e1 + e2,
        });
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
        let _ = std::fs::create_dir_all(&dir);
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("proxy.jsonl")) {
            let _ = writeln!(f, "{line}");
        }
    });
}
