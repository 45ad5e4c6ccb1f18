use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::{Enter, Exit, ModeSetting, Shedding};

fn cfg() -> Shedding {
    Shedding {
        mode: ModeSetting::Auto,
        tick: Duration::from_millis(250),
        window_secs: 10,
        min_samples: 20,
        min_dwell: Duration::from_secs(5),
        primary_max_inflight: None,
        fill_wait: Duration::from_millis(20),
        dry_run: false,
        client_budget: Some(50),
        enter: Enter {
            inflight: Some(100),
            ttfb_p95: Some(Duration::from_millis(800)),
            failure_rate: Some(0.2),
            queue_wait_p95: Some(Duration::from_millis(200)),
            after: Duration::from_secs(2),
        },
        exit: Exit {
            fraction: 0.7,
            after: Duration::from_secs(20),
            ramp: Duration::from_secs(30),
            ramp_start: 0.1,
        },
    }
}

fn calm() -> Signals {
    Signals {
        inflight: 10,
        ttfb_p95: Some(Duration::from_millis(50)),
        failure_rate: Some(0.0),
        queue_wait_p95: None,
        samples: 1000,
        arrivals_per_s: None,
        served_per_s: None,
    }
}

fn ttfb(ms: u64) -> Signals {
    Signals {
        ttfb_p95: Some(Duration::from_millis(ms)),
        ..calm()
    }
}

/// Drives the machine with `signal(t)` every 250 ms for `secs`; returns the
/// transitions with their times in seconds.
fn run(
    m: &mut Machine,
    start: Instant,
    from: f64,
    secs: f64,
    signal: impl Fn(f64) -> Signals,
) -> Vec<(f64, Mode)> {
    let cfg = cfg();
    let mut out = Vec::new();
    let mut t = from;
    while t <= from + secs {
        let now = start + Duration::from_secs_f64(t);
        if let Some(tr) = m.tick(now, &signal(t), &cfg) {
            out.push((t, tr.to));
        }
        t += 0.25;
    }
    out
}

#[test]
fn each_enter_condition_degrades_after_holding() {
    let hot = [
        Signals {
            inflight: 100,
            ..calm()
        },
        ttfb(800),
        Signals {
            failure_rate: Some(0.25),
            ..calm()
        },
        Signals {
            queue_wait_p95: Some(Duration::from_millis(300)),
            ..calm()
        },
    ];
    for s in hot {
        let start = Instant::now();
        let mut m = Machine::new(Mode::Normal, start - Duration::from_secs(60));
        let changes = run(&mut m, start, 0.0, 10.0, |_| s);
        assert_eq!(changes, vec![(2.0, Mode::Degraded)], "{s:?}");
    }
}

