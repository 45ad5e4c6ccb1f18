//! The live view: one page on the admin listener that shows, second by
//! second, what the operator wants to see during a stampede. Is the
//! clearing of the boards holding? Are the downloads fine? How many were
//! turned away, and why? Is the origin full, and coming back?
//!
//! - [`Live`]: the last [`WINDOW`] seconds, one [`Point`] a second, in
//!   memory (a few hundred bytes a point);
//! - `control::sampler`: turns the tallies and signals into that second's
//!   point (the ticker calls it once a second);
//! - [`marks`]: the mode changes, overrides, reloads and messages of the
//!   same minutes, from the story's history;
//! - [`PAGE`]: the page itself, with its script and styles inline (no CDN,
//!   nothing fetched but `/dashboard/data`), polling once a second.
//!
//! Reading needs no token, like `GET /mode`; the page's buttons post to
//! `/mode` and `/message` with the token the operator types in.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::story::{Event, Record};

/// Seconds the page shows.
pub const WINDOW: usize = 300;

/// The page: HTML, CSS and script in one file, embedded in the binary.
pub const PAGE: &str = include_str!("page.html");

/// The page's Content-Security-Policy: its one script allowed by its hash
/// (no other inline script can run, whatever a page shows), styles inline,
/// fetches to this listener only, no framing.
pub fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let script = PAGE
            .split_once("<script>")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map_or("", |(script, _)| script);
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; frame-ancestors 'none'"
        )
    })
}

/// One second of the live view. Rates are per second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// When the second ended, milliseconds since the Unix epoch.
    pub t: u64,
    /// The mode at its end.
    pub mode: &'static str,
    /// An operator's override was in force.
    pub overridden: bool,
    /// Requests that arrived.
    pub offered: f64,
    /// Requests the origin answered.
    pub proxied: f64,
    /// Apologies, by reason (reasons with none left out).
    pub shed: BTreeMap<&'static str, f64>,
    /// Downloads that arrived.
    pub downloads: f64,
    /// Of the downloads answered, the share the origin served (no 5xx, no
    /// apology).
    pub downloads_ok: Option<f64>,
    /// Downloads' time from admission to response headers, p99, ms.
    pub downloads_p99_ms: Option<f64>,
    /// Origin time to first byte, p95 over the signal window, ms.
    pub ttfb_p95_ms: Option<f64>,
    /// Share of failed origin exchanges over the signal window.
    pub failure_rate: Option<f64>,
    /// Requests at the origin.
    pub inflight: usize,
    /// The origin's limit (learned or pinned).
    pub limit: usize,
    /// Requests waiting in lifeboat's queue.
    pub queued: usize,
    /// Wait in lifeboat's queue, p95 over the signal window, ms.
    pub queue_wait_p95_ms: Option<f64>,
    /// Responses on their way to visitors through the spool (the origin's
    /// part done or not).
    pub transfers: usize,
    /// Of those, the origin still sending.
    pub transfers_reading: usize,
    /// Bytes spooled to disk now, MiB.
    pub spooled_mib: f64,
    /// With a fleet: every live instance, from its last heartbeat.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fleet: Vec<FleetPoint>,
}

/// One instance of the fleet in a second of the live view.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FleetPoint {
    /// Its id.
    pub id: String,
    /// Its mode.
    pub mode: String,
    /// Requests a second it was offered.
    pub offered: f64,
    /// Apologies a second it gave.
    pub shed: f64,
    /// Its origin limit.
    pub limit: usize,
}

/// The last [`WINDOW`] seconds.
#[derive(Default)]
pub struct Live {
    points: Mutex<VecDeque<Point>>,
}

impl Live {
    /// Adds one second, dropping the oldest past the window.
    pub fn push(&self, point: Point) {
        if let Ok(mut p) = self.points.lock() {
            p.push_back(point);
            while p.len() > WINDOW {
                p.pop_front();
            }
        }
    }

    /// The newest point.
    pub fn latest(&self) -> Option<Point> {
        self.points.lock().ok()?.back().cloned()
    }

