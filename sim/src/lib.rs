//! lifeboat-sim: what drives lifeboat in its demo, tests and benches, and
//! nothing of lifeboat itself (so the proxy can be built without it).
//!
//! # Layout
//!
//! - [`origin_sim`] — a simulated release-day origin with a fixed capacity:
//!   excess load queues and latency climbs, as on a real app server;
//! - [`loadgen`] — an open-loop load generator (latency from the intended
//!   send time, Retry-After models) and the release-day stampede scenario
//!   ([`loadgen::stampede`]): the wave, its origin and lifeboat's config
//!   for it.

pub mod loadgen;
pub mod origin_sim;
