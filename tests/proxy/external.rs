//! Hardening checks with real external tools (hardening items 1 and 10):
//! testssl.sh against the TLS listener, slowhttptest against the binary.
//! See support::external for how a missing tool is handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::external::tool;
use crate::support::process::{Process, write_config};
use crate::support::tls::make_pki;
use crate::support::{TestOrigin, lifeboat};

#[tokio::test]
async fn testssl_finds_only_tls12_and_tls13_with_modern_ciphers() {
    let Some(testssl) = tool("testssl", "testssl.sh") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).tls(&pki).start().await;
    let json = dir.path().join("testssl.json");
    let run = tokio::process::Command::new(testssl)
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--protocols",
            "--std",
            "--fs",
        ])
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("127.0.0.1:{}", lb.https.unwrap().port()))
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("testssl.sh finished within 5 minutes")
        .expect("testssl.sh ran");
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_else(|e| {
            panic!(
                "no JSON from testssl.sh ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        }))
        .expect("testssl.sh JSON");
    // testssl.sh 3.0 says AVERAGE and PFS where 3.2 says OBSOLETED and FS.
    let finding = |ids: &str| -> String {
        findings
            .iter()
            .find(|f| ids.split('|').any(|id| f["id"] == id))
            .and_then(|f| f["finding"].as_str())
            .unwrap_or_else(|| {
                let ids_seen: Vec<_> = findings.iter().map(|f| &f["id"]).collect();
                panic!("testssl.sh reported nothing for {ids}; it reported {ids_seen:?}")
            })
            .to_string()
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(
            finding(old).starts_with("not offered"),
            "{old}: {}",
            finding(old)
        );
    }
    for modern in ["TLS1_2", "TLS1_3"] {
        assert!(
            finding(modern).starts_with("offered"),
            "{modern}: {}",
            finding(modern)
        );
    }
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_OBSOLETED|cipherlist_AVERAGE",
    ] {
        assert!(
            finding(weak).starts_with("not offered"),
            "{weak}: {}",
            finding(weak)
        );
    }
    assert!(
        finding("cipherlist_STRONG").starts_with("offered"),
        "{}",
        finding("cipherlist_STRONG")
    );
    assert!(
        finding("FS|PFS").starts_with("offered"),
        "forward secrecy: {}",
        finding("FS|PFS")
    );
    let severe: Vec<_> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .collect();
    assert!(severe.is_empty(), "testssl.sh found: {severe:#?}");
}

/// What one slowhttptest run showed.
struct Attack {
    /// Connections slowhttptest opened.
    opened: u64,
    /// Most lifeboat descriptors at once.
    peak_fds: usize,
    /// From the start until lifeboat was back to its baseline fds, while
    /// the attacker still ran.
    cleared: Duration,
    /// slowhttptest's own verdict.
    status: String,
}

/// Origin connections lifeboat may keep pooled after an attack (the test
/// config's `origin.max_inflight`): not a leak.
const POOLED: usize = 64;

/// Runs slowhttptest against the process and watches the process's fds:
/// they must climb (the attack is real) and come back to the baseline
/// while the attacker still runs, or the attacker must report that the
/// server closed every connection: lifeboat closed them, not the tool.
async fn attack(
    tool: &std::path::Path,
    proc: &Process,
    dir: &std::path::Path,
    name: &str,
    args: &[String],
) -> Attack {
    let base_fds = proc.fd_count();
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .args([
            "-c", "2000", "-r", "1000", "-l", "15", "-p", "3", "-g", "-o",
        ])
        .arg(dir.join(name))
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("slowhttptest runs");
    let started = Instant::now();
    let mut peak_fds = base_fds;
    let mut cleared = None;
    while cleared.is_none() && child.try_wait().unwrap().is_none() {
        let fds = proc.fd_count();
        peak_fds = peak_fds.max(fds);
        if peak_fds >= base_fds + 300 && fds <= base_fds + 8 + POOLED {
            cleared = Some(started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: no end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("slowhttptest finished within 60 s")
        .expect("slowhttptest ran");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = stdout
        .lines()
        .find_map(|l| l.split("Exit status:").nth(1))
        .map(|s| {
            s.replace('\u{1b}', "")
                .replace("[1;36m", "")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| panic!("{name}: no exit status in {stdout}"));
    let cleared = cleared.unwrap_or_else(|| {
        assert!(
            status.contains("No open connections left"),
            "{name}: the attacker gave up before lifeboat shed its connections \
             (peak {peak_fds} fds, baseline {base_fds}): {status}"
        );
        started.elapsed()
    });
    // Seconds,Closed,Pending,Connected,...: Closed is cumulative.
    let csv = std::fs::read_to_string(dir.join(format!("{name}.csv"))).expect("slowhttptest CSV");
    let opened = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split(',')
                .map(|f| f.trim().parse().unwrap_or(0))
                .collect();
            Some(f.get(1)? + f.get(3)?)
        })
        .max()
        .unwrap_or(0);
    Attack {
        opened,
        peak_fds,
        cleared,
        status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowhttptest_attacks_are_cut_and_downloads_keep_flowing() {
    let _heavy = crate::support::heavy().await;
    let Some(slow) = tool("slowhttptest", "slowhttptest") else {
        return;
    };
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("limits.header_read_timeout", "\"2s\"")
        .set("limits.body_idle_timeout", "\"2s\"")
        .set("limits.keepalive_timeout", "\"3s\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .toml();
    let proc = Process::start(&write_config(dir.path(), &toml));
    let addr = proc.http;
    let fresh = crate::support::fresh_client();
    let download = format!("http://{addr}/bytes/1024");
    assert_eq!(fresh.get(&download).send().await.unwrap().status(), 200);
    let base_fds = proc.fd_count();
    let base_rss = proc.rss_kib();

    // A download on a fresh connection every 100 ms, all through the attacks.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed, mut worst) = (0u32, Vec::new(), Duration::ZERO);
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let outcome = match fresh.get(&download).send().await {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(b) if b.len() == 1024 => Ok(()),
                        Ok(b) => Err(format!("{} bytes", b.len())),
                        Err(e) => Err(e.to_string()),
                    },
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => ok += 1,
                    Err(e) => failed.push(e),
                }
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (ok, failed, worst)
        })
    };

    let url = |path: &str| format!("http://{addr}{path}");
    let attacks: [(&str, Vec<String>); 3] = [
        // Slowloris: heads that never end, a header line a second.
        (
            "slowloris",
            ["-H", "-i", "1", "-u", &url("/file/10")]
                .map(String::from)
                .to_vec(),
        ),
        // Slow body: a 8 KiB POST body, a chunk every 3 s (past the 2 s idle limit).
        (
            "slow-body",
            ["-B", "-i", "3", "-s", "8192", "-u", &url("/sink")]
                .map(String::from)
                .to_vec(),
        ),
        // Slow read: a 256 KiB response read 32 bytes every 3 s.
        (
            "slow-read",
            [
                "-X",
                "-k",
                "1",
                "-n",
                "3",
                "-w",
                "16",
                "-y",
                "32",
                "-z",
                "32",
                "-u",
                &url("/file/262144"),
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    let mut report = Vec::new();
    for (name, args) in &attacks {
        let a = attack(&slow, &proc, dir.path(), name, args).await;
        report.push(format!(
            "{name}: {} connections, lifeboat peaked at {} fds and was back to baseline after {:?}; slowhttptest: {}",
            a.opened, a.peak_fds, a.cleared, a.status
        ));
        assert!(
            a.opened >= 1500,
            "{name}: the attack never got going ({} connections)",
            a.opened
        );
        // The attack reached lifeboat: it held the connections until their
        // deadlines, or (slow bodies, since the learned origin limit and
        // expected-wait admission) answered them at once: 503 when the
        // origin had no room, 429 past the apology budget, and closed.
        let path = args
            .last()
            .map_or("", |u| u.rsplit_once(':').map_or("", |(_, p)| p));
        let path = path.trim_start_matches(|c: char| c.is_ascii_digit());
        let answered = proc.count_lines(&format!("path=\"{path}\""));
        assert!(
            a.peak_fds >= base_fds + 300 || answered >= 300,
            "{name}: lifeboat neither held the connections (peak {} fds, baseline {base_fds}) nor answered them ({answered} access lines)",
            a.peak_fds
        );
        crate::support::wait_until(&format!("fds back to baseline after {name}"), || {
            proc.fd_count() <= base_fds + 8 + POOLED
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    let (ok, failed, worst) = prober.await.unwrap();
    // The allocator hands freed memory back within seconds.
    crate::support::wait_until("RSS back to its baseline", || {
        proc.rss_kib() <= base_rss + 8 * 1024
    })
    .await;
    let rss = proc.rss_kib();
    eprintln!(
        "{}\nprobe: {ok} downloads, {} failed, slowest {worst:?}; fds {base_fds} -> {}; RSS {base_rss} -> {rss} KiB",
        report.join("\n"),
        failed.len(),
        proc.fd_count()
    );
    assert!(
        failed.is_empty(),
        "downloads failed during the attacks: {failed:?}"
    );
    assert!(ok >= 50, "only {ok} downloads in the attack window");
}
