//! HTTP/2 abuse (hardening item 5), with a raw-frame client: streams past
//! the advertised limit are refused, not queued; rapid reset (open and
//! cancel, CVE-2023-44487) in both its forms ends in GOAWAY after a bounded
//! amount of work, while a primary download loop on another connection
//! keeps being served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::support::h2raw::{self, Conn, GOAWAY, REFUSED_STREAM, RST_STREAM};
use crate::support::process::{Process, write_config};
use crate::support::{TestOrigin, client, lifeboat};

#[tokio::test]
async fn streams_beyond_the_advertised_limit_are_refused_not_queued() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.h2_max_concurrent_streams", "10")
        .start()
        .await;
    let mut conn = Conn::open(lb.addr()).await;
    assert_eq!(conn.max_streams, Some(10));
    let mut burst = Vec::new();
    let ids: Vec<u32> = (0..15).map(|i| 1 + 2 * i).collect();
    for id in &ids {
        h2raw::get(&mut burst, *id, "t", "/gated");
    }
    conn.writer.write_all(&burst).await.unwrap();

    let mut refused = Vec::new();
    while refused.len() < 5 {
        let f = conn
            .reader
            .next(Duration::from_secs(10))
            .await
            .expect("5 refusals");
        if f.kind == RST_STREAM {
            assert_eq!(f.error_code(), Some(REFUSED_STREAM), "{f:?}");
            refused.push(f.stream);
        }
        assert_ne!(
            f.kind, GOAWAY,
            "refusing streams must not end the connection"
        );
    }
    refused.sort_unstable();
    assert_eq!(refused, ids[10..], "exactly the streams past the limit");
    crate::support::wait_until("10 streams at the origin", || origin.requests() == 10).await;

    // The admitted ten finish; the refused five never reach the origin.
    origin.release();
    let mut ended = 0;
    while ended < 10 {
        let f = conn
            .reader
            .next(Duration::from_secs(10))
            .await
            .expect("10 responses end");
        if f.kind == 0x0 && f.flags & 0x1 != 0 {
            assert!(ids[..10].contains(&f.stream), "{f:?}");
            ended += 1;
        }
    }
    assert_eq!(origin.requests(), 10, "a refused stream was queued");
}

/// A primary download loop on its own connection, for the duration of an
/// attack: its slowest request.
fn primary_loop(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, Duration)> {
    tokio::spawn(async move {
        let c = client();
        let (mut n, mut worst) = (0, Duration::ZERO);
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let resp = c.get(&url).send().await.expect("primary request");
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.bytes().await.expect("primary body").len(), 1024);
            worst = worst.max(started.elapsed());
            n += 1;
        }
        (n, worst)
    })
}

/// Sends open-and-cancel pairs on one connection until the server says
/// GOAWAY (or `max` streams); how many streams were opened, and the
/// GOAWAY's error code.
async fn rapid_reset(
    addr: std::net::SocketAddr,
    wait_for_origin: Option<&TestOrigin>,
    max: u32,
) -> (u32, Option<u32>) {
    let Conn {
        mut reader,
        mut writer,
        ..
    } = Conn::open(addr).await;
    let goaway = tokio::spawn(async move {
        while let Some(f) = reader.next(Duration::from_secs(10)).await {
            if f.kind == GOAWAY {
                return f.error_code();
            }
        }
        None
    });
    let mut id = 1;
    while id < 2 * max && !goaway.is_finished() {
        let mut batch = Vec::new();
        let first = id;
        for _ in 0..20 {
            h2raw::get(&mut batch, id, "t", "/delay/20");
            id += 2;
        }
        if let Some(origin) = wait_for_origin {
            // The slow form: let the streams start (and reach the origin)
            // before cancelling them, so no "reset before accept" check can
            // see them.
            let before = origin.requests();
            if writer.write_all(&batch).await.is_err() {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while origin.requests() < before + 20 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
            batch.clear();
        }
        for s in (first..id).step_by(2) {
            h2raw::cancel(&mut batch, s);
        }
        if writer.write_all(&batch).await.is_err() {
            break;
        }
    }
    let code = tokio::time::timeout(Duration::from_secs(10), goaway)
        .await
        .expect("the connection neither ended nor said GOAWAY")
        .expect("reader task");
    (id / 2, code)
}

/// Against the binary, so that its CPU time is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_with_goaway() {
    let _heavy = crate::support::heavy().await;
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .toml();
    let proc = Process::start(&write_config(dir.path(), &toml));
    let addr = proc.http;
    let stop = Arc::new(AtomicBool::new(false));
    let primary = primary_loop(format!("http://{addr}/bytes/1024"), stop.clone());

    // The classic form: HEADERS and RST_STREAM back to back.
    let cpu_before = proc.cpu_time();
    let mut fast_opened = 0;
    for _ in 0..5 {
        let (opened, code) = rapid_reset(addr, None, 100_000).await;
        assert!(code.is_some(), "no GOAWAY after {opened} reset streams");
        assert!(opened < 100_000, "never cut off");
        fast_opened += opened;
    }
    let fast_cpu = proc.cpu_time() - cpu_before;
    let after_fast = origin.requests();
    // The slow form: each stream reaches the origin before it is cancelled.
    for _ in 0..3 {
        let (opened, code) = rapid_reset(addr, Some(&origin), 5_000).await;
        assert!(code.is_some(), "no GOAWAY after {opened} cancelled streams");
    }
    let slow_work = origin.requests() - after_fast;
    let total_cpu = proc.cpu_time() - cpu_before;
    stop.store(true, Ordering::SeqCst);
    let (served, worst) = primary.await.unwrap();
    eprintln!(
        "rapid reset: 5 fast connections opened {fast_opened} streams, lifeboat spent {} ms of CPU on them, \
         the origin saw {after_fast}; 3 slow connections cost {slow_work} origin requests; \
         {} ms of CPU in all (in 10 ms clock ticks); primary loop served {served}, slowest {worst:?}",
        fast_cpu.as_millis(),
        total_cpu.as_millis()
    );
    assert!(
        fast_cpu < Duration::from_secs(2),
        "{fast_cpu:?} of CPU for 5 rapid-reset connections: not bounded"
    );
    assert!(served > 0, "the primary loop was starved");
    assert!(
        worst < Duration::from_secs(2),
        "a primary request took {worst:?} during the attack"
    );
    assert!(
        slow_work <= 3 * 400,
        "{slow_work} origin requests for 3 cancelling connections: the cut-off is not bounded"
    );
}
