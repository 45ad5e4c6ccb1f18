//! The live state shared by every connection.
//!
//! - the current configuration version together with everything built from
//!   it (the origin pool), swapped as one unit through `ArcSwap`: a request
//!   loads one [`Runtime`] and keeps it to the end;
//! - the admission state (signals, mode, queues), which lives for the whole
//!   process and carries over reloads;
//! - the pre-rendered apology pages, re-rendered when the mode, the message
//!   or the config changes, never per request; the status pages, rendered
//!   once a second;
//! - the operator's controls (override with TTL, message), which survive
//!   reloads, and the event sink that journals what happens.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::admission::{Admission, Mode};
use crate::apology::{Context, Pages};
use crate::config::Config;
use crate::story::journal;
use crate::story::status::{Inputs, Numbers, Status, StatusPages};
use crate::story::{Event, EventSink, Record};
use crate::upstream::{Registry, Upstream};

/// An operator's forced mode.
#[derive(Debug, Clone)]
pub struct Override {
    /// The mode held.
    pub mode: Mode,
    /// When it lapses (`None`: until lifted).
    pub until: Option<Instant>,
    /// The operator's reason.
    pub reason: String,
}

/// Admin connections open at once, at most. An operator, a Prometheus
/// scraper or two and the orchestrator's probes need a handful; each
/// connection is a file descriptor the data plane may need (400 silent
/// admin connections under a 300-fd limit made public downloads fail).
pub const ADMIN_CONNECTIONS: usize = 32;

/// What a reload changed that only a restart applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsRestart(pub Vec<String>);

/// One configuration version and what was built from it.
pub struct Runtime {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The origin client for this version.
    pub upstream: Upstream,
}

impl Runtime {
    /// Builds everything a config version needs, its origin servers taken
    /// from `servers` (so they carry over from the last version).
    pub fn new(config: Config, servers: &Registry) -> Self {
        let upstream = Upstream::new(&config, servers, servers.clock());
        Runtime {
            config: Arc::new(config),
            upstream,
        }
    }
}

/// State shared by all connections for the life of the process.
pub struct Shared {
    current: ArcSwap<Runtime>,
    /// Signals, mode and queues.
    pub admission: Admission,
    pages: ArcSwap<Pages>,
    status: ArcSwap<StatusPages>,
    message: Mutex<(String, SystemTime)>,
    overridden: Mutex<Option<Override>>,
    generation: AtomicU64,
    /// Where events go (journal, webhooks).
    pub events: EventSink,
    events_rx: Mutex<Option<mpsc::Receiver<Record>>>,
    /// The config file, for reloads (`None`: inline config, no reload).
    pub config_path: Option<PathBuf>,
    /// TLS handshake slots (`listen.tls.max_handshakes`, fixed at start).
    pub handshakes: Arc<tokio::sync::Semaphore>,
    /// Upgraded tunnels open now (each also holds its request's slots).
    pub tunnels: crate::upstream::tunnel::Open,
    /// Admin connections open at once ([`ADMIN_CONNECTIONS`]).
    pub admin_slots: Arc<tokio::sync::Semaphore>,
    /// The dashboard's last minutes, a point a second.
    pub live: crate::dashboard::Live,
    /// This instance's end of the fleet (`[fleet]`; fixed at start).
    pub fleet: Option<Arc<crate::fleet::Link>>,
    /// The origin's servers, across config versions.
    pub servers: Registry,
    /// Where responses read ahead of their visitors spill (the path is
    /// fixed at start).
    pub spool: Arc<crate::spool::Dir>,
}

impl Shared {
    /// Shared state starting from `config` (read from `config_path`, if any).
    pub fn new(config: Config, config_path: Option<PathBuf>) -> Arc<Self> {
        let admission = Admission::new(&config);
        let message = config.apology.message.clone();
        let pages = render_pages(&config, admission.since(), &message);
        let capacity = admission.capacity();
        let fleet = config
            .fleet
            .as_ref()
            .map(|f| Arc::new(crate::fleet::Link::new(&f.instance)));
        let (events, rx) = EventSink::new(fleet.as_ref().map(|l| l.instance.clone()));
        // The status page's updates, timeline and history survive a
        // restart: they are in the journal.
        if let Some(path) = config.story.journal.as_deref() {
            events
                .history
                .seed(journal::read_recent(path), SystemTime::now());
        }
        let status = Status::build(Inputs {
            mode: admission.view().mode.as_str(),
            since: admission.since(),
            message: None,
            numbers: Numbers {
                origin_limit: capacity.limit,
                origin_limit_learned: capacity.learned,
                ..Numbers::default()
            },
            records: &events.history.snapshot(),
            signed: &config.apology.signed,
            now: SystemTime::now(),
            summary_for: config.story.summary_for,
        })
        .render();
        let handshakes = config
            .listen
            .https
            .as_ref()
            .map_or(1, |(_, tls)| tls.max_handshakes);
        let servers = Registry::default();
        let spool = crate::spool::Dir::open(&config.buffering.path);
        Arc::new(Shared {
            spool,
            current: ArcSwap::from_pointee(Runtime::new(config, &servers)),
            servers,
            handshakes: Arc::new(tokio::sync::Semaphore::new(handshakes)),
            tunnels: Default::default(),
            admin_slots: Arc::new(tokio::sync::Semaphore::new(ADMIN_CONNECTIONS)),
            live: Default::default(),
            fleet,
            admission,
            pages: ArcSwap::from_pointee(pages),
            status: ArcSwap::from_pointee(status),
            message: Mutex::new((message, SystemTime::now())),
            overridden: Mutex::new(None),
            generation: AtomicU64::new(1),
            events,
            events_rx: Mutex::new(Some(rx)),
            config_path,
        })
    }

