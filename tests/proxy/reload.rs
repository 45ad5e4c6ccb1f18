//! Atomic reload: under load, by file change (including a Kubernetes
//! ConfigMap's symlink swap), and by SIGHUP to the real binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::process::Process;
use crate::support::{Harness, TestOrigin, client, header_of, lifeboat, text_of, wait_until};

fn version(origin: &TestOrigin, via: &str) -> Harness {
    lifeboat(origin).set("proxy.via", &format!("\"{via}\""))
}

async fn wait_generation(lb: &crate::support::Running, at_least: u64) {
    wait_until(&format!("config generation {at_least}"), || {
        lb.shared.generation() >= at_least
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_lose_nothing() {
    let _heavy = crate::support::heavy().await;
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lifeboat.toml");
    let a = version(&origin, "cfg-a").set("reload.watch", "false");
    let b = version(&origin, "cfg-b").set("reload.watch", "false");
    let (text_a, text_b) = (a.toml(), b.toml());
    let broken = text_b.replace("via = \"cfg-b\"", "via = \"cfg-b\"\nvia_typo = 1");
    let lb = a.start_from_file(&file).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            lb.url("/echo/headers"),
        );
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let r = c.get(&url).send().await;
                // Each response comes from exactly one config: its Via names it.
                match r {
                    Ok(r)
                        if r.status() == 200
                            && matches!(
                                r.headers()["via"].to_str(),
                                Ok("1.1 cfg-a" | "1.1 cfg-b")
                            ) =>
                    {
                        let seen: Value = r.json().await.unwrap();
                        let via = seen["headers"]["via"][0].as_str().unwrap().to_string();
                        assert!(via == "1.1 cfg-a" || via == "1.1 cfg-b", "{via}");
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let (mut accepted, mut rejected) = (0, 0);
    for i in 0..50 {
        let text = match i % 3 {
            0 => &text_b,
            1 => &broken,
            _ => &text_a,
        };
        std::fs::write(&file, text).unwrap();
        let r = client()
            .post(format!("http://{}/reload", lb.admin.unwrap()))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        if i % 3 == 1 {
            assert_eq!(status, 422);
            let err = body["error"].as_str().unwrap();
            assert!(
                err.contains("lifeboat.toml:") && err.contains("via_typo"),
                "{err}"
            );
            rejected += 1;
        } else {
            assert_eq!(status, 200, "{body}");
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!((accepted, rejected), (33, 17));
    assert_eq!(lb.shared.generation(), 1 + 33);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load to mean anything: {}",
        ok.load(Ordering::Relaxed)
    );
    // The last valid file was config b (i = 48); the broken one written after
    // it (i = 49) changed nothing.
    let last = client().get(lb.url("/status/200")).send().await.unwrap();
    assert_eq!(last.headers()["via"], "1.1 cfg-b");
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    let origin = TestOrigin::start().await;
    let mount = tempfile::tempdir().unwrap();
    let m = mount.path();
    // The layout Kubernetes uses: lifeboat.toml -> ..data/lifeboat.toml, ..data -> ..<timestamp>
    std::fs::create_dir(m.join("..2026_11_21_a")).unwrap();
    std::fs::write(
        m.join("..2026_11_21_a/lifeboat.toml"),
        version(&origin, "map-a")
            .set("reload.debounce", "\"50ms\"")
            .toml(),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_21_a", m.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/lifeboat.toml", m.join("lifeboat.toml")).unwrap();
    let config = ::lifeboat::config::load(&m.join("lifeboat.toml")).unwrap();
    let server = ::lifeboat::Lifeboat::bind_with_path(config, Some(m.join("lifeboat.toml")))
        .await
        .unwrap();
    let addr = server.http_addr().unwrap();
    let shared = server.shared();
    tokio::spawn(server.run(std::future::pending()));
    let via = |c: reqwest::Client| async move {
        c.get(format!("http://{addr}/status/200"))
            .send()
            .await
            .unwrap()
            .headers()["via"]
            .clone()
    };
    assert_eq!(via(client()).await, "1.1 map-a");

    // The update: a new timestamped directory, a new ..data link, renamed over the old one.
    std::fs::create_dir(m.join("..2026_11_21_b")).unwrap();
    std::fs::write(
        m.join("..2026_11_21_b/lifeboat.toml"),
        version(&origin, "map-b")
            .set("reload.debounce", "\"50ms\"")
            .toml(),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_21_b", m.join("..data_tmp")).unwrap();
    std::fs::rename(m.join("..data_tmp"), m.join("..data")).unwrap();
    std::fs::remove_dir_all(m.join("..2026_11_21_a")).unwrap();

    wait_until("the symlink swap to be noticed", || {
        shared.generation() >= 2
    })
    .await;
    assert_eq!(via(client()).await, "1.1 map-b");
}

#[tokio::test]
async fn an_edited_file_is_reloaded_and_a_broken_edit_is_not() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lifeboat.toml");
    let lb = version(&origin, "edit-a")
        .set("reload.debounce", "\"50ms\"")
        .start_from_file(&file)
        .await;
    std::fs::write(
        &file,
        version(&origin, "edit-b")
            .set("reload.debounce", "\"50ms\"")
            .toml(),
    )
    .unwrap();
    wait_generation(&lb, 2).await;
    assert_eq!(header_of(lb.url("/status/200"), "via").await, "1.1 edit-b");
    std::fs::write(&file, "[origin\nthis is not toml").unwrap();
    // Give the watcher time to see and reject it, then prove nothing changed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lb.shared.generation(), 2);
    assert_eq!(header_of(lb.url("/status/200"), "via").await, "1.1 edit-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_binary() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lifeboat.toml");
    let with = |via: &str| {
        version(&origin, via)
            .set("log.level", "\"info\"")
            .set("reload.watch", "false")
            .toml()
    };
    std::fs::write(&file, with("hup-a")).unwrap();
    let proc = Process::start(&file);
    let url = format!("http://{}/status/200", proc.http);
    assert_eq!(header_of(&url, "via").await, "1.1 hup-a");
    std::fs::write(&file, with("hup-b")).unwrap();
    proc.signal("HUP");
    let reloaded = tokio::task::block_in_place(|| {
        proc.next_line("reload line", |l| l.contains("configuration reloaded"))
    });
    assert!(reloaded.contains("sighup"), "{reloaded}");
    assert_eq!(header_of(&url, "via").await, "1.1 hup-b");
}

#[tokio::test]
async fn tls_certificates_reload_with_the_config() {
    crate::support::tls::install_provider();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (pki_a, pki_b) = (
        crate::support::tls::make_pki(&a),
        crate::support::tls::make_pki(&b),
    );
    let with = |pki: &crate::support::tls::TestPki| {
        lifeboat(&origin).tls(pki).set("reload.watch", "false")
    };
    let file = dir.path().join("lifeboat.toml");
    let lb = with(&pki_a).start_from_file(&file).await;
    let port = lb.https.unwrap().port();
    let trusting = |pki: &crate::support::tls::TestPki| {
        let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .resolve("localhost", lb.https.unwrap())
            .build()
            .unwrap()
    };
    let url = format!("https://localhost:{port}/status/200");
    assert_eq!(
        trusting(&pki_a).get(&url).send().await.unwrap().status(),
        200
    );
    assert!(
        trusting(&pki_b).get(&url).send().await.is_err(),
        "B's CA must not trust A's certificate"
    );

    // Same listener address (a new port would need a restart), new certificate.
    let text = with(&pki_b).toml().replace(
        "https = \"127.0.0.1:0\"",
        &format!("https = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&file, text).unwrap();
    let r = client()
        .post(format!("http://{}/reload", lb.admin.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        trusting(&pki_b).get(&url).send().await.unwrap().status(),
        200,
        "new connections get the new certificate"
    );
}

/// `[apology] message` in the file is the operator's words too: a changed
/// one reaches the apology and the status page on reload (a ConfigMap edit
/// is how a fleet hears one message); an unchanged one leaves a message
/// posted since through the admin API alone.
#[tokio::test]
async fn a_message_changed_in_the_file_applies_on_reload() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lifeboat.toml");
    let with = |text: &str| {
        lifeboat(&origin)
            .set("reload.watch", "false")
            .set("shedding.mode", "\"degraded\"")
            .set("apology.message", &format!("\"{text}\""))
    };
    let lb = with("Mirrors are on their way.")
        .start_from_file(&file)
        .await;
    let admin = lb.admin.unwrap();
    let page = || async { text_of(lb.url("/news")).await };
    assert!(page().await.contains("Mirrors are on their way."));
    let reload = || async {
        let r = client()
            .post(format!("http://{admin}/reload"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };

    std::fs::write(&file, with("Next update at 20:00 UTC.").toml()).unwrap();
    reload().await;
    let text = page().await;
    assert!(text.contains("Next update at 20:00 UTC."), "{text}");
    assert!(!text.contains("Mirrors are on their way."));
    assert_eq!(lb.shared.message(), "Next update at 20:00 UTC.");

    // A message posted live survives a reload that leaves the file's alone.
    let r = client()
        .post(format!("http://{admin}/message"))
        .json(&serde_json::json!({"text": "Posted live."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let unchanged = with("Next update at 20:00 UTC.").set("proxy.via", "\"other\"");
    std::fs::write(&file, unchanged.toml()).unwrap();
    reload().await;
    assert!(page().await.contains("Posted live."));
}

/// Hardening item 9: hundreds of SIGHUP reloads, a third of them broken
/// files, with TLS certificates reloaded each time, under load: no request
/// fails, and neither fds nor RSS grow once warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_storm_under_load_leaks_nothing() {
    let _heavy = crate::support::heavy().await;
    crate::support::tls::install_provider();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::support::tls::make_pki(dir.path());
    let file = dir.path().join("lifeboat.toml");
    let with = |via: &str| {
        version(&origin, via)
            .set("log.level", "\"info\"")
            .set("reload.watch", "false")
            .tls(&pki)
            .toml()
    };
    let (text_a, text_b) = (with("storm-a"), with("storm-b"));
    let broken = text_b.replace("[origin]", "[origin]\nurl_typo = 1");
    // Written whole and renamed into place, as config management does.
    let install = |text: &str| {
        let tmp = dir.path().join("next.toml");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    install(&text_a);
    let proc = Process::start(&file);

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ok = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = format!("http://{}/echo/headers", proc.http);
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status())),
                    Err(e) => failed.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }

    let mut outcomes = (0, 0);
    let mut storm = |n: usize| {
        for i in 0..n {
            install(match i % 3 {
                0 => &text_b,
                1 => &broken,
                _ => &text_a,
            });
            proc.signal("HUP");
            let line = tokio::task::block_in_place(|| {
                proc.next_line("reload verdict", |l| {
                    l.contains("configuration reloaded") || l.contains("configuration rejected")
                })
            });
            let rejected = line.contains("rejected");
            assert_eq!(rejected, i % 3 == 1, "reload {i}: {line}");
            if rejected {
                outcomes.1 += 1;
            } else {
                outcomes.0 += 1;
            }
        }
    };
    let started = std::time::Instant::now();
    storm(60); // warm: pools, caches and allocator arenas reach their size
    let (fds, rss) = (proc.fd_count(), proc.rss_kib());
    storm(240);
    let rate = 300.0 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (fds_after, rss_after) = (proc.fd_count(), proc.rss_kib());
    eprintln!(
        "reload storm: {} accepted, {} rejected, {rate:.0} reloads/s, {} requests; \
         fds {fds} -> {fds_after}, RSS {rss} -> {rss_after} KiB",
        outcomes.0,
        outcomes.1,
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(outcomes, (200, 100));
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "requests failed during reloads: {failed:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 200, "too little load");
    assert!(fds_after <= fds + 2, "fds grew from {fds} to {fds_after}");
    assert!(
        rss_after <= rss + 4 * 1024,
        "RSS grew from {rss} to {rss_after} KiB over 240 reloads"
    );
}

#[tokio::test]
async fn every_setting_fixed_at_start_is_named_when_a_reload_changes_it() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::support::tls::make_pki(dir.path());
    let file = dir.path().join("lifeboat.toml");
    let base = |via: &str, backlog: &str, conns: &str, handshakes: &str| {
        lifeboat(&origin)
            .tls(&pki)
            .set("reload.watch", "false")
            .set("proxy.via", &format!("\"{via}\""))
            .set("listen.backlog", backlog)
            .set("limits.max_connections", conns)
            .set("listen.tls.max_handshakes", handshakes)
    };
    let hook = |url: &str| format!("\n[[webhook]]\nurl = \"{url}\"\n");
    let first = base("one", "128", "1000", "8").toml();
    let lb = base("one", "128", "1000", "8").start_from_file(&file).await;
    std::fs::write(&file, first + &hook("http://127.0.0.1:9/a")).unwrap();
    let reload = || async {
        let r = client()
            .post(format!("http://{}/reload", lb.admin.unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["needs_restart"].clone()
    };
    // Adding a webhook is itself start-only.
    assert_eq!(reload().await, serde_json::json!(["webhook"]));

    // A live setting changes silently; each start-only one is named.
    let second = base("two", "256", "2000", "16");
    std::fs::write(&file, second.toml() + &hook("http://127.0.0.1:9/b")).unwrap();
    assert_eq!(
        reload().await,
        serde_json::json!([
            "limits.max_connections",
            "listen.backlog",
            "listen.tls.max_handshakes",
            "webhook"
        ])
    );
    assert_eq!(lb.shared.runtime().config.proxy.via, "two");
    // Nothing changed: nothing named.
    assert_eq!(reload().await, serde_json::json!([]));
}
