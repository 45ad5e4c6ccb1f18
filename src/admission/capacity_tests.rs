//! Unit tests of the capacity learner, included from `capacity.rs` under
//! `#[cfg(test)]`, against a synthetic origin: `workers` FIFO workers, a
//! service time per class, and demand that either saturates lifeboat's
//! limit or keeps a fixed number of requests in flight.

use super::*;

/// A FIFO origin with a fixed number of workers.
#[derive(Clone, Copy)]
struct Origin {
    workers: f64,
    /// Per class (primary, keep, normal), ms.
    service_ms: [f64; 3],
    /// Share of completed requests per class.
    mix: [f64; 3],
}

const PAGES: Origin = Origin {
    workers: 4.0,
    service_ms: [2.0, 5.0, 20.0],
    mix: [0.0, 0.0, 1.0],
};

/// Half the answers are 2 ms downloads, half 20 ms pages.
const MIXED: Origin = Origin {
    mix: [0.5, 0.0, 0.5],
    ..PAGES
};

impl Origin {
    /// One interval with `depth` requests at the origin (the limit when
    /// `pressed`): every request sent meets `depth - 1` ahead of it.
    fn interval(&self, l: &Learner, depth: usize, low_mark: usize, pressed: bool) -> Interval {
        let mean_ms: f64 = (0..3).map(|c| self.mix[c] * self.service_ms[c]).sum();
        let busy = (depth as f64).min(self.workers);
        let completed = busy / (mean_ms / 1000.0) * INTERVAL.as_secs_f64();
        let wait_ms = (depth as f64 - self.workers).max(0.0) * mean_ms / self.workers;
        let mut s = Interval {
            peak: depth,
            pressed: u64::from(pressed),
            ..Interval::default()
        };
        for c in 0..3 {
            let count = (completed * self.mix[c]).round() as u64;
            let ttfb_us = ((self.service_ms[c] + wait_ms) * 1000.0) as u64;
            let acc = Acc {
                sum_us: count * ttfb_us.min(l.cap_us(c)),
                count,
            };
            s.all[c] = acc;
            if depth <= low_mark {
                s.low[c] = acc;
            }
        }
        s
    }
}

const BOUNDS: Bounds = Bounds {
    min: 2,
    max: 1000,
    initial: 16,
};

/// Runs `secs` of intervals; `demand(t)` is `None` for a saturating wave,
/// or the number of requests the site keeps in flight. Returns the limits.
fn drive(
    l: &mut Learner,
    now: &mut Instant,
    secs: f64,
    origin: impl Fn(f64) -> Origin,
    demand: impl Fn(f64) -> Option<usize>,
) -> Vec<usize> {
    let mut limits = Vec::new();
    let mut step = l.current();
    let steps = (secs / INTERVAL.as_secs_f64()).round() as usize;
    for i in 0..steps {
        let t = i as f64 * INTERVAL.as_secs_f64();
        let (depth, pressed) = match demand(t) {
            None => (step.limit, true),
            Some(d) => (d.min(step.limit), d > step.limit),
        };
        let s = origin(t).interval(l, depth, step.low_mark, pressed);
        *now += INTERVAL;
        step = l.step(*now, &s);
        limits.push(step.learned);
    }
    limits
}

fn warm(origin: Origin) -> (Learner, Instant) {
    let mut now = Instant::now();
    let mut l = Learner::new(BOUNDS, now);
    // A quiet site first: one or two requests at a time.
    drive(&mut l, &mut now, 3.0, |_| origin, |_| Some(2));
    (l, now)
}

fn within(limits: &[usize], lo: usize, hi: usize) -> bool {
    limits.iter().all(|l| (lo..=hi).contains(l))
}

#[test]
fn a_wave_finds_the_workers_and_holds_them() {
    let (mut l, mut now) = warm(PAGES);
    assert_eq!(l.learned(), 16, "a quiet site changes nothing");
    let limits = drive(&mut l, &mut now, 30.0, |_| PAGES, |_| None);
    // Within a second: the four workers plus at most one queued each side.
    assert!(within(&limits[10..], 4, 6), "{limits:?}");
}

