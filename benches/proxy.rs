//! `cargo bench --bench proxy`: the overhead of lifeboat in normal mode.
//!
//! Starts the simulated origin (no modelled service time) and lifeboat in
//! front of it, then drives each target with a closed-loop HTTP/1.1 load
//! (keep-alive connections sending back to back) for a fixed time:
//!
//! - `1KiB`: req/s, p50 and p99 latency, 32 connections;
//! - `10MiB`: MiB/s, 4 connections downloading repeatedly.
//!
//! Direct-to-origin and through-lifeboat run alternately in the same process
//! and the table reports their ratio, because absolute figures on a shared
//! machine drift from run to run. A JSON line per run is appended to
//! `target/bench-results/proxy.jsonl`.

#[path = "support/closed_loop.rs"]
mod closed_loop;

use std::time::Duration;

use closed_loop::{RUN, drive};
use lifeboat_sim::origin_sim::SimConfig;

/// Rounds of (direct, lifeboat) pairs; the median round is reported.
const ROUNDS: usize = 3;

fn median<T: Copy>(mut v: Vec<(f64, T)>) -> (f64, T) {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v[v.len() / 2]
}

fn main() {
    let rt = closed_loop::runtime();
    rt.block_on(async {
        let sim = SimConfig { workers: 1, service_time: Duration::ZERO, download_service_time: Duration::ZERO, download_size: 10 << 20 };
        let origin_addr = closed_loop::sim_origin(sim).await;
        let lb_addr = closed_loop::start_lifeboat(&format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nurl = \"http://{origin_addr}\"\n[log]\nlevel = \"error\"\naccess = false\n[admin]\nlisten = \"off\"\n"
        ))
        .await;

        println!("proxy bench: {ROUNDS} rounds x {RUN:?} per target, median round shown");
        let mut small = Vec::new();
        let mut large = Vec::new();
        for round in 0..ROUNDS {
            let d = drive(origin_addr, "/download/s?size=1024", 32).await;
            let l = drive(lb_addr, "/download/s?size=1024", 32).await;
            eprintln!("  round {} 1KiB: direct {:.0} req/s, lifeboat {:.0} req/s", round + 1, d.rps(), l.rps());
            small.push((l.rps() / d.rps(), (d.rps(), d.p(0.5), d.p(0.99), l.rps(), l.p(0.5), l.p(0.99), d.errors + l.errors)));
            let d = drive(origin_addr, "/download/big", 4).await;
            let l = drive(lb_addr, "/download/big", 4).await;
            eprintln!("  round {} 10MiB: direct {:.0} MiB/s, lifeboat {:.0} MiB/s", round + 1, d.mib_s(), l.mib_s());
            large.push((l.mib_s() / d.mib_s(), (d.mib_s(), l.mib_s(), d.errors + l.errors)));
        }
        let (r_small, (d_rps, d50, d99, l_rps, l50, l99, e1)) = median(small);
        let (r_large, (d_mib, l_mib, e2)) = median(large);
        println!();
        println!("| scenario | direct | through lifeboat | ratio |");
        println!("|---|---|---|---|");
        println!("| 1 KiB, 32 conns: req/s | {d_rps:.0} | {l_rps:.0} | {r_small:.2} |");
        println!("| 1 KiB: p50 / p99 ms | {d50:.2} / {d99:.2} | {l50:.2} / {l99:.2} | |");
        println!("| 10 MiB, 4 conns: MiB/s | {d_mib:.0} | {l_mib:.0} | {r_large:.2} |");
        println!("errors: {}", e1 + e2);
        let line = serde_json::json!({
            "bench": "proxy",
            "unix_time": closed_loop::unix_time(),
            "small": {"direct_rps": d_rps, "lifeboat_rps": l_rps, "ratio": r_small, "direct_p50_ms": d50, "direct_p99_ms": d99, "lifeboat_p50_ms": l50, "lifeboat_p99_ms": l99},
            "large": {"direct_mib_s": d_mib, "lifeboat_mib_s": l_mib, "ratio": r_large},
            "errors": e1 + e2,
        });
        closed_loop::record("proxy", line);
    });
}
