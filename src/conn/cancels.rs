//! Cancelled-request accounting per connection: the defence against the
//! slow form of HTTP/2 rapid reset (CVE-2023-44487).
//!
//! h2 itself sends GOAWAY when streams are reset before the server accepted
//! them (the classic back-to-back HEADERS + RST_STREAM). An attacker who
//! waits for each stream to start before cancelling it slips past that
//! check, and every such stream costs lifeboat a queued or forwarded
//! request. So each connection counts requests whose response future was
//! dropped before it produced a response head; once at least
//! [`MIN_CANCELLED`] have been cancelled and they are more than half of
//! the connection's requests, the connection is shut down gracefully
//! (GOAWAY, in-flight streams finish). A browser that cancels the odd
//! image never comes near it; a client that cancels most of what it asks
//! for is not a browser.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use tokio::sync::Notify;

/// Cancelled requests a connection may always have.
pub const MIN_CANCELLED: u32 = 100;

/// One connection's counts.
#[derive(Default)]
pub struct Cancels {
    requests: AtomicU32,
    cancelled: AtomicU32,
    tripped: AtomicBool,
    notify: Notify,
}

impl Cancels {
    /// Counts a request in; the returned guard counts it as cancelled if it
    /// is dropped before [`Answer::answered`].
    pub fn begin(self: &Arc<Self>) -> Answer {
        self.requests.fetch_add(1, Relaxed);
        Answer {
            cancels: self.clone(),
            answered: false,
        }
    }

    /// Completes once the connection has cancelled too much; it should then
    /// be shut down.
    pub async fn tripped(&self) {
        self.notify.notified().await;
    }

    fn cancelled(&self) {
        let cancelled = self.cancelled.fetch_add(1, Relaxed) + 1;
        let requests = self.requests.load(Relaxed);
        if cancelled >= MIN_CANCELLED
            && cancelled * 2 > requests
            && !self.tripped.swap(true, Relaxed)
        {
            // notify_one keeps a permit if the connection task is not
            // waiting yet: the trip is never lost.
            self.notify.notify_one();
        }
    }

    /// (requests, cancelled) so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.requests.load(Relaxed), self.cancelled.load(Relaxed))
    }
}

/// Marks one request; see [`Cancels::begin`].
pub struct Answer {
    cancels: Arc<Cancels>,
    answered: bool,
}

impl Answer {
    /// The response head exists: whatever happens to the body, this request
    /// was not cancelled early.
    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if !self.answered {
            self.cancels.cancelled();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_cancels_never_trip() {
        let c = Arc::new(Cancels::default());
        for i in 0..1000 {
            let a = c.begin();
            if i % 3 != 0 {
                a.answered();
            }
        }
        assert_eq!(c.counts(), (1000, 334));
        assert!(!c.tripped.load(Relaxed), "a third cancelled is a browser");
    }

    #[test]
    fn mostly_cancelled_trips_once_past_the_floor() {
        let c = Arc::new(Cancels::default());
        for _ in 0..MIN_CANCELLED - 1 {
            drop(c.begin());
        }
        assert!(!c.tripped.load(Relaxed), "below the floor");
        drop(c.begin());
        assert!(c.tripped.load(Relaxed));
    }
}
