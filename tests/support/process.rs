//! The real `lifeboat` binary, for what only a process can show: exit
//! codes, signals, its own RSS, its stderr log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Path of the binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lifeboat")
}

/// A running `lifeboat run` process, killed when dropped.
pub struct Process {
    /// The child.
    pub child: Child,
    /// The plain listener's address, read from its log.
    pub http: SocketAddr,
    /// Every stderr line, as it arrives.
    pub lines: mpsc::Receiver<String>,
}

impl Process {
    /// Runs `lifeboat run --config FILE` and waits (up to 20 s) for its
    /// "listening" log line.
    #[allow(
        clippy::zombie_processes,
        reason = "Drop kills and waits for the child"
    )]
    pub fn start(config: &Path) -> Process {
        let mut child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lifeboat");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                // Never leave a stray process behind a failed test.
                let _ = child.kill();
                let _ = child.wait();
                panic!("lifeboat did not report listening within 20 s");
            };
            if let Some(addr) = listening_address(&line) {
                return Process {
                    child,
                    http: addr,
                    lines,
                };
            }
        }
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening (HTTP/1.1") {
        return None;
    }
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        return v["address"].as_str()?.parse().ok();
    }
    let start = line.find("address=")? + "address=".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\u{1b}')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
