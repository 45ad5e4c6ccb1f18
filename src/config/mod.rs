//! Configuration: one TOML file, read in three steps that never mix.
//!
//! 1. **parse** (`raw.rs`): TOML text → `RawConfig`, syntax and types only;
//! 2. **validate** (`validate.rs`): `RawConfig` → [`Config`], a trusted value
//!    with every default applied, every range and cross-field rule checked, and
//!    referenced files (TLS certificates) loaded;
//! 3. **load** ([`load`]): reads the file and runs both.
//!
//! Any failure is a [`ConfigError`] naming file, line, column and key.

mod buffer_rules;
mod control_rules;
mod error;
mod fleet_rules;
mod log_rules;
mod origin_rules;
mod raw;
mod shed_rules;
pub mod startup;
pub mod webhook;

pub use buffer_rules::Buffering;
pub use control_rules::SUMMARY_FOR;
pub use fleet_rules::{Fleet, valid_instance};
pub mod units;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::{ConfigError, Diagnostic};
pub use origin_rules::{Eject, HealthCheck, OriginTls, Server};
pub use units::{ByteSize, Cidr};

/// A validated configuration: every value is in range and every file it
/// names has been read. Nothing downstream re-checks it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from (a path, or a label for inline text).
    pub source: String,
    /// Digest of the exact text it was validated from, so the file watcher
    /// can tell an edit from the running version without reading twice.
    pub digest: u64,
    /// Public listeners.
    pub listen: Listen,
    /// The origin lifeboat proxies to.
    pub origin: Origin,
    /// Connection and request limits on the public side.
    pub limits: Limits,
    /// How far an origin's response is read ahead of its visitor.
    pub buffering: Buffering,
    /// Proxy header behaviour.
    pub proxy: Proxy,
    /// Graceful shutdown.
    pub shutdown: Shutdown,
    /// Logging.
    pub log: Log,
    /// Overload detection and the mode machine.
    pub shedding: Shedding,
    /// Route table: which requests are primary, keep, or normal.
    pub routes: crate::classify::Routes,
    /// The apology page.
    pub apology: Apology,
    /// The admin listener.
    pub admin: Admin,
    /// Status endpoint, journal, webhooks.
    pub story: Story,
    /// Live reload.
    pub reload: Reload,
    /// The fleet's shared state (`None`: this instance is alone).
    pub fleet: Option<Fleet>,
}

/// Public listeners: plain HTTP (h1 and h2c) and/or HTTPS (h1 and h2 by ALPN).
#[derive(Debug, Clone)]
pub struct Listen {
    /// Plain-text address.
    pub http: Option<SocketAddr>,
    /// TLS address, with its certificate.
    pub https: Option<(SocketAddr, Tls)>,
    /// Accept queue length for both (the kernel caps it at somaxconn).
    pub backlog: u32,
}

/// A loaded TLS server configuration.
#[derive(Clone)]
pub struct Tls {
    /// Certificate chain path, for display and reload.
    pub cert_path: PathBuf,
    /// rustls configuration with ALPN `h2`, `http/1.1`.
    pub server_config: Arc<rustls::ServerConfig>,
    /// Time allowed for a TLS handshake, ClientHello to Finished, waiting
    /// for a handshake slot included.
    pub handshake_timeout: Duration,
    /// Handshakes past their ClientHello in progress at once (the
    /// cryptography); more wait for a slot. Read at start.
    pub max_handshakes: usize,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_handshakes", &self.max_handshakes)
            .finish_non_exhaustive()
    }
}

/// How the `Host` header reaches the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// Forward the client's `Host` (or h2 `:authority`) unchanged.
    Preserve,
    /// Use the origin URL's authority.
    Origin,
    /// Use this exact value.
    Fixed(http::HeaderValue),
}

/// The origin: one or several servers, and how lifeboat talks to them.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The servers requests are balanced over (at least one).
    pub servers: Vec<Server>,
    /// When failures take a server out of rotation.
    pub eject: Eject,
    /// The active health check, if configured.
    pub health: Option<HealthCheck>,
    /// TLS to `https://` servers (present when there is one).
    pub tls: Option<OriginTls>,
    /// How often servers given by host name are looked up again.
    pub resolve_every: Duration,
    /// Time allowed to establish a TCP connection to the origin.
    pub connect_timeout: Duration,
    /// Time allowed from sending the request until response headers arrive.
    pub ttfb_timeout: Duration,
    /// How long an idle pooled origin connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept to the origin.
    pub pool_max_idle: usize,
    /// Speak HTTP/2 (prior knowledge) to the origin instead of HTTP/1.1.
    pub http2: bool,
    /// Host header policy.
    pub host: HostHeader,
    /// Requests outstanding at each server at most, in every mode (learned
    /// per server, or pinned per server); the origin's capacity is their
    /// sum over the servers in rotation, and the rest wait in lifeboat's
    /// priority queue.
    pub max_inflight: OriginLimit,
    /// Of those, slots only the primary class may take (`None`: an eighth
    /// of the limit, at least one when the limit is learned).
    pub primary_reserved: Option<usize>,
    /// Requests waiting in lifeboat's queue at most.
    pub queue_max: usize,
    /// Longest wait in lifeboat's queue.
    pub queue_timeout: Duration,
}

