//! Fine-grained latency counts for quantiles: log-spaced buckets (each 20 %
//! wider than the last, 100 µs to about 10 s) in relaxed atomics. Recording
//! is one addition; a reader diffs two snapshots to get the quantiles of
//! what happened between them (the dashboard's downloads p99, every second).
//!
//! A quantile is reported as its bucket's upper bound: at most 20 % high,
//! never low, which is the safe side for "are the downloads fast".

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Buckets, the last one for everything above the highest bound.
const BUCKETS: usize = 64;
/// The first bucket's upper bound, seconds.
const FIRST: f64 = 1e-4;
/// Each bound over the one before.
const GROWTH: f64 = 1.2;

/// Counts per bucket since start.
pub struct Latency {
    counts: [AtomicU64; BUCKETS],
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }
}

/// The upper bound of bucket `i`, seconds.
fn bound(i: usize) -> f64 {
    FIRST * GROWTH.powi(i as i32)
}

impl Latency {
    /// Counts one sample.
    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = if secs <= FIRST {
            0
        } else {
            // The smallest i with bound(i) >= secs.
            ((secs / FIRST).ln() / GROWTH.ln()).ceil() as usize
        };
        self.counts[i.min(BUCKETS - 1)].fetch_add(1, Relaxed);
    }

    /// A copy of every count.
    pub fn snapshot(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }
}

/// The `q` quantile (0 < q ≤ 1) of the samples counted between `earlier`
/// and `later` (two snapshots); `None` without samples. Above the highest
/// bound, the highest bound.
pub fn quantile(later: &[u64], earlier: &[u64], q: f64) -> Option<Duration> {
    let counts: Vec<u64> = later
        .iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(earlier.get(i).copied().unwrap_or(0)))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(Duration::from_secs_f64(bound(i.min(BUCKETS - 2))));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Option<Duration>) -> f64 {
        d.expect("samples").as_secs_f64() * 1000.0
    }

    #[test]
    fn a_quantile_is_at_most_a_fifth_high_and_never_low() {
        for true_ms in [0.05, 0.3, 2.0, 17.0, 250.0, 3_000.0] {
            let l = Latency::default();
            let before = l.snapshot();
            l.record(Duration::from_secs_f64(true_ms / 1000.0));
            let got = ms(quantile(&l.snapshot(), &before, 0.99));
            assert!(got >= true_ms * 0.999, "{true_ms} ms read as {got}");
            assert!(
                got <= (true_ms * 1.2).max(0.1 + 1e-9),
                "{true_ms} ms read as {got}"
            );
        }
    }

    #[test]
    fn p99_of_a_hundred_sees_the_slowest_but_not_past_it() {
        let l = Latency::default();
        let before = l.snapshot();
        for _ in 0..98 {
            l.record(Duration::from_millis(2));
        }
        l.record(Duration::from_millis(40));
        l.record(Duration::from_millis(900));
        let p99 = ms(quantile(&l.snapshot(), &before, 0.99));
        assert!((40.0..48.0).contains(&p99), "p99 {p99}");
        let p50 = ms(quantile(&l.snapshot(), &before, 0.5));
        assert!((2.0..2.4).contains(&p50), "p50 {p50}");
    }

    #[test]
    fn only_what_happened_between_the_snapshots_counts() {
        let l = Latency::default();
        l.record(Duration::from_secs(5));
        let before = l.snapshot();
        assert_eq!(quantile(&l.snapshot(), &before, 0.99), None);
        l.record(Duration::from_millis(1));
        let p99 = ms(quantile(&l.snapshot(), &before, 0.99));
        assert!(p99 < 1.2, "the earlier 5 s sample leaked in: {p99}");
    }

    #[test]
    fn beyond_the_last_bound_reads_as_the_last_bound() {
        let l = Latency::default();
        let before = l.snapshot();
        l.record(Duration::from_secs(3600));
        let got = quantile(&l.snapshot(), &before, 0.5).expect("a sample");
        assert!(
            got >= Duration::from_secs(5) && got < Duration::from_secs(20),
            "{got:?}"
        );
    }
}
