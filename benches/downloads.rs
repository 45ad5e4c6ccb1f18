//! `cargo bench --bench downloads`: every download served.
//!
//! Two scenarios, each with lifeboat's documented defaults (the learned
//! limit, the spool) in front of a real origin, the binary as its own
//! process:
//!
//! - **static**: nginx serving a release file; `DOWNLOADS_VISITORS`
//!   (2,000) visitors at once each read it (`DOWNLOADS_MIB`, 50 MiB) at
//!   `DOWNLOADS_RATE` bytes/s (1 MB/s, home broadband) through a 64 KiB
//!   receive buffer. Targets: every one gets the whole file, intact;
//!   lifeboat's RSS stays at most 512 MiB; its descriptors are back to
//!   where they started once the visitors are done.
//! - **gunicorn**: gunicorn with 4 sync workers streaming the same file
//!   (`benches/downloads/release_app.py`, which logs when each worker
//!   started and finished its response) to 20 visitors at 1 MB/s. Targets:
//!   all 20 served, each worker free within a second of starting its
//!   response.
//!
//! `DOWNLOADS_ONLY=static|gunicorn` runs one. nginx comes from Debian
//! (`nginx-light`), gunicorn from PyPI (`GUNICORN`, default `gunicorn` on
//! the PATH); a scenario whose tool is missing says SKIPPED. A line of
//! progress every 5 s. Appends JSON lines to
//! `target/bench-results/downloads.jsonl`.

#[path = "support/closed_loop.rs"]
mod closed_loop;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const MIB: u64 = 1 << 20;
const RSS_TARGET_MIB: u64 = 512;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An origin process of ours, killed (by its PID) when dropped.
struct Origin(Child);

