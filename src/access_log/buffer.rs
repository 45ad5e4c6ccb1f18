//! The request side of the access log: lines are formatted straight into
//! one of a few byte buffers (a shard per CPU, picked by the calling
//! thread), which the writer thread swaps out and writes. A request takes
//! a shard's mutex only to append its line; the writer takes it only to
//! swap two `Vec`s. When a shard is full, the line is dropped (and the
//! caller counts it): a request never waits for the disk.
//!
//! Each line is stamped with the time it was appended, under the lock, so
//! a shard's lines are in time order and the writer can merge the shards
//! back into one ordered log.
//!
//! Beside the lines, the shed tally: while only a sample of shed requests
//! get their own line, every shed request is counted here by reason and
//! class, for the writer's summary line each second.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::admission::ShedReason;
use crate::classify::RouteClass;

use super::line::{Clock, ShedSummary, Stamp};

/// More shards than this would only spread the same bytes thinner: the
/// runtime has a worker per CPU, and two workers sharing a shard contend
/// only for the length of a `memcpy`.
const MAX_SHARDS: usize = 16;

/// Buffer memory kept between passes whatever their use: the lines of a
/// busy tenth of a second (a thousand or so).
const KEEP: usize = 256 << 10;

const REASONS: usize = ShedReason::ALL.len();
const CLASSES: usize = RouteClass::ALL.len();

/// Lines waiting for the writer.
#[derive(Debug, Default)]
pub struct Pending {
    /// Whole lines, each ending in `\n`.
    pub bytes: Vec<u8>,
    /// For each line, when it was appended (µs since the epoch) and where
    /// it ends in `bytes`.
    pub ends: Vec<(u64, usize)>,
}

impl Pending {
    /// How many lines.
    pub fn lines(&self) -> u64 {
        self.ends.len() as u64
    }

    /// Line `i`'s bytes.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p].1);
        &self.bytes[start..self.ends[i].1]
    }

    /// Empties it, keeping its memory for the next lines unless it was
    /// mostly idle: a burst's buffers are given back once the burst is
    /// over, a steady rate keeps its own.
    pub fn clear(&mut self) {
        if self.bytes.capacity() > KEEP && self.bytes.len() < self.bytes.capacity() / 8 {
            *self = Pending::default();
        } else {
            self.bytes.clear();
            self.ends.clear();
        }
    }
}

/// One shard, on its own cache line so two workers appending to two
/// shards do not slow each other down.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Shard(Mutex<ShardState>);

/// A shard's lines, and its clock (which stays when the lines are swapped
/// out).
#[derive(Debug, Default)]
struct ShardState {
    pending: Pending,
    clock: Clock,
}

/// The shards and their cap.
#[derive(Debug)]
pub struct Buffers {
    shards: Box<[Shard]>,
    /// Bytes a shard may hold; a line is refused once a shard holds more.
    cap: usize,
    /// Shed requests by reason and class, for the summary lines.
    pub shed: ShedTally,
}

/// What became of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// It waits for the writer.
    Kept,
    /// It waits, and its shard has just passed half its cap: time to wake
    /// the writer rather than let it sleep out its interval.
    HalfFull,
    /// Its shard was full: dropped.
    Dropped,
}

