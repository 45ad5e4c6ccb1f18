//! Adaptive admission seen from outside: the learned origin limit in every
//! place an operator looks, the dry run (decide everything, shed nothing),
//! and two lifeboats with the defaults sharing one origin.

use std::net::SocketAddr;
use std::time::Duration;

use ::lifeboat::story::{journal, report};
use ::lifeboat_sim::loadgen::stampede::{self, Setup, Wave};
use ::lifeboat_sim::loadgen::{self, Plan, Report, Retry};
use ::lifeboat_sim::origin_sim::SimOrigin;

use crate::support::lifeboat::start_config;
use crate::support::{TestOrigin, client, json_of, lifeboat, wait_until};

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn the_learned_limit_is_shown_where_an_operator_looks() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    let admin = lb.admin.unwrap();
    let mode = json_of(format!("http://{admin}/mode")).await;
    assert_eq!(mode["origin"]["learned"], true, "{mode}");
    assert_eq!(mode["origin"]["limit"], 16, "the documented start: {mode}");
    assert_eq!(mode["origin"]["reserved_for_primary"], 2, "{mode}");
    assert_eq!(mode["dry_run"], false, "{mode}");
    let status = json_of(lb.url("/.well-known/lifeboat/status")).await;
    assert_eq!(status["numbers"]["origin_limit_learned"], true, "{status}");
    assert_eq!(status["numbers"]["origin_limit"], 16, "{status}");
    let text = lb.metrics().await;
    assert_eq!(
        metric(&text, "lifeboat_origin_limit "),
        Some(16.0),
        "{text}"
    );
    assert_eq!(metric(&text, "lifeboat_origin_limit_learned "), Some(1.0));

    // A number pins it.
    let pinned = lifeboat(&origin)
        .set("origin.max_inflight", "7")
        .start()
        .await;
    let mode = json_of(format!("http://{}/mode", pinned.admin.unwrap())).await;
    assert_eq!(mode["origin"]["learned"], false, "{mode}");
    assert_eq!(mode["origin"]["limit"], 7, "{mode}");
}

#[tokio::test]
async fn a_dry_run_proxies_everything_and_counts_what_it_would_shed() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut lb = lifeboat(&origin)
        .set("shedding.dry_run", "true")
        .set("shedding.tick", "\"20ms\"")
        .set("journal.path", &format!("{path:?}"))
        .set("journal.counters_every", "\"1s\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    let admin = lb.admin.unwrap();
    // The boards cleared by the operator: in earnest, these pages would get
    // the apology.
    let r = client()
        .post(format!("http://{admin}/mode"))
        .json(&serde_json::json!({"mode": "degraded", "reason": "rehearsal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..5 {
        let r = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(r.status(), 200, "a dry run sheds nothing");
        assert!(r.headers().get("x-lifeboat-shed").is_none());
    }
    let r = client().get(lb.url("/bytes/10")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(origin.requests(), 6, "every request reached the origin");

    let mode = json_of(format!("http://{admin}/mode")).await;
    assert_eq!(
        (mode["mode"].as_str(), mode["dry_run"].as_bool()),
        (Some("degraded"), Some(true))
    );
    let text = lb.metrics().await;
    assert_eq!(
        metric(&text, "lifeboat_would_shed_total{reason=\"degraded\"}"),
        Some(5.0),
        "{text}"
    );
    // Nothing was shed by this lifeboat (the metric is process-wide: other
    // tests' lifeboats share the recorder, so ask this one's tally).
    let tally = lb.shared.admission.tally.snapshot();
    assert_eq!(tally.shed.iter().sum::<u64>(), 0, "{tally:?}");

    let has_counts = || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\"would_shed\":{\"degraded\":5}"))
    };
    wait_until("would-shed counters journaled", has_counts).await;
    lb.begin_shutdown();
    assert!(lb.drained().await);
    let episodes = report::episodes(&journal::read(&path).unwrap(), None);
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0].would_shed.get("degraded"), Some(&5));
    assert!(episodes[0].shed.is_empty(), "{:?}", episodes[0].shed);
    let md = report::markdown(&episodes);
    assert!(
        md.contains("ran in dry run: it would have answered 5 requests with the apology"),
        "{md}"
    );
    assert!(
        md.contains("| Would have shed (dry run) | degraded: 5 |"),
        "{md}"
    );
}

/// The first half of the release-day wave's shape, squeezed: 10 × the
/// origin's capacity for a few seconds.
fn short_wave() -> Wave {
    Wave {
        peak: 10.0,
        ramp: Duration::from_secs(2),
        hold: Duration::from_secs(4),
    }
}

fn plan(base: String, share: f64) -> Plan {
    let rate = short_wave().rate(stampede::origin().capacity());
    Plan {
        base,
        mix: stampede::mix(),
        rate: Box::new(move |t| rate(t) * share),
        duration: short_wave().duration(),
        timeout: Duration::from_secs(10),
        retry: Retry::Never,
    }
}

/// `n` lifeboats with the defaults in front of one fresh simulated origin,
/// each taking `1 / n` of the wave.
async fn wave_through(n: usize) -> Vec<Report> {
    let origin = SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), stampede::origin())
        .await
        .unwrap();
    let url = format!("http://{}", origin.addr().unwrap());
    tokio::spawn(origin.run());
    let mut boats = Vec::new();
    for _ in 0..n {
        let text = stampede::lifeboat_config(&url, "127.0.0.1:0", "off", None, Setup::Defaults);
        let config =
            ::lifeboat::config::from_str(&text, "fleet.toml", std::path::Path::new(".")).unwrap();
        boats.push(start_config(config).await);
    }
    let runs = boats
        .iter()
        .map(|b| tokio::spawn(loadgen::run(plan(b.url(""), 1.0 / n as f64), |_| {})));
    let mut reports = Vec::new();
    for run in runs.collect::<Vec<_>>() {
        reports.push(run.await.unwrap());
    }
    reports
}

fn pages_ok(reports: &[Report]) -> u64 {
    reports.iter().map(Report::pages_ok).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lifeboats_with_the_defaults_share_one_origin() {
    let _heavy = crate::support::heavy().await;
    let one = wave_through(1).await;
    let two = wave_through(2).await;
    for r in one.iter().chain(&two) {
        let p = r.primary().unwrap();
        assert!(
            p.success_rate() >= 0.995,
            "downloads failed: {:?}",
            p.outcomes
        );
    }
    let shed: u64 = two
        .iter()
        .map(|r| r.seconds.iter().map(|s| s.shed).sum::<u64>())
        .sum();
    assert!(
        shed > 1000,
        "the wave did not overload the origin: {shed} shed"
    );
    // Each finds a share: together they keep the origin as busy as one.
    let (alone, together) = (pages_ok(&one), pages_ok(&two));
    eprintln!("pages served: one lifeboat {alone}, two together {together}");
    assert!(
        together as f64 >= 0.9 * alone as f64,
        "two lifeboats served {together} pages, one alone {alone}"
    );
}
