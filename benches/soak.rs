//! `cargo bench --bench soak`: memory under sustained load.
//!
//! Starts the `lifeboat` binary (its own process, so its RSS is its own)
//! in `degraded` mode with the admin listener off, so nothing ever scrapes
//! `/metrics`. Each round drives 32 keep-alive connections at a proxied
//! primary path (1 KiB from the simulated origin) and then 32 at a shed
//! path (the apology), back to back, and reads lifeboat's RSS after it.
//! The first round warms pools and the allocator; every request after it
//! must leave nothing behind. Target: RSS at the end at most 2 MiB above
//! RSS after the first round, with at least 200,000 requests in between.
//! (A lifeboat that kept 40 bytes a request, as it did while histograms
//! went through the Prometheus exporter unscraped, grows by 8 MiB or more
//! here.) Appends a JSON line to `target/bench-results/soak.jsonl`.

#[path = "support/closed_loop.rs"]
mod closed_loop;

use std::time::Duration;

use closed_loop::{LifeboatProcess, drive};
use lifeboat::origin_sim::SimConfig;

const ROUNDS: usize = 5;
const CONNECTIONS: usize = 32;
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
        let lb = LifeboatProcess::start(
            "soak",
            &format!(
                "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nurl = \"http://{origin}\"\n\
                 [shedding]\nmode = \"degraded\"\n\
                 [[route]]\nname = \"downloads\"\nmatch = \"/download/*\"\nclass = \"primary\"\n\
                 [admin]\nlisten = \"off\"\n[log]\nlevel = \"info\"\naccess = false\n"
            ),
        );
        let start_kib = lb.rss_kib();
        println!("soak bench: {ROUNDS} rounds, each {CONNECTIONS} connections proxied then {CONNECTIONS} shed, {:?} apiece", closed_loop::RUN);
        println!("| after round | proxied req/s | shed req/s | errors | lifeboat RSS KiB |");
        println!("|---|---|---|---|---|");
        println!("| start | | | | {start_kib} |");
        let (mut warm_kib, mut end_kib, mut after_warmup, mut errors) = (0, 0, 0u64, 0u64);
        for round in 1..=ROUNDS {
            let proxied = drive(lb.addr, "/download/soak", CONNECTIONS).await;
            let shed = drive(lb.addr, "/news", CONNECTIONS).await;
            let rss = lb.rss_kib();
            println!(
                "| {round} | {:.0} | {:.0} | {} | {rss} |",
                proxied.rps(),
                shed.rps(),
                proxied.errors + shed.errors
            );
            errors += proxied.errors + shed.errors;
            if round == 1 {
                warm_kib = rss;
            } else {
                after_warmup += proxied.requests + shed.requests;
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
