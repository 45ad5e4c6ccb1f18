//! `cargo bench --bench soak`: memory under sustained load.
//!
//! Starts the `lifeboat` binary (its own process, so its RSS is its own)
//! in `degraded` mode with the admin listener off, so nothing ever scrapes
//! `/metrics`, and an HTTPS listener. Each round drives 32 workers through
//! six phases, 1.5 s each, and then reads lifeboat's RSS:
//!
//! - a proxied primary path (1 KiB from the simulated origin) on keep-alive
//!   connections;
//! - a shed path (the apology) on keep-alive connections;
//! - the proxied path with a new connection for every request;
//! - the proxied path over HTTP/2 (h2c);
//! - the proxied path over TLS, a new connection and handshake every
//!   request;
//! - a 1 MiB download that the client gives up on after its first frame,
//!   closing the connection.
//!
//! The first round warms pools and the allocator; every request after it
//! must leave nothing behind, memory or origin slots (a slot kept by a
//! download given up on would soon turn proxied answers into apologies).
//! Target: RSS at the end at most 2 MiB above RSS after the first round,
//! with at least 200,000 requests in between, no transport error, and
//! every answer of the kind its path should get (2xx, or the apology on
//! the shed path). (A lifeboat that kept 40 bytes a request, as it did while
//! histograms went through the Prometheus exporter unscraped, grows by
//! several MiB here.) Appends a JSON line to
//! `target/bench-results/soak.jsonl`.

#[path = "support/closed_loop.rs"]
mod closed_loop;
#[path = "../tests/support/tls.rs"]
mod tls;

use std::time::Duration;

use closed_loop::{Conns, drive_with};
use lifeboat_sim::origin_sim::SimConfig;

const ROUNDS: usize = 4;
const CONNECTIONS: usize = 32;
/// Measured time of each phase (after the driver's warm-up).
const PHASE: Duration = Duration::from_millis(1500);
/// Growth allowed after the warm-up round.
const TARGET_KIB: u64 = 2 * 1024;
/// Requests after the warm-up round for the figure to mean something.
const MIN_REQUESTS: u64 = 200_000;

fn main() {
    let rt = closed_loop::runtime();
    rt.block_on(async {
        let sim = SimConfig {
            workers: 64,
            service_time: Duration::ZERO,
            download_service_time: Duration::ZERO,
            download_size: 1024,
        };
        let origin = closed_loop::sim_origin(sim).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = tls::make_pki(dir.path());
        let (lb, _dir) = closed_loop::lifeboat_process(&format!(
                "[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\
                 [listen.tls]\ncert = {:?}\nkey = {:?}\n\
                 [origin]\nurl = \"http://{origin}\"\n\
                 [shedding]\nmode = \"degraded\"\nclient_budget = 0\n\
                 [[route]]\nname = \"downloads\"\nmatch = \"/download/*\"\nclass = \"primary\"\n\
                 [admin]\nlisten = \"off\"\n[log]\nlevel = \"info\"\naccess = false\n",
                pki.cert, pki.key
            ),
        );
        let tls_addr = tokio::task::block_in_place(|| lb.tls_address());
        // (name, address, path, connections, whether answers should be 2xx)
        let phases = [
            ("proxied", lb.http, "/download/soak", Conns::KeepAlive, true),
            ("shed", lb.http, "/news", Conns::KeepAlive, false),
            ("new conn each", lb.http, "/download/soak", Conns::PerRequest, true),
            ("h2c", lb.http, "/download/soak", Conns::H2, true),
            ("TLS, handshake each", tls_addr, "/download/soak", Conns::TlsPerRequest(pki.client_config()), true),
            ("1 MiB, given up", lb.http, "/download/soak?size=1048576", Conns::GiveUp, true),
        ];
        let start_kib = lb.rss_kib();
        println!("soak bench: {ROUNDS} rounds of {} phases, {CONNECTIONS} workers, {PHASE:?} apiece", phases.len());
        let names: Vec<_> = phases.iter().map(|p| format!("{} req/s", p.0)).collect();
        println!("| after round | {} | errors and unexpected answers | lifeboat RSS KiB |", names.join(" | "));
        println!("|---|{}---|---|", "---|".repeat(phases.len()));
        println!("| start |{} {start_kib} |", " |".repeat(phases.len() + 1));
        let (mut warm_kib, mut end_kib, mut after_warmup, mut errors) = (0, 0, 0u64, 0u64);
        for round in 1..=ROUNDS {
            let mut rates = Vec::new();
            let mut requests = 0;
            let mut round_errors = 0;
            for (_, addr, path, conns, want_2xx) in &phases {
                let out = drive_with(*addr, path, CONNECTIONS, conns, PHASE).await;
                rates.push(format!("{:.0}", out.rps()));
                requests += out.requests;
                let unexpected = if *want_2xx { out.non_2xx } else { out.requests - out.non_2xx };
                round_errors += out.errors + unexpected;
            }
            let rss = lb.rss_kib();
            println!("| {round} | {} | {round_errors} | {rss} |", rates.join(" | "));
            errors += round_errors;
            if round == 1 {
                warm_kib = rss;
            } else {
                after_warmup += requests;
            }
            end_kib = rss;
        }
        let grown = end_kib.saturating_sub(warm_kib);
        let per_100k = grown as f64 * 100_000.0 / after_warmup.max(1) as f64;
        println!();
        println!(
            "after warm-up: {after_warmup} requests, RSS {warm_kib} -> {end_kib} KiB (+{grown} KiB, {per_100k:.1} KiB per 100k requests), errors {errors}"
        );
        let met = grown <= TARGET_KIB && after_warmup >= MIN_REQUESTS && errors == 0;
        println!(
            "target: growth <= {} MiB over >= {MIN_REQUESTS} requests, no errors: {}",
            TARGET_KIB / 1024,
            if met { "met" } else { "MISSED" }
        );
        closed_loop::record(
            "soak",
            serde_json::json!({
                "bench": "soak",
                "unix_time": closed_loop::unix_time(),
                "rss_start_kib": start_kib, "rss_warm_kib": warm_kib, "rss_end_kib": end_kib,
                "requests_after_warmup": after_warmup, "errors": errors, "met": met,
            }),
        );
    });
}