#[test]
fn mixed_fast_and_slow_requests_do_not_collapse_the_limit() {
    let (mut l, mut now) = warm(MIXED);
    let limits = drive(&mut l, &mut now, 30.0, |_| MIXED, |_| None);
    assert!(within(&limits[10..], 4, 6), "{limits:?}");
}

#[test]
fn a_large_origin_is_found_and_kept_near_its_size() {
    let big = Origin {
        workers: 64.0,
        ..PAGES
    };
    let (mut l, mut now) = warm(big);
    let limits = drive(&mut l, &mut now, 30.0, |_| big, |_| None);
    // From 16 to 64 workers within 5 s, and no more than half again above.
    assert!(within(&limits[50..], 64, 96), "{limits:?}");
}

#[test]
fn an_origin_at_half_speed_keeps_its_limit_after_a_few_seconds() {
    // Each page takes twice as long from t = 10 s: same workers, so the
    // same limit is right; the baseline must follow, not pin the limit low.
    let (mut l, mut now) = warm(PAGES);
    let slow = Origin {
        service_ms: [4.0, 10.0, 40.0],
        ..PAGES
    };
    let at = |t: f64| if t < 10.0 { PAGES } else { slow };
    let limits = drive(&mut l, &mut now, 30.0, at, |_| None);
    assert!(within(&limits[130..], 4, 6), "{limits:?}");
    // The dip while the baseline is re-measured is short: the workers stay
    // busy 95 % of the time after the change.
    let busy: f64 = limits[100..]
        .iter()
        .map(|l| (*l as f64).min(4.0) / 4.0)
        .sum();
    assert!(busy / 200.0 >= 0.95, "{busy} of 200: {limits:?}");
}

#[test]
fn an_origin_that_loses_half_its_workers_gets_half_the_limit() {
    let (mut l, mut now) = warm(PAGES);
    let half = Origin {
        workers: 2.0,
        ..PAGES
    };
    let at = |t: f64| if t < 10.0 { PAGES } else { half };
    let limits = drive(&mut l, &mut now, 30.0, at, |_| None);
    assert!(within(&limits[130..], 2, 3), "{limits:?}");
}

#[test]
fn an_origin_that_recovers_gets_its_limit_back() {
    // Half speed while learning, full speed from t = 10 s: a stale, high
    // baseline must not let the limit run away.
    let slow = Origin {
        service_ms: [4.0, 10.0, 40.0],
        ..PAGES
    };
    let (mut l, mut now) = warm(slow);
    let at = |t: f64| if t < 10.0 { slow } else { PAGES };
    let limits = drive(&mut l, &mut now, 30.0, at, |_| None);
    assert!(within(&limits[170..], 4, 6), "{limits:?}");
}

#[test]
fn a_quiet_slow_site_does_not_drive_the_limit_down() {
    let (mut l, mut now) = warm(PAGES);
    // The origin becomes five times slower on its own while two requests
    // are in flight: lifeboat is not the cause, and cutting would not help.
    let slow = Origin {
        service_ms: [10.0, 25.0, 100.0],
        ..PAGES
    };
    let limits = drive(&mut l, &mut now, 10.0, |_| slow, |_| Some(2));
    assert!(limits.iter().all(|l| *l == 16), "{limits:?}");
}

#[test]
fn one_slow_request_weighs_little() {
    let (mut l, mut now) = warm(PAGES);
    drive(&mut l, &mut now, 5.0, |_| PAGES, |_| None);
    let before = l.learned();
    // Twenty ordinary answers and one of ten seconds, at the learned limit.
    let mut s = PAGES.interval(&l, before, 1, true);
    s.all[2].count += 1;
    s.all[2].sum_us += 10_000_000u64.min(l.cap_us(2));
    now += INTERVAL;
    let step = l.step(now, &s);
    assert!(step.learned >= before, "{before} -> {}", step.learned);
}

#[test]
fn a_cold_start_in_the_middle_of_a_wave_learns_quickly() {
    let mut now = Instant::now();
    let mut l = Learner::new(BOUNDS, now);
    let limits = drive(&mut l, &mut now, 10.0, |_| PAGES, |_| None);
    assert!(within(&limits[20..], 4, 6), "{limits:?}");
}