    /// The receiving end of the event sink, for the writer task (once).
    pub fn take_events(&self) -> Option<mpsc::Receiver<Record>> {
        self.events_rx.lock().ok()?.take()
    }

    /// The current version, held for as long as the caller needs it.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// The apology pages as they are now.
    pub fn pages(&self) -> Arc<Pages> {
        self.pages.load_full()
    }

    /// The operator's message.
    pub fn message(&self) -> String {
        self.message.lock().map(|m| m.0.clone()).unwrap_or_default()
    }

    /// The operator's message and when it was set.
    pub fn message_with_time(&self) -> (String, SystemTime) {
        self.message
            .lock()
            .map(|m| m.clone())
            .unwrap_or((String::new(), SystemTime::UNIX_EPOCH))
    }

    /// Sets the operator's message: on the apology page at once, journaled.
    pub fn set_message(&self, text: &str) {
        self.post_update(text, None, None);
    }

    /// Sets the operator's message as an incident update, with its stage
    /// (investigating, identified, monitoring, resolved) and signature:
    /// on the apology page at once, journaled, listed on the status page.
    pub fn post_update(&self, text: &str, stage: Option<&str>, signed: Option<&str>) {
        if let Ok(mut m) = self.message.lock() {
            *m = (text.to_string(), SystemTime::now());
        }
        self.rerender_pages();
        let signed = signed.map_or_else(
            || self.runtime().config.apology.signed.clone(),
            str::to_string,
        );
        self.events.emit(Event::Message {
            text: text.to_string(),
            stage: stage.map(str::to_string),
            signed: Some(signed),
        });
    }

    /// The current override, if any.
    pub fn override_mode(&self) -> Option<Override> {
        self.overridden.lock().ok()?.clone()
    }

    /// Sets (`Some`) or lifts (`None`) the operator's override; the ticker
    /// applies it (at once through `control::set_override`).
    pub fn set_override(&self, o: Option<Override>, ttl_text: Option<String>) {
        let event = match &o {
            Some(o) => Event::OverrideSet {
                mode: o.mode.as_str().into(),
                ttl: ttl_text,
                reason: o.reason.clone(),
            },
            None => Event::OverrideSet {
                mode: "auto".into(),
                ttl: None,
                reason: "override lifted".into(),
            },
        };
        if let Ok(mut cur) = self.overridden.lock() {
            *cur = o;
        }
        self.events.emit(event);
    }

    /// Lifts an override whose TTL has passed; true if one lapsed.
    pub fn expire_override(&self, now: Instant) -> bool {
        let Ok(mut cur) = self.overridden.lock() else {
            return false;
        };
        match cur.as_ref() {
            Some(o) if o.until.is_some_and(|u| now >= u) => {
                let mode = o.mode.as_str().to_string();
                *cur = None;
                drop(cur);
                tracing::warn!(
                    mode,
                    "operator override expired; back to the configured mode"
                );
                self.events.emit(Event::OverrideExpired { mode });
                true
            }
            _ => false,
        }
    }

    /// The config generation: 1 at start, +1 per accepted reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Swaps in a validated config as one unit. In-flight requests keep the
    /// version they started with. Returns what only a restart can apply.
    pub fn swap(&self, config: Config) -> NeedsRestart {
        let old = self.runtime();
        let restart = crate::config::startup::Startup::of(&old.config)
            .changed(&crate::config::startup::Startup::of(&config));
        // A message changed in the file is the operator speaking (a
        // ConfigMap edit reaches every pod): it replaces the live one. An
        // unchanged one leaves a message posted since through the admin API.
        let new_message = (old.config.apology.message != config.apology.message)
            .then(|| config.apology.message.clone());
        self.admission.reconfigure(&config);
        self.current
            .store(Arc::new(Runtime::new(config, &self.servers)));
        self.generation.fetch_add(1, Ordering::Relaxed);
        match new_message {
            Some(text) => self.set_message(&text),
            None => self.rerender_pages(),
        }
        NeedsRestart(restart)
    }

    /// Builds the current version's origin pool anew (a server's addresses
    /// changed): new connections go to the new set, requests in flight
    /// finish on the old pool. A reload meanwhile already built a new one.
    pub fn renew_pool(&self) {
        let old = self.runtime();
        let renewed = Arc::new(Runtime::new((*old.config).clone(), &self.servers));
        self.current.compare_and_swap(&old, renewed);
    }

    /// The status pages as rendered last.
    pub fn status(&self) -> Arc<StatusPages> {
        self.status.load_full()
    }

    /// Renders the status pages from `numbers` (the ticker, once a second).
    pub fn render_status(&self, numbers: Numbers) {
        let (text, at) = self.message_with_time();
        let rt = self.runtime();
        let status = Status::build(Inputs {
            mode: self.admission.view().mode.as_str(),
            since: self.admission.since(),
            message: Some((&text, at)),
            numbers,
            records: &self.events.history.snapshot(),
            signed: &rt.config.apology.signed,
            now: SystemTime::now(),
            summary_for: rt.config.story.summary_for,
        });
        self.status.store(Arc::new(status.render()));
    }

    /// Renders the apology pages again (mode, message or config changed).
    pub fn rerender_pages(&self) {
        let rt = self.runtime();
        let message = self.message();
        let pages = render_pages(&rt.config, self.admission.since(), &message);
        self.pages.store(Arc::new(pages));
    }
}

/// The apology pages for a config, the current mode's start and the message.
fn render_pages(config: &Config, since: SystemTime, message: &str) -> Pages {
    Pages::render(&Context {
        apology: &config.apology,
        routes: &config.routes,
        since,
        message,
    })
}
