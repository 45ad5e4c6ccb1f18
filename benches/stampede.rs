//! `cargo bench --bench stampede`: the headline.
//!
//! The simulated release-day origin (capacity C = 4 workers / 20 ms = 200
//! req/s) meets a wave of open-loop load: 0 → 10 × C → 0 over 20 s, 90 %
//! page views and 10 % downloads, run twice in one process: straight at the
//! origin, then through lifeboat in `auto` mode (each with a fresh origin).
//! Reported side by side: primary (download) success and latency against
//! the unloaded p99, what happened to everything else, how fast lifeboat
//! cleared the boards and came back, and how many mode changes it took.
//!
//! Appends a JSON line to `target/bench-results/stampede.jsonl` and writes
//! the per-second timeline to `target/bench-results/stampede-timeline.csv`
//! (plot it with `python3 benches/plot_stampede.py`).

#[path = "support/closed_loop.rs"]
mod closed_loop;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeboat::admission::Mode;
use lifeboat::loadgen::stampede::{self, Wave};
use lifeboat::loadgen::{self, Plan, Report, Retry, Target};

/// Client patience: longer than any queue timeout, shorter than a user's.
const TIMEOUT: Duration = Duration::from_secs(10);

async fn fresh_origin() -> String {
    format!(
        "http://{}",
        closed_loop::sim_origin(stampede::origin()).await
    )
}

fn plan(base: &str, wave: &Wave) -> Plan {
    let capacity = stampede::origin().capacity();
    Plan {
        base: base.into(),
        mix: stampede::mix(),
        rate: Box::new(wave.rate(capacity)),
        duration: wave.duration(),
        timeout: TIMEOUT,
        retry: Retry::Never,
    }
}

/// p99 of downloads with nothing else going on: the latency to beat.
async fn unloaded_p99(base: &str) -> f64 {
    let mix = vec![Target {
        path: "/download/example-os-3.0.iso".into(),
        weight: 1,
        primary: true,
    }];
    let p = Plan {
        base: base.into(),
        mix,
        rate: Box::new(|_| 20.0),
        duration: Duration::from_secs(3),
        timeout: TIMEOUT,
        retry: Retry::Never,
    };
    let r = loadgen::run(p, |_| {}).await;
    r.primary().map_or(0.0, |p| p.latency_ms(0.99))
}

fn line(label: &str, r: &Report) -> String {
    let s = r.seconds.last().cloned().unwrap_or_default();
    format!(
        "{label}: t={:>2}s sent {:>5}/s, primary ok {:>4}/{:<4}, shed {:>5}, failed {:>4}",
        r.seconds.len().saturating_sub(1),
        s.sent,
        s.primary_ok,
        s.primary_sent,
        s.shed,
        s.failed
    )
}