#[test]
fn bounds_hold() {
    let tight = Bounds {
        min: 8,
        max: 10,
        initial: 50,
    };
    let mut now = Instant::now();
    let mut l = Learner::new(tight, now);
    assert_eq!(l.learned(), 10);
    drive(&mut l, &mut now, 1.0, |_| PAGES, |_| Some(1));
    let limits = drive(&mut l, &mut now, 10.0, |_| PAGES, |_| None);
    assert!(within(&limits, 8, 10), "{limits:?}");
    let step = l.current();
    assert!(step.limit >= 8, "a probe never goes below the floor");
}

#[test]
fn probes_are_short_and_rare() {
    let (mut l, mut now) = warm(PAGES);
    let mut probing = 0;
    let mut step = l.current();
    for _ in 0..300 {
        let s = PAGES.interval(&l, step.limit, step.low_mark, true);
        now += INTERVAL;
        step = l.step(now, &s);
        probing += usize::from(step.probing);
    }
    // 30 s at the limit: a probe of two intervals every 5 s at most, plus
    // the first measurement.
    assert!(probing <= 2 * 8, "{probing} intervals of 300 spent probing");
}

#[test]
fn a_slow_page_is_measured_again_even_at_a_small_probe_limit() {
    // 50 ms pages beside 2 ms downloads: at a probe's depth a page
    // completes once or twice per interval, too few for one interval.
    let slow_pages = Origin {
        service_ms: [2.0, 5.0, 50.0],
        ..MIXED
    };
    let slower = Origin {
        service_ms: [4.0, 10.0, 100.0],
        ..MIXED
    };
    let (mut l, mut now) = warm(slow_pages);
    let at = |t: f64| if t < 10.0 { slow_pages } else { slower };
    let limits = drive(&mut l, &mut now, 30.0, at, |_| None);
    assert!(within(&limits[200..], 4, 6), "{limits:?} {l:?}");
    let page = l.baseline(2).map(|b| b.as_millis());
    assert!(
        page.is_some_and(|ms| (95..=110).contains(&ms)),
        "the page baseline followed the origin: {page:?}"
    );
}

/// One interval of a static origin (nginx serving files) whose slots are
/// all held by long transfers: every request sent got its head at once,
/// so at most `answers` heads arrived (new requests let in), all at the
/// baseline, and everything at the origin is a transfer.
fn transfers(limit: usize, answers: u64, baseline_us: u64) -> Interval {
    let mut s = Interval {
        peak: limit,
        pressed: 1,
        at_origin: limit,
        streaming: limit,
        ..Interval::default()
    };
    s.all[0] = Acc {
        sum_us: answers * baseline_us,
        count: answers,
    };
    s
}

#[test]
fn long_transfers_on_a_static_origin_grow_the_limit_within_a_second() {
    let mut now = Instant::now();
    let bounds = Bounds {
        max: 4096,
        ..BOUNDS
    };
    let mut l = Learner::new(bounds, now);
    // 2,000 visitors at once, each download minutes long: the first 16
    // answered at once and now hold every slot.
    let mut step = l.current();
    let mut limits = Vec::new();
    for i in 0..10 {
        // The first interval brings the first answers; later ones only
        // those let in by the last doubling.
        let answers = if i == 0 { 16 } else { (step.limit / 2) as u64 };
        now += INTERVAL;
        step = l.step(now, &transfers(step.limit, answers, 500));
        limits.push(step.limit);
        assert!(!step.probing, "a probe cannot drain transfers: {limits:?}");
    }
    assert!(limits[6] >= 2000, "{limits:?}");
    assert!(within(&limits, 32, 4096), "{limits:?}");
}

#[test]
fn transfers_with_no_answers_at_all_do_not_freeze_the_limit() {
    // A quiet site's few long downloads fill a small limit and a few more
    // visitors wait: no answer arrives for seconds.
    let mut now = Instant::now();
    let mut l = Learner::new(BOUNDS, now);
    let mut limit = l.current().limit;
    for _ in 0..3 {
        now += INTERVAL;
        limit = l.step(now, &transfers(limit, 0, 0)).limit;
    }
    assert_eq!(limit, 128);
}

