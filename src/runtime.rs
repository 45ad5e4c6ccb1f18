//! The live state shared by every connection: the current configuration
//! version together with everything built from it (the origin pool), swapped
//! as one unit through `ArcSwap`. A request loads one [`Runtime`] and keeps
//! it to the end, so it never sees half of one config and half of another.

use std::sync::Arc;

use arc_swap::ArcSwap;

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
}

impl Shared {
    /// Shared state starting from `config`.
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(Shared {
            current: ArcSwap::from_pointee(Runtime::new(config)),
        })
    }

    /// The current version, held for as long as the caller needs it.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.current.load_full()
    }
}
