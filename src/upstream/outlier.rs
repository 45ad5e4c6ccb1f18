//! A server's health: passive (the outcomes of real requests) and active
//! (the health check), kept in atomics so the hot path only loads a flag.
//!
//! The model is Envoy's outlier detection: [`Eject::after`] failures in a
//! row (connect errors, timeouts, 5xx) take a server out of rotation for
//! [`Eject::base`], doubled on each ejection that follows soon after the
//! last one, up to [`Eject::max`]. Without a health check a server comes
//! back when its time is up; with one, it comes back only when its time is
//! up *and* the check has passed `healthy` times in a row since it was
//! ejected, and `unhealthy` failed checks in a row take it out.
//!
//! Whether the last server in rotation may be ejected is not decided here
//! (it needs the other servers): [`Health::failed`] says a server
//! should go, the pool decides and calls [`Health::eject`].

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::config::Eject;

/// One server's health. Times are milliseconds on the pool's clock.
#[derive(Default)]
pub struct Health {
    /// Failed requests in a row.
    failures: AtomicU32,
    /// Out of rotation (until `until_ms`, and, with a check, until it passes).
    ejected: AtomicBool,
    /// When the ejection may end.
    until_ms: AtomicU64,
    /// Ejections that followed one another (the backoff's exponent).
    streak: AtomicU32,
    /// Ejections since start.
    ejections: AtomicU64,
    /// Health checks passed / failed in a row.
    checks_ok: AtomicU32,
    checks_failed: AtomicU32,
}

/// A server's health as people see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Takes new requests.
    InRotation,
    /// Ejected; back after this long at the earliest (and a passing check,
    /// when one is configured).
    Ejected(Duration),
}

impl Health {
    /// Whether the server takes new requests at `now_ms` (`checked`: a
    /// health check decides when it comes back).
    pub fn in_rotation(&self, now_ms: u64, checked: bool) -> bool {
        !self.ejected.load(Relaxed) || (!checked && now_ms >= self.until_ms.load(Relaxed))
    }

    /// Whether any ejection is recorded (cheap; the hot path's fast test).
    pub fn ejected_flag(&self) -> bool {
        self.ejected.load(Relaxed)
    }

    /// The state at `now_ms`.
    pub fn state(&self, now_ms: u64, checked: bool) -> State {
        if self.in_rotation(now_ms, checked) {
            State::InRotation
        } else {
            let left = self.until_ms.load(Relaxed).saturating_sub(now_ms);
            State::Ejected(Duration::from_millis(left))
        }
    }

    /// Ejections since start.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Relaxed)
    }

    /// A request was answered without a 5xx.
    pub fn succeeded(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
    }

    /// A request failed (connect, timeout, broken exchange, 5xx): true when
    /// that makes `eject.after` in a row for a server still in rotation.
    pub fn failed(&self, eject: &Eject, now_ms: u64, checked: bool) -> bool {
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        n >= eject.after && self.in_rotation(now_ms, checked)
    }

    /// Takes the server out at `now_ms` for its backoff (`passive`), or
    /// until its checks pass (a failed health check); returns how long.
    pub fn eject(&self, eject: &Eject, now_ms: u64, passive: bool) -> Duration {
        let last_end = self.until_ms.load(Relaxed);
        // An ejection long after the last one ended starts the backoff over.
        let max_ms = eject.max.as_millis() as u64;
        if now_ms.saturating_sub(last_end) > max_ms {
            self.streak.store(0, Relaxed);
        }
        let length = if passive {
            let streak = self.streak.fetch_add(1, Relaxed).min(20);
            eject.base.saturating_mul(1 << streak).min(eject.max)
        } else {
            Duration::ZERO
        };
        self.until_ms
            .store(now_ms + length.as_millis() as u64, Relaxed);
        self.failures.store(0, Relaxed);
        self.checks_ok.store(0, Relaxed);
        self.ejections.fetch_add(1, Relaxed);
        self.ejected.store(true, Relaxed);
        length
    }

    /// A health check passed: true when that brings the server back.
    pub fn check_passed(&self, healthy: u32, now_ms: u64) -> bool {
        self.checks_failed.store(0, Relaxed);
        let ok = self.checks_ok.fetch_add(1, Relaxed) + 1;
        if self.ejected.load(Relaxed) && ok >= healthy && now_ms >= self.until_ms.load(Relaxed) {
            self.failures.store(0, Relaxed);
            self.ejected.store(false, Relaxed);
            return true;
        }
        false
    }

    /// A health check failed: true when that makes `unhealthy` in a row
    /// for a server in rotation.
    pub fn check_failed(&self, unhealthy: u32) -> bool {
        self.checks_ok.store(0, Relaxed);
        let n = self.checks_failed.fetch_add(1, Relaxed) + 1;
        n >= unhealthy && !self.ejected.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EJECT: Eject = Eject {
        after: 3,
        base: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };

    #[test]
    fn failures_in_a_row_eject_a_success_resets() {
        let h = Health::default();
        assert!(!h.failed(&EJECT, 0, false));
        assert!(!h.failed(&EJECT, 0, false));
        h.succeeded();
        assert!(!h.failed(&EJECT, 0, false));
        assert!(!h.failed(&EJECT, 0, false));
        assert!(h.failed(&EJECT, 0, false));
    }

    #[test]
    fn the_backoff_doubles_then_caps_and_starts_over_much_later() {
        let h = Health::default();
        assert_eq!(h.eject(&EJECT, 0, true), Duration::from_secs(5));
        assert!(!h.in_rotation(4_999, false));
        assert!(h.in_rotation(5_000, false));
        assert_eq!(h.eject(&EJECT, 6_000, true), Duration::from_secs(10));
        assert_eq!(h.eject(&EJECT, 17_000, true), Duration::from_secs(20));
        assert_eq!(h.eject(&EJECT, 38_000, true), Duration::from_secs(40));
        assert_eq!(h.eject(&EJECT, 79_000, true), Duration::from_secs(60));
        assert_eq!(h.ejections(), 5);
        // More than `max` after the last ejection ended: a first one again.
        assert_eq!(h.eject(&EJECT, 200_000, true), Duration::from_secs(5));
    }

    #[test]
    fn with_a_check_only_passing_checks_bring_it_back() {
        let h = Health::default();
        h.eject(&EJECT, 0, true);
        assert!(!h.in_rotation(10_000, true), "time alone is not enough");
        assert!(!h.check_passed(2, 1_000), "one pass is not enough");
        assert!(!h.check_passed(2, 2_000), "its backoff is not over");
        assert!(h.check_passed(2, 5_000));
        assert!(h.in_rotation(5_000, true));
    }

    #[test]
    fn failed_checks_take_it_out_once() {
        let h = Health::default();
        assert!(!h.check_failed(2));
        assert!(h.check_failed(2));
        assert_eq!(h.eject(&EJECT, 0, false), Duration::ZERO);
        assert!(!h.check_failed(2), "already out");
        assert_eq!(h.state(0, true), State::Ejected(Duration::ZERO));
    }
}
