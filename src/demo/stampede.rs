//! `lifeboat demo --stampede`: the simulated release-day origin, lifeboat in
//! front of it, and a wave of visitors at ten times the origin's capacity,
//! driven by the open-loop load generator. One line a second shows what
//! happens; at the end, the story of the episode, from lifeboat's journal.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lifeboat::admission::Mode;
use lifeboat::classify::RouteClass;
use lifeboat::runtime::Shared;
use lifeboat::story::{journal, report};
use lifeboat::{Lifeboat, config};
use lifeboat_sim::loadgen::stampede::{self, Wave};
use lifeboat_sim::loadgen::{self, Plan, Report, Retry, Second};
use lifeboat_sim::origin_sim::SimOrigin;

use super::DemoError;

/// Runs the stampede demo with lifeboat on `listen`, with the release-day
/// wave, or one squeezed into `wave_secs` seconds.
pub async fn run(listen: SocketAddr, wave_secs: Option<u64>) -> Result<(), DemoError> {
    let sim = stampede::origin();
    let origin = SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sim.clone()).await?;
    let origin_url = format!("http://{}", origin.addr()?);
    tokio::spawn(origin.run());
    let journal_path =
        std::env::temp_dir().join(format!("lifeboat-demo-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&journal_path);
    let text = stampede::lifeboat_config(
        &origin_url,
        &listen.to_string(),
        "127.0.0.1:0",
        Some(&journal_path),
        stampede::Setup::Defaults,
    );
    let config = config::from_str(&text, "<stampede demo config>", Path::new("."))?;
    let lifeboat = Lifeboat::bind(config).await?;
    let addr = lifeboat.http_addr().unwrap_or(listen);
    let admin = lifeboat.admin_addr();
    let shared = lifeboat.shared();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lifeboat.run(async move {
        let _ = stopped.await;
    }));

    let wave = wave_secs.map_or_else(Wave::release_day, |s| {
        let s = Duration::from_secs(s.max(3));
        Wave {
            peak: 10.0,
            ramp: s.mul_f64(0.35),
            hold: s.mul_f64(0.3),
        }
    });
    let capacity = sim.capacity();
    println!("lifeboat demo --stampede");
    if let Some(admin) = admin {
        println!("  watch:  http://{admin}/   the live dashboard, up while the wave runs");
    }
    println!(
        "  origin: {} workers, {:?} per page = {capacity:.0} pages/s; downloads {:?} each",
        sim.workers, sim.service_time, sim.download_service_time
    );
    println!(
        "  wave:   0 -> {:.0} req/s -> 0 over {:?} (90 % pages, 10 % downloads), through http://{addr}",
        capacity * wave.peak,
        wave.duration()
    );
    println!();
    println!(
        "  time  offered/s  mode        origin limit  in-flight  downloads ok  pages/s  shed/s  origin p95"
    );
    let plan = Plan {
        base: format!("http://{addr}"),
        mix: stampede::mix(),
        rate: Box::new(wave.rate(capacity)),
        duration: wave.duration(),
        timeout: Duration::from_secs(10),
        retry: Retry::Never,
    };
    let started = tokio::time::Instant::now();
    let mut pages = PagesRate::new(&shared);
    let live = |r: &Report| {
        // Called at each whole second k of the wave: second k - 1 is the
        // last one whose requests have all been sent.
        let k = started.elapsed().as_secs_f64().round() as usize;
        let second = (k <= r.seconds.len())
            .then(|| r.seconds.get(k.saturating_sub(1)).cloned())
            .flatten();
        line(&shared, second.as_ref(), &mut pages, started);
    };
    let result = loadgen::run(plan, live).await;
    // Let it come back to normal (bounded), still reporting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while shared.admission.view().mode != Mode::Normal && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        line(&shared, None, &mut pages, started);
    }
    let _ = stop.send(());
    let _ = server.await;
    if let Some(p) = result.primary() {
        println!();
        println!(
            "  downloads: {:.1} % succeeded ({} of {}), p99 {:.0} ms to first byte",
            p.success_rate() * 100.0,
            p.ok(),
            p.total(),
            p.latency_ms(0.99)
        );
        let others: Vec<String> = result
            .others()
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("  pages:     {}", others.join(", "));
    }
    println!();
    match journal::read(&journal_path) {
        Ok(records) => print!("{}", report::markdown(&report::episodes(&records, None))),
        Err(e) => println!("(no journal to tell the story from: {e})"),
    }
    println!(
        "\n(the journal is at {}; `lifeboat story` renders it again)",
        journal_path.display()
    );
    Ok(())
}

/// Pages (keep and normal classes) the origin answered per second, from
/// lifeboat's own tallies: a page that waited in the queue is counted when
/// it is served, not when it was sent.
struct PagesRate {
    served: u64,
    at: tokio::time::Instant,
}

impl PagesRate {
    fn new(shared: &Shared) -> Self {
        PagesRate {
            served: Self::served(shared),
            at: tokio::time::Instant::now(),
        }
    }

    fn served(shared: &Shared) -> u64 {
        let t = shared.admission.tally.snapshot();
        [RouteClass::Keep, RouteClass::Normal]
            .iter()
            .filter_map(|c| t.served.get(c.index()))
            .sum()
    }

    fn per_second(&mut self, shared: &Shared) -> u64 {
        let (now, served) = (tokio::time::Instant::now(), Self::served(shared));
        let secs = (now - self.at).as_secs_f64().max(1e-3);
        let rate = (served - self.served) as f64 / secs;
        (self.served, self.at) = (served, now);
        rate.round() as u64
    }
}

/// One live line: `second` is the wave's last complete second (`None`
/// once the wave is over).
fn line(
    shared: &Shared,
    second: Option<&Second>,
    pages: &mut PagesRate,
    started: tokio::time::Instant,
) {
    let s = second.cloned().unwrap_or_default();
    let signals = shared.admission.signals(1);
    let ok = if s.primary_sent == 0 {
        "-".to_string()
    } else {
        format!(
            "{:.0} %",
            100.0 * s.primary_ok as f64 / s.primary_sent as f64
        )
    };
    println!(
        "  {:>3}s  {:>9}  {:<10}  {:>12}  {:>9}  {:>12}  {:>7}  {:>6}  {:>10}",
        started.elapsed().as_secs_f64().round(),
        s.sent,
        shared.admission.view().mode.as_str(),
        shared.admission.capacity().limit,
        shared.admission.inflight.total(),
        ok,
        pages.per_second(shared),
        s.shed,
        signals
            .ttfb_p95
            .map_or("-".to_string(), |d| format!("{} ms", d.as_millis())),
    );
}
