//! The learner's rule for a limit filled by transfers (answers still
//! sending their bodies), apart from the ordinary Vegas step it comes
//! before: see the module above, "Transfers that fill the limit".

use tokio::time::Instant;

use super::{DECREASE_ABOVE, Interval, Learner, Step};

/// While transfers fill the limit, answers this much later than their
/// baseline (µs, on average) hold it; less keeps it growing. A loaded
/// machine moving thousands of bodies delays heads by a few milliseconds
/// (measured: 2,000 downloads from nginx on two cores); an origin whose
/// workers are taken delays them by whole requests.
const TRANSFER_SLACK_US: f64 = 50_000.0;
impl Learner {
    /// The limit is pressed, at least half of it is held by answers still
    /// sending their bodies, and no more than a quarter of it waits for a
    /// head: the transfers fill it, not the origin's work. The limit
    /// doubles, or grows at once to take the downloads waiting (any probe
    /// is called off: it could not drain), or holds if
    /// the answers gathered so far, however few, came slower than
    /// [`DECREASE_ABOVE`] × their baseline.
    pub(super) fn held_by_transfers(&mut self, now: Instant, s: &Interval) -> Option<Step> {
        let learned = self.learned();
        let pressed = s.pressed > 0 || s.peak + 1 >= learned;
        let waiting = s.at_origin.saturating_sub(s.streaming);
        let quarter = ((self.limit / 4.0).floor() as usize).max(1);
        if !pressed || s.streaming * 2 < learned || waiting > quarter {
            return None;
        }
        let mut seen = self.pending.clone();
        seen.absorb(s);
        let ratio = self.ratio_of(&seen, 1);
        let late = self.lateness_us(&seen);
        self.learn_passively(now, &seen);
        self.pending = Interval::default();
        self.pending_since = now;
        self.probe_left = 0;
        self.decreases_in_a_row = 0;
        // Heads much slower than their baseline while bodies keep the
        // origin busy: hold. Not a decrease: that would shut out every
        // newcomer until the transfers already in have ended, for a queue
        // nobody is in (the heads come back; were they to wait, the rule
        // above would no longer hold, and the ordinary one decides). A few
        // milliseconds late is the cores moving bodies, not a queue: next
        // to a transfer of seconds it is nothing to refuse anyone for.
        let slow = ratio.is_some_and(|r| r >= DECREASE_ABOVE) && late >= TRANSFER_SLACK_US;
        let grow = !slow;
        if grow {
            // Doubled, or at once to the downloads waiting: they are
            // transfers like those in, which the origin answers promptly.
            let wanted = (s.at_origin + s.waiting_primary) as f64;
            self.limit = (self.limit * 2.0).max(wanted).min(self.bounds.max as f64);
        }
        Some(Step {
            growing: grow && self.learned() < self.bounds.max,
            ..self.step_result(ratio)
        })
    }

    /// How late the answers came on average (µs): their mean TTFB less
    /// their classes' mean baseline (0 without a baseline or samples).
    fn lateness_us(&self, s: &Interval) -> f64 {
        let (mut took, mut expected, mut n) = (0.0, 0.0, 0u64);
        for (class, acc) in s.all.iter().enumerate() {
            if let Some(b) = self.baseline[class] {
                took += acc.sum_us as f64;
                expected += b * acc.count as f64;
                n += acc.count;
            }
        }
        if n == 0 {
            return 0.0;
        }
        (took - expected) / n as f64
    }
}
