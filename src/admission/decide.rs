//! The admission decision: pure, no lock, no I/O, never awaits. Given the
//! request's class, the published view (mode, the ramp's admitted
//! fraction, whether degraded is forced) and a random draw in [0, 1), it
//! says how long the request may wait for an origin slot, or that it gets
//! the apology at once.
//!
//! Degraded mode has two meanings:
//!
//! - **forced** (config or the operator's override): clear the boards in
//!   the strict sense; primary and keep routes only, the rest the apology;
//! - **auto**: primary first, and the rest only as far as the origin has
//!   room. Normal requests take a free slot, or wait briefly (`fill_wait`)
//!   when the wait they can expect is that short; everyone else is refused
//!   at once. The origin stays full; nobody waits to be turned away.
//!
//! While recovering, the ramp's share of normal requests may queue as in
//! normal mode; the others are treated as in auto degraded mode, so the
//! ramp never admits fewer than degraded did.

use super::View;
use super::mode::Mode;
use crate::admission::ShedReason;
use crate::classify::RouteClass;

/// How long an admitted request may wait for an origin slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Up to `queue_timeout`, if that is the wait it can expect.
    Queue,
    /// Only briefly (`fill_wait`): a free slot, or a short expected wait;
    /// otherwise the apology at once, for this reason.
    Fill(ShedReason),
}

/// What happens to a request before it meets the origin queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on to the origin queue, waiting at most so long.
    Admit(Wait),
    /// Answer with the apology, for this reason.
    Shed(ShedReason),
}

/// Decides for one request. `draw` is uniform in [0, 1).
pub fn decide(class: RouteClass, view: View, draw: f64) -> Decision {
    use Decision::{Admit, Shed};
    match (class, view.mode) {
        (RouteClass::Primary, _) => Admit(Wait::Queue),
        (RouteClass::Keep | RouteClass::Normal, Mode::Normal) => Admit(Wait::Queue),
        // Keep routes are always proxied, but in degraded mode they do not
        // wait behind the primary path: room at the origin, or the apology.
        (RouteClass::Keep, _) if view.mode == Mode::Degraded => {
            Admit(Wait::Fill(ShedReason::Degraded))
        }
        (RouteClass::Keep, _) => Admit(Wait::Queue),
        (RouteClass::Normal, Mode::Degraded) if view.strict => Shed(ShedReason::Degraded),
        (RouteClass::Normal, Mode::Degraded) => Admit(Wait::Fill(ShedReason::Degraded)),
        (RouteClass::Normal, Mode::Recovering) if draw < view.admit_fraction => Admit(Wait::Queue),
        (RouteClass::Normal, Mode::Recovering) => Admit(Wait::Fill(ShedReason::Ramp)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(mode: Mode, strict: bool) -> View {
        View {
            mode,
            admit_fraction: 0.5,
            strict,
        }
    }

    #[test]
    fn every_class_mode_and_draw() {
        use Decision::*;
        use RouteClass::*;
        let draws = [0.0, 0.25, 0.4999, 0.5, 0.75, 0.9999];
        for mode in [Mode::Normal, Mode::Degraded, Mode::Recovering] {
            for strict in [false, true] {
                for draw in draws {
                    let v = view(mode, strict);
                    assert_eq!(decide(Primary, v, draw), Admit(Wait::Queue));
                    let keep = match mode {
                        Mode::Degraded => Admit(Wait::Fill(ShedReason::Degraded)),
                        _ => Admit(Wait::Queue),
                    };
                    assert_eq!(decide(Keep, v, draw), keep, "{mode:?}");
                    let normal = match mode {
                        Mode::Normal => Admit(Wait::Queue),
                        Mode::Degraded if strict => Shed(ShedReason::Degraded),
                        Mode::Degraded => Admit(Wait::Fill(ShedReason::Degraded)),
                        Mode::Recovering if draw < 0.5 => Admit(Wait::Queue),
                        Mode::Recovering => Admit(Wait::Fill(ShedReason::Ramp)),
                    };
                    assert_eq!(decide(Normal, v, draw), normal, "{mode:?} {strict} {draw}");
                }
            }
        }
    }

    #[test]
    fn ramp_fraction_is_the_share_that_may_queue() {
        let v = View {
            mode: Mode::Recovering,
            admit_fraction: 0.3,
            strict: false,
        };
        let queued = (0..10_000)
            .filter(|i| {
                decide(RouteClass::Normal, v, *i as f64 / 10_000.0) == Decision::Admit(Wait::Queue)
            })
            .count();
        assert_eq!(queued, 3000);
    }
}
