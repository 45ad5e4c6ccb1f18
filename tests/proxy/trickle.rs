//! Trickled request bodies (issue #13, item 4): uploads that send a byte
//! now and then, under the body idle timeout, must not starve the
//! downloads. Two rules: a request whose body is still to come is admitted
//! as keep at most, so it never takes a slot reserved for the primary path
//! (whatever its method or route); and a body slower than `body_min_rate`
//! (after `body_rate_grace`) gets `408` and frees its slot.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::support::{TestOrigin, lifeboat, wait_until};

/// A client that sends `head` (which announces a 1000-byte body), then one
/// body byte every `every`, until lifeboat answers or closes. Returns the
/// answer's status line and `X-Lifeboat-*` fields.
fn trickler(addr: SocketAddr, head: String, every: Duration) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                n = stream.read(&mut buf) => match n {
                    Ok(n) if n > 0 => {
                        answer.extend_from_slice(&buf[..n]);
                        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    _ => break,
                },
                _ = tick.tick() => {
                    if stream.write_all(b"x").await.is_err() {
                        break;
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&answer).to_string();
        let mut lines = text.lines();
        let mut out = lines
            .next()
            .unwrap_or("closed without an answer")
            .to_string();
        for l in lines.filter(|l| l.starts_with("x-lifeboat")) {
            out += &format!(" [{l}]");
        }
        out
    })
}

fn head(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
}

/// Downloads of 20 kB, two at a time, for `how_long`: (succeeded, tried).
async fn downloads(lb: &crate::support::Running, how_long: Duration) -> (usize, usize) {
    let url = lb.url("/bytes/20000");
    let until = tokio::time::Instant::now() + how_long;
    let loops = (0..2).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let client = crate::support::client();
            let (mut ok, mut tried) = (0, 0);
            while tokio::time::Instant::now() < until {
                tried += 1;
                if let Ok(r) = client.get(&url).send().await
                    && r.status() == 200
                    && r.bytes().await.is_ok_and(|b| b.len() == 20_000)
                {
                    ok += 1;
                }
            }
            (ok, tried)
        })
    });
    let mut total = (0, 0);
    for l in loops {
        let (ok, tried) = l.await.unwrap();
        total = (total.0 + ok, total.1 + tried);
    }
    total
}

#[tokio::test]
async fn trickling_uploads_never_take_the_downloads_slots() {
    // The rate rule is off here: only the admission rule protects the
    // downloads. 12 tricklers against 6 origin slots, 2 of them reserved
    // for the primary path: POSTs on a primary route open to every
    // method, POSTs on a GET-only primary route (so normal), and GETs
    // with a trickled body on that GET-only route (so primary).
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("origin.max_inflight", "6")
        .set("origin.primary_reserved", "2")
        .set("origin.queue_timeout", "\"300ms\"")
        .set("limits.body_idle_timeout", "\"5s\"")
        .set("limits.body_min_rate", "0")
        .route("uploads, any method", "match", "/sink/any/*", "primary")
        .route_for(
            &["GET", "HEAD"],
            "downloads",
            "match",
            "/bytes/*",
            "primary",
        )
        .route_for(&["GET", "HEAD"], "sink", "match", "/sink/*", "primary")
        .start()
        .await;
    let every = Duration::from_millis(200);
    let mut tricklers = Vec::new();
    for i in 0..4 {
        tricklers.push(trickler(
            lb.addr(),
            head("POST", &format!("/sink/any/{i}")),
            every,
        ));
        tricklers.push(trickler(
            lb.addr(),
            head("POST", &format!("/sink/p{i}")),
            every,
        ));
        tricklers.push(trickler(
            lb.addr(),
            head("GET", &format!("/sink/g{i}")),
            every,
        ));
    }
    let a = &lb.shared.admission;
    wait_until("the tricklers to fill every slot they may take", || {
        a.origin.inflight() >= 4
    })
    .await;

    let (ok, tried) = downloads(&lb, Duration::from_secs(3)).await;
    let still_trickling = a.origin.inflight();
    eprintln!(
        "downloads beside 12 tricklers: {ok} of {tried} ({:.1} %); slots held by tricklers: {still_trickling}",
        100.0 * ok as f64 / tried as f64
    );
    assert!(ok * 100 >= tried * 99, "downloads: {ok} of {tried}");
    assert!(tried >= 20, "only {tried} downloads in 3 s");
    assert_eq!(
        still_trickling, 4,
        "the tricklers should still hold their slots"
    );
    for t in &tricklers {
        t.abort();
    }
}

#[tokio::test]
async fn a_body_slower_than_the_minimum_rate_gets_408_and_frees_its_slot() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.body_idle_timeout", "\"5s\"")
        .set("limits.body_min_rate", "100")
        .set("limits.body_rate_grace", "\"1s\"")
        .route("downloads", "match", "/sink/*", "primary")
        .start()
        .await;
    // Ten bytes a second: under the idle timeout, far under the rate.
    let every = Duration::from_millis(100);
    let tricklers: Vec<_> = (0..3)
        .flat_map(|i| {
            [
                trickler(lb.addr(), head("POST", &format!("/sink/p{i}")), every),
                trickler(lb.addr(), head("GET", &format!("/sink/g{i}")), every),
            ]
        })
        .collect();
    // Meanwhile an upload at 200 bytes a second, twice the minimum, over
    // two seconds (past the grace): it completes.
    let honest = tokio::spawn({
        let addr = lb.addr();
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"POST /sink/honest HTTP/1.1\r\nHost: t\r\nContent-Length: 400\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            for _ in 0..20 {
                s.write_all(&[b'y'; 20]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            crate::support::read_until_close(&mut s, Duration::from_secs(10))
                .await
                .0
        }
    });
    for t in tricklers {
        let answer = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("a trickler was never cut")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("x-lifeboat-error: client-timeout"),
            "{answer}"
        );
    }
    wait_until("every trickler's slot to come back", || {
        lb.shared.admission.origin.inflight() <= 1
    })
    .await;
    let honest = honest.await.unwrap();
    assert!(honest.starts_with("HTTP/1.1 200"), "{honest}");
    assert!(
        honest.ends_with("\r\n\r\n400"),
        "the origin got all 400 bytes: {honest}"
    );
    wait_until("the last slot to come back", || {
        lb.shared.admission.origin.inflight() == 0 && lb.shared.admission.inflight.total() == 0
    })
    .await;
}
