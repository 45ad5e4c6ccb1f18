//! `lifeboat demo --stampede`, run as a new user runs it: the binary, its
//! standard output read line by line. The live lines must show the wave
//! (offered load and apologies rising and falling, downloads succeeding,
//! pages served, the learned limit) and the run must end with the story.
//! The first version showed zeros for the whole wave because nothing ran it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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

/// The dashboard's address from the demo's first lines (`watch:  URL  …`).
fn dashboard_url(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("watch:")?;
    rest.split_whitespace().next().map(str::to_string)
}

/// The seconds the demo's dashboard shows, with their apologies summed.
async fn shed_per_second(url: &str) -> Vec<f64> {
    let Ok(r) = crate::support::client()
        .get(format!("{url}dashboard/data"))
        .send()
        .await
    else {
        return Vec::new();
    };
    let d: serde_json::Value = r.json().await.unwrap_or_default();
    d["points"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .map(|p| {
                    p["shed"]
                        .as_object()
                        .map_or(0.0, |m| m.values().filter_map(|v| v.as_f64()).sum())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stampede_demo_shows_the_wave_and_tells_the_story() {
    let _heavy = crate::support::heavy().await;
    let mut child = Command::new(crate::support::process::bin())
        .args([
            "demo",
            "--stampede",
            "--listen",
            "127.0.0.1:0",
            "--wave-seconds",
            "12",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let next = |rx: &std::sync::mpsc::Receiver<String>| rx.recv_timeout(Duration::from_secs(30));

    // The dashboard's address comes first, right after the title, so a
    // newcomer can open it before the wave arrives.
    seen.push(next(&rx).expect("a title"));
    seen.push(next(&rx).expect("the dashboard's address"));
    let url = dashboard_url(&seen[1]).unwrap_or_else(|| panic!("no dashboard first: {seen:?}"));

    // And it is up while the wave runs: its seconds show the apologies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let shed = shed_per_second(&url).await;
        if shed.iter().any(|s| *s > 100.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard never showed the wave: {shed:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // `LIFEBOAT_DASHBOARD_PNG=docs/dashboard.png` takes the README's
    // screenshot here, mid-wave (not in CI: a browser beside the wave
    // would load the machine the wave is measured on).
    if let Some(path) = std::env::var_os("LIFEBOAT_DASHBOARD_PNG") {
        let mut browser = crate::support::browser::Browser::launch(1400, 1250)
            .await
            .expect("chromium for the screenshot");
        browser.open(&url).await;
        browser
            .wait_for(
                "window.lifeboat.points.some(p => p.mode === 'degraded')",
                Duration::from_secs(20),
            )
            .await;
        browser
            .wait_for(
                "window.lifeboat.points.filter(p => p.mode === 'degraded').length >= 5",
                Duration::from_secs(20),
            )
            .await;
        std::fs::write(path, browser.screenshot(false).await).unwrap();
    }

    let out =
        tokio::task::spawn_blocking(move || (child.wait(), stderr.join().unwrap_or_default()));
    let (status, stderr) = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the demo ends by itself")
        .unwrap();
    seen.extend(rx.iter());
    let stdout = seen.join("\n");
    assert!(status.unwrap().success(), "{stdout}\n{stderr}");
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
