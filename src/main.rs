//! The `lifeboat` command line. The only place `anyhow` is used: everything
//! below it returns typed errors. `lifeboat demo` (the `demo` feature, on
//! by default) lives here rather than in the library: it is the proxy plus
//! the simulated origin and the load generator of `lifeboat-sim`, which a
//! production build leaves out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use lifeboat::{Lifeboat, config, logging};

#[cfg(feature = "demo")]
mod demo;

/// jemalloc, with its background thread on (see `main`), gives memory a
/// burst of connections took back to the kernel seconds after the burst;
/// the system allocator keeps it (2,000 slow clients left glibc's RSS
/// 58 MiB above its baseline for good).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Default config path, relative to the working directory (as in the repo).
const DEFAULT_CONFIG: &str = "config/lifeboat.toml";

#[derive(Parser)]
#[command(version, about = "An overload-shedding reverse proxy for release days")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (for plain `lifeboat`, same as `lifeboat run --config`).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate a config file: prints a summary and exits 0, or the error and exits 1.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Start a simulated release-day origin with lifeboat in front of it.
    #[cfg(feature = "demo")]
    Demo(demo::Options),
    /// Talk to a running lifeboat's admin listener (the whole fleet with
    /// `[fleet]`): mode, message, status, fleet. Token from LIFEBOAT_TOKEN.
    Ctl(lifeboat::ctl::Options),
    /// Turn an incident journal into a report.
    Story {
        /// The journal (JSON lines); several (a fleet's) are told as one.
        #[arg(required_unless_present = "redis")]
        journal: Vec<PathBuf>,
        /// Read the fleet's journal stream from this Redis instead.
        #[arg(long, value_name = "URL", conflicts_with = "journal")]
        redis: Option<String>,
        /// The fleet's key prefix (`[fleet] prefix`).
        #[arg(long, default_value = "lifeboat")]
        prefix: String,
        /// markdown or json.
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
        /// Only events at or after this time (RFC 3339, e.g. 2026-11-21T18:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
}

fn main() -> ExitCode {
    // Purge freed pages from a background thread, so memory goes back to
    // the kernel even when the process is quiet after a burst.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = Cli::parse();
    let config_path = cli.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(config_path),
        Command::Check { file } => return check(&file),
        Command::Story {
            journal,
            redis,
            prefix,
            format,
            since,
        } => story(
            &journal,
            redis.as_deref(),
            &prefix,
            &format,
            since.as_deref(),
        ),
        #[cfg(feature = "demo")]
        Command::Demo(opts) => {
            runtime().and_then(|rt| rt.block_on(demo::run(opts)).map_err(Into::into))
        }
        Command::Ctl(opts) => runtime().and_then(|rt| {
            let said = rt.block_on(lifeboat::ctl::run(opts))?;
            println!("{said}");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifeboat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One worker per CPU lifeboat may use. With a single CPU (a one-core
/// container quota, or `taskset` to one core) the single-threaded scheduler
/// is used: the work-stealing one would only add cross-thread bookkeeping to
/// every wake-up (about 14 % fewer proxied requests a second, measured with
/// `benches/compare`).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    Ok(builder.enable_all().build()?)
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let config = config::load(&path)?;
    logging::init(&config.log);
    let rt = runtime()?;
    let workers = rt.metrics().num_workers();
    rt.block_on(async {
        tracing::info!(
            workers,
            "runtime: {}",
            if workers == 1 {
                "single-threaded (one CPU available)"
            } else {
                "one worker thread per CPU"
            }
        );
        let lifeboat = Lifeboat::bind_with_path(config, Some(path)).await?;
        let shutdown = lifeboat::listener::shutdown_signal();
        if let Some(a) = lifeboat.http_addr() {
            tracing::info!(address = %a, "listening (HTTP/1.1, h2c)");
        }
        if let Some(a) = lifeboat.https_addr() {
            tracing::info!(address = %a, "listening (TLS: h2, HTTP/1.1)");
        }
        lifeboat.run(shutdown).await;
        Ok(())
    })
}

fn story(
    journals: &[PathBuf],
    redis: Option<&str>,
    prefix: &str,
    format: &str,
    since: Option<&str>,
) -> anyhow::Result<()> {
    use lifeboat::story::{journal as j, report};
    let since = since
        .map(|s| {
            humantime::parse_rfc3339_weak(s).map_err(|e| {
                anyhow::anyhow!("--since {s}: {e} (expected RFC 3339, like 2026-11-21T18:00:00Z)")
            })
        })
        .transpose()?;
    let mut records = Vec::new();
    for journal in journals {
        records.extend(j::read(journal).map_err(anyhow::Error::msg)?);
    }
    if let Some(url) = redis {
        let read = lifeboat::fleet::read_journal(url, prefix);
        records = runtime()?.block_on(read).map_err(anyhow::Error::msg)?;
    }
    // Several instances' journals, or a stream that got an instance's
    // records late (it was cut off from Redis), are put in time order
    // (RFC 3339 in UTC with milliseconds sorts as text); a record sent
    // twice (a retry after a lost answer) is told once.
    if journals.len() > 1 || redis.is_some() {
        records.sort_by(|a, b| a.at.cmp(&b.at));
        records.dedup();
    }
    let episodes = report::episodes(&records, since);
    match format {
        "json" => println!("{}", report::json(&episodes)),
        _ => print!("{}", report::markdown(&episodes)),
    }
    Ok(())
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            println!("{}: ok", path.display());
            print!("{}", config::summary(&c));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