impl Drop for Origin {
    fn drop(&mut self) {
        // SIGTERM, so nginx's and gunicorn's masters stop their workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// The release file: each 8-byte word its own offset, little-endian.
fn write_release(path: &Path, size: u64) {
    let mut bytes = Vec::with_capacity(size as usize);
    for word in 0..size / 8 {
        bytes.extend_from_slice(&(word * 8).to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write the release file");
}

fn start_nginx(dir: &Path, port: u16) -> Origin {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; worker_processes 1; worker_rlimit_nofile 16384; pid {d}/nginx.pid; error_log {d}/nginx-error.log;\n\
             events {{ worker_connections 8192; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on;\n\
               server {{ listen 127.0.0.1:{port} backlog=4096; root {d}/www; }} }}\n",
            d = dir.display()
        ),
    )
    .expect("nginx config");
    let child = Command::new("nginx")
        .args(["-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    Origin(child)
}

fn start_gunicorn(port: u16, size: u64, log: &Path) -> Origin {
    let gunicorn = std::env::var("GUNICORN").unwrap_or_else(|_| "gunicorn".into());
    let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/downloads");
    let child = Command::new(gunicorn)
        .args([
            "-w",
            "4",
            "-k",
            "sync",
            "--preload",
            "--backlog",
            "2048",
            "-b",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--chdir")
        .arg(app_dir)
        .arg("release_app:app")
        .env("RELEASE_BYTES", size.to_string())
        .env("RELEASE_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gunicorn");
    Origin(child)
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "origin on {port} never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one visitor got.
#[derive(Default, Clone, Copy)]
struct Got {
    status: u16,
    bytes: u64,
    intact: bool,
}

/// Fetches `path` at `rate` bytes/s through a 64 KiB receive buffer,
/// checking one word of every read against its offset.
async fn visit(addr: SocketAddr, path: &str, size: u64, rate: u64, progress: &AtomicU64) -> Got {
    let mut got = Got::default();
    let Ok(socket) = TcpSocket::new_v4() else {
        return got;
    };
    let _ = socket.set_recv_buffer_size(64 << 10);
    let Ok(mut stream) = socket.connect(addr).await else {
        return got;
    };
    let head = format!("GET {path} HTTP/1.1\r\nHost: release.example\r\nConnection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).await.is_err() {
        return got;
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut pending: Vec<u8> = Vec::new();
    let body_start = loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return got;
        };
        if n == 0 {
            return got;
        }
        pending.extend_from_slice(&buf[..n]);
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&pending[..body_start]).to_string();
    got.status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if got.status != 200 {
        return got;
    }
    let started = Instant::now();
    let mut offset = 0u64;
    let mut intact = true;
    let mut check = |chunk: &[u8], offset: u64| {
        let first = offset.next_multiple_of(8);
        let at = (first - offset) as usize;
        if let Some(word) = chunk.get(at..at + 8) {
            intact &= u64::from_le_bytes(word.try_into().unwrap_or_default()) == first;
        }
    };
    let rest = pending[body_start..].to_vec();
    check(&rest, 0);
    offset += rest.len() as u64;
    loop {
        let due = started + Duration::from_secs_f64(offset as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                check(&buf[..n], offset);
                offset += n as u64;
                progress.fetch_add(n as u64, Relaxed);
            }
        }
    }
    got.bytes = offset;
    got.intact = intact && offset == size;
    got
}

/// `GET /mode` on the admin listener, as JSON.
async fn mode(admin: SocketAddr) -> serde_json::Value {
    let Ok(mut s) = tokio::net::TcpStream::connect(admin).await else {
        return serde_json::Value::Null;
    };
    let _ = s
        .write_all(b"GET /mode HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    text.split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// lifeboat's defaults in front of the origin (the spool in its default
/// directory), downloads as the primary path. `LIFEBOAT_BIN` may name an
/// earlier build: nothing here is newer than its config.
fn lifeboat_toml(origin_port: u16) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n\
         [origin]\nurl = \"http://127.0.0.1:{origin_port}\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [log]\nlevel = \"info\"\naccess = false\n\
         [[route]]\nname = \"downloads\"\nmatch = \"/download/*\"\nclass = \"primary\"\n"
    )
}

/// The visitors, with lifeboat watched every half second.
struct Run {
    got: Vec<Got>,
    secs: f64,
    peak_rss_mib: u64,
    peak_limit: u64,
    peak_spooled_mib: u64,
    backpressured: u64,
}

async fn run_visitors(
    lb: &closed_loop::process::Process,
    admin: SocketAddr,
    visitors: usize,
    size: u64,
    rate: u64,
) -> Run {
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..visitors)
        .map(|_| {
            let (progress, done, addr) = (progress.clone(), done.clone(), lb.http);
            tokio::spawn(async move {
                let got = visit(addr, "/download/release.bin", size, rate, &progress).await;
                done.fetch_add(1, Relaxed);
                got
            })
        })
        .collect();
    let (mut peak_rss, mut peak_limit, mut peak_spooled, mut backpressured) = (0, 0, 0, 0);
    let mut next_line = Instant::now();
    while done.load(Relaxed) < visitors {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(lb.rss_kib() / 1024);
        let m = mode(admin).await;
        let limit = m["origin"]["limit"].as_u64().unwrap_or(0);
        let spooled = m["transfers"]["spooled_bytes"].as_u64().unwrap_or(0) / MIB;
        backpressured = m["transfers"]["backpressured_total"].as_u64().unwrap_or(0);
        peak_limit = peak_limit.max(limit);
        peak_spooled = peak_spooled.max(spooled);
        if Instant::now() >= next_line {
            next_line += Duration::from_secs(5);
            println!(
                "  {:>4.0} s: {}/{visitors} done, {:.0} MiB read, rss {} MiB, limit {limit}, \
                 at origin {}, transfers {}, spooled {spooled} MiB",
                started.elapsed().as_secs_f64(),
                done.load(Relaxed),
                progress.load(Relaxed) as f64 / MIB as f64,
                lb.rss_kib() / 1024,
                m["origin"]["inflight"],
                m["transfers"]["in_progress"],
            );
        }
    }
    let mut got = Vec::with_capacity(visitors);
    for t in tasks {
        got.push(t.await.unwrap_or_default());
    }
    Run {
        got,
        secs: started.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss,
        peak_limit,
        peak_spooled_mib: peak_spooled,
        backpressured,
    }
}

fn served(run: &Run) -> (usize, String) {
    let ok = run.got.iter().filter(|g| g.intact).count();
    let mut refused = std::collections::BTreeMap::<u16, usize>::new();
    for g in run.got.iter().filter(|g| !g.intact) {
        *refused.entry(g.status).or_default() += 1;
    }
    (ok, format!("{refused:?}"))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The TCP sockets of process `pid` not connected to `origin_port`: local
/// and remote address, state (from /proc/net/tcp, by inode).
fn other_sockets(pid: u32, origin_port: u16) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|p| {
                    let p = p.display().to_string();
                    Some(
                        p.strip_prefix("socket:[")?
                            .trim_end_matches(']')
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let hex = format!(":{origin_port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let ours = f.len() > 9 && inodes.iter().any(|i| i == f[9]);
            (ours && !f[2].ends_with(&hex)).then(|| format!("{} {} {}", f[1], f[2], f[3]))
        })
        .collect()
}

/// lifeboat's descriptors other than its pooled origin connections: every
/// one but a socket, plus its sockets not connected to `origin_port` (the
/// pool's sockets that the origin has closed have left /proc/net/tcp, and
/// are not counted either).
fn fds_besides_pool(lb: &closed_loop::process::Process, origin_port: u16) -> usize {
    let pid = lb.child.id();
    let not_sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|p| !p.display().to_string().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0);
    not_sockets + other_sockets(pid, origin_port).len()
}

/// [`fds_besides_pool`] once it is back to `baseline` (15 s at most).
async fn fds_back(lb: &closed_loop::process::Process, baseline: usize, origin_port: u16) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = fds_besides_pool(lb, origin_port);
        if n <= baseline || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn static_origin(visitors: usize, size: u64, rate: u64) {
    if !have("nginx") {
        println!("static: SKIPPED (nginx not found: apt-get install nginx-light)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let _ = std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    std::fs::create_dir_all(dir.path().join("www/download")).expect("www");
    write_release(&dir.path().join("www/download/release.bin"), size);
    let port = free_port();
    let _nginx = start_nginx(dir.path(), port);
    wait_listening(port).await;
    let (lb, _cfg) = closed_loop::lifeboat_process(&lifeboat_toml(port));
    let admin = lb.admin_address();
    // One download first: what a process that has served starts with.
    let warm = visit(
        lb.http,
        "/download/release.bin",
        size,
        u64::MAX / 2,
        &AtomicU64::new(0),
    )
    .await;
    assert!(
        warm.intact,
        "the warm-up download failed: status {}",
        warm.status
    );
    let fds_before = fds_besides_pool(&lb, port);
    println!(
        "static: {visitors} visitors × {} MiB at {} kB/s, nginx origin, lifeboat's defaults",
        size / MIB,
        rate / 1000
    );
    let run = run_visitors(&lb, admin, visitors, size, rate).await;
    let fds_after = fds_back(&lb, fds_before, port).await;
    let pooled = lb.fd_count().saturating_sub(fds_after);
    let (ok, refused) = served(&run);
    println!(
        "static: {ok}/{visitors} got the whole file intact ({}; others by status {refused}) in {:.0} s; \
         peak RSS {} MiB ({} ≤ {RSS_TARGET_MIB}); fds besides the origin pool {fds_before} → {fds_after} \
         ({}; {pooled} pooled origin connections, closed after pool_idle_timeout); \
         peak limit {}, peak spooled {} MiB, held at the spool bound {}",
        verdict(ok == visitors),
        run.secs,
        run.peak_rss_mib,
        verdict(run.peak_rss_mib <= RSS_TARGET_MIB),
        verdict(fds_after <= fds_before),
        run.peak_limit,
        run.peak_spooled_mib,
        run.backpressured,
    );
    closed_loop::record(
        "downloads",
        serde_json::json!({
            "t": closed_loop::unix_time(), "scenario": "static", "visitors": visitors,
            "mib": size / MIB, "rate": rate, "ok": ok, "secs": run.secs,
            "peak_rss_mib": run.peak_rss_mib, "fds_before": fds_before, "fds_after": fds_after,
            "pooled_origin_connections": pooled,
            "peak_limit": run.peak_limit, "peak_spooled_mib": run.peak_spooled_mib,
            "backpressured": run.backpressured,
        }),
    );
}

async fn gunicorn_origin(size: u64, rate: u64) {
    let gunicorn = std::env::var("GUNICORN").unwrap_or_else(|_| "gunicorn".into());
    if !have(&gunicorn) {
        println!("gunicorn: SKIPPED ({gunicorn} not found: pip install gunicorn, or set GUNICORN)");
        return;
    }
    let visitors = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("workers.log");
    let port = free_port();
    let _gunicorn = start_gunicorn(port, size, &log);
    wait_listening(port).await;
    let (lb, _cfg) = closed_loop::lifeboat_process(&lifeboat_toml(port));
    let admin = lb.admin_address();
    println!(
        "gunicorn: {visitors} visitors × {} MiB at {} kB/s, 4 sync workers, lifeboat's defaults",
        size / MIB,
        rate / 1000
    );
    let run = run_visitors(&lb, admin, visitors, size, rate).await;
    let (ok, refused) = served(&run);
    let held: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ').filter_map(|v| v.parse::<f64>().ok());
            let (start, end) = (f.next()?, f.next()?);
            Some(end - start)
        })
        .collect();
    let worst = held.iter().copied().fold(0.0, f64::max);
    let mut sorted = held.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    println!(
        "gunicorn: {ok}/{visitors} served intact ({}; others by status {refused}) in {:.0} s; \
         {} responses logged, each worker free within {worst:.2} s of starting (median \
         {median:.2} s; {} ≤ 1 s)",
        verdict(ok == visitors),
        run.secs,
        held.len(),
        verdict(worst <= 1.0 && held.len() >= visitors),
    );
    closed_loop::record(
        "downloads",
        serde_json::json!({
            "t": closed_loop::unix_time(), "scenario": "gunicorn", "visitors": visitors,
            "mib": size / MIB, "rate": rate, "ok": ok, "secs": run.secs,
            "worker_held_max_s": worst, "worker_held_median_s": median, "responses": held.len(), "peak_rss_mib": run.peak_rss_mib,
        }),
    );
}

fn main() {
    let visitors = env_u64("DOWNLOADS_VISITORS", 2000) as usize;
    let size = env_u64("DOWNLOADS_MIB", 50) * MIB;
    let rate = env_u64("DOWNLOADS_RATE", 1_000_000);
    let only = std::env::var("DOWNLOADS_ONLY").unwrap_or_default();
    // A socket per visitor, on this side too.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = closed_loop::runtime();
    rt.block_on(async {
        if only.is_empty() || only == "static" {
            static_origin(visitors, size, rate).await;
        }
        if only.is_empty() || only == "gunicorn" {
            gunicorn_origin(size, rate).await;
        }
    });
}
