//! Retry storms and recovery herds (hardening item 8), with the open-loop
//! load generator's client models against the simulated release-day origin:
//! clients that retry 50 ms after every apology whatever it says, and
//! clients that honour `Retry-After`. The primary path must hold through
//! the storm; the herd of honouring clients must not knock lifeboat back
//! into `degraded` once it has recovered. (That `Retry-After` values are
//! spread is shedding::retry_after_is_spread.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::lifeboat::admission::Mode;
use ::lifeboat_sim::loadgen::stampede::{self, Wave};
use ::lifeboat_sim::loadgen::{self, Plan, Report, Retry};
use ::lifeboat_sim::origin_sim::SimOrigin;

use crate::support::Running;
use crate::support::lifeboat::start_config;

/// The scenario's origin and lifeboat, with `Retry-After` of
/// `retry_after` + up to `jitter` seconds.
async fn scenario(retry_after: u64, jitter: u64) -> Running {
    let origin = SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), stampede::origin())
        .await
        .unwrap();
    let url = format!("http://{}", origin.addr().unwrap());
    tokio::spawn(origin.run());
    let text = stampede::lifeboat_config(&url, "127.0.0.1:0", "off", None, stampede::Setup::Quick)
        .replace(
            "[apology]\n",
            &format!("[apology]\nretry_after = \"{retry_after}s\"\nretry_jitter = \"{jitter}s\"\n"),
        );
    let config =
        ::lifeboat::config::from_str(&text, "herd.toml", std::path::Path::new(".")).unwrap();
    start_config(config).await
}

/// Records every mode the proxy shows, sampled every 20 ms, until dropped.
fn watch_modes(lb: &Running) -> (Arc<Mutex<Vec<Mode>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(vec![lb.mode()]));
    let (shared, log) = (lb.shared.clone(), seen.clone());
    let task = tokio::spawn(async move {
        loop {
            let mode = shared.admission.view().mode;
            {
                let mut log = log.lock().unwrap();
                if log.last() != Some(&mode) {
                    log.push(mode);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (seen, task)
}

fn retries(r: &Report) -> u64 {
    r.paths.iter().map(|p| p.retries).sum()
}

fn summary(r: &Report) -> String {
    let p = r.primary().unwrap();
    format!(
        "primary {}/{} ok ({:.2} %, {:?}), p99 {:.0} ms; everything else: {:?}",
        p.ok(),
        p.total(),
        100.0 * p.success_rate(),
        p.outcomes,
        p.latency_ms(0.99),
        r.others()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_does_not_reach_the_downloads() {
    let _heavy = crate::support::heavy().await;
    let lb = scenario(60, 30).await;
    let capacity = stampede::origin().capacity();
    // 5 x capacity for 6 s, and every shed client tries again a second
    // later (a visitor pressing reload), for as long as the storm lasts: the
    // offered load multiplies, to about 6,000 requests/s by the end.
    let plan = Plan {
        base: format!("http://{}", lb.addr()),
        mix: stampede::mix(),
        rate: Box::new(move |_| 5.0 * capacity),
        duration: Duration::from_secs(6),
        timeout: Duration::from_secs(10),
        retry: Retry::Ignore(Duration::from_secs(1)),
    };
    let report = loadgen::run(plan, |_| {}).await;
    let primary = report.primary().unwrap();
    let retries = retries(&report);
    eprintln!("retry storm: {retries} retries; {}", summary(&report));
    assert!(
        retries > report.paths.iter().map(|p| p.total()).sum::<u64>() / 2,
        "the storm never happened: {retries} retries"
    );
    assert!(
        primary.success_rate() >= 0.99,
        "downloads failed under the retry storm: {}",
        summary(&report)
    );
    assert_eq!(lb.mode(), Mode::Degraded, "a 5x storm is an overload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_honouring_retry_after_does_not_knock_it_over_again() {
    let _heavy = crate::support::heavy().await;
    // Sent away for 2 to 8 s: the clients of a short wave come back over
    // six seconds, around the time lifeboat starts to recover.
    let lb = scenario(2, 6).await;
    let (modes, watcher) = watch_modes(&lb);
    let capacity = stampede::origin().capacity();
    let wave = Wave {
        peak: 10.0,
        ramp: Duration::from_secs(2),
        hold: Duration::from_secs(2),
    };
    let crest = wave.rate(capacity);
    let plan = Plan {
        base: format!("http://{}", lb.addr()),
        mix: stampede::mix(),
        // The wave, then a quiet site (a tenth of capacity) for the herd to
        // return into.
        rate: Box::new(move |t| if t < 6.0 { crest(t) } else { 0.1 * capacity }),
        duration: Duration::from_secs(24),
        timeout: Duration::from_secs(10),
        retry: Retry::Honour,
    };
    let report = loadgen::run(plan, |_| {}).await;
    lb.wait_for_mode(Mode::Normal, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await; // one more sample
    watcher.abort();
    let modes = modes.lock().unwrap().clone();
    eprintln!(
        "recovery herd: {} retries; modes {modes:?}; {}",
        retries(&report),
        summary(&report)
    );
    assert!(
        retries(&report) > 500,
        "no herd: {} retries",
        retries(&report)
    );
    assert_eq!(
        modes,
        [Mode::Normal, Mode::Degraded, Mode::Recovering, Mode::Normal],
        "one degrade, one recovery: the returning herd must not re-enter degraded"
    );
    assert!(
        report.primary().unwrap().success_rate() >= 0.99,
        "{}",
        summary(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_clients_inside_their_retry_after_do_not_take_the_downloads() {
    let _heavy = crate::support::heavy().await;
    let lb = scenario(60, 30).await;
    let capacity = stampede::origin().capacity();
    // Ordinary visitors (and every download) from 127.0.0.1: three times
    // the origin's capacity, gone when refused.
    let visitors = Plan {
        base: format!("http://{}", lb.addr()),
        mix: stampede::mix(),
        rate: Box::new(move |_| 3.0 * capacity),
        duration: Duration::from_secs(6),
        timeout: Duration::from_secs(10),
        retry: Retry::Never,
    };
    // Greedy clients from 127.0.0.2: a hundred new ones a second, each
    // retrying every 50 ms whatever it was told: hundreds at once by the end.
    let page = |path: &str| ::lifeboat_sim::loadgen::Target {
        path: path.into(),
        weight: 1,
        primary: false,
    };
    let greedy = Plan {
        base: format!("http://{}", lb.addr()),
        mix: vec![page("/news"), page("/docs")],
        rate: Box::new(|_| 100.0),
        duration: Duration::from_secs(6),
        timeout: Duration::from_secs(10),
        retry: Retry::Ignore(Duration::from_millis(50)),
    };
    let from = std::net::IpAddr::from([127, 0, 0, 2]);
    let greedy = tokio::spawn(loadgen::run_from(greedy, Some(from), |_| {}));
    let visitors = loadgen::run(visitors, |_| {}).await;
    let greedy = greedy.await.unwrap();
    let exceeded = lb
        .shared
        .admission
        .clients
        .exceeded
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "greedy: {} retries, {exceeded} answered over budget; visitors: {}",
        retries(&greedy),
        summary(&visitors)
    );
    assert!(
        retries(&greedy) > 2000,
        "no storm: {} retries",
        retries(&greedy)
    );
    assert!(exceeded > 1000, "the budget never bit: {exceeded}");
    let primary = visitors.primary().unwrap();
    assert!(
        primary.success_rate() >= 0.99,
        "downloads failed beside greedy clients: {}",
        summary(&visitors)
    );
}
