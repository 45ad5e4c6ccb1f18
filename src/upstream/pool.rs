//! The origin's servers: each one's live state, which of them a request
//! goes to, and which of them are in rotation.
//!
//! - [`Server`]: one server's in-flight count, its learner, its health and
//!   its counters. It outlives config versions: the [`Registry`] hands the
//!   same `Server` to every version that names it, so a reload neither
//!   forgets what was learned nor loses count of what is in flight, and a
//!   server a reload removes lives on until its last request ends;
//! - [`Pool`]: the servers of one config version. [`Pool::pick`] is the
//!   power of two choices (Mitzenmacher; Envoy's and Finagle's least
//!   request): two servers in rotation drawn at random in proportion to
//!   their weights, the one with room under its own limit and the fewer
//!   requests per unit of weight wins (the first drawn on a tie).
//!   It needs no lock and no shared counter beyond the servers' own;
//! - [`ServerSlot`]: a request counted at its server until its response
//!   body ends.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::outlier::{Health, State};
use crate::admission::Count;
use crate::admission::{ServerLearn, ServerStep};
use crate::config::{self, Config};

/// One origin server's live state.
pub struct Server {
    /// `scheme://host:port`.
    pub name: String,
    /// How to reach it.
    pub config: config::Server,
    weight: AtomicU32,
    inflight: Arc<AtomicUsize>,
    /// Of those, answered and still sending their body (or tunnelled).
    streaming: Arc<AtomicUsize>,
    peak: AtomicUsize,
    /// Its learned (or pinned) limit and its samples.
    pub learn: ServerLearn,
    /// Passive and active health.
    pub health: Health,
    /// Requests sent to it (health checks apart).
    pub requests: AtomicU64,
    /// Of those, failed (connect, timeout, broken, 5xx).
    pub failures: AtomicU64,
    /// Its addresses, when it is given by name.
    pub addresses: super::resolve::Addresses,
}

impl Server {
    fn new(server: &config::Server, config: &Config) -> Self {
        Server {
            name: server.name(),
            config: server.clone(),
            weight: AtomicU32::new(server.weight),
            inflight: Arc::default(),
            streaming: Arc::default(),
            peak: AtomicUsize::new(0),
            learn: ServerLearn::new(config),
            health: Health::default(),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            addresses: Default::default(),
        }
    }

    /// Requests at it now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Relaxed)
    }

    /// Of those, answered and still sending their body: transfers, not
    /// requests it is still working out an answer to.
    pub fn streaming(&self) -> usize {
        self.streaming.load(Relaxed)
    }

    /// Its weight.
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }
}

/// A request counted at its server; released when dropped.
pub struct ServerSlot {
    server: Arc<Server>,
    count: Count,
    depth: usize,
}

impl ServerSlot {
    /// Counts a request in at `server`.
    pub fn new(server: &Arc<Server>) -> Self {
        let (count, depth) = Count::enter(&server.inflight);
        server.peak.fetch_max(depth, Relaxed);
        ServerSlot {
            server: server.clone(),
            count,
            depth,
        }
    }

    /// Counts the request as a transfer at its server: answered, its body
    /// still coming (or a tunnel). Held as long as the origin sends.
    pub fn transfer(&self) -> Count {
        Count::enter(&self.server.streaming).0
    }

    /// The count alone, for the request to hold until it ends (once the
    /// answer has taught the learner what it may).
    pub fn into_count(self) -> Count {
        self.count
    }

    /// Requests at the server when this one was sent, itself included.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The server.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// What the server's learner takes from an answer. Only 2xx answers to
    /// requests without a body teach it what a request costs: a burst of
    /// fast 404s says nothing about pages, and an upload's time to first
    /// byte is its sender's speed as much as the server's.
    pub fn learn_from(
        &self,
        class: crate::classify::RouteClass,
        ttfb: std::time::Duration,
        status: http::StatusCode,
        has_body: bool,
    ) {
        if status.is_success() && !has_body {
            self.server.learn.samples.record(class, ttfb, self.depth);
        }
    }
}

