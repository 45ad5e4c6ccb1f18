//! The access log: one line per request, written when the response body
//! has finished (so it carries the bytes really sent and the whole duration
//! of a download), on target `lifeboat::access`.
//!
//! An [`Exchange`] is created when the request arrives and travels inside
//! the response body. Dropping it (client went away) also writes the line,
//! marked as aborted, and releases the connection's activity count.
//!
//! The line does not go through `tracing`'s per-event machinery, nor a
//! `write` of its own: it is formatted into a shard's buffer
//! (`buffer.rs`, formats in `line.rs`), and [`AccessLog`]'s thread
//! (`writer.rs`) writes the buffers every 100 ms, to stderr or to
//! `[log] access_path`, reopened on SIGUSR1. A request never waits for
//! the log: when the buffers are full, its line is dropped and counted.
//!
//! The lines keep `tracing`'s rules: they exist when `[log] access` is on
//! *and* the log filter lets `lifeboat::access` through at `info` (so
//! `level = "warn"` or `RUST_LOG=info,lifeboat::access=off` silences
//! them, as before). With `[log] shed_sample` below 1, only that share of
//! shed requests get a line; all of them are counted in one summary line a
//! second per shed reason.

mod buffer;
mod drops;
pub mod line;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use http::{Method, StatusCode, Uri, Version};
use tokio::sync::oneshot;

use crate::admission::Held;
use crate::admission::ShedReason;
use crate::classify::RouteClass;
use crate::config::{Log, LogFormat};
use crate::conn::ActivityGuard;
use crate::conn::BodyError;

use buffer::{Buffers, Pushed};
use drops::{Drops, Reason};
use line::End;
use writer::{Destination, Writer};

/// Lines waiting for the writer, at most: half a second of a 40,000
/// requests-a-second stampede at about 200 bytes a line, enough to ride out
/// a disk's hiccup. Past it, lines are dropped and counted. The memory the
/// log can take is about twice this (the buffers being filled, and those
/// being written).
const BUFFER_CAP: usize = 4 << 20;

/// The access log of one lifeboat: cheap to clone (one `Arc`), shared by
/// every connection; its writer thread ends when the last clone is gone.
#[derive(Clone)]
pub struct AccessLog(Arc<Inner>);

/// What the request side and the writer share.
pub(crate) struct Inner {
    buffers: Buffers,
    drops: Drops,
    format: LogFormat,
    /// SIGUSR1 arrived: reopen the file.
    reopen: AtomicBool,
    /// Waiting for the next pass to have written everything.
    flushes: Mutex<Vec<oneshot::Sender<()>>>,
    /// The writer thread, to wake it.
    writer: OnceLock<Thread>,
}

impl Inner {
    fn flushes(&self) -> MutexGuard<'_, Vec<oneshot::Sender<()>>> {
        self.flushes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
}

impl AccessLog {
    /// Opens the destination (`log.access_path`, or stderr) and starts
    /// the writer thread. `follow` says where the live configuration wants
    /// the lines (asked once a second: a reload may name another file).
    /// Fails only if the file cannot be opened.
    pub fn start(
        log: &Log,
        follow: impl Fn() -> Option<PathBuf> + Send + 'static,
    ) -> std::io::Result<Self> {
        let dest = Destination::open(log.access_path.as_deref()).map_err(|e| {
            let path = log
                .access_path
                .as_deref()
                .unwrap_or(std::path::Path::new(""));
            std::io::Error::new(
                e.kind(),
                format!("cannot open the access log {}: {e}", path.display()),
            )
        })?;
        let inner = Arc::new(Inner {
            buffers: Buffers::new(BUFFER_CAP),
            drops: Drops::default(),
            format: log.format,
            reopen: AtomicBool::new(false),
            flushes: Mutex::new(Vec::new()),
            writer: OnceLock::new(),
        });
        inner.drops.name_destination(&dest);
        let writer = Writer::new(Arc::downgrade(&inner), dest, Box::new(follow));
        let thread = std::thread::Builder::new()
            .name("lifeboat-access-log".into())
            .spawn(move || writer.run())?;
        let _ = inner.writer.set(thread.thread().clone());
        let watched = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("lifeboat-access-watch".into())
            .spawn(move || drops::watch(watched))?;
        Ok(AccessLog(inner))
    }

    /// Whether a request arriving now gets a line: `[log] access` and the
    /// log filter both let `lifeboat::access` through.
    pub fn enabled(log: &Log) -> bool {
        log.access && tracing::enabled!(target: "lifeboat::access", tracing::Level::INFO)
    }

