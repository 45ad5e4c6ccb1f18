//! `cargo bench --bench stampede`: the headline.
//!
//! The simulated release-day origin (4 workers, 20 ms a page: C = 200
//! pages/s; 2 ms of a worker per download) meets a wave of open-loop load:
//! 0 → 10 × C → 0 over 20 s, 90 % page views and 10 % downloads. Each
//! scenario gets a fresh origin and, where it has one, a fresh lifeboat:
//!
//! - `direct`: straight at the origin;
//! - `defaults`: lifeboat with its documented defaults (no capacity told:
//!   the origin's limit is learned);
//! - `hand-set`: lifeboat with `max_inflight = 4` (the right guess) and one
//!   slot kept for downloads;
//! - `half-speed`: the defaults again, and the origin slows to half speed
//!   (every service time doubled) 10 s into the wave.
//!
//! Reported per scenario: downloads (success, p99 against the unloaded
//! p99), **goodput** (pages served ÷ pages the origin could have served
//! during the wave, second by second, given the downloads it also served
//! and its speed), how fast a refused visitor was told (p50/p90/p99 to the
//! apology), when lifeboat degraded and came back, and its mode changes.
//! Targets (the defaults): downloads ≥ 99.5 % with p99 ≤ 3 × unloaded,
//! goodput ≥ 90 %, refused p99 ≤ 50 ms, normal ≤ 15 s after the wave.
//!
//! Appends a JSON line to `target/bench-results/stampede.jsonl` and writes
//! the per-second timeline (with the learned limit) to
//! `target/bench-results/stampede-timeline.csv`; `python3
//! benches/plot_stampede.py` draws it into `docs/stampede.svg`.

#[path = "support/closed_loop.rs"]
mod closed_loop;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeboat::admission::Mode;
use lifeboat_sim::loadgen::stampede::{self, Setup, Wave};
use lifeboat_sim::loadgen::{self, Plan, Report, Retry, Target};
use lifeboat_sim::origin_sim::{SimOrigin, Speed};

/// Client patience: longer than any queue timeout, shorter than a user's.
const TIMEOUT: Duration = Duration::from_secs(10);
/// When the half-speed scenario slows its origin down, seconds into the wave.
const SLOW_AT: f64 = 10.0;

async fn fresh_origin() -> (String, Speed) {
    let origin = SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), stampede::origin())
        .await
        .expect("origin");
    let url = format!("http://{}", origin.addr().expect("origin addr"));
    let speed = origin.speed();
    tokio::spawn(origin.run());
    (url, speed)
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

/// The origin unloaded: download p99 (the latency to beat), and the time a
/// download and a page really hold a worker, as the origin measured it
/// (timer slack included: what its capacity is made of), ms.
struct Unloaded {
    download_p99: f64,
    download_ms: f64,
    page_ms: f64,
}

async fn unloaded() -> Unloaded {
    let (base, speed) = fresh_origin().await;
    let target = |path: &str, primary| Target {
        path: path.into(),
        weight: 1,
        primary,
    };
    let p = Plan {
        base,
        mix: vec![
            target("/download/example-os-3.0.iso", true),
            target("/", false),
        ],
        rate: Box::new(|_| 20.0),
        duration: Duration::from_secs(3),
        timeout: TIMEOUT,
        retry: Retry::Never,
    };
    let r = loadgen::run(p, |_| {}).await;
    let (page_ms, download_ms) = speed.mean_hold_ms();
    Unloaded {
        download_p99: r.primary().expect("downloads").latency_ms(0.99),
        download_ms,
        page_ms,
    }
}

/// What one scenario saw.
struct Run {
    name: &'static str,
    report: Report,
    /// (seconds since the wave began, mode, learned limit), every 100 ms.
    trace: Vec<(f64, Mode, usize)>,
    changes: Option<u64>,
    slowed: bool,
}

/// Pages the origin could have served in each second of the wave: its
/// worker time, less what that second's downloads took, over what a page
/// takes (both as measured unloaded), and never more than were offered.
fn could_serve(r: &Report, slowed: bool, u: &Unloaded) -> f64 {
    let workers = stampede::origin().workers as f64;
    r.seconds
        .iter()
        .enumerate()
        .map(|(s, sec)| {
            let f = if slowed && s as f64 >= SLOW_AT {
                2.0
            } else {
                1.0
            };
            let dl = sec.primary_sent as f64 * u.download_ms / 1000.0 * f;
            let cap = (workers - dl).max(0.0) / (u.page_ms / 1000.0 * f);
            cap.min(sec.pages_sent as f64)
        })
        .sum()
}

