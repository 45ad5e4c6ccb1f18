//! `cargo bench --bench shed`: what shedding costs.
//!
//! - `decide()` and `classify()`: nanoseconds per call, over millions of
//!   calls with varied inputs (they run on every request);
//! - apology responses per second from a lifeboat in forced degraded mode vs
//!   proxied 1 KiB responses per second from a lifeboat in normal mode, in
//!   the same process and run, alternating, median of 3 rounds.
//!
//! Appends a JSON line to `target/bench-results/shed.jsonl`.

#[path = "support/closed_loop.rs"]
mod closed_loop;

use std::hint::black_box;
use std::time::{Duration, Instant};

use closed_loop::{drive, record, start_lifeboat};
use lifeboat::admission::{Decision, Mode, View, decide};
use lifeboat::classify::{Pattern, Route, RouteClass, Routes};
use lifeboat_sim::origin_sim::SimConfig;

const CALLS: u64 = 20_000_000;
const ROUNDS: usize = 3;

fn bench_decide() -> f64 {
    let classes = [RouteClass::Primary, RouteClass::Keep, RouteClass::Normal];
    let modes = [Mode::Normal, Mode::Degraded, Mode::Recovering];
    let mut admitted = 0u64;
    let started = Instant::now();
    for i in 0..CALLS {
        let view = View {
            mode: modes[((i / 3) % 3) as usize],
            admit_fraction: 0.5,
            strict: i % 2 == 0,
        };
        let d = decide(
            black_box(classes[(i % 3) as usize]),
            black_box(view),
            black_box((i % 1000) as f64 / 1000.0),
        );
        admitted += u64::from(matches!(d, Decision::Admit { .. }));
    }
    let ns = started.elapsed().as_nanos() as f64 / CALLS as f64;
    black_box(admitted);
    ns
}

fn bench_classify() -> f64 {
    let route = |name: &str, pat: &str, class| Route {
        name: name.into(),
        pattern: Pattern::glob(pat).expect("pattern"),
        methods: vec![],
        host: None,
        class,
    };
    let routes = Routes(vec![
        route("downloads", "/download/*", RouteClass::Primary),
        route("assets", "/static/*", RouteClass::Keep),
        route("health", "/healthz", RouteClass::Keep),
    ]);
    let paths = [
        "/download/example-os-3.0.iso",
        "/static/site.css",
        "/news/2026/release-notes",
        "/",
        "/download/../admin",
    ];
    let method = http::Method::GET;
    let calls = CALLS / 4;
    let mut primary = 0u64;
    let started = Instant::now();
    for i in 0..calls {
        let (class, _) = routes.classify(
            &method,
            Some("example.org"),
            black_box(paths[(i % 5) as usize]),
        );
        primary += u64::from(class == RouteClass::Primary);
    }
    let ns = started.elapsed().as_nanos() as f64 / calls as f64;
    black_box(primary);
    ns
}

fn main() {
    let decide_ns = bench_decide();
    let classify_ns = bench_classify();
    println!("decide():   {decide_ns:.1} ns/call ({CALLS} calls)");
    println!("classify(): {classify_ns:.1} ns/call (3 routes, 5 paths)");

    let rt = closed_loop::runtime();
    let (proxied, apology) = rt.block_on(async {
        let sim = SimConfig { workers: 1, service_time: Duration::ZERO, download_service_time: Duration::ZERO, download_size: 1024 };
        let origin_addr = closed_loop::sim_origin(sim).await;
        let base = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nurl = \"http://{origin_addr}\"\n[log]\nlevel = \"error\"\naccess = false\n[admin]\nlisten = \"off\"\n");
        let normal = start_lifeboat(&base).await;
        let degraded = start_lifeboat(&format!("{base}[shedding]\nmode = \"degraded\"\n")).await;
        let mut rounds = Vec::new();
        for round in 1..=ROUNDS {
            let p = drive(normal, "/download/s?size=1024", 32).await;
            let a = drive(degraded, "/news", 32).await;
            eprintln!("  round {round}: proxied {:.0} req/s, apology {:.0} req/s ({} errors)", p.rps(), a.rps(), p.errors + a.errors);
            rounds.push((a.rps() / p.rps(), p.rps(), a.rps(), a.p(0.5), a.p(0.99)));
        }
        rounds.sort_by(|x, y| x.0.total_cmp(&y.0));
        let m = rounds[rounds.len() / 2];
        ((m.1, 0.0), (m.2, m.3, m.4))
    });
    let ratio = apology.0 / proxied.0;
    println!();
    println!("| scenario | req/s | ratio |");
    println!("|---|---|---|");
    println!(
        "| proxied 1 KiB (normal mode), 32 conns | {:.0} | 1.00 |",
        proxied.0
    );
    println!(
        "| apology (degraded mode), 32 conns | {:.0} | {ratio:.2} |",
        apology.0
    );
    println!(
        "apology latency p50 / p99: {:.2} / {:.2} ms",
        apology.1, apology.2
    );
    record(
        "shed",
        serde_json::json!({
            "bench": "shed",
            "unix_time": closed_loop::unix_time(),
            "decide_ns": decide_ns,
            "classify_ns": classify_ns,
            "proxied_rps": proxied.0,
            "apology_rps": apology.0,
            "ratio": ratio,
        }),
    );
}
