//! What a load run saw: per path, per second, and the HDR latency histograms.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::Target;

/// The result of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx or 3xx with the whole body.
    Ok,
    /// The apology: reason and `Retry-After` seconds.
    Shed(String, u64),
    /// A 5xx that is not an apology (a raw gateway error).
    ServerError,
    /// Any other status.
    OtherStatus,
    /// No complete answer within the timeout.
    Timeout,
    /// Connection refused, reset, or broken.
    Error,
}

impl Outcome {
    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Shed(r, _) => format!("shed:{r}"),
            Outcome::ServerError => "5xx".into(),
            Outcome::OtherStatus => "other".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Error => "error".into(),
        }
    }
}

/// One path's results.
#[derive(Clone)]
pub struct PathReport {
    /// The path.
    pub path: String,
    /// Whether it is the primary path.
    pub primary: bool,
    /// Count per outcome label.
    pub outcomes: BTreeMap<String, u64>,
    /// Latency to response headers of successful requests, µs.
    pub latency: Histogram<u64>,
    /// Requests that were retries of shed ones.
    pub retries: u64,
}

impl PathReport {
    /// Requests sent.
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.outcomes.get("ok").copied().unwrap_or(0)
    }

    /// Share of requests that succeeded.
    pub fn success_rate(&self) -> f64 {
        if self.total() == 0 {
            1.0
        } else {
            self.ok() as f64 / self.total() as f64
        }
    }

    /// Latency quantile of successful requests, ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// One second of the run, by intended send time.
#[derive(Debug, Clone, Default)]
pub struct Second {
    /// Requests sent.
    pub sent: u64,
    /// Primary requests sent.
    pub primary_sent: u64,
    /// Primary requests that succeeded.
    pub primary_ok: u64,
    /// Apologies.
    pub shed: u64,
    /// Timeouts and errors.
    pub failed: u64,
    /// Non-primary requests (pages) sent.
    pub pages_sent: u64,
    /// Pages that succeeded.
    pub pages_ok: u64,
}

/// Everything a run saw.
#[derive(Clone)]
pub struct Report {
    /// Per path, in mix order.
    pub paths: Vec<PathReport>,
    /// Per second of intended send time.
    pub seconds: Vec<Second>,
    /// Time until the apology, for every request that got one, µs: how
    /// fast a refused visitor is told.
    pub refused: Histogram<u64>,
}

impl Report {
    pub(super) fn new(mix: &[Target]) -> Self {
        let paths = mix
            .iter()
            .map(|t| PathReport {
                path: t.path.clone(),
                primary: t.primary,
                outcomes: BTreeMap::new(),
                latency: latency_histogram(),
                retries: 0,
            })
            .collect();
        Report {
            paths,
            seconds: Vec::new(),
            refused: latency_histogram(),
        }
    }

    pub(super) fn record(
        &mut self,
        index: usize,
        second: f64,
        outcome: &Outcome,
        latency: Option<std::time::Duration>,
        retry: bool,
    ) {
        let Some(p) = self.paths.get_mut(index) else {
            return;
        };
        *p.outcomes.entry(outcome.label()).or_default() += 1;
        p.retries += u64::from(retry);
        match (outcome, latency) {
            (Outcome::Ok, Some(l)) => {
                let _ = p.latency.record((l.as_micros() as u64).max(1));
            }
            (Outcome::Shed(..), Some(l)) => {
                let _ = self.refused.record((l.as_micros() as u64).max(1));
            }
            _ => {}
        }
        let s = second.max(0.0) as usize;
        if self.seconds.len() <= s {
            self.seconds.resize(s + 1, Second::default());
        }
        let sec = &mut self.seconds[s];
        sec.sent += 1;
        match outcome {
            Outcome::Shed(..) => sec.shed += 1,
            Outcome::Timeout | Outcome::Error => sec.failed += 1,
            _ => {}
        }
        if p.primary {
            sec.primary_sent += 1;
            sec.primary_ok += u64::from(*outcome == Outcome::Ok);
        } else {
            sec.pages_sent += 1;
            sec.pages_ok += u64::from(*outcome == Outcome::Ok);
        }
    }

    /// The primary paths merged: success rate and latency quantiles.
    pub fn primary(&self) -> Option<PathReport> {
        let mut merged: Option<PathReport> = None;
        for p in self.paths.iter().filter(|p| p.primary) {
            match merged.as_mut() {
                None => merged = Some(p.clone()),
                Some(m) => {
                    for (k, v) in &p.outcomes {
                        *m.outcomes.entry(k.clone()).or_default() += v;
                    }
                    let _ = m.latency.add(&p.latency);
                }
            }
        }
        merged
    }

    /// Time to the apology at quantile `q`, ms (0 when nobody was refused).
    pub fn refused_ms(&self, q: f64) -> f64 {
        self.refused.value_at_quantile(q) as f64 / 1000.0
    }

    /// Pages (non-primary) that succeeded.
    pub fn pages_ok(&self) -> u64 {
        self.seconds.iter().map(|s| s.pages_ok).sum()
    }

    /// Outcomes of the non-primary paths, merged.
    pub fn others(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for p in self.paths.iter().filter(|p| !p.primary) {
            for (k, v) in &p.outcomes {
                *out.entry(k.clone()).or_default() += v;
            }
        }
        out
    }
}

/// A latency histogram, µs, from 1 µs to 10 min at 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid") // ok: constants, cannot fail
}
