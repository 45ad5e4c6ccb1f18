//! Several origin servers: balanced by load, ejected when they fail, back
//! when their health check passes, a request that never reached a server
//! sent once more to another; every server down is the apology.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lifeboat::upstream::outlier::State;

use crate::support::{Harness, Running, TestOrigin, client, lifeboat_to, text_of, wait_until};

/// A harness whose `[origin]` lists `urls` as its servers.
pub fn servers(urls: &[String]) -> Harness {
    let list: Vec<String> = urls
        .iter()
        .map(|u| format!("{{ url = \"{u}\" }}"))
        .collect();
    lifeboat_to("http://unused.invalid")
        .unset("origin.url")
        .set("origin.servers", &format!("[{}]", list.join(", ")))
}

/// The state lifeboat keeps of the server at `addr`.
fn server(lb: &Running, addr: std::net::SocketAddr) -> Arc<lifeboat::upstream::Server> {
    let rt = lb.shared.runtime();
    let name = format!("http://{addr}");
    let found = rt.upstream.pool.servers().iter().find(|s| s.name == name);
    found.expect("a configured server").clone()
}

fn in_rotation(lb: &Running, addr: std::net::SocketAddr) -> bool {
    let rt = lb.shared.runtime();
    rt.upstream.pool.state(&server(lb, addr)) == State::InRotation
}

