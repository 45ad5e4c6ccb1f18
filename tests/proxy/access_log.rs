//! The access log as the binary writes it: to a file, across a logrotate
//! rename and SIGUSR1, into a full or stalled destination (requests never
//! wait, lines are dropped and counted), sampled while shedding, and
//! nothing lost on a clean shutdown.

use std::path::Path;
use std::time::Duration;

use crate::support::process::{Process, write_config};
use crate::support::{TestOrigin, client, lifeboat, text_of};

/// The file's lines (none while it does not exist).
fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Waits (up to 10 s) until `path` holds `n` lines; fails if it holds more.
async fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines = lines_of(path);
        assert!(
            lines.len() <= n,
            "{} lines, expected {n}: {lines:#?}",
            lines.len()
        );
        if lines.len() == n {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} holds {} lines, expected {n}",
            path.display(),
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sum of the admin API's samples of `metric` (every label set that
/// contains `labels`).
async fn metric(admin: std::net::SocketAddr, metric: &str, labels: &str) -> f64 {
    let text = text_of(format!("http://{admin}/metrics")).await;
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of `key=` in a text access line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 2;
    let rest = &line[start..];
    &rest[..rest.find(' ').unwrap_or(rest.len())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_reach_the_file_and_a_clean_shutdown_loses_none() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("log.access_path", "\"access.log\"")
        .toml();
    let mut proc = Process::start(&write_config(dir.path(), &toml));
    let c = client();
    for i in 0..100 {
        let resp = c
            .get(format!("http://{}/bytes/{i}", proc.http))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.bytes().await.unwrap().len(), i);
    }
    // At once: most of these lines are still in memory (the writer
    // passes every 100 ms). Shutdown must write them.
    proc.terminate();
    let code = tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));

    let lines = lines_of(&dir.path().join("access.log"));
    assert_eq!(lines.len(), 100, "{lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.contains("  INFO lifeboat::access: method=GET "),
            "{line}"
        );
        assert_eq!(field(line, "path"), format!("\"/bytes/{i}\""));
        assert_eq!(field(line, "status"), "200");
        assert_eq!(field(line, "bytes"), i.to_string());
        // Whole microseconds: no float noise.
        let us = field(line, "duration_us");
        assert!(us.parse::<u64>().is_ok(), "duration_us={us} in {line}");
        assert!(!line.contains("duration_ms"), "{line}");
    }
    // And none of them on stderr.
    let stderr: Vec<String> = tokio::task::block_in_place(|| proc.lines.iter().collect());
    assert!(
        !stderr.iter().any(|l| l.contains("lifeboat::access:")),
        "{stderr:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_after_a_logrotate_rename_moves_new_lines_to_a_new_file() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("log.access_path", "\"access.log\"")
        .toml();
    let mut proc = Process::start(&write_config(dir.path(), &toml));
    let (current, rotated) = (
        dir.path().join("access.log"),
        dir.path().join("access.log.1"),
    );
    let c = client();
    let get = |n: usize| c.get(format!("http://{}/bytes/{n}", proc.http)).send();
    for n in 1..=3 {
        assert_eq!(get(n).await.unwrap().bytes().await.unwrap().len(), n);
    }
    wait_for_lines(&current, 3).await;

    // logrotate's `create` mode: rename, create the new file, then
    // `postrotate` sends SIGUSR1.
    std::fs::rename(&current, &rotated).unwrap();
    std::fs::File::create(&current).unwrap();
    proc.signal("USR1");
    tokio::task::block_in_place(|| {
        proc.next_line("the reopen", |l| l.contains("access log reopened"))
    });
    for n in 4..=5 {
        assert_eq!(get(n).await.unwrap().bytes().await.unwrap().len(), n);
    }
    let new = wait_for_lines(&current, 2).await;
    assert!(new[0].contains("path=\"/bytes/4\""), "{new:#?}");
    assert!(new[1].contains("path=\"/bytes/5\""), "{new:#?}");
    let old = lines_of(&rotated);
    assert_eq!(old.len(), 3, "{old:#?}");
    assert!(old[2].contains("path=\"/bytes/3\""), "{old:#?}");

    proc.terminate();
    let code = tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0), "SIGUSR1 must not have killed it");
    assert_eq!(lines_of(&current).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_drops_and_counts_lines_and_every_request_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    let toml = crate::support::lifeboat_to("http://127.0.0.1:1")
        .set("log.level", "\"info\"")
        .set("log.access_path", "\"/dev/full\"")
        .set("shedding.mode", "\"degraded\"")
        // Every apology a 503 from one test client, never a 429.
        .set("shedding.client_budget", "0")
        .toml();
    let proc = Process::start(&write_config(dir.path(), &toml));
    let admin = proc.admin_address();
    assert_eq!(
        metric(admin, "lifeboat_access_log_dropped_total", "").await,
        0.0
    );
    let c = client();
    for _ in 0..200 {
        let resp = c
            .get(format!("http://{}/", proc.http))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(
        admin,
        "lifeboat_access_log_dropped_total",
        "reason=\"write\"",
    )
    .await
        < 200.0
    {
        assert!(tokio::time::Instant::now() < deadline, "drops not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let warning = tokio::task::block_in_place(|| {
        proc.next_line("the warning", |l| l.contains("access log lines dropped"))
    });
    assert!(warning.contains("No space left on device"), "{warning}");
    assert!(warning.contains("destination=\"/dev/full\""), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pipe_holds_no_request_and_overflowing_lines_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("access.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A reader that opens the pipe and never reads: once its 64 KiB are
    // full, every write blocks, as with a log shipper that stopped.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let held = std::fs::File::open(reader_path).unwrap();
        let _ = stopped.recv();
        drop(held);
    });
    let toml = crate::support::lifeboat_to("http://127.0.0.1:1")
        .set("log.level", "\"info\"")
        .set("log.access_path", &format!("{fifo:?}"))
        .set("shedding.mode", "\"degraded\"")
        // Every apology a 503 from one test client, never a 429.
        .set("shedding.client_budget", "0")
        .toml();
    let mut proc = Process::start(&write_config(dir.path(), &toml));
    let admin = proc.admin_address();
    // 8 KiB paths make 8 KiB lines: 1,000 requests are 8 MB of lines,
    // twice what the buffers hold, with the pipe taking none of it.
    let long = "a".repeat(8000);
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..1000 {
        let resp = c
            .get(format!("http://{}/{long}{i}", proc.http))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} waited for the log: {e}"));
        assert_eq!(resp.status(), 503);
        resp.bytes().await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(
        admin,
        "lifeboat_access_log_dropped_total",
        "reason=\"buffer\"",
    )
    .await
        < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "overflow not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| {
        proc.next_line("the warning", |l| {
            l.contains("access log lines dropped") && l.contains("buffer_full=")
        })
    });
    // Shutdown waits a bounded time for the stalled pipe, then exits.
    proc.terminate();
    let code = tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));
    let _ = stop.send(());
    reader.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_lines_are_sampled_and_summed_up_once_a_second() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("log.format", "\"json\"")
        .set("log.access_path", "\"access.log\"")
        .set("log.shed_sample", "0.1")
        .set("shedding.mode", "\"degraded\"")
        // Every apology a 503 from one test client, never a 429.
        .set("shedding.client_budget", "0")
        .route("downloads", "prefix", "/bytes/", "primary")
        .toml();
    let mut proc = Process::start(&write_config(dir.path(), &toml));
    let c = client();
    for _ in 0..300 {
        let resp = c
            .get(format!("http://{}/news", proc.http))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
    }
    for _ in 0..5 {
        let resp = c
            .get(format!("http://{}/bytes/10", proc.http))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.bytes().await.unwrap().len(), 10);
    }
    let path = dir.path().join("access.log");
    let parsed = |lines: Vec<String>| -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let is_summary = |v: &serde_json::Value| v["message"] == "shed summary";
    // The summaries come once a second: wait until they account for all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = parsed(lines_of(&path));
        let counted: u64 = lines
            .iter()
            .filter(|v| is_summary(v))
            .map(|v| v["count"].as_u64().unwrap())
            .sum();
        assert!(counted <= 300, "{counted}");
        if counted == 300 {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "summaries: {counted} of 300"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let summaries: Vec<_> = lines.iter().filter(|v| is_summary(v)).collect();
    let shed_lines = lines.iter().filter(|v| v["shed"].is_string()).count() as u64;
    for s in &summaries {
        assert_eq!(s["reason"], "degraded");
        assert_eq!(s["target"], "lifeboat::access");
        assert_eq!(s["classes"]["normal"], s["count"], "{s}");
        assert_eq!(s["classes"]["primary"], 0);
    }
    let logged: u64 = summaries
        .iter()
        .map(|s| s["logged"].as_u64().unwrap())
        .sum();
    assert_eq!(logged, shed_lines, "each logged shed request has its line");
    assert!(
        shed_lines < 300,
        "sampled: {shed_lines} of 300 shed lines kept"
    );
    // What was not shed is never sampled away.
    let proxied = lines
        .iter()
        .filter(|v| v["path"] == "/bytes/10" && v["status"] == 200)
        .count();
    assert_eq!(proxied, 5);
    proc.terminate();
    let code = tokio::task::block_in_place(|| proc.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_names_another_file_moves_the_lines_there() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let harness = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("reload.watch", "false");
    let config = write_config(
        dir.path(),
        &harness.set("log.access_path", "\"first.log\"").toml(),
    );
    let proc = Process::start(&config);
    let c = client();
    let get = |n: usize| c.get(format!("http://{}/bytes/{n}", proc.http)).send();
    assert_eq!(get(1).await.unwrap().bytes().await.unwrap().len(), 1);
    let (first, second) = (dir.path().join("first.log"), dir.path().join("second.log"));
    wait_for_lines(&first, 1).await;

    let harness = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("reload.watch", "false");
    write_config(
        dir.path(),
        &harness.set("log.access_path", "\"second.log\"").toml(),
    );
    proc.signal("HUP");
    tokio::task::block_in_place(|| {
        proc.next_line("the switch", |l| {
            l.contains("access log reopened") && l.contains("second.log")
        })
    });
    assert_eq!(get(2).await.unwrap().bytes().await.unwrap().len(), 2);
    let moved = wait_for_lines(&second, 1).await;
    assert!(moved[0].contains("path=\"/bytes/2\""), "{moved:#?}");
    assert_eq!(lines_of(&first).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_stderr_redirected_to_a_file_gets_every_line_whole() {
    // `lifeboat run 2>lifeboat.log`: stderr is a regular file, written in
    // large pieces, with the process's other log lines in between.
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &lifeboat(&origin).set("log.level", "\"info\"").toml(),
    );
    let log = dir.path().join("lifeboat.log");
    let mut child = std::process::Command::new(crate::support::process::bin())
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let listening = lines_of(&log)
            .into_iter()
            .find(|l| l.contains("listening (HTTP/1.1"));
        if let Some(line) = listening {
            break field(&line, "address")
                .parse::<std::net::SocketAddr>()
                .unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let c = client();
    for i in 0..300 {
        let resp = c
            .get(format!("http://{addr}/bytes/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.bytes().await.unwrap().len(), i);
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .arg(&pid)
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert_eq!(status.code(), Some(0));
    let lines = lines_of(&log);
    let access: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("lifeboat::access:"))
        .collect();
    assert_eq!(access.len(), 300);
    for (i, line) in access.iter().enumerate() {
        assert!(line.starts_with("20"), "a line cut or joined: {line}");
        assert_eq!(field(line, "path"), format!("\"/bytes/{i}\""));
        assert!(line.ends_with("end=\"complete\""), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("drained; bye")));
}