#[test]
fn a_sync_worker_origin_whose_workers_the_bodies_hold_is_not_flooded() {
    // Four workers, each held by a body sent at its visitor's pace; the
    // requests beyond them wait for their head inside the origin and no
    // answer comes back: that is a queue, not transfers.
    let mut now = Instant::now();
    let mut l = Learner::new(BOUNDS, now);
    let mut limits = Vec::new();
    let mut limit = l.current().limit;
    for _ in 0..50 {
        let s = Interval {
            peak: limit,
            pressed: 1,
            at_origin: limit,
            streaming: limit.min(4),
            ..Interval::default()
        };
        now += INTERVAL;
        limit = l.step(now, &s).limit;
        limits.push(limit);
    }
    assert!(within(&limits, 2, 16), "{limits:?}");
}

#[test]
fn slow_answers_beside_the_transfers_hold_the_limit_where_it_is() {
    let (mut l, mut now) = warm(PAGES);
    let baseline = l.baseline(2).unwrap().as_micros() as u64;
    // Transfers hold the slots, and the pages that do come back take
    // four times their baseline (60 ms late): no more, and no fewer either
    // (the transfers in flight would shut every newcomer out until they
    // end).
    let mut s = transfers(16, 0, 0);
    s.all[2] = Acc {
        sum_us: 4 * baseline * 8,
        count: 8,
    };
    now += INTERVAL;
    let step = l.step(now, &s);
    assert_eq!(step.learned, 16, "{step:?}");
    assert!(!step.growing);
}

#[test]
fn a_quiet_site_with_a_long_download_or_two_changes_nothing() {
    let mut now = Instant::now();
    let mut l = Learner::new(BOUNDS, now);
    for _ in 0..100 {
        let s = Interval {
            peak: 2,
            at_origin: 2,
            streaming: 2,
            ..Interval::default()
        };
        now += INTERVAL;
        assert_eq!(l.step(now, &s).limit, 16);
    }
}

#[test]
fn heads_a_few_milliseconds_late_beside_the_transfers_keep_the_limit_growing() {
    let (mut l, mut now) = warm(PAGES);
    let baseline = l.baseline(2).unwrap().as_micros() as u64;
    // The pages take twice their 20 ms: the cores are busy with bodies.
    let mut s = transfers(16, 0, 0);
    s.all[2] = Acc {
        sum_us: 2 * baseline * 8,
        count: 8,
    };
    now += INTERVAL;
    assert_eq!(l.step(now, &s).learned, 32);
}

#[test]
fn sub_millisecond_heads_slowed_by_a_busy_core_are_not_a_queue() {
    // A static origin whose heads take 0.3 ms alone and 0.8 ms while the
    // cores move bodies: long transfers fill the limit, and it grows.
    let mut now = Instant::now();
    let mut l = Learner::new(BOUNDS, now);
    let mut s = transfers(16, 16, 300);
    s.low[0] = s.all[0];
    now += INTERVAL;
    let mut limit = l.step(now, &s).limit;
    assert_eq!(limit, 32);
    for _ in 0..3 {
        now += INTERVAL;
        limit = l
            .step(now, &transfers(limit, (limit / 2) as u64, 800))
            .limit;
    }
    assert_eq!(limit, 256);
}

#[test]
fn downloads_waiting_behind_transfers_are_taken_in_one_step() {
    let mut now = Instant::now();
    let mut l = Learner::new(
        Bounds {
            max: 4096,
            ..BOUNDS
        },
        now,
    );
    let mut s = transfers(16, 16, 500);
    s.waiting_primary = 1984;
    now += INTERVAL;
    let step = l.step(now, &s);
    assert_eq!(step.limit, 2000, "{step:?}");
    assert!(step.growing);
}

#[test]
fn a_static_origin_that_never_queues_only_ever_grows_under_a_wave() {
    // Thousands of workers, nothing queues: every answer at its baseline.
    let statics = Origin {
        workers: 100_000.0,
        ..PAGES
    };
    let (mut l, mut now) = warm(statics);
    let limits = drive(&mut l, &mut now, 10.0, |_| statics, |_| None);
    assert!(
        limits.windows(2).all(|w| w[1] >= w[0] || w[0] > 900),
        "{limits:?}"
    );
    assert!(*limits.last().unwrap() >= 900, "{limits:?}");
}