#[test]
fn a_short_spike_does_not_degrade() {
    let start = Instant::now();
    let mut m = Machine::new(Mode::Normal, start - Duration::from_secs(60));
    let changes = run(&mut m, start, 0.0, 30.0, |t| {
        if (5.0..6.75).contains(&t) {
            ttfb(2000)
        } else {
            calm()
        }
    });
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn full_episode_degrade_recover_ramp_normal() {
    let start = Instant::now();
    let cfg = cfg();
    let mut m = Machine::new(Mode::Normal, start - Duration::from_secs(60));
    // Hot for 10 s, then calm.
    let changes = run(&mut m, start, 0.0, 120.0, |t| {
        if t < 10.0 { ttfb(1500) } else { calm() }
    });
    // Degraded at 2 s; calm from 10 s, held 20 s -> recovering at 30 s; ramp 30 s -> normal at 60 s.
    assert_eq!(
        changes,
        vec![
            (2.0, Mode::Degraded),
            (30.0, Mode::Recovering),
            (60.0, Mode::Normal)
        ]
    );
    let mut m = Machine::new(Mode::Recovering, start);
    assert!((m.admit_fraction(start, &cfg) - 0.1).abs() < 1e-9);
    assert!((m.admit_fraction(start + Duration::from_secs(15), &cfg) - 0.55).abs() < 1e-9);
    assert_eq!(m.admit_fraction(start + Duration::from_secs(45), &cfg), 1.0);
    m.force(Mode::Degraded, start, "test", calm());
    assert_eq!(m.admit_fraction(start, &cfg), 0.0);
}

#[test]
fn between_exit_and_enter_levels_stays_degraded() {
    // 700 ms is below the enter level (800) but above the exit level (560):
    // hysteresis keeps the boards cleared.
    let start = Instant::now();
    let mut m = Machine::new(Mode::Degraded, start - Duration::from_secs(60));
    let changes = run(&mut m, start, 0.0, 120.0, |_| ttfb(700));
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn trouble_during_the_ramp_goes_back_to_degraded() {
    let start = Instant::now();
    let mut m = Machine::new(Mode::Recovering, start - Duration::from_secs(6));
    let changes = run(&mut m, start, 0.0, 5.0, |t| {
        if t >= 3.0 { ttfb(900) } else { calm() }
    });
    assert_eq!(changes, vec![(3.0, Mode::Degraded)]);
}

#[test]
fn min_dwell_holds_each_mode() {
    let start = Instant::now();
    let mut m = Machine::new(Mode::Normal, start);
    m.force(Mode::Recovering, start, "test", calm());
    // Hot at once, but the ramp began just now: wait out the dwell.
    let changes = run(&mut m, start, 0.0, 10.0, |_| ttfb(900));
    assert_eq!(changes, vec![(5.0, Mode::Degraded)]);
}

#[test]
fn start_up_is_not_a_change() {
    // A stampede in the first seconds after start degrades after `enter.after`,
    // not after the minimum dwell.
    let start = Instant::now();
    let mut m = Machine::new(Mode::Normal, start);
    let changes = run(&mut m, start, 0.0, 5.0, |_| ttfb(900));
    assert_eq!(changes, vec![(2.0, Mode::Degraded)]);
}

#[test]
fn square_wave_around_the_threshold_does_not_flap() {
    // A load that crosses the enter level for 1.5 s out of every 3 s, for ten
    // minutes: never held for `enter.after` (2 s), so never degrades...
    let start = Instant::now();
    let mut m = Machine::new(Mode::Normal, start - Duration::from_secs(60));
    let wave = |period: f64, hot_for: f64| {
        move |t: f64| {
            if t % period < hot_for {
                ttfb(820)
            } else {
                ttfb(780)
            }
        }
    };
    assert!(run(&mut m, start, 0.0, 600.0, wave(3.0, 1.5)).is_empty());
    // ...and one that holds long enough degrades exactly once and stays
    // there: 780 ms is far above the exit level, so it never recovers.
    let mut m = Machine::new(Mode::Normal, start - Duration::from_secs(60));
    let changes = run(&mut m, start, 0.0, 600.0, wave(10.0, 5.0));
    assert_eq!(changes, vec![(2.0, Mode::Degraded)]);
}

#[test]
fn calm_square_wave_after_an_episode_recovers_once() {
    // Recovery with signals oscillating just under the exit level: one
    // recovery, one return to normal, no flapping.
    let start = Instant::now();
    let mut m = Machine::new(Mode::Degraded, start - Duration::from_secs(60));
    let changes = run(&mut m, start, 0.0, 300.0, |t| {
        if t % 2.0 < 1.0 { ttfb(500) } else { ttfb(100) }
    });
    assert_eq!(
        changes,
        vec![(20.0, Mode::Recovering), (50.0, Mode::Normal)]
    );
}

#[test]
fn no_samples_is_calm() {
    let start = Instant::now();
    let mut m = Machine::new(Mode::Degraded, start - Duration::from_secs(60));
    let quiet = Signals::default();
    let changes = run(&mut m, start, 0.0, 60.0, |_| quiet);
    assert_eq!(changes[0], (20.0, Mode::Recovering));
}

#[test]
fn shedding_calms_the_origin_but_recovery_waits_for_the_wave_to_pass() {
    // Degraded at a throughput of 200/s; the origin looks calm at once (the
    // pages are shed), but 2000/s are still arriving: no recovery until the
    // demand is below 70 % of 200/s.
    let start = Instant::now();
    let mut m = Machine::new(Mode::Normal, start - Duration::from_secs(60));
    let saturated = Signals {
        served_per_s: Some(200.0),
        arrivals_per_s: Some(1500.0),
        ..ttfb(900)
    };
    let shedding = |arrivals: f64| Signals {
        served_per_s: Some(20.0),
        arrivals_per_s: Some(arrivals),
        ..calm()
    };
    let changes = run(&mut m, start, 0.0, 120.0, |t| {
        if t < 3.0 {
            saturated
        } else if t < 60.0 {
            shedding(2000.0)
        } else {
            shedding(100.0)
        }
    });
    // Degraded at 2 s; demand fits from 60 s; held 20 s -> recovering at 80 s; ramp 30 s.
    assert_eq!(
        changes,
        vec![
            (2.0, Mode::Degraded),
            (80.0, Mode::Recovering),
            (110.0, Mode::Normal)
        ]
    );
}

#[test]
fn a_slow_origin_under_modest_load_leaves_no_capacity_to_wait_for() {
    // The origin turned slow while serving everything it was asked (a
    // closed loop of clients): its throughput then was demand, not
    // capacity. Once it is fast again, the instant apologies make the same
    // clients arrive much faster; recovery must not wait for that "demand"
    // to fit the slow origin's throughput.
    let start = Instant::now();
    let mut m = Machine::new(Mode::Normal, start - Duration::from_secs(60));
    let slow = Signals {
        served_per_s: Some(6.0),
        arrivals_per_s: Some(6.5),
        ..ttfb(900)
    };
    let fast_again = Signals {
        served_per_s: Some(5.0),
        arrivals_per_s: Some(400.0),
        ..calm()
    };
    let changes = run(&mut m, start, 0.0, 60.0, |t| {
        if t < 3.0 { slow } else { fast_again }
    });
    assert_eq!(
        changes,
        vec![
            (2.0, Mode::Degraded),
            (23.0, Mode::Recovering),
            (53.0, Mode::Normal)
        ]
    );
}