    /// Reopens the file (after a rotation); the writer does it on its
    /// next pass, which this wakes.
    pub fn reopen(&self) {
        self.0.reopen.store(true, Relaxed);
        self.0.wake();
    }

    /// Writes everything logged so far; false if the destination did not
    /// take it within `limit` (it is stalled).
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, written) = oneshot::channel();
        self.0.flushes().push(done);
        self.0.wake();
        tokio::time::timeout(limit, written).await.is_ok()
    }

    /// Registers `lifeboat_access_log_dropped_total` (call once the
    /// metrics recorder is installed): it shows at zero from then on.
    pub fn register_metrics(&self) {
        self.0.drops.register_metrics();
    }

    fn push(&self, line: impl FnOnce(&mut Vec<u8>, &line::Stamp)) {
        match self.0.buffers.push(line) {
            Pushed::Kept => {}
            Pushed::HalfFull => self.0.wake(),
            Pushed::Dropped => self.0.drops.count(Reason::Buffer, 1),
        }
    }
}

/// SIGUSR1, registered as soon as the listeners are bound: its default
/// action kills the process, and logrotate may send it at any time.
pub struct Reopen(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Reopen {
    /// Registers the handler now (must run inside the runtime).
    pub fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Reopen(signal(SignalKind::user_defined1()).ok())
        }
        #[cfg(not(unix))]
        Reopen()
    }

    /// Reopens `log` on every SIGUSR1, until the process ends.
    pub async fn run(self, log: AccessLog) {
        #[cfg(unix)]
        if let Some(mut usr1) = self.0 {
            while usr1.recv().await.is_some() {
                log.reopen();
            }
        }
        #[cfg(not(unix))]
        let _ = log;
    }
}

/// One request's record, from arrival to the end of its response body.
pub struct Exchange {
    started: Instant,
    method: Method,
    uri: Uri,
    version: Version,
    peer: SocketAddr,
    status: StatusCode,
    bytes: u64,
    /// Where its line goes, if it gets one.
    log: Option<AccessLog>,
    /// `[log] shed_sample` of the request's config version.
    shed_sample: f64,
    finished: bool,
    class: Option<RouteClass>,
    shed: Option<ShedReason>,
    /// Slots and counts held until the response body ends.
    held: Held,
    _activity: ActivityGuard,
}

impl Exchange {
    /// Starts the record for a request that just arrived; it gets a line
    /// in `access` if `config` says so.
    pub fn begin<B>(
        req: &http::Request<B>,
        peer: SocketAddr,
        config: &Log,
        access: &AccessLog,
        activity: ActivityGuard,
    ) -> Self {
        Exchange {
            started: Instant::now(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            peer,
            status: StatusCode::OK,
            bytes: 0,
            log: AccessLog::enabled(config).then(|| access.clone()),
            shed_sample: config.shed_sample,
            finished: false,
            class: None,
            shed: None,
            held: Held::default(),
            _activity: activity,
        }
    }

    /// Records the response status (before the body starts).
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// Records the route class.
    pub fn set_class(&mut self, class: RouteClass) {
        self.class = Some(class);
    }

    /// Records that the request got the apology, and why.
    pub fn set_shed(&mut self, reason: ShedReason) {
        self.shed = Some(reason);
    }

    /// Keeps the request's slots until the response body ends.
    pub fn hold(&mut self, held: Held) {
        self.held = held;
    }

    /// Hands the request's slots over to what outlives its response (an
    /// upgraded tunnel).
    pub fn take_held(&mut self) -> Held {
        std::mem::take(&mut self.held)
    }

    pub(crate) fn add_bytes(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// Completes the record: the body ended, failed (`error`), or was dropped.
    pub fn finish(mut self, error: Option<&BodyError>) {
        self.emit(error.map_or(End::Complete, End::Failed));
        self.finished = true;
    }

    fn emit(&self, end: End<'_>) {
        let Some(log) = &self.log else { return };
        if let Some(reason) = self.shed
            && self.shed_sample < 1.0
        {
            let logged = fastrand::f64() < self.shed_sample;
            // A request is classified before it can be shed.
            let class = self.class.unwrap_or(RouteClass::Normal);
            log.0.buffers.shed.record(reason, class, logged);
            if !logged {
                return;
            }
        }
        let line = line::Request {
            method: &self.method,
            path: self.uri.path(),
            version: self.version,
            status: self.status.as_u16(),
            bytes: self.bytes,
            duration_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            peer: self.peer,
            class: self.class,
            shed: self.shed,
            end,
        };
        let format = log.0.format;
        log.push(|out, ts| line::request(out, format, ts, &line));
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.finished {
            self.emit(End::Aborted);
        }
    }
}