impl Buffers {
    /// One shard per CPU (at most [`MAX_SHARDS`]), sharing `total_cap` bytes.
    pub fn new(total_cap: usize) -> Self {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_SHARDS);
        Buffers {
            shards: (0..n).map(|_| Shard::default()).collect(),
            cap: (total_cap / n).max(1),
            shed: ShedTally::default(),
        }
    }

    /// Appends one line, written by `line` with the time stamp it is
    /// given, to the calling thread's shard, unless the shard is full.
    pub fn push(&self, line: impl FnOnce(&mut Vec<u8>, &Stamp)) -> Pushed {
        let mut state = self.shard(shard_of_this_thread());
        let ShardState { pending, clock } = &mut *state;
        let before = pending.bytes.len();
        if before >= self.cap {
            return Pushed::Dropped;
        }
        let now = SystemTime::now();
        line(&mut pending.bytes, &clock.stamp(now));
        let at = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let end = pending.bytes.len();
        pending.ends.push((at, end));
        let half = self.cap / 2;
        if before < half && end >= half {
            Pushed::HalfFull
        } else {
            Pushed::Kept
        }
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Swaps shard `i`'s pending lines with `spare` (which should be
    /// empty): the writer writes them without holding the lock.
    pub fn swap(&self, i: usize, spare: &mut Pending) {
        std::mem::swap(&mut self.shard(i).pending, spare);
    }

    fn shard(&self, i: usize) -> MutexGuard<'_, ShardState> {
        // A panic while appending a line leaves whole lines behind it at
        // worst; the buffer stays usable.
        self.shards[i % self.shards.len()]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The calling thread's shard number: threads take numbers in turn, so
/// the runtime's workers (started together) land on different shards.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed);
    }
    SHARD.with(|s| *s)
}

/// Shed requests counted by reason and class, and how many of them got a
/// line of their own; relaxed atomic adds on the request side.
#[derive(Debug, Default)]
pub struct ShedTally {
    counts: [[AtomicU64; CLASSES]; REASONS],
    logged: [AtomicU64; REASONS],
}

impl ShedTally {
    /// Counts one shed request; `logged` if it got its own line.
    pub fn record(&self, reason: ShedReason, class: RouteClass, logged: bool) {
        self.counts[reason as usize][class.index()].fetch_add(1, Relaxed);
        if logged {
            self.logged[reason as usize].fetch_add(1, Relaxed);
        }
    }

    /// What was counted since the last call, one summary per reason that
    /// shed anything; the counts start again from zero.
    pub fn take(&self) -> Vec<ShedSummary> {
        ShedReason::ALL
            .iter()
            .filter_map(|&reason| {
                let row = &self.counts[reason as usize];
                let classes = std::array::from_fn(|c| row[c].swap(0, Relaxed));
                let logged = self.logged[reason as usize].swap(0, Relaxed);
                let s = ShedSummary {
                    reason,
                    classes,
                    logged,
                };
                (s.count() > 0).then_some(s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(out: &mut Vec<u8>, _: &Stamp) {
        out.extend_from_slice(b"0123456789\n");
    }

    #[test]
    fn a_full_shard_refuses_and_the_writer_is_woken_once_at_half() {
        let b = Buffers::new(44 * b_shards());
        // 44 bytes a shard: the writer is woken as the 2nd line passes 22,
        // the 5th line is refused (44 bytes held).
        let pushed: Vec<Pushed> = (0..6).map(|_| b.push(line)).collect();
        use Pushed::*;
        assert_eq!(pushed, [Kept, HalfFull, Kept, Kept, Dropped, Dropped]);
        let mut spare = Pending::default();
        let mine = shard_of_this_thread() % b.shards();
        b.swap(mine, &mut spare);
        assert_eq!(spare.lines(), 4);
        assert_eq!(spare.bytes.len(), 44);
        assert_eq!(spare.line(3), b"0123456789\n");
        assert!(spare.ends.windows(2).all(|w| w[0].0 <= w[1].0));
        // Swapped out: room again.
        assert_eq!(b.push(line), Kept);
    }

    fn b_shards() -> usize {
        Buffers::new(1).shards()
    }

    #[test]
    fn the_tally_sums_by_reason_and_class_then_starts_again() {
        let t = ShedTally::default();
        for _ in 0..3 {
            t.record(ShedReason::Degraded, RouteClass::Normal, false);
        }
        t.record(ShedReason::Degraded, RouteClass::Keep, true);
        t.record(ShedReason::QueueFull, RouteClass::Normal, true);
        let s = t.take();
        assert_eq!(
            s,
            [
                ShedSummary {
                    reason: ShedReason::Degraded,
                    classes: [0, 1, 3],
                    logged: 1
                },
                ShedSummary {
                    reason: ShedReason::QueueFull,
                    classes: [0, 0, 1],
                    logged: 1
                },
            ]
        );
        assert!(t.take().is_empty());
    }
}