async fn scenario(name: &'static str, setup: Option<Setup>, slow: bool, wave: &Wave) -> Run {
    let (origin, speed) = fresh_origin().await;
    let Some(setup) = setup else {
        let slower = slow.then(|| slow_down_later(speed));
        let report = loadgen::run(plan(&origin, wave), |r| eprintln!("  {}", line(name, r))).await;
        drop(slower);
        return Run {
            name,
            report,
            trace: Vec::new(),
            changes: None,
            slowed: slow,
        };
    };
    let text = stampede::lifeboat_config(&origin, "127.0.0.1:0", "off", None, setup);
    let config = lifeboat::config::from_str(&text, "stampede.toml", std::path::Path::new("."))
        .expect("config");
    let lb = lifeboat::Lifeboat::bind(config).await.expect("lifeboat");
    let base = format!("http://{}", lb.http_addr().expect("addr"));
    let shared = lb.shared();
    let server = tokio::spawn(lb.run(std::future::pending()));
    let trace: Arc<Mutex<Vec<(f64, Mode, usize)>>> = Arc::default();
    let watcher = {
        let (trace, shared) = (trace.clone(), shared.clone());
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let verbose = std::env::var_os("STAMPEDE_TRACE").is_some();
            loop {
                if verbose {
                    let c = shared.admission.capacity();
                    eprintln!(
                        "    {:>5.1}s limit {} applied {} ratio {:?} baseline {:?} drain {:.0} inflight {}",
                        start.elapsed().as_secs_f64(),
                        c.limit,
                        c.applied,
                        c.ratio,
                        c.baseline,
                        c.drain_per_s,
                        shared.admission.origin.inflight()
                    );
                }
                let entry = (
                    start.elapsed().as_secs_f64(),
                    shared.admission.view().mode,
                    shared.admission.capacity().limit,
                );
                trace.lock().expect("trace").push(entry);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let slower = slow.then(|| slow_down_later(speed));
    let report = loadgen::run(plan(&base, wave), |r| {
        let c = shared.admission.capacity();
        eprintln!(
            "  {} mode {:<10} limit {}",
            line(name, r),
            shared.admission.view().mode.as_str(),
            c.limit
        );
    })
    .await;
    drop(slower);
    // Wait (bounded) for the return to normal after the wave.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while shared.admission.view().mode != Mode::Normal && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    watcher.abort();
    server.abort();
    let trace = trace.lock().expect("trace").clone();
    Run {
        name,
        report,
        trace,
        changes: Some(shared.admission.changes()),
        slowed: slow,
    }
}

/// Slows the origin to half speed `SLOW_AT` seconds from now (aborted on drop).
fn slow_down_later(speed: Speed) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(SLOW_AT)).await;
        speed.slow_down(2.0);
    }))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn line(label: &str, r: &Report) -> String {
    let s = r.seconds.last().cloned().unwrap_or_default();
    format!(
        "{label:<10} t={:>2}s sent {:>5}/s, downloads ok {:>4}/{:<4}, pages ok {:>4}, shed {:>5}, failed {:>4}",
        r.seconds.len().saturating_sub(1),
        s.sent,
        s.primary_ok,
        s.primary_sent,
        s.pages_ok,
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
            "stampede: origin capacity {capacity:.0} pages/s, wave to {:.0} req/s over {:?}",
            capacity * wave.peak,
            wave.duration()
        );
        let unloaded = unloaded().await;
        println!(
            "unloaded: download p99 {:.1} ms; a download holds a worker {:.1} ms, a page {:.1} ms",
            unloaded.download_p99, unloaded.download_ms, unloaded.page_ms
        );
        // `STAMPEDE_ONLY=defaults,half-speed` runs just those.
        let only = std::env::var("STAMPEDE_ONLY").ok();
        let mut runs = Vec::new();
        for (name, setup, slow) in [
            ("direct", None, false),
            ("defaults", Some(Setup::Defaults), false),
            ("hand-set", Some(Setup::HandSet(4)), false),
            ("half-speed", Some(Setup::Defaults), true),
        ] {
            if only
                .as_ref()
                .is_some_and(|o| !o.split(',').any(|n| n == name))
            {
                continue;
            }
            runs.push(scenario(name, setup, slow, &wave).await);
        }
        summarise(&wave, &unloaded, &runs);
    });
}

/// When the mode first became `mode` after `after` seconds, from a trace.
fn first(trace: &[(f64, Mode, usize)], mode: Mode, after: f64) -> Option<f64> {
    trace
        .iter()
        .find(|(t, m, _)| *t >= after && *m == mode)
        .map(|(t, ..)| *t)
}

