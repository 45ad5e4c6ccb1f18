//! The admission decision: pure, no lock, no I/O, never awaits. Given the
//! request's class, the mode and the ramp's admitted fraction, and a random
//! draw in [0, 1), it says whether the request may go on towards the origin
//! (and whether it may wait in lifeboat's queue) or gets the apology.

use super::mode::Mode;
use crate::apology::ShedReason;
use crate::classify::RouteClass;

/// What happens to a request before it meets the origin queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on to the origin queue; `queue` says whether it may wait there.
    Admit {
        /// May wait for an origin slot (false: take a free one or be shed).
        queue: bool,
    },
    /// Answer with the apology, for this reason.
    Shed(ShedReason),
}

/// Decides for one request. `draw` is uniform in [0, 1).
pub fn decide(class: RouteClass, mode: Mode, admit_fraction: f64, draw: f64) -> Decision {
    match (class, mode) {
        (RouteClass::Primary, _) => Decision::Admit { queue: true },
        // Keep routes are always proxied, but in degraded mode they do not
        // wait behind the primary path: a free slot or the apology.
        (RouteClass::Keep, Mode::Degraded) => Decision::Admit { queue: false },
        (RouteClass::Keep, _) => Decision::Admit { queue: true },
        (RouteClass::Normal, Mode::Normal) => Decision::Admit { queue: true },
        (RouteClass::Normal, Mode::Degraded) => Decision::Shed(ShedReason::Degraded),
        (RouteClass::Normal, Mode::Recovering) if draw < admit_fraction => {
            Decision::Admit { queue: true }
        }
        (RouteClass::Normal, Mode::Recovering) => Decision::Shed(ShedReason::Ramp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_mode_and_draw() {
        use Decision::*;
        use RouteClass::*;
        let draws = [0.0, 0.25, 0.4999, 0.5, 0.75, 0.9999];
        for mode in [Mode::Normal, Mode::Degraded, Mode::Recovering] {
            for draw in draws {
                let frac = 0.5;
                assert_eq!(decide(Primary, mode, frac, draw), Admit { queue: true });
                let keep = decide(Keep, mode, frac, draw);
                assert_eq!(
                    keep,
                    Admit {
                        queue: mode != Mode::Degraded
                    }
                );
                let normal = decide(Normal, mode, frac, draw);
                let expected = match mode {
                    Mode::Normal => Admit { queue: true },
                    Mode::Degraded => Shed(ShedReason::Degraded),
                    Mode::Recovering if draw < frac => Admit { queue: true },
                    Mode::Recovering => Shed(ShedReason::Ramp),
                };
                assert_eq!(normal, expected, "{mode:?} draw {draw}");
            }
        }
    }

    #[test]
    fn ramp_fraction_is_the_admitted_share() {
        let admitted = (0..10_000)
            .filter(|i| {
                matches!(
                    decide(
                        RouteClass::Normal,
                        Mode::Recovering,
                        0.3,
                        *i as f64 / 10_000.0
                    ),
                    Decision::Admit { .. }
                )
            })
            .count();
        assert_eq!(admitted, 3000);
    }
}
