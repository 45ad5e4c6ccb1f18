//! Lines the access log could not keep: counted where they are dropped
//! (`lifeboat_access_log_dropped_total`, by reason), and told by a watcher
//! thread of its own at most every [`WARN_EVERY`]. Not by the writer: the
//! writer may be the thing that is stuck, in a `write` to a stalled pipe,
//! and a stall is exactly when the operator needs to hear about it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::Inner;

/// A destination that keeps failing would otherwise warn every second;
/// once per 10 s says it as clearly, with the totals.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How often the watcher looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Why a line was dropped, as the metric's `reason` label says it.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    /// The buffers were full: the destination is slower than the traffic.
    Buffer = 0,
    /// The destination refused the write (a full disk, a closed pipe).
    Write = 1,
}

const REASONS: [&str; 2] = ["buffer", "write"];

/// Drop counts not yet warned about, the last write error, and the
/// metric's handles.
#[derive(Debug, Default)]
pub struct Drops {
    unreported: [AtomicU64; 2],
    error: Mutex<Option<String>>,
    /// The destination, as the warning names it (the writer keeps it
    /// current across reopens).
    destination: Mutex<String>,
    counters: OnceLock<[metrics::Counter; 2]>,
}

impl Drops {
    /// Counts `lines` dropped for `reason`: two relaxed atomic adds.
    pub fn count(&self, reason: Reason, lines: u64) {
        self.unreported[reason as usize].fetch_add(lines, Relaxed);
        if let Some(c) = self.counters.get() {
            c[reason as usize].increment(lines);
        }
    }

    /// Counts a failed write of `lines`, keeping its error for the warning.
    pub fn write_failed(&self, lines: u64, error: &std::io::Error) {
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
        self.count(Reason::Write, lines);
    }

    /// Names the destination in the warnings to come.
    pub fn name_destination(&self, dest: &impl std::fmt::Display) {
        *self
            .destination
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = dest.to_string();
    }

    /// Takes the metric's handles from the installed recorder; each reason
    /// shows on `/metrics` from then on, at zero until something drops.
    pub fn register_metrics(&self) {
        self.counters.get_or_init(|| {
            REASONS.map(|r| {
                let c = metrics::counter!("lifeboat_access_log_dropped_total", "reason" => r);
                c.increment(0);
                c
            })
        });
    }

    /// Warns of what was dropped since the last warning, if anything.
    fn warn(&self) -> bool {
        let [buffer, write] = &self.unreported;
        let (buffer_full, write_failed) = (buffer.swap(0, Relaxed), write.swap(0, Relaxed));
        if buffer_full + write_failed == 0 {
            return false;
        }
        let error = self
            .error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let destination = self
            .destination
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tracing::warn!(
            buffer_full,
            write_failed,
            error,
            destination,
            "access log lines dropped: the destination is slower than the traffic or refuses writes (no request waited)"
        );
        true
    }
}

/// The watcher: looks every second, warns at most every [`WARN_EVERY`],
/// and ends with the log.
pub fn watch(inner: Weak<Inner>) {
    let mut warned: Option<Instant> = None;
    loop {
        std::thread::sleep(LOOK_EVERY);
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        if warned.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            continue;
        }
        if inner.drops.warn() {
            warned = Some(now);
        }
    }
}
