//! A per-client budget of apologies: retry storms and greedy clients.
//!
//! A visitor told to come back in a minute who retries every 50 ms costs
//! lifeboat a parse and an apology twenty times a second; hundreds of them
//! take CPU from the downloads. Each client address may receive `budget`
//! apologies per [`WINDOW`]; past that it is answered with a short `429`
//! and its connection is closed, so it pays a new handshake for every
//! further try, and the full page is no longer rendered for it.
//!
//! Fixed memory: [`SLOTS`] atomic words, each packing (window number,
//! count); addresses are hashed with a per-process key, so two addresses
//! that share a slot share a budget (coarse, never unbounded). Lock-free:
//! one compare-and-swap loop per apology. Downloads never meet the budget:
//! only overload apologies are charged.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// The budget is counted over 10 s windows: shorter than any `Retry-After`
/// lifeboat sends, so a client that honours it never comes near the budget.
pub const WINDOW: Duration = Duration::from_secs(10);
/// 16,384 words (128 KiB): collisions stay rare with thousands of active
/// clients.
pub const SLOTS: usize = 16_384;

/// Apologies per client address per window.
pub struct ClientBudget {
    /// Answers given to clients over their budget.
    pub exceeded: AtomicU64,
    slots: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
    start: Instant,
}

impl Default for ClientBudget {
    fn default() -> Self {
        ClientBudget {
            exceeded: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            start: Instant::now(),
        }
    }
}

impl ClientBudget {
    /// Counts one apology for `ip` at `now`; returns how many it has had in
    /// the current window, this one included.
    pub fn charge(&self, ip: IpAddr, now: Instant) -> u32 {
        let window =
            (now.saturating_duration_since(self.start).as_secs() / WINDOW.as_secs()) as u32;
        let slot = &self.slots[self.slot_of(ip)];
        let mut seen = 0;
        let _ = slot.fetch_update(Relaxed, Relaxed, |word| {
            let (w, n) = ((word >> 32) as u32, word as u32);
            seen = if w == window { n.saturating_add(1) } else { 1 };
            Some(u64::from(window) << 32 | u64::from(seen))
        });
        seen
    }

    fn slot_of(&self, ip: IpAddr) -> usize {
        let mut h = self.hasher.build_hasher();
        match ip {
            IpAddr::V4(v4) => h.write(&v4.octets()),
            IpAddr::V6(v6) => h.write(&v6.octets()),
        }
        (h.finish() as usize) % SLOTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_starts_again_each_window() {
        let b = ClientBudget::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let c = (2..=255u8)
            .map(|i| IpAddr::from([192, 0, 2, i]))
            .find(|c| b.slot_of(*c) != b.slot_of(a))
            .unwrap();
        let t0 = b.start;
        for i in 1..=5 {
            assert_eq!(b.charge(a, t0), i);
        }
        assert_eq!(b.charge(c, t0), 1, "another address has its own budget");
        assert_eq!(b.charge(a, t0 + WINDOW), 1, "a new window");
        assert_eq!(b.charge(a, t0 + WINDOW + Duration::from_secs(9)), 2);
    }
}
