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

/// Writes `toml` as `lifeboat.toml` in `dir`; its path.
pub fn write_config(dir: &Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("lifeboat.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// A running `lifeboat run` process, killed when dropped.
pub struct Process {
    /// The child.
    pub child: Child,
    /// The plain listener's address, read from its log.
    pub http: SocketAddr,
    /// Every stderr line after the "listening" one, as it arrives.
    pub lines: mpsc::Receiver<String>,
    /// The stderr lines up to and including "listening".
    pub startup: Vec<String>,
}

impl Process {
    /// Runs `lifeboat run --config FILE` and waits (up to 20 s) for its
    /// "listening" log line.
    #[allow(
        clippy::zombie_processes,
        reason = "Drop kills and waits for the child"
    )]
    pub fn start(config: &Path) -> Process {
        Self::start_under(&[], config)
    }

    /// As [`Process::start`], with the command prefixed by `wrapper` (such
    /// as `prlimit --nofile=256 --`).
    #[allow(
        clippy::zombie_processes,
        reason = "Drop kills and waits for the child"
    )]
    pub fn start_under(wrapper: &[&str], config: &Path) -> Process {
        let command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        Self::spawn(command, config)
    }

    /// As [`Process::start`], running `binary` instead of the one cargo
    /// built (the benches compare builds this way).
    #[allow(
        clippy::zombie_processes,
        reason = "Drop kills and waits for the child"
    )]
    pub fn start_binary(binary: &std::ffi::OsStr, config: &Path) -> Process {
        Self::spawn(Command::new(binary), config)
    }

    /// Runs `command run --config FILE` and waits for "listening".
    #[allow(
        clippy::zombie_processes,
        reason = "Drop kills and waits for the child"
    )]
    fn spawn(mut command: Command, config: &Path) -> Process {
        let mut child = command
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
        let mut startup = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = lines.recv_timeout(left) else {
                // Never leave a stray process behind a failed test.
                let _ = child.kill();
                let _ = child.wait();
                panic!("lifeboat did not report listening within 20 s");
            };
            let addr = listening_address(&line, "listening (HTTP/1.1");
            startup.push(line);
            if let Some(addr) = addr {
                return Process {
                    child,
                    http: addr,
                    lines,
                    startup,
                };
            }
        }
    }

    /// The TLS listener's address, from the log line that follows the
    /// plain one's (so call it once, right after starting).
    pub fn tls_address(&self) -> SocketAddr {
        let line = self.next_line("the TLS listening line", |l| l.contains("listening (TLS"));
        listening_address(&line, "listening (TLS").expect("an address in the TLS listening line")
    }

    /// The admin listener's address, from its log line (so call it right
    /// after starting, before reading other lines). Blocks the thread, as
    /// [`Process::next_line`] does.
    pub fn admin_address(&self) -> SocketAddr {
        let line = self.next_line("the admin listening line", |l| {
            l.contains("admin listening")
        });
        listening_address(&line, "admin listening").expect("an address in the admin line")
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

    /// Open file descriptors, from /proc.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("proc fd")
            .count()
    }

    /// CPU time used so far (user + system), from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("proc stat");
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line, in clock ticks.
        let rest = &stat[stat.rfind(')').expect("stat comm") + 2..];
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let ticks = fields[11] + fields[12];
        Duration::from_millis(ticks * 1000 / clock_ticks_per_second())
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{signal}");
    }

    /// The next stderr line for which `wanted` holds, skipping the others;
    /// fails if none arrives within 10 s of the previous line. Blocks the
    /// thread: call it from a multi-thread runtime's `block_in_place`.
    pub fn next_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no {what} in the log"));
            if wanted(&line) {
                return line;
            }
        }
    }

    /// Log lines that arrived so far and contain `needle`, consumed.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines.try_iter().filter(|l| l.contains(needle)).count()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
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

/// `getconf CLK_TCK` (100 on every Linux this runs on).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The address in a log line that contains `what`.
fn listening_address(line: &str, what: &str) -> Option<SocketAddr> {
    if !line.contains(what) {
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