    /// The points after `t` (ms since the epoch), oldest first: the page
    /// asks for what it has not seen yet.
    pub fn after(&self, t: u64) -> Vec<Point> {
        self.points
            .lock()
            .map(|p| {
                let first = p.partition_point(|x| x.t <= t);
                p.range(first..).cloned().collect()
            })
            .unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A moment worth a line on the charts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mark {
    /// When, ms since the epoch.
    pub t: u64,
    /// `mode`, `override`, `reload` or `message`.
    pub kind: &'static str,
    /// What happened, in a few words.
    pub text: String,
}

/// The marks among `records` (the story's recent history), oldest first.
pub fn marks(records: &[Record]) -> Vec<Mark> {
    records
        .iter()
        .filter_map(|r| {
            let t = unix_ms(humantime::parse_rfc3339_weak(&r.at).ok()?);
            let (kind, text) = match &r.event {
                Event::ModeChanged {
                    from, to, cause, ..
                } => ("mode", format!("{from} → {to}: {cause}")),
                Event::OverrideSet { mode, reason, .. } if mode == "auto" => {
                    ("override", format!("back to auto: {reason}"))
                }
                Event::OverrideSet { mode, ttl, reason } => (
                    "override",
                    match ttl {
                        Some(ttl) => format!("override {mode} for {ttl}: {reason}"),
                        None => format!("override {mode}: {reason}"),
                    },
                ),
                Event::OverrideExpired { mode } => ("override", format!("override {mode} expired")),
                Event::ReloadAccepted {
                    generation,
                    trigger,
                } => (
                    "reload",
                    format!("config generation {generation} ({trigger})"),
                ),
                Event::ReloadRejected { trigger, .. } => {
                    ("reload", format!("config rejected ({trigger})"))
                }
                Event::Message { text, .. } if text.is_empty() => {
                    ("message", "message cleared".to_string())
                }
                Event::Message { text, .. } => ("message", format!("message: {text}")),
                Event::Started { .. } => ("reload", "started".to_string()),
                Event::Stopped | Event::Counters { .. } => return None,
            };
            Some(Mark { t, kind, text })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64) -> Point {
        Point {
            t,
            mode: "normal",
            overridden: false,
            offered: 0.0,
            proxied: 0.0,
            shed: BTreeMap::new(),
            downloads: 0.0,
            downloads_ok: None,
            downloads_p99_ms: None,
            ttfb_p95_ms: None,
            failure_rate: None,
            inflight: 0,
            limit: 16,
            queued: 0,
            queue_wait_p95_ms: None,
            transfers: 0,
            transfers_reading: 0,
            spooled_mib: 0.0,
            fleet: Vec::new(),
        }
    }

    #[test]
    fn the_window_keeps_the_last_points_and_hands_out_the_unseen() {
        let live = Live::default();
        for t in 1..=(WINDOW as u64 + 20) {
            live.push(point(t * 1000));
        }
        let all = live.after(0);
        assert_eq!(all.len(), WINDOW);
        assert_eq!(all.first().map(|p| p.t), Some(21_000));
        let new = live.after(318_000);
        assert_eq!(
            new.iter().map(|p| p.t).collect::<Vec<_>>(),
            [319_000, 320_000]
        );
        assert!(live.after(320_000).is_empty());
    }

    #[test]
    fn marks_say_what_the_operator_did_and_skip_counters() {
        let at = "2026-11-29T18:00:00.000Z".to_string();
        let records = vec![
            Record {
                at: at.clone(),
                instance: None,
                event: Event::OverrideSet {
                    mode: "degraded".into(),
                    ttl: Some("30m".into()),
                    reason: "drill".into(),
                },
            },
            Record {
                at: at.clone(),
                instance: None,
                event: Event::Counters {
                    mode: "degraded".into(),
                    seconds: 1.0,
                    primary_served: 1,
                    keep_served: 0,
                    normal_served: 0,
                    shed: BTreeMap::new(),
                    peak_inflight: 1,
                    ttfb_p95_ms: None,
                    origin_limit: None,
                    would_shed: BTreeMap::new(),
                },
            },
            Record {
                at: "not a time".into(),
                instance: None,
                event: Event::Stopped,
            },
            Record {
                at,
                instance: None,
                event: Event::ReloadAccepted {
                    generation: 3,
                    trigger: "sighup".into(),
                },
            },
        ];
        let m = marks(&records);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].kind, "override");
        assert_eq!(m[0].text, "override degraded for 30m: drill");
        assert_eq!(m[0].t, 1_795_975_200_000);
        assert_eq!(m[1].text, "config generation 3 (sighup)");
    }
}
