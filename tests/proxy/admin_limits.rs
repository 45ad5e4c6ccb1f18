//! The admin listener is hardened like the public one (issue #13, item 5):
//! its reads need no token, so silent, half-sent and idle connections are
//! cut at the data plane's deadlines, at most `admin::MAX_CONNECTIONS` are
//! open at once (the accept loop holds the slot of the next one), and
//! however many are attempted, the file descriptors the data plane needs
//! stay free.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::support::process::{Process, write_config};
use crate::support::{TestOrigin, fresh_client, lifeboat, read_until_close, wait_until};

const CAP: usize = ::lifeboat::admin::MAX_CONNECTIONS;

#[tokio::test]
async fn silent_half_sent_and_idle_admin_connections_are_cut_and_capped() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.header_read_timeout", "\"500ms\"")
        .set("limits.keepalive_timeout", "\"500ms\"")
        .set("limits.body_idle_timeout", "\"500ms\"")
        .start()
        .await;
    let admin = lb.admin.unwrap();
    let slots = lb.shared.admin_slots.clone();
    let peak = Arc::new(AtomicUsize::new(0));
    let watch = {
        let (slots, peak) = (slots.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(CAP - slots.available_permits(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    // 60 silent connections, 20 with half a head, 10 idle after a request,
    // 10 with a POST whose body never comes: 100, three times the cap.
    let started = Instant::now();
    let mut hogs = Vec::new();
    for i in 0..100 {
        let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
        match i {
            60..80 => s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost:")
                .await
                .unwrap(),
            80..90 => s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .unwrap(),
            90.. => s
                .write_all(b"POST /message HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{")
                .await
                .unwrap(),
            _ => {}
        }
        hogs.push(tokio::spawn(async move {
            read_until_close(&mut s, Duration::from_secs(20)).await
        }));
    }
    for (i, hog) in hogs.into_iter().enumerate() {
        let (text, closed) = hog.await.unwrap();
        assert!(closed, "admin connection {i} was never closed");
        match i {
            80..90 => assert!(text.starts_with("HTTP/1.1 200"), "{i}: {text}"),
            90.. => assert!(text.starts_with("HTTP/1.1 400"), "{i}: {text}"),
            _ => assert!(text.is_empty(), "{i}: {text}"),
        }
    }
    let all_closed = started.elapsed();
    watch.abort();
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "100 hostile admin connections: at most {peak} open at once, all closed after {all_closed:?}"
    );
    assert!(peak <= CAP, "{peak} admin connections open at once");
    assert_eq!(
        peak, CAP,
        "the cap was never reached: the test proves nothing"
    );
    // At rest, the accept loop holds the slot of the next connection.
    wait_until("every admin slot to be free", || {
        slots.available_permits() == CAP - 1
    })
    .await;
    assert_eq!(
        crate::support::status_of(format!("http://{admin}/healthz")).await,
        200
    );
    assert_eq!(
        lb.shared.message(),
        "",
        "a POST whose body never came changed something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_connections_cannot_take_the_data_planes_descriptors() {
    // The binary under a 300-fd limit: 290 silent admin connections (no
    // token needed) used to hold 290 descriptors for as long as they liked,
    // and public downloads failed until they closed.
    let _heavy = crate::support::heavy().await;
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("log.access", "false")
        .set("limits.header_read_timeout", "\"1s\"")
        .set("limits.max_connections", "100")
        .toml();
    let proc = Process::start_under(
        &["prlimit", "--nofile=300:300", "--"],
        &write_config(dir.path(), &toml),
    );
    let admin = tokio::task::block_in_place(|| proc.admin_address());
    let fresh = fresh_client();
    let url = format!("http://{}/bytes/100000", proc.http);
    assert_eq!(fresh.get(&url).send().await.unwrap().status(), 200);
    // At rest: the listeners, the runtime, one pooled origin connection;
    // the warm-up's client connection may still be closing, so the
    // baseline is the count once it has not moved for 200 ms.
    let mut baseline = proc.fd_count();
    let mut still = 0;
    while still < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = proc.fd_count();
        still = if now == baseline { still + 1 } else { 0 };
        baseline = now;
    }

    let mut hogs = Vec::new();
    for _ in 0..290 {
        hogs.push(tokio::net::TcpStream::connect(admin).await.unwrap());
    }
    // The cap's worth of them are in (a transient fd either way aside).
    wait_until("the admin listener to reach its cap", || {
        proc.fd_count() + 2 >= baseline + CAP
    })
    .await;
    let with_hogs = proc.fd_count();
    let mut ok = 0;
    for _ in 0..40 {
        if let Ok(r) = fresh.get(&url).send().await
            && r.status() == 200
            && r.bytes().await.is_ok_and(|b| b.len() == 100_000)
        {
            ok += 1;
        }
    }
    eprintln!(
        "fds: {baseline} at rest, {with_hogs} with 290 silent admin connections; downloads {ok} of 40"
    );
    assert!(
        with_hogs <= baseline + CAP + 2,
        "290 admin connections took {} descriptors",
        with_hogs - baseline
    );
    assert_eq!(
        ok, 40,
        "public downloads failed beside the admin connections"
    );

    // Every one of them is cut at the header deadline, a slot at a time.
    let started = Instant::now();
    for mut hog in hogs {
        let (_, closed) = read_until_close(&mut hog, Duration::from_secs(30)).await;
        assert!(closed, "a silent admin connection was never closed");
    }
    eprintln!("all 290 closed {:?} after the downloads", started.elapsed());
    wait_until("the descriptors to come back", || {
        proc.fd_count() <= baseline + 1
    })
    .await;
}