/// How many requests the origin may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginLimit {
    /// Learned from the origin's time to first byte, within bounds.
    Auto {
        /// Never below.
        min: usize,
        /// Never above.
        max: usize,
        /// Where learning starts.
        initial: usize,
    },
    /// Pinned by the operator.
    Fixed(usize),
}

impl OriginLimit {
    /// The limit to apply before anything is learned.
    pub fn initial(self) -> usize {
        match self {
            OriginLimit::Auto { initial, .. } => initial,
            OriginLimit::Fixed(n) => n,
        }
    }
}

impl std::fmt::Display for OriginLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginLimit::Auto { min, max, .. } => write!(f, "learned ({min} to {max})"),
            OriginLimit::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// Limits on the public side. Defaults are those of a cautious edge proxy.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open client connections at most; beyond it lifeboat stops accepting.
    pub max_connections: usize,
    /// Time a client has to send a complete request head (slowloris guard).
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive connection is kept open.
    pub keepalive_timeout: Duration,
    /// Longest pause allowed inside a request or response body.
    pub body_idle_timeout: Duration,
    /// Largest request head accepted (431 beyond).
    pub max_header_size: usize,
    /// Most request header fields accepted (431 beyond).
    pub max_headers: usize,
    /// HTTP/2 streams a client may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// Slowest average rate a request body may arrive at once its grace is
    /// spent, in bytes per second (0: no minimum).
    pub body_min_rate: u64,
    /// Time a request body may take on top of one second per
    /// `body_min_rate` bytes.
    pub body_rate_grace: Duration,
    /// Longest silence (no byte either way) an upgraded tunnel may keep.
    pub tunnel_idle_timeout: Duration,
}

/// Proxy header behaviour.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Peers whose `X-Forwarded-*`/`Forwarded` headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Pseudonym used in the `Via` header.
    pub via: String,
    /// Tunnel WebSocket upgrades (`upgrades = ["websocket"]`); no other
    /// protocol can be tunnelled.
    pub websocket: bool,
}

impl Proxy {
    /// Whether `peer` is a proxy whose forwarding headers we trust.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct Log {
    /// `tracing` filter directive, e.g. `info` or `lifeboat=debug`.
    pub level: String,
    /// Text or JSON.
    pub format: LogFormat,
    /// One access-log line per request.
    pub access: bool,
    /// The file access lines are appended to (reopened on SIGUSR1, and
    /// when a reload names another file); `None`: stderr.
    pub access_path: Option<PathBuf>,
    /// The share of shed requests that get their own access line, in
    /// [0, 1]; below 1, the rest are counted in one summary line a second
    /// per shed reason.
    pub shed_sample: f64,
}

/// `[shedding] mode`: let lifeboat decide, or hold a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSetting {
    /// Decide from the signals.
    Auto,
    /// Always degraded.
    Degraded,
    /// Always normal.
    Normal,
}

/// When to clear the boards, and how to come back.
#[derive(Debug, Clone)]
pub struct Shedding {
    /// auto, or a forced mode.
    pub mode: ModeSetting,
    /// How often the signals are evaluated.
    pub tick: Duration,
    /// Seconds of history behind percentiles and rates.
    pub window_secs: usize,
    /// Observations needed before a percentile or rate counts.
    pub min_samples: u64,
    /// No mode is left sooner than this.
    pub min_dwell: Duration,
    /// The primary class's own cap on requests at the origin.
    pub primary_max_inflight: Option<usize>,
    /// In `auto` degraded mode (and for requests outside the ramp's share),
    /// the longest a non-primary request may expect to wait for an origin
    /// slot; one that would wait longer gets the apology at once.
    pub fill_wait: Duration,
    /// Decide everything, shed nothing: "would have shed" is counted and
    /// journaled, and every request is proxied.
    pub dry_run: bool,
    /// Overload apologies a client address may receive per 10 s before it
    /// gets a short `429` and its connection closed (`None`: no budget).
    pub client_budget: Option<u32>,
    /// Conditions to enter degraded mode.
    pub enter: Enter,
    /// Conditions to leave it.
    pub exit: Exit,
}

