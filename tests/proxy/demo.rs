//! `lifeboat demo --stampede`, run as a new user runs it: the binary, its
//! standard output read line by line. The live lines must show the wave
//! (offered load and apologies rising and falling, downloads succeeding,
//! pages served, the learned limit) and the run must end with the story.
//! The first version showed zeros for the whole wave because nothing ran it.

use std::process::Command;
use std::time::Duration;

/// One live line: `time offered/s mode limit in-flight downloads-ok pages/s
/// shed/s origin-p95`.
#[derive(Debug)]
struct Live {
    offered: u64,
    mode: String,
    limit: u64,
    downloads_ok: Option<f64>,
    pages: u64,
    shed: u64,
}

fn parse(line: &str) -> Option<Live> {
    let squeezed = line.replace(" %", "%").replace(" ms", "ms");
    let f: Vec<&str> = squeezed.split_whitespace().collect();
    if f.len() != 9 || !f[0].ends_with('s') {
        return None;
    }
    f[0].trim_end_matches('s').parse::<f64>().ok()?;
    Some(Live {
        offered: f[1].parse().ok()?,
        mode: f[2].to_string(),
        limit: f[3].parse().ok()?,
        downloads_ok: f[5].trim_end_matches('%').parse().ok(),
        pages: f[6].parse().ok()?,
        shed: f[7].parse().ok()?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stampede_demo_shows_the_wave_and_tells_the_story() {
    let _heavy = crate::support::heavy().await;
    let run = tokio::task::spawn_blocking(|| {
        Command::new(crate::support::process::bin())
            .args([
                "demo",
                "--stampede",
                "--listen",
                "127.0.0.1:0",
                "--wave-seconds",
                "12",
            ])
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the demo ends by itself")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Live> = stdout.lines().filter_map(parse).collect();
    assert!(lines.len() >= 12, "too few live lines:\n{stdout}");

    // Offered load rises to a crest and falls again.
    let offered: Vec<u64> = lines.iter().map(|l| l.offered).collect();
    let crest = offered.iter().copied().max().unwrap();
    let at = offered.iter().position(|o| *o == crest).unwrap();
    assert!(crest >= 1000, "the wave never came: {offered:?}\n{stdout}");
    assert!(
        offered[0] < crest / 2 && *offered.last().unwrap() < crest / 4,
        "{offered:?}"
    );
    assert!(at > 0 && at < offered.len() - 1, "{offered:?}");

    // Apologies rise with it and stop once it has passed.
    let shed: Vec<u64> = lines.iter().map(|l| l.shed).collect();
    assert!(
        shed.iter().any(|s| *s > 100),
        "nobody was turned away: {shed:?}"
    );
    assert_eq!(*shed.last().unwrap(), 0, "{shed:?}");

    // Downloads keep succeeding through the wave; pages keep being served.
    let ok: Vec<f64> = lines.iter().filter_map(|l| l.downloads_ok).collect();
    assert!(ok.len() >= 8, "downloads not shown: {stdout}");
    assert!(ok.iter().all(|p| *p >= 99.0), "downloads failed: {ok:?}");
    let busy: Vec<&Live> = lines.iter().filter(|l| l.shed > 100).collect();
    assert!(
        busy.iter().all(|l| l.pages > 50),
        "the origin sat idle: {busy:?}"
    );

    // The boards were cleared and came back; the learned limit is shown.
    assert!(lines.iter().any(|l| l.mode == "degraded"), "{stdout}");
    assert_eq!(lines.last().unwrap().mode, "normal", "{stdout}");
    assert!(lines.iter().all(|l| l.limit >= 2), "{stdout}");

    // And the story of the episode ends the run.
    assert!(stdout.contains("# Incident report"), "{stdout}");
    assert!(stdout.contains("## Episode 1"), "{stdout}");
    assert!(
        stdout.contains("| Origin limit (requests at once) |"),
        "{stdout}"
    );
}