/// Every server some config version named, by name: what a new version
/// takes its servers from.
pub struct Registry {
    known: Mutex<Vec<Arc<Server>>>,
    clock: Instant,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            known: Mutex::default(),
            clock: Instant::now(),
        }
    }
}

impl Registry {
    /// The clock ejection times are counted on (one for the process).
    pub fn clock(&self) -> Instant {
        self.clock
    }

    /// The servers of `config`, the ones already known reused (their
    /// weight and bounds updated), the others new. Servers no longer named
    /// are forgotten here; requests still at them keep them alive.
    pub fn servers(&self, config: &Config) -> Vec<Arc<Server>> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let servers: Vec<Arc<Server>> = config
            .origin
            .servers
            .iter()
            .map(|s| match known.iter().find(|k| k.name == s.name()) {
                Some(k) => {
                    k.weight.store(s.weight, Relaxed);
                    k.learn.reconfigure(config);
                    k.clone()
                }
                None => Arc::new(Server::new(s, config)),
            })
            .collect();
        *known = servers.clone();
        servers
    }
}

/// The servers of one config version.
pub struct Pool {
    servers: Vec<Arc<Server>>,
    eject: config::Eject,
    checked: bool,
    clock: Instant,
    /// Held while deciding an ejection, so two servers failing at once
    /// cannot both leave, emptying the rotation.
    ejecting: Mutex<()>,
}

impl Pool {
    /// The pool for `config`, its servers from `registry`.
    pub fn new(config: &Config, registry: &Registry, clock: Instant) -> Self {
        Pool {
            servers: registry.servers(config),
            eject: config.origin.eject,
            checked: config.origin.health.is_some(),
            clock,
            ejecting: Mutex::new(()),
        }
    }

    /// The servers.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// Milliseconds on the pool's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Whether a health check decides when ejected servers come back.
    pub fn checked(&self) -> bool {
        self.checked
    }

    /// A server's health now.
    pub fn state(&self, server: &Server) -> State {
        server.health.state(self.now_ms(), self.checked)
    }

    /// The server for a new request: the less loaded of two in rotation
    /// drawn at random, other than `not` (a retry's first server). `None`
    /// only when no other server is in rotation.
    pub fn pick(&self, not: Option<&Arc<Server>>) -> Option<&Arc<Server>> {
        if let ([only], None) = (self.servers.as_slice(), not) {
            return Some(only);
        }
        let any_out = self.servers.iter().any(|s| s.health.ejected_flag());
        let now = if any_out { self.now_ms() } else { 0 };
        let eligible = |s: &&Arc<Server>| {
            not.is_none_or(|n| !Arc::ptr_eq(n, s))
                && (!any_out || s.health.in_rotation(now, self.checked))
        };
        // Two drawn with probability in proportion to their weights, the
        // second among the others: when both are equally loaded (an idle
        // site: both at zero) the first drawn wins, so weights hold at low
        // load as well as under it.
        let draw = |skip: Option<&Arc<Server>>| {
            let candidates = || {
                self.servers
                    .iter()
                    .filter(eligible)
                    .filter(move |s| skip.is_none_or(|k| !Arc::ptr_eq(k, s)))
            };
            let total: u64 = candidates().map(|s| u64::from(s.weight())).sum();
            let mut at = fastrand::u64(..total.max(1));
            candidates().find(|s| {
                let w = u64::from(s.weight());
                let here = at < w;
                at = at.saturating_sub(w);
                here
            })
        };
        let a = draw(None)?;
        match draw(Some(a)) {
            Some(b) if lighter(b, a) => Some(b),
            _ => Some(a),
        }
    }

