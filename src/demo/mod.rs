//! `lifeboat demo`: the embedded default for a newcomer. Starts the
//! simulated release-day origin on a free loopback port and lifeboat in front
//! of it (embedded config `config/demo.toml`), prints what to open, and runs
//! until Ctrl-C.

use std::net::SocketAddr;
use std::path::Path;

mod stampede;

use lifeboat::{Lifeboat, config, logging};
use lifeboat_sim::origin_sim::{SimConfig, SimOrigin};

/// The demo's configuration, with `{origin}` replaced at start.
const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// Options of `lifeboat demo`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Where lifeboat listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Drive a release-day stampede through it (about a minute), with a live
    /// line per second and the incident report at the end.
    #[arg(long)]
    pub stampede: bool,
    /// Squeeze the stampede's wave into this many seconds (for tests).
    #[arg(long, hide = true, requires = "stampede")]
    pub wave_seconds: Option<u64>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A socket could not be bound.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The embedded config did not validate (a bug).
    #[error("embedded demo config: {0}")]
    Config(#[from] config::ConfigError),
}

/// Runs the demo until Ctrl-C (or, with `--stampede`, until the wave is told).
pub async fn run(opts: Options) -> Result<(), DemoError> {
    if opts.stampede {
        return stampede::run(opts.listen, opts.wave_seconds).await;
    }
    let sim = SimConfig::default();
    let origin = SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sim.clone()).await?;
    let origin_addr = origin.addr()?;
    let text = DEMO_CONFIG
        .replace("{origin}", &format!("http://{origin_addr}"))
        .replace("{listen}", &opts.listen.to_string());
    let config = config::from_str(&text, "<embedded demo config>", Path::new("."))?;
    logging::init(&config.log);
    let lifeboat = Lifeboat::bind(config).await?;
    let addr = lifeboat.http_addr().unwrap_or(opts.listen);
    let admin = lifeboat.admin_addr();
    tokio::spawn(origin.run());
    println!("lifeboat demo");
    if let Some(admin) = admin {
        println!("  watch             http://{admin}/   the live dashboard");
    }
    println!(
        "  simulated origin  http://{origin_addr}  ({} workers x {:?} = {:.0} req/s capacity)",
        sim.workers,
        sim.service_time,
        sim.capacity()
    );
    println!("  lifeboat          http://{addr}");
    println!();
    println!(
        "  open  http://{addr}/                              the release page, through lifeboat"
    );
    println!("  try   curl -o /dev/null http://{addr}/download/example-os-3.0.iso");
    println!("  see   http://{addr}/.well-known/lifeboat/status        the public status page");
    if let Some(admin) = admin {
        println!(
            "  admin http://{admin}/mode    (POST {{\"mode\":\"degraded\"}} to clear the boards by hand, or use the dashboard's button; /metrics)"
        );
    }
    println!("  stop  Ctrl-C");
    println!();
    println!("  To watch it clear the boards under a release-day stampede and tell the story:");
    println!("        cargo run --release -- demo --stampede");
    lifeboat.run(lifeboat::listener::shutdown_signal()).await;
    Ok(())
}
