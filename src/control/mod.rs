//! The tasks that keep the shared state current, above it: the ticker
//! (mode machine, learner, status, dashboard), the fleet's link to Redis,
//! the proxy's health checks and name lookups. And the operator's switch,
//! which the ticker applies at once.
//!
//! They sit above `runtime` (they read and write `Shared`); nothing below
//! calls up into them.

mod fleet_beat;
pub mod fleet_link;
pub mod origins;
mod sampler;
pub mod ticker;

use std::sync::Arc;

pub use fleet_beat::member;

use crate::runtime::{Override, Shared};

/// Starts the ticker, the learner, the journal and webhook writer, and the
/// fleet's link when there is a fleet, on the current tokio runtime. Their
/// handles, to abort them.
pub fn spawn_tasks(shared: &Arc<Shared>) -> Vec<tokio::task::JoinHandle<()>> {
    let rt = shared.runtime();
    let mut tasks = vec![
        tokio::spawn(ticker::run(shared.clone())),
        tokio::spawn(ticker::learn(shared.clone())),
    ];
    if let Some(rx) = shared.take_events() {
        let webhooks = crate::story::webhook::Webhooks::start(&rt.config.story.webhooks);
        let tee = shared
            .fleet
            .clone()
            .map(|l| l as Arc<dyn crate::story::Tee>);
        tasks.push(tokio::spawn(crate::story::journal::run(
            rt.config.story.journal.clone(),
            webhooks,
            rx,
            shared.events.done.clone(),
            tee,
        )));
    }
    if let (Some(link), Some(cfg)) = (shared.fleet.clone(), rt.config.fleet.clone()) {
        tasks.push(tokio::spawn(fleet_link::run(shared.clone(), link, cfg)));
    }
    tasks
}

/// Sets (`Some`) or lifts (`None`) the operator's override and applies it
/// now, through the same path as every mode change (log, metrics, journal,
/// pages), rather than at the next tick.
pub fn set_override(shared: &Shared, o: Option<Override>, ttl_text: Option<String>) {
    shared.set_override(o, ttl_text);
    ticker::step(shared, tokio::time::Instant::now());
}
