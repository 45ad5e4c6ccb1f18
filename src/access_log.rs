//! The access log: one structured line per request, written when the
//! response body has finished (so it carries the bytes really sent and the
//! whole duration of a download), on target `lifeboat::access`.
//!
//! An [`Exchange`] is created when the request arrives and travels inside
//! the response body. Dropping it (client went away) also writes the line,
//! marked as aborted, and releases the connection's activity count.

use std::net::SocketAddr;
use std::time::Instant;

use http::{Method, StatusCode, Uri, Version};

use crate::admission::Held;
use crate::apology::ShedReason;
use crate::body::BodyError;
use crate::classify::RouteClass;
use crate::listener::ActivityGuard;

/// One request's record, from arrival to the end of its response body.
pub struct Exchange {
    started: Instant,
    method: Method,
    uri: Uri,
    version: Version,
    peer: SocketAddr,
    status: StatusCode,
    bytes: u64,
    log: bool,
    finished: bool,
    class: Option<RouteClass>,
    shed: Option<ShedReason>,
    /// Slots and counts held until the response body ends.
    held: Held,
    _activity: ActivityGuard,
}

impl Exchange {
    /// Starts the record for a request that just arrived.
    pub fn begin<B>(
        req: &http::Request<B>,
        peer: SocketAddr,
        log: bool,
        activity: ActivityGuard,
    ) -> Self {
        Exchange {
            started: Instant::now(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            peer,
            status: StatusCode::OK,
            bytes: 0,
            log,
            finished: false,
            class: None,
            shed: None,
            held: Held::default(),
            _activity: activity,
        }
    }

    /// Records the response status (before the body starts).
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// Records the route class.
    pub fn set_class(&mut self, class: RouteClass) {
        self.class = Some(class);
    }

    /// Records that the request got the apology, and why.
    pub fn set_shed(&mut self, reason: ShedReason) {
        self.shed = Some(reason);
    }

    /// Keeps the request's slots until the response body ends.
    pub fn hold(&mut self, held: Held) {
        self.held = held;
    }

    /// Hands the request's slots over to what outlives its response (an
    /// upgraded tunnel).
    pub fn take_held(&mut self) -> Held {
        std::mem::take(&mut self.held)
    }

    pub(crate) fn add_bytes(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// Completes the record: the body ended, failed (`error`), or was dropped.
    pub fn finish(mut self, error: Option<&BodyError>) {
        self.emit(
            error
                .map(|e| e.to_string())
                .as_deref()
                .unwrap_or("complete"),
        );
        self.finished = true;
    }

    fn emit(&self, end: &str) {
        if !self.log {
            return;
        }
        tracing::info!(
            target: "lifeboat::access",
            method = %self.method,
            path = self.uri.path(),
            version = ?self.version,
            status = self.status.as_u16(),
            bytes = self.bytes,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            peer = %self.peer,
            class = self.class.map(RouteClass::as_str),
            shed = self.shed.map(ShedReason::as_str),
            end,
        );
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.finished {
            self.emit("aborted by client");
        }
    }
}
