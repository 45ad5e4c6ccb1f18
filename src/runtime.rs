//! The live state shared by every connection.
//!
//! - the current configuration version together with everything built from
//!   it (the origin pool), swapped as one unit through `ArcSwap`: a request
//!   loads one [`Runtime`] and keeps it to the end;
//! - the admission state (signals, mode, queues), which lives for the whole
//!   process and carries over reloads;
//! - the pre-rendered apology pages, re-rendered when the mode, the message
//!   or the config changes, never per request.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::admission::Admission;
use crate::apology::{Context, Pages};
use crate::config::Config;
use crate::upstream::Upstream;

/// One configuration version and what was built from it.
pub struct Runtime {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The origin client for this version.
    pub upstream: Upstream,
}

impl Runtime {
    /// Builds everything a config version needs.
    pub fn new(config: Config) -> Self {
        let upstream = Upstream::new(&config);
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
    message: Mutex<String>,
}

impl Shared {
    /// Shared state starting from `config`.
    pub fn new(config: Config) -> Arc<Self> {
        let admission = Admission::new(&config);
        let message = config.apology.message.clone();
        let pages = Pages::render(&Context {
            apology: &config.apology,
            routes: &config.routes,
            since: admission.since(),
            message: &message,
        });
        Arc::new(Shared {
            current: ArcSwap::from_pointee(Runtime::new(config)),
            admission,
            pages: ArcSwap::from_pointee(pages),
            message: Mutex::new(message),
        })
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
        self.message.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Renders the apology pages again (mode, message or config changed).
    pub fn rerender_pages(&self) {
        let rt = self.runtime();
        let message = self.message();
        let pages = Pages::render(&Context {
            apology: &rt.config.apology,
            routes: &rt.config.routes,
            since: self.admission.since(),
            message: &message,
        });
        self.pages.store(Arc::new(pages));
    }
}
