//! lifeboat: an overload-shedding reverse proxy for release days.
//!
//! # Layout
//!
//! A request's path through the modules, in order:
//!
//! - [`listener`] — binds, accepts (connection cap, fd-exhaustion backoff),
//!   terminates TLS ([`tls`]), guards header-read and idle deadlines, serves
//!   HTTP/1.1 and HTTP/2, drains on shutdown;
//! - [`stack`] — the request's path as one tower stack, top to bottom:
//!   snapshot, record, rescue, classify, admit, forward;
//! - [`screen`] — the head rules kept before anything else (header count,
//!   one valid host, no CONNECT); pure;
//! - [`classify`] — request → route class (primary, keep, normal); pure;
//! - [`admission`] — signals, the mode machine, `decide()`, the origin
//!   queue; the ticker;
//! - [`upstream`] — the pooled origin client, header rewriting, timeouts,
//!   WebSocket tunnels;
//! - [`apology`] — the single boundary where every failure becomes a
//!   response: the pre-rendered apology (503 + `Retry-After`);
//! - [`body`] — streaming request/response bodies with idle timeouts;
//! - [`spool`] — an origin's response read ahead of its visitor (memory,
//!   then a nameless file), so the origin's slot ends at the origin's last
//!   byte, not the visitor's.
//!
//! Beside the path:
//!
//! - [`config`] — the TOML file: parse → validate → trusted [`config::Config`],
//!   errors with file:line:column and key;
//! - [`control`] — the tasks above the shared state: the ticker, the
//!   fleet's link, the origin servers' checks and lookups;
//! - [`runtime`] — the live config version and what is built from it, swapped
//!   atomically;
//! - [`admin`] — the operator's listener; [`dashboard`] — its live page;
//! - [`fleet`] — several instances acting as one over Redis (fail-open);
//! - [`layer`] — [`ShedLayer`]: the shedding as a tower layer around any
//!   service;
//! - [`access_log`] — one line per request, buffered and written by a
//!   thread of its own (no request waits for it); [`logging`] — the
//!   `tracing` subscriber for everything else.
//!
//! Not here: `lifeboat demo` and the simulated origin and load generator it
//! drives (the binary's `demo` module and the `lifeboat-sim` crate), so that
//! the proxy builds without them.

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod apology;
pub mod body;
pub mod classify;
pub mod config;
pub mod conn;
pub mod control;
pub mod ctl;
pub mod dashboard;
mod deadline;
pub mod fleet;
pub mod layer;
pub mod listener;
pub mod logging;
pub mod reload;
pub mod runtime;
pub mod screen;
pub mod spool;
pub mod stack;
pub mod story;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use layer::ShedLayer;
pub use listener::Lifeboat;