    /// Records a request's outcome at `server`; a failure may eject it
    /// (never the last server in rotation).
    pub fn outcome(&self, server: &Server, ok: bool) {
        if ok {
            server.health.succeeded();
            return;
        }
        server.failures.fetch_add(1, Relaxed);
        let now = self.now_ms();
        if server.health.failed(&self.eject, now, self.checked) {
            self.eject(server, now, true, "failures in a row");
        }
    }

    /// Takes `server` out of rotation unless it is the last one in it.
    pub fn eject(&self, server: &Server, now: u64, passive: bool, why: &str) {
        let _one_at_a_time = self.ejecting.lock().unwrap_or_else(|p| p.into_inner());
        if !server.health.in_rotation(now, self.checked) {
            return;
        }
        let others = self
            .servers
            .iter()
            .filter(|s| !std::ptr::eq(s.as_ref(), server))
            .filter(|s| s.health.in_rotation(now, self.checked))
            .count();
        if others == 0 {
            // Debug only: every failed request already logs a warning, and
            // this would repeat it at every failure of an outage.
            tracing::debug!(
                server = %server.name,
                why,
                "origin server failing, but it is the last one in rotation: kept"
            );
            return;
        }
        let length = server.health.eject(&self.eject, now, passive);
        tracing::warn!(
            server = %server.name,
            why,
            at_least = ?length,
            until_checks_pass = self.checked,
            "origin server ejected"
        );
    }

    /// What the learner needs of each server.
    pub fn steps(&self) -> Vec<ServerStep<'_>> {
        let now = self.now_ms();
        self.servers
            .iter()
            .map(|s| ServerStep {
                learn: &s.learn,
                peak: s.peak.swap(s.inflight(), Relaxed),
                at_origin: s.inflight(),
                streaming: s.streaming(),
                in_rotation: s.health.in_rotation(now, self.checked),
            })
            .collect()
    }
}

/// One server as `GET /mode` and the metrics show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerReport {
    /// `scheme://host:port`.
    pub server: String,
    /// `in-rotation` or `ejected`.
    pub state: &'static str,
    /// For an ejected server: how long until it may come back (ms).
    pub back_in_ms: Option<u64>,
    /// Its weight.
    pub weight: u32,
    /// Requests at it now.
    pub inflight: usize,
    /// Its limit in force (learned or pinned).
    pub limit: usize,
    /// Requests sent to it since start.
    pub requests: u64,
    /// Of those, failed.
    pub failures: u64,
    /// Ejections since start.
    pub ejections: u64,
    /// Its addresses as last looked up (a server given by name).
    pub addresses: Vec<String>,
}

impl Pool {
    /// Every server's state and counters.
    pub fn report(&self) -> Vec<ServerReport> {
        self.servers
            .iter()
            .map(|s| {
                let (state, back_in_ms) = match self.state(s) {
                    State::InRotation => ("in-rotation", None),
                    State::Ejected(left) => ("ejected", Some(left.as_millis() as u64)),
                };
                ServerReport {
                    server: s.name.clone(),
                    state,
                    back_in_ms,
                    weight: s.weight(),
                    inflight: s.inflight(),
                    limit: s.learn.limit(),
                    requests: s.requests.load(Relaxed),
                    failures: s.failures.load(Relaxed),
                    ejections: s.health.ejections(),
                    addresses: s
                        .addresses
                        .list()
                        .iter()
                        .map(|a| a.ip().to_string())
                        .collect(),
                }
            })
            .collect()
    }
}

/// Whether `a` should take the next request rather than `b`: room under
/// its own limit first, then strictly fewer requests per unit of weight.
fn lighter(a: &Server, b: &Server) -> bool {
    let room = |s: &Server| s.inflight() < s.learn.limit();
    match (room(a), room(b)) {
        (true, false) => true,
        (false, true) => false,
        _ => {
            (a.inflight() as u64) * u64::from(b.weight())
                < (b.inflight() as u64) * u64::from(a.weight())
        }
    }
}
