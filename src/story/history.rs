//! The recent story in memory: every event lifeboat journals, for the last
//! day, so the status page can show the updates, the timeline and the
//! history bars from memory. Seeded from the journal at start, so a restart
//! (or a reload) keeps them.
//!
//! Bounded: at most [`KEEP`] records; events are rare (mode changes,
//! overrides, messages, counters every few seconds while not normal), so a
//! day of a busy incident fits.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::Record;

/// Records kept at most: two days of counters every 10 s while degraded.
pub const KEEP: usize = 16_384;
/// What the status page looks back over.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// The last day of events.
#[derive(Default)]
pub struct History {
    records: Mutex<VecDeque<Record>>,
}

impl History {
    /// Remembers one record (the event sink, as it journals it).
    pub fn push(&self, record: Record) {
        if let Ok(mut r) = self.records.lock() {
            r.push_back(record);
            while r.len() > KEEP {
                r.pop_front();
            }
        }
    }

    /// Seeds from a journal's records (at start): those of the last day.
    pub fn seed(&self, records: Vec<Record>, now: SystemTime) {
        let since = now.checked_sub(DAY).unwrap_or(SystemTime::UNIX_EPOCH);
        let recent = records
            .into_iter()
            .filter(|r| humantime::parse_rfc3339_weak(&r.at).is_ok_and(|at| at >= since));
        if let Ok(mut r) = self.records.lock() {
            let mine = std::mem::take(&mut *r);
            r.extend(recent);
            r.extend(mine);
            while r.len() > KEEP {
                r.pop_front();
            }
        }
    }

    /// A copy of what is remembered, oldest first.
    pub fn snapshot(&self) -> Vec<Record> {
        self.records
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}