/// Enter conditions; any one, held for `after`, degrades. `None` = off.
#[derive(Debug, Clone)]
pub struct Enter {
    /// Requests inside lifeboat (queued or at the origin).
    pub inflight: Option<usize>,
    /// Origin time to first byte, p95.
    pub ttfb_p95: Option<Duration>,
    /// Share of failed origin exchanges.
    pub failure_rate: Option<f64>,
    /// Wait in lifeboat's origin queue, p95.
    pub queue_wait_p95: Option<Duration>,
    /// How long a condition must hold.
    pub after: Duration,
}

/// Exit conditions and the ramp back.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Exit levels as a fraction of the enter levels (hysteresis).
    pub fraction: f64,
    /// How long every signal must stay below its exit level.
    pub after: Duration,
    /// Duration of the re-admission ramp.
    pub ramp: Duration,
    /// Share of normal traffic admitted when the ramp starts.
    pub ramp_start: f64,
}

/// The apology page and its headers.
#[derive(Debug, Clone)]
pub struct Apology {
    /// The HTML template (placeholders `{{title}}`, `{{message}}`, …).
    pub template: String,
    /// Where the template came from, for messages.
    pub template_source: String,
    /// Page title / headline.
    pub title: String,
    /// The operator's message at start.
    pub message: String,
    /// The person signing the page.
    pub signed: String,
    /// Base `Retry-After`.
    pub retry_after: Duration,
    /// Random extra added to `Retry-After`, so clients do not return as a herd.
    pub retry_jitter: Duration,
    /// Link to the status endpoint.
    pub status_url: String,
}

/// The admin listener: metrics, health, mode, message, reload, config.
#[derive(Clone)]
pub struct Admin {
    /// Where it listens (`None`: off).
    pub listen: Option<SocketAddr>,
    /// Bearer token for mutating endpoints (required off loopback).
    pub token: Option<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Telling the story.
#[derive(Debug, Clone)]
pub struct Story {
    /// Public status endpoint path.
    pub status_path: String,
    /// How long the status page shows a recovered episode's summary.
    pub summary_for: Duration,
    /// Journal file (`None`: off).
    pub journal: Option<PathBuf>,
    /// Counters are journaled this often while not normal.
    pub counters_every: Duration,
    /// Webhook targets.
    pub webhooks: Vec<webhook::Target>,
}

/// Live reload.
#[derive(Debug, Clone)]
pub struct Reload {
    /// Watch the config file (and its directory) for changes.
    pub watch: bool,
    /// Wait this long after a change before reading the file.
    pub debounce: Duration,
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_str(&text, &path.display().to_string(), base)
}

/// Parses and validates config text. `name` is used in errors; relative
/// paths inside the file (certificates) are resolved against `base_dir`.
pub fn from_str(text: &str, name: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    validate::parse_and_validate(text, name, base_dir)
}

/// Digest of config file bytes (stable within a build; not cryptographic).
pub fn digest(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// A short human summary of a valid configuration, for `lifeboat check`.
pub fn summary(c: &Config) -> String {
    let mut s = String::new();
    if let Some(a) = c.listen.http {
        s += &format!("  listen http   {a} (HTTP/1.1, h2c)\n");
    }
    if let Some((a, tls)) = &c.listen.https {
        s += &format!(
            "  listen https  {a} (h2, HTTP/1.1; cert {})\n",
            tls.cert_path.display()
        );
    }
    let servers: Vec<String> = c.origin.servers.iter().map(Server::name).collect();
    s += &format!(
        "  origin        {} ({}; connect {:?}, ttfb {:?})\n",
        servers.join(", "),
        if c.origin.http2 { "h2" } else { "HTTP/1.1" },
        c.origin.connect_timeout,
        c.origin.ttfb_timeout
    );
    s += &format!(
        "  limits        {} connections, {} B head / {} headers, header read {:?}, idle {:?}\n",
        c.limits.max_connections,
        c.limits.max_header_size,
        c.limits.max_headers,
        c.limits.header_read_timeout,
        c.limits.keepalive_timeout
    );
    s += &format!(
        "  queue         {} per server at the origin, {} waiting at most for {:?}\n",
        c.origin.max_inflight, c.origin.queue_max, c.origin.queue_timeout
    );
    s += &format!("  shedding      mode {:?}\n", c.shedding.mode);
    for r in &c.routes.0 {
        s += &format!(
            "  route         {} {} -> {}\n",
            r.name,
            r.pattern.as_str(),
            r.class.as_str()
        );
    }
    s
}