fn main() {
    let rt = closed_loop::runtime();
    rt.block_on(async {
        let wave = Wave::release_day();
        let capacity = stampede::origin().capacity();
        println!(
            "stampede: origin capacity {capacity:.0} req/s, wave to {:.0} req/s over {:?}",
            capacity * wave.peak,
            wave.duration()
        );

        let direct_origin = fresh_origin().await;
        let unloaded = unloaded_p99(&direct_origin).await;
        println!("unloaded download p99: {unloaded:.1} ms");
        let direct = loadgen::run(plan(&direct_origin, &wave), |r| {
            eprintln!("  {}", line("direct  ", r))
        })
        .await;

        let origin = fresh_origin().await;
        let config = lifeboat::config::from_str(
            &stampede::lifeboat_config(&origin, "127.0.0.1:0", None),
            "stampede.toml",
            std::path::Path::new("."),
        )
        .expect("config");
        let lb = lifeboat::Lifeboat::bind(config).await.expect("lifeboat");
        let base = format!("http://{}", lb.http_addr().expect("addr"));
        let shared = lb.shared();
        tokio::spawn(lb.run(std::future::pending()));
        let modes: Arc<Mutex<Vec<(f64, Mode)>>> = Arc::default();
        let watcher = {
            let (modes, shared) = (modes.clone(), shared.clone());
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                let mut last = None;
                loop {
                    let m = shared.admission.view().mode;
                    if last != Some(m) {
                        modes
                            .lock()
                            .expect("modes")
                            .push((start.elapsed().as_secs_f64(), m));
                        last = Some(m);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let through = loadgen::run(plan(&base, &wave), |r| {
            eprintln!(
                "  {} mode {}",
                line("lifeboat", r),
                shared.admission.view().mode.as_str()
            );
        })
        .await;
        // Wait (bounded) for the return to normal after the wave.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while shared.admission.view().mode != Mode::Normal && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        watcher.abort();
        let modes = modes.lock().expect("modes").clone();
        summarise(
            &wave,
            unloaded,
            &direct,
            &through,
            &modes,
            shared.admission.changes(),
        );
    });
}

fn summarise(
    wave: &Wave,
    unloaded: f64,
    direct: &Report,
    through: &Report,
    modes: &[(f64, Mode)],
    changes: u64,
) {
    let (d, l) = (
        direct.primary().expect("primary"),
        through.primary().expect("primary"),
    );
    let degraded_at = modes
        .iter()
        .find(|(_, m)| *m == Mode::Degraded)
        .map(|(t, _)| *t);
    let normal_at = modes
        .iter()
        .rev()
        .find(|(_, m)| *m == Mode::Normal)
        .map(|(t, _)| *t)
        .filter(|t| *t > 0.0);
    let to_degraded = degraded_at.map(|t| t - wave.crosses_capacity_at());
    let to_normal = normal_at.map(|t| t - wave.back_below_at());
    let fmt = |o: &std::collections::BTreeMap<String, u64>| {
        o.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!();
    println!("| | straight at the origin | through lifeboat |");
    println!("|---|---|---|");
    println!(
        "| downloads succeeded | {:.1} % ({}/{}) | {:.1} % ({}/{}) |",
        d.success_rate() * 100.0,
        d.ok(),
        d.total(),
        l.success_rate() * 100.0,
        l.ok(),
        l.total()
    );
    println!(
        "| download p50 / p99 (to headers) | {:.0} / {:.0} ms | {:.0} / {:.0} ms |",
        d.latency_ms(0.5),
        d.latency_ms(0.99),
        l.latency_ms(0.5),
        l.latency_ms(0.99)
    );
    println!(
        "| download p99 / unloaded p99 ({unloaded:.1} ms) | {:.1} x | {:.1} x |",
        d.latency_ms(0.99) / unloaded,
        l.latency_ms(0.99) / unloaded
    );
    println!(
        "| pages | {} | {} |",
        fmt(&direct.others()),
        fmt(&through.others())
    );
    println!(
        "| threshold crossing → degraded | | {} |",
        to_degraded.map_or("never".into(), |t| format!("{t:.1} s"))
    );
    println!(
        "| end of wave → normal | | {} |",
        to_normal.map_or("not yet".into(), |t| format!("{t:.1} s"))
    );
    println!(
        "| mode changes | | {changes} ({}) |",
        modes
            .iter()
            .map(|(t, m)| format!("{t:.1}s {}", m.as_str()))
            .collect::<Vec<_>>()
            .join(" → ")
    );
    let targets_met =
        l.success_rate() >= 0.99 && l.latency_ms(0.99) <= 3.0 * unloaded && changes == 3;
    println!(
        "targets (>= 99 % downloads, p99 <= 3x unloaded, one degrade and one recovery): {}",
        if targets_met { "met" } else { "MISSED" }
    );

    closed_loop::record(
        "stampede",
        serde_json::json!({
            "bench": "stampede",
            "unix_time": closed_loop::unix_time(),
            "unloaded_p99_ms": unloaded,
            "direct": {"success": d.success_rate(), "p50_ms": d.latency_ms(0.5), "p99_ms": d.latency_ms(0.99), "others": direct.others()},
            "lifeboat": {"success": l.success_rate(), "p50_ms": l.latency_ms(0.5), "p99_ms": l.latency_ms(0.99), "others": through.others()},
            "to_degraded_s": to_degraded, "to_normal_s": to_normal, "mode_changes": changes,
        }),
    );
    let mut csv = String::from(
        "second,offered,direct_primary_success,lifeboat_primary_success,lifeboat_mode\n",
    );
    let mode_at = |t: f64| {
        modes
            .iter()
            .rev()
            .find(|(s, _)| *s <= t)
            .map_or("normal", |(_, m)| m.as_str())
    };
    for i in 0..direct.seconds.len().max(through.seconds.len()) {
        let rate = |r: &Report| {
            r.seconds.get(i).map_or(String::new(), |s| {
                if s.primary_sent == 0 {
                    String::new()
                } else {
                    format!("{:.3}", s.primary_ok as f64 / s.primary_sent as f64)
                }
            })
        };
        let offered = direct.seconds.get(i).map_or(0, |s| s.sent);
        csv += &format!(
            "{i},{offered},{},{},{}\n",
            rate(direct),
            rate(through),
            mode_at(i as f64 + 0.5)
        );
    }
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/bench-results/stampede-timeline.csv"),
        csv,
    );
}
