//! One connection's primitives, below everything that serves requests on
//! it: the watchdog and its activity count (`watchdog`), the cancel count
//! (`cancels`), the shutdown drain token, and hyper's server builder as
//! every connection gets it. The listener, the admin listener, the
//! pipeline, bodies and the access log all use them; they use nothing of
//! those.

pub mod cancels;
pub mod watchdog;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::mpsc;

pub use cancels::{Answer, Cancels};
pub use watchdog::{Activity, ActivityGuard, BodyEnd, Watchdog};

use std::time::Duration;

use crate::config::Limits;

/// Held by everything that must finish before shutdown completes
/// (connections, tunnels); shutdown waits until every token is dropped.
#[derive(Clone, Debug)]
pub struct DrainToken(#[allow(dead_code)] mpsc::Sender<()>);

impl DrainToken {
    /// A token on the drain channel `tx`.
    pub fn new(tx: mpsc::Sender<()>) -> Self {
        DrainToken(tx)
    }
}

/// hyper's auto h1/h2 server as every connection gets it (the admin
/// listener's too).
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // The watchdog enforces header-read and idle deadlines; hyper's own
        // timer would also cut idle keep-alive connections at the head deadline.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_size)
        .max_headers(limits.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_size as u32);
    b
}

/// Why a streamed body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No bytes moved for the configured body idle timeout.
    #[error("body made no progress for {0:?}")]
    Idle(Duration),
    /// The client sent its body slower than the minimum rate.
    #[error("body arrived slower than {0} bytes/s")]
    TooSlow(u64),
    /// The peer reset or broke the stream.
    #[error("body stream failed: {0}")]
    Stream(#[from] hyper::Error),
    /// A body other than hyper's failed (one handed to the pipeline by a
    /// caller of its own).
    #[error("body stream failed: {0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}
