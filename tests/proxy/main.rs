//! Integration tests of the proxy core: a real origin, a real lifeboat, real
//! sockets on 127.0.0.1:0. One binary, several modules, one link step.

// A panic in a test is a failed assertion, not a crash.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod access_log;
mod admin_limits;
mod admission;
mod config_errors;
mod control;
mod dashboard;
// The binary has `lifeboat demo` only with the `demo` feature (the default).
#[cfg(feature = "demo")]
mod demo;
mod downloads;
mod exhaustion;
mod external;
mod failures;
mod fleet;
mod headers;
mod herd;
mod http2_abuse;
mod keepalive;
mod layer;
mod limits;
mod loadgen;
mod observability;
mod origin_tls;
mod origins;
mod paths;
mod pipeline;
mod process;
mod props;
mod protocols;
mod reload;
mod shedding;
mod smuggling;
mod stampede;
mod status_page;
mod story;
mod streaming;
mod tls_limits;
mod trickle;
mod tunnels;