fn summarise(wave: &Wave, u: &Unloaded, runs: &[Run]) {
    let unloaded = u.download_p99;
    println!();
    println!(
        "| scenario | downloads ok | download p99 (× unloaded {unloaded:.1} ms) | pages served / could serve (goodput) | refused told p50 / p90 / p99 | degraded after crossing | normal after the wave | mode changes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut json = serde_json::Map::new();
    let mut met = true;
    for run in runs {
        let r = &run.report;
        let p = r.primary().expect("primary");
        let could = could_serve(r, run.slowed, u);
        let goodput = r.pages_ok() as f64 / could.max(1.0);
        let degraded = first(&run.trace, Mode::Degraded, 0.0);
        let normal = degraded.and_then(|d| first(&run.trace, Mode::Normal, d));
        let to_degraded = degraded.map(|t| t - wave.crosses_capacity_at());
        let to_normal = normal.map(|t| t - wave.back_below_at());
        let shed_total: u64 = r.seconds.iter().map(|s| s.shed).sum();
        println!(
            "| {} | {:.2} % ({}/{}) | {:.0} ms ({:.1} ×) | {} / {:.0} ({:.0} %) | {} | {} | {} | {} |",
            run.name,
            p.success_rate() * 100.0,
            p.ok(),
            p.total(),
            p.latency_ms(0.99),
            p.latency_ms(0.99) / unloaded,
            r.pages_ok(),
            could,
            goodput * 100.0,
            if shed_total == 0 {
                "nobody refused".to_string()
            } else {
                format!(
                    "{:.0} / {:.0} / {:.0} ms ({shed_total})",
                    r.refused_ms(0.5),
                    r.refused_ms(0.9),
                    r.refused_ms(0.99)
                )
            },
            to_degraded.map_or("—".into(), |t| format!("{t:.1} s")),
            to_normal.map_or("—".into(), |t| format!("{t:.1} s")),
            run.changes.map_or("—".into(), |c| c.to_string()),
        );
        if run.name == "defaults" {
            met = p.success_rate() >= 0.995
                && p.latency_ms(0.99) <= 3.0 * unloaded
                && goodput >= 0.9
                && r.refused_ms(0.99) <= 50.0
                && to_normal.is_some_and(|t| t <= 15.0)
                && run.changes == Some(3);
        }
        json.insert(
            run.name.into(),
            serde_json::json!({
                "success": p.success_rate(), "p99_ms": p.latency_ms(0.99),
                "pages_ok": r.pages_ok(), "could_serve": could, "goodput": goodput,
                "refused_p50_ms": r.refused_ms(0.5), "refused_p90_ms": r.refused_ms(0.9),
                "refused_p99_ms": r.refused_ms(0.99), "shed": shed_total,
                "to_degraded_s": to_degraded, "to_normal_s": to_normal, "mode_changes": run.changes,
            }),
        );
    }
    println!(
        "targets with the defaults (downloads >= 99.5 % with p99 <= 3x unloaded, goodput >= 90 %, refused p99 <= 50 ms, normal <= 15 s after the wave, one degrade and one recovery): {}",
        if met { "met" } else { "MISSED" }
    );
    json.insert("bench".into(), "stampede".into());
    json.insert("unix_time".into(), closed_loop::unix_time().into());
    json.insert("unloaded_p99_ms".into(), unloaded.into());
    json.insert("page_ms".into(), u.page_ms.into());
    json.insert("download_ms".into(), u.download_ms.into());
    closed_loop::record("stampede", serde_json::Value::Object(json));
    write_timeline(runs);
}

/// Per second: offered load, goodput and download success per scenario,
/// and lifeboat's mode and learned limit (defaults and half-speed).
fn write_timeline(runs: &[Run]) {
    let by = |name: &str| runs.iter().find(|r| r.name == name);
    let (Some(direct), Some(defaults), Some(half)) =
        (by("direct"), by("defaults"), by("half-speed"))
    else {
        return;
    };
    let mut csv = String::from(
        "second,offered,direct_primary_success,lifeboat_primary_success,lifeboat_mode,direct_pages_ok,lifeboat_pages_ok,lifeboat_limit,half_pages_ok,half_limit\n",
    );
    let at = |run: &Run, t: f64| {
        run.trace
            .iter()
            .rev()
            .find(|(s, ..)| *s <= t)
            .map_or((Mode::Normal, 0), |(_, m, l)| (*m, *l))
    };
    let n = direct
        .report
        .seconds
        .len()
        .max(defaults.report.seconds.len());
    for i in 0..n {
        let sec = |r: &Run| r.report.seconds.get(i).cloned().unwrap_or_default();
        let rate = |r: &Run| {
            let s = sec(r);
            if s.primary_sent == 0 {
                String::new()
            } else {
                format!("{:.3}", s.primary_ok as f64 / s.primary_sent as f64)
            }
        };
        let (mode, limit) = at(defaults, i as f64 + 0.5);
        let (_, half_limit) = at(half, i as f64 + 0.5);
        csv += &format!(
            "{i},{},{},{},{},{},{},{limit},{},{half_limit}\n",
            sec(direct).sent,
            rate(direct),
            rate(defaults),
            mode.as_str(),
            sec(direct).pages_ok,
            sec(defaults).pages_ok,
            sec(half).pages_ok,
        );
    }
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/bench-results/stampede-timeline.csv"),
        csv,
    );
}
