//! The recent story in memory: every event lifeboat journals, for the last
//! day, so the status page can show the updates, the timeline and the
//! history bars from memory. Seeded from the journal at start, so a restart
//! (or a reload) keeps them.
//!
//! `history` turns it into the status page's bars: the last day in half
//! hours.
//!
//! Bounded: at most [`KEEP`] records; events are rare (mode changes,
//! overrides, messages, counters every few seconds while not normal), so a
//! day of a busy incident fits.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Event, Record};

/// Records kept at most: two days of counters every 10 s while degraded.
pub const KEEP: usize = 16_384;
/// What the status page looks back over.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// History bars: 48 half hours, the last day.
const BARS: u32 = 48;
const BAR: Duration = Duration::from_secs(1800);

/// One bar of the last day's history.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    /// Start of the interval, RFC 3339.
    pub from: String,
    /// The worst mode seen in it: normal, recovering or degraded.
    pub state: String,
    /// Share of downloads served in it, when lifeboat counted them.
    pub downloads_served: Option<f64>,
}

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

    /// The records at or after `from`, oldest first. Read from the newest
    /// back, so a recent `from` costs a few records, not the day.
    pub fn since(&self, from: SystemTime) -> Vec<Record> {
        let Ok(r) = self.records.lock() else {
            return Vec::new();
        };
        let mut recent: Vec<Record> = r
            .iter()
            .rev()
            .take_while(|x| humantime::parse_rfc3339_weak(&x.at).is_ok_and(|at| at >= from))
            .cloned()
            .collect();
        recent.reverse();
        recent
    }

    /// A copy of what is remembered, oldest first.
    pub fn snapshot(&self) -> Vec<Record> {
        self.records
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The last day in half hours: the worst mode in each, and the downloads
/// served where lifeboat counted them.
pub(super) fn history(records: &[Record], now: SystemTime) -> Vec<Bar> {
    let rank = |m: &str| match m {
        "degraded" => 2,
        "recovering" => 1,
        _ => 0,
    };
    let start = now - BAR * BARS;
    let mut bars: Vec<(u8, u64, u64)> = vec![(0, 0, 0); BARS as usize];
    let slot = |t: SystemTime| {
        t.duration_since(start)
            .ok()
            .map(|d| (d.as_secs() / BAR.as_secs()) as usize)
            .filter(|i| *i < BARS as usize)
    };
    // The mode in force at each change, carried forward slot by slot.
    let mut mode_at_start = 0u8;
    let mut changes: Vec<(usize, u8)> = Vec::new();
    for r in records {
        let Some(at) = parse(&r.at) else { continue };
        match &r.event {
            Event::ModeChanged { from, to, .. } => match slot(at) {
                Some(i) => {
                    changes.push((i, rank(from)));
                    changes.push((i, rank(to)));
                }
                None if at < start => mode_at_start = rank(to),
                None => {}
            },
            Event::Counters {
                primary_served,
                shed,
                ..
            } => {
                if let Some(i) = slot(at) {
                    let refused = shed.get("primary-busy").copied().unwrap_or(0);
                    bars[i].1 += primary_served;
                    bars[i].2 += primary_served + refused;
                }
            }
            _ => {}
        }
    }
    let mut current = mode_at_start;
    let mut changes = changes.into_iter().peekable();
    for (i, bar) in bars.iter_mut().enumerate() {
        bar.0 = current;
        while let Some((_, m)) = changes.next_if(|(s, _)| *s == i) {
            bar.0 = bar.0.max(m);
            current = m;
        }
    }
    bars.iter()
        .enumerate()
        .map(|(i, (state, ok, all))| Bar {
            from: rfc3339(start + BAR * i as u32),
            state: ["normal", "recovering", "degraded"][*state as usize].into(),
            downloads_served: (*all > 0).then(|| *ok as f64 / *all as f64),
        })
        .collect()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}
