//! The binary: `check` exit codes, SIGTERM drain, RSS while streaming a
//! 1 GiB download, the access log.

use std::process::Command;
use std::time::Duration;

use crate::support::process::{Process, bin, write_config};
use crate::support::{TestOrigin, client, lifeboat};

#[test]
fn check_exit_codes() {
    let good = Command::new(bin())
        .args([
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/lifeboat.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(good.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&good.stdout).contains(": ok"));

    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(
        dir.path(),
        "[origin]\nurl = \"http://127.0.0.1:1\"\nconect_timeout = \"1s\"\n",
    );
    let out = Command::new(bin()).arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lifeboat.toml:3:1: origin.conect_timeout: unknown key"),
        "{err}"
    );

    let missing = Command::new(bin())
        .args(["check", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));

    let version = Command::new(bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("lifeboat "));
}

#[test]
fn run_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(dir.path(), "[origin]\nurl = 42\n");
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lifeboat.toml:2:7: origin.url:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_inflight_download_then_exits_0() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &lifeboat(&origin).set("log.level", "\"info\"").toml(),
    );
    let mut proc = Process::start(&config);
    let mut resp = client()
        .get(format!("http://{}/gated", proc.http))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.chunk().await.unwrap().unwrap().as_ref(),
        b"first-chunk\n"
    );
    proc.terminate();
    // The drain waits for the download; the process must still be alive.
    let draining = async {
        loop {
            if proc
                .lines
                .try_recv()
                .is_ok_and(|l| l.contains("shutting down"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), draining)
        .await
        .expect("shutdown logged");
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "exited before the download finished"
    );
    origin.release();
    assert_eq!(resp.chunk().await.unwrap().unwrap().as_ref(), b"the-rest\n");
    let code = tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_download_keeps_rss_flat() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &lifeboat(&origin)
            .set("log.level", "\"info\"")
            .set("log.access", "false")
            .toml(),
    );
    let proc = Process::start(&config);
    // Warm up the pools and allocator with one small download.
    let warm = client()
        .get(format!("http://{}/bytes/1048576", proc.http))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.bytes().await.unwrap().len(), 1 << 20);
    let baseline = proc.rss_kib();

    let size: u64 = 1 << 30;
    let mut resp = client()
        .get(format!("http://{}/bytes/{size}", proc.http))
        .send()
        .await
        .unwrap();
    let (mut total, mut peak, mut n) = (0u64, baseline, 0u64);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        total += chunk.len() as u64;
        n += 1;
        if n % 256 == 0 {
            peak = peak.max(proc.rss_kib());
        }
    }
    assert_eq!(total, size);
    let growth_mib = (peak.saturating_sub(baseline)) as f64 / 1024.0;
    eprintln!(
        "lifeboat RSS baseline {baseline} KiB, peak {peak} KiB, growth {growth_mib:.1} MiB for 1 GiB"
    );
    assert!(
        growth_mib < 8.0,
        "RSS grew by {growth_mib:.1} MiB while streaming 1 GiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_one_structured_line_per_request() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("log.format", "\"json\"")
        .toml();
    let proc = Process::start(&write_config(dir.path(), &toml));
    let resp = client()
        .get(format!("http://{}/bytes/1234?x=1", proc.http))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), 1234);
    let line = tokio::task::block_in_place(|| {
        proc.next_line("access line", |l| l.contains("lifeboat::access"))
    });
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/bytes/1234");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 1234);
    assert!(v["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    // Whole microseconds, never a float.
    assert!(v["duration_us"].is_u64(), "{line}");
    assert!(v.get("duration_ms").is_none(), "{line}");
    assert_eq!(v["target"], "lifeboat::access");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_cpu_it_runs_single_threaded_and_still_reloads_and_drains() {
    // A one-core container, as `taskset` makes it: lifeboat picks the
    // single-threaded scheduler, and everything that runs beside the
    // requests (signals, reload, drain) still works on that one thread.
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &lifeboat(&origin).set("log.level", "\"info\"").toml(),
    );
    let mut proc = Process::start_under(&["taskset", "-c", "0"], &config);
    assert!(
        proc.startup
            .iter()
            .any(|l| l.contains("runtime: single-threaded")),
        "{:?}",
        proc.startup
    );
    let c = client();
    let url = format!("http://{}/status/200", proc.http);
    for _ in 0..20 {
        assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    }
    proc.signal("HUP");
    tokio::task::block_in_place(|| {
        proc.next_line("a reload", |l| l.contains("configuration reloaded"))
    });
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    proc.terminate();
    let code = tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));
}