/// GETs from `workers` clients in a loop until `stop`; every status seen.
fn load(
    lb: &Running,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<u16>>> {
    (0..workers)
        .map(|i| {
            let url = lb.url(if i % 2 == 0 {
                "/bytes/1024"
            } else {
                "/status/200"
            });
            let stop = stop.clone();
            tokio::spawn(async move {
                let c = client();
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let status = match c.get(&url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            // A body cut short is a failed GET too.
                            if r.bytes().await.is_ok() { status } else { 0 }
                        }
                        Err(_) => 0,
                    };
                    seen.push(status);
                }
                seen
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spread_over_the_servers() {
    let origins = [
        TestOrigin::start().await,
        TestOrigin::start().await,
        TestOrigin::start().await,
    ];
    let lb = servers(&origins.iter().map(TestOrigin::url).collect::<Vec<_>>())
        .start()
        .await;
    for _ in 0..300 {
        let resp = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    for o in &origins {
        assert!(o.requests() >= 30, "one server got {} of 300", o.requests());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_loses_no_get_and_comes_back() {
    let a = TestOrigin::start().await;
    let b = TestOrigin::start().await;
    let c = TestOrigin::start().await;
    let c_addr = c.addr;
    let lb = servers(&[a.url(), b.url(), c.url()])
        .set("origin.eject_for", "\"200ms\"")
        .set("origin.health.path", "\"/status/200\"")
        .set("origin.health.interval", "\"50ms\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&lb, 8, stop.clone());
    wait_until("every server busy", || {
        c.requests() >= 50 && a.requests() >= 50
    })
    .await;

    c.kill().await;
    wait_until("the dead server ejected", || !in_rotation(&lb, c_addr)).await;
    let sent_to_dead = server(&lb, c_addr).requests.load(Ordering::SeqCst);
    let before = a.requests() + b.requests();
    wait_until("300 more requests served", || {
        a.requests() + b.requests() >= before + 300
    })
    .await;
    assert_eq!(
        server(&lb, c_addr).requests.load(Ordering::SeqCst),
        sent_to_dead,
        "the ejected server was sent new requests"
    );

    let c = TestOrigin::start_on(c_addr).await;
    wait_until("the server back in rotation", || in_rotation(&lb, c_addr)).await;
    wait_until("the server serving again", || c.requests() >= 20).await;

    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    let failed = seen.iter().filter(|s| **s != 200).count();
    assert!(seen.len() > 600, "only {} requests", seen.len());
    assert_eq!(failed, 0, "{failed} of {} GETs failed", seen.len());
}

#[tokio::test]
async fn every_server_down_is_the_apology() {
    let ports = [closed_port().await, closed_port().await];
    let lb = servers(&ports.map(|p| format!("http://127.0.0.1:{p}")))
        .start()
        .await;
    for _ in 0..10 {
        let resp = client().get(lb.url("/anything")).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-down");
    }
    // Never all of them out: the last one stays in rotation.
    let rt = lb.shared.runtime();
    let pool = &rt.upstream.pool;
    let out = pool
        .servers()
        .iter()
        .filter(|s| pool.state(s) != State::InRotation)
        .count();
    assert_eq!(out, 1, "one of two ejected, the last one kept");
}

#[tokio::test]
async fn a_post_is_never_sent_twice() {
    let port = closed_port().await;
    let a = TestOrigin::start().await;
    let lb = servers(&[format!("http://127.0.0.1:{port}"), a.url()])
        .set("origin.eject_after", "1000")
        .start()
        .await;
    let (mut refused, mut retried_gets) = (0, 0);
    for _ in 0..40 {
        let resp = client()
            .post(lb.url("/sink"))
            .body("x")
            .send()
            .await
            .unwrap();
        if resp.status() == 503 {
            assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-down");
            refused += 1;
        }
        let get = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(
            get.status(),
            200,
            "a GET that never reached a server is sent again"
        );
        retried_gets += 1;
    }
    assert!(refused > 0, "a POST to the dead server was not refused");
    assert_eq!(retried_gets, 40);
    let seen = a.state.seen.lock().unwrap();
    let posts = seen.iter().filter(|s| s.starts_with("POST")).count();
    assert_eq!(posts, 40 - refused, "a refused POST was sent again");
}

/// A loopback port with nothing listening on it.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_origin_limit_is_the_sum_of_the_servers() {
    let urls = [
        "http://127.0.0.1:1".to_string(),
        "http://127.0.0.1:2".to_string(),
    ];
    let fixed = servers(&urls).set("origin.max_inflight", "3").start().await;
    let capacity = fixed.shared.admission.capacity();
    assert_eq!((capacity.learned, capacity.limit), (false, 6));
    assert_eq!(fixed.shared.admission.origin.limit(), 6);

    let learned = servers(&urls)
        .set("origin.learn_initial", "5")
        .start()
        .await;
    let capacity = learned.shared.admission.capacity();
    assert_eq!((capacity.learned, capacity.limit), (true, 10));
    for s in learned.shared.runtime().upstream.pool.servers() {
        assert_eq!(s.learn.limit(), 5, "each server learns its own");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_come_and_go_by_reload_without_dropping_a_download() {
    let a = TestOrigin::start().await;
    let b = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lifeboat.toml");
    let lb = servers(&[a.url()]).start_from_file(&file).await;
    let mut download = client().get(lb.url("/gated")).send().await.unwrap();
    let first = download.chunk().await.unwrap().expect("first chunk");
    assert_eq!(&first[..], b"first-chunk\n");

    // Reload: `a` removed, `b` added, while the download is at `a`.
    let reload = |urls: &[String]| {
        std::fs::write(&file, servers(urls).toml()).unwrap();
        let admin = lb.admin.expect("admin listener");
        async move {
            let r = client()
                .post(format!("http://{admin}/reload"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    reload(&[b.url()]).await;
    let at_a = a.requests();
    for _ in 0..20 {
        let resp = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(a.requests(), at_a, "a removed server got new requests");
    assert_eq!(b.requests(), 20);

    a.release();
    let rest = download.chunk().await.unwrap().expect("the rest");
    assert_eq!(&rest[..], b"the-rest\n", "the download in flight was cut");
    assert!(download.chunk().await.unwrap().is_none());

    // Added back: both take requests again.
    reload(&[a.url(), b.url()]).await;
    for _ in 0..100 {
        client().get(lb.url("/status/200")).send().await.unwrap();
    }
    assert!(
        a.requests() >= at_a + 20,
        "a re-added server got {}",
        a.requests() - at_a
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_server_is_shown_in_metrics_mode_config_and_status() {
    let a = TestOrigin::start().await;
    let dead = format!("http://127.0.0.1:{}", closed_port().await);
    let lb = servers(&[a.url(), dead.clone()])
        .set("origin.eject_after", "1")
        .start()
        .await;
    let ejected = || {
        let rt = lb.shared.runtime();
        let pool = &rt.upstream.pool;
        pool.servers()
            .iter()
            .any(|s| pool.state(s) != State::InRotation)
    };
    for _ in 0..1000 {
        let resp = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "sent again to the live server");
        if ejected() {
            break;
        }
    }
    assert!(ejected(), "the dead server was never ejected");
    let served = a.requests().to_string();
    let metrics = lb.metrics().await;
    let line = |name: &str, server: &str| {
        let prefix = format!("{name}{{server=\"{server}\"}} ");
        let found = metrics.lines().find_map(|l| l.strip_prefix(&prefix));
        found
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .to_string()
    };
    assert_eq!(
        line("lifeboat_origin_server_requests_total", &a.url()),
        served
    );
    assert_eq!(line("lifeboat_origin_server_in_rotation", &a.url()), "1");
    assert_eq!(line("lifeboat_origin_server_in_rotation", &dead), "0");
    assert_eq!(line("lifeboat_origin_server_ejections_total", &dead), "1");
    line("lifeboat_origin_server_limit", &a.url());
    line("lifeboat_origin_server_inflight", &a.url());
    line("lifeboat_origin_server_failures_total", &dead);

    let admin = lb.admin.expect("admin listener");
    let mode = crate::support::json_of(format!("http://{admin}/mode")).await;
    let servers = mode["servers"].as_array().expect("servers in /mode");
    let shown = |name: &str| servers.iter().find(|s| s["server"] == name).cloned();
    assert_eq!(shown(&dead).expect("dead shown")["state"], "ejected");
    assert_eq!(shown(&a.url()).expect("a shown")["state"], "in-rotation");
    assert_eq!(shown(&a.url()).unwrap()["requests"].to_string(), served);

    let config = text_of(format!("http://{admin}/config")).await;
    assert!(config.contains(&a.addr.to_string()), "{config}");

    let status = lb.url(&lb.shared.runtime().config.story.status_path);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let numbers = crate::support::json_of(&status).await["numbers"].clone();
        if numbers["origin_servers"] == 2 && numbers["origin_servers_in_rotation"] == 1 {
            // Each server's state, in the config's order, and no address
            // on the public page.
            let states = numbers["origin_server_states"].to_string();
            assert!(
                states == r#"["ejected","in-rotation"]"#
                    || states == r#"["in-rotation","ejected"]"#,
                "{numbers}"
            );
            assert!(!numbers.to_string().contains("127.0.0.1"), "{numbers}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status shows {numbers}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn credentials_in_a_server_url_are_not_shown() {
    let lb = servers(&["http://user:secret@127.0.0.1:1".to_string()])
        .start()
        .await;
    let admin = lb.admin.expect("admin listener");
    let config = text_of(format!("http://{admin}/config")).await;
    assert!(!config.contains("secret"), "{config}");
    assert!(config.contains("REDACTED@127.0.0.1:1"), "{config}");
}

#[tokio::test]
async fn a_server_given_by_name_is_looked_up_again_and_again() {
    let a = TestOrigin::start().await;
    let name = format!("http://localhost:{}", a.addr.port());
    let lb = servers(std::slice::from_ref(&name))
        .set("origin.resolve_every", "\"100ms\"")
        .start()
        .await;
    let resp = client().get(lb.url("/status/200")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let rt = lb.shared.runtime();
    let server = rt.upstream.pool.servers()[0].clone();
    assert_eq!(server.name, name);
    wait_until("three lookups", || {
        server.addresses.lookups.load(Ordering::SeqCst) >= 3
    })
    .await;
    let found = server.addresses.list();
    assert!(
        found.iter().any(|addr| addr.ip() == a.addr.ip()),
        "localhost resolved to {found:?}"
    );
    let admin = lb.admin.expect("admin listener");
    let mode = crate::support::json_of(format!("http://{admin}/mode")).await;
    let shown = mode["servers"][0]["addresses"].to_string();
    assert!(shown.contains("127.0.0.1"), "{mode}");
}

#[tokio::test]
async fn weights_share_the_requests_even_at_low_load() {
    let (a, b) = (TestOrigin::start().await, TestOrigin::start().await);
    let list = format!(
        "[{{ url = \"{}\", weight = 3 }}, {{ url = \"{}\" }}]",
        a.url(),
        b.url()
    );
    let lb = lifeboat_to("http://unused.invalid")
        .unset("origin.url")
        .set("origin.servers", &list)
        .start()
        .await;
    for _ in 0..400 {
        let resp = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    // 3:1 is 300:100; a draw of 400 stays well within 240..360.
    assert!(
        (240..=360).contains(&a.requests()),
        "weight 3 got {} and weight 1 got {}",
        a.requests(),
        b.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_takes_a_failing_server_out_before_users_find_it() {
    let a = TestOrigin::start().await;
    let b = TestOrigin::start().await;
    let lb = servers(&[a.url(), b.url()])
        .set("origin.health.path", "\"/status/200\"")
        .set("origin.health.interval", "\"20ms\"")
        .set("origin.health.timeout", "\"20ms\"")
        .set("origin.health.unhealthy_threshold", "2")
        .start()
        .await;
    // b hangs: its checks time out; nobody has sent it a request.
    b.set_delay(500);
    wait_until("the hanging server taken out", || !in_rotation(&lb, b.addr)).await;
    assert_eq!(server(&lb, b.addr).requests.load(Ordering::SeqCst), 0);
    for _ in 0..50 {
        let resp = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(
        server(&lb, b.addr).requests.load(Ordering::SeqCst),
        0,
        "a user was sent to the server its check took out"
    );
    b.set_delay(0);
    wait_until("the server back", || in_rotation(&lb, b.addr)).await;
}

#[tokio::test]
async fn an_ejected_server_leaves_the_origin_limit() {
    let a = TestOrigin::start().await;
    let dead = format!("http://127.0.0.1:{}", closed_port().await);
    let lb = servers(&[a.url(), dead])
        .set("origin.max_inflight", "3")
        .set("origin.eject_after", "1")
        .start()
        .await;
    assert_eq!(lb.shared.admission.capacity().limit, 6);
    for _ in 0..100 {
        let resp = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        if lb.shared.admission.capacity().limit == 3 {
            break;
        }
    }
    wait_until("the limit of the one server left", || {
        lb.shared.admission.capacity().limit == 3 && lb.shared.admission.origin.limit() == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_names_addresses_change_new_requests_follow_and_a_download_finishes() {
    // Two machines behind one name: 127.0.0.1 and 127.0.0.2, same port
    // (the whole of 127/8 is loopback). The name starts at the first.
    let a = TestOrigin::start().await;
    let port = a.addr.port();
    let b = TestOrigin::start_on(std::net::SocketAddr::from(([127, 0, 0, 2], port))).await;
    let name = format!("http://localhost:{port}");
    let lb = servers(std::slice::from_ref(&name))
        .set("origin.resolve_every", "\"1h\"")
        .start()
        .await;
    let mut download = client().get(lb.url("/gated")).send().await.unwrap();
    let first = download.chunk().await.unwrap().expect("first chunk");
    assert_eq!(&first[..], b"first-chunk\n");
    assert_eq!((a.requests(), b.requests()), (1, 0));

    // The name now points at the second machine: the answer the lookup
    // task gets, applied as it applies it (the lookup itself is the
    // system resolver's, which a test cannot re-point).
    let server = lb.shared.runtime().upstream.pool.servers()[0].clone();
    assert!(server.addresses.update(vec![b.addr]));
    lb.shared.renew_pool();
    for _ in 0..20 {
        let resp = client().get(lb.url("/status/200")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(b.requests(), 20, "new requests did not follow the name");
    assert_eq!(a.requests(), 1, "the old address still got requests");

    // The download in flight at the old address finishes there.
    a.release();
    let rest = download.chunk().await.unwrap().expect("the rest");
    assert_eq!(&rest[..], b"the-rest\n", "the download in flight was cut");
    assert!(download.chunk().await.unwrap().is_none());
}
