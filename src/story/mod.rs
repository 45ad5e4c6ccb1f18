//! Telling the story: what happened, when, and what was done about it.
//!
//! - [`Event`]: the things worth remembering (mode changes with their
//!   signals, overrides, messages, reloads, periodic counters);
//! - [`EventSink`]: where they go. A bounded channel to one background task
//!   that appends them to the journal and posts them to webhooks, so the hot
//!   path and the ticker never block on disk or network; when the channel is
//!   full, the event is dropped and counted, never waited for;
//! - [`journal`]: the append-only JSON-lines file;
//! - [`report`]: `lifeboat story`, a journal turned into an incident report;
//! - [`status`]: the public status endpoint, rendered once a second;
//! - [`webhook`]: POSTs on mode changes and overrides.

pub mod history;
pub mod journal;
pub mod report;
pub mod status;
mod status_page;
pub mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Events waiting to be written, at most: a burst of reloads or overrides
/// fits; a stuck disk does not grow memory.
const QUEUE: usize = 1024;

/// Something that happened, as written to the journal (one JSON object per
/// line, `{"at": ..., "event": "...", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When, RFC 3339.
    pub at: String,
    /// Which instance of a fleet wrote it (absent when alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What.
    #[serde(flatten)]
    pub event: Event,
}

/// The events lifeboat journals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The process started.
    Started {
        /// lifeboat version.
        version: String,
        /// Config file.
        config: String,
    },
    /// The process is stopping.
    Stopped,
    /// The mode changed.
    ModeChanged {
        /// Mode before.
        from: String,
        /// Mode after.
        to: String,
        /// The condition that caused it.
        cause: String,
        /// Requests inside lifeboat.
        inflight: usize,
        /// Origin TTFB p95, ms.
        ttfb_p95_ms: Option<u64>,
        /// Origin failure rate.
        failure_rate: Option<f64>,
        /// Queue wait p95, ms.
        queue_wait_p95_ms: Option<u64>,
        /// The origin's limit (learned or pinned) at that moment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin_limit: Option<usize>,
    },
    /// An operator forced a mode.
    OverrideSet {
        /// The forced mode, or "auto".
        mode: String,
        /// How long, if limited.
        ttl: Option<String>,
        /// Why, in the operator's words.
        reason: String,
    },
    /// An override ran out.
    OverrideExpired {
        /// The mode that had been forced.
        mode: String,
    },
    /// The operator's message changed.
    Message {
        /// The new text ("" clears it).
        text: String,
        /// Where the incident stands: investigating, identified,
        /// monitoring or resolved (Statuspage's stages), if said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
        /// Who signs it (default: the apology page's signature).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed: Option<String>,
    },
    /// A new configuration was accepted.
    ReloadAccepted {
        /// Its generation number.
        generation: u64,
        /// What triggered it (sighup, file, admin).
        trigger: String,
    },
    /// A configuration was rejected; the running one stays.
    ReloadRejected {
        /// The error, with file:line:column.
        error: String,
        /// What triggered it.
        trigger: String,
    },
    /// Periodic counters while not normal (and once when back to normal).
    Counters {
        /// Current mode.
        mode: String,
        /// Seconds covered.
        seconds: f64,
        /// Primary requests answered by the origin.
        primary_served: u64,
        /// Keep requests answered by the origin.
        keep_served: u64,
        /// Normal requests answered by the origin.
        normal_served: u64,
        /// Requests given the apology, by reason.
        shed: std::collections::BTreeMap<String, u64>,
        /// Peak requests inside lifeboat in the period.
        peak_inflight: usize,
        /// Origin TTFB p95 at the end of the period, ms.
        ttfb_p95_ms: Option<u64>,
        /// The origin's limit (learned or pinned) at the end of the period.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin_limit: Option<usize>,
        /// Dry run: requests that would have been given the apology, by
        /// reason (every one was proxied).
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        would_shed: std::collections::BTreeMap<String, u64>,
    },
}

impl Record {
    /// An event stamped with the current time.
    pub fn now(event: Event) -> Self {
        Record {
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            instance: None,
            event,
        }
    }
}

/// Somewhere else the journal writer hands every record once it is
/// written (the fleet's Redis stream); it must not wait.
pub trait Tee: Send + Sync {
    /// Takes one record.
    fn record(&self, record: &Record);
}

/// Where events go: a bounded queue to the writer task.
pub struct EventSink {
    /// The last day of events, in memory, for the status page.
    pub history: history::History,
    tx: mpsc::Sender<Record>,
    dropped: AtomicU64,
    sent: AtomicU64,
    /// Records the writer has finished with (written or failed).
    pub done: std::sync::Arc<AtomicU64>,
    /// Stamped on every record: the instance's id in a fleet.
    instance: Option<String>,
}

impl EventSink {
    /// A sink and the receiving end for the writer task; records are
    /// stamped with `instance` (a fleet member's id).
    pub fn new(instance: Option<String>) -> (Self, mpsc::Receiver<Record>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let sink = EventSink {
            history: history::History::default(),
            tx,
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            done: Default::default(),
            instance,
        };
        (sink, rx)
    }

    /// Queues an event; never waits. A full queue drops it (and counts it).
    pub fn emit(&self, event: Event) {
        let mut record = Record::now(event);
        record.instance.clone_from(&self.instance);
        self.history.push(record.clone());
        if self.tx.try_send(record).is_ok() {
            self.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("lifeboat_journal_dropped_total").increment(1);
        }
    }

    /// Waits (up to `limit`) until the writer has handled every queued event.
    pub async fn flush(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.done.load(Ordering::Relaxed) < self.sent.load(Ordering::Relaxed)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Events dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
