//! Limits on the public side: header-read deadline (slowloris), idle
//! keep-alive, oversized heads (431), too many headers (431). Nothing that
//! is refused reaches the origin.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestOrigin, lifeboat, raw_exchange, read_until_close};

#[tokio::test]
async fn silent_connection_is_closed_at_the_header_deadline() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.header_read_timeout", "\"300ms\"")
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(lb.addr()).await.unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "a client that sends nothing must be cut off");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the deadline"
    );
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn slowloris_partial_head_is_closed_at_the_header_deadline() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.header_read_timeout", "\"300ms\"")
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(lb.addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Dribble a header line more slowly than the deadline allows in total.
    let dribble = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b"X-a: b\r\n").await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), dribble).await;
    let (_, closed) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed);
    assert_eq!(
        origin.requests(),
        0,
        "an incomplete head must never reach the origin"
    );
}

#[tokio::test]
async fn idle_keepalive_outlives_the_header_deadline() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.header_read_timeout", "\"200ms\"")
        .set("limits.keepalive_timeout", "\"10s\"")
        .start()
        .await;
    let stream = tokio::net::TcpStream::connect(lb.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let get = || {
        http::Request::get("/status/200")
            .header("host", "t")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    assert_eq!(sender.send_request(get()).await.unwrap().status(), 200);
    // Idle for three header deadlines: a keep-alive connection is not a slow head.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !conn.is_finished(),
        "idle keep-alive connection was closed at the header deadline"
    );
    assert_eq!(sender.send_request(get()).await.unwrap().status(), 200);
}

#[tokio::test]
async fn idle_keepalive_is_closed_after_its_timeout() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.keepalive_timeout", "\"300ms\"")
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(lb.addr()).await.unwrap();
    stream
        .write_all(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (text, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        closed,
        "idle connection should be closed after keepalive_timeout"
    );
}

#[tokio::test]
async fn oversized_head_gets_431_and_never_reaches_origin() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let big = "a".repeat(40 * 1024);
    let req = format!("GET /status/200 HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let (text, closed) = raw_exchange(lb.addr(), req.as_bytes(), Duration::from_secs(10)).await;
    assert!(
        text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(closed);
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn too_many_headers_gets_431() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let mut req = String::from("GET /status/200 HTTP/1.1\r\nHost: t\r\n");
    for i in 0..101 {
        req += &format!("X-H{i}: v\r\n");
    }
    req += "\r\n";
    let (text, closed) = raw_exchange(lb.addr(), req.as_bytes(), Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(closed);
    assert_eq!(origin.requests(), 0);

    // 90 fields pass lifeboat, and leave room for the forwarding headers it
    // adds before the origin applies its own (hyper's default) limit of 100.
    let mut ok = String::from("GET /status/200 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for i in 0..88 {
        ok += &format!("X-H{i}: v\r\n");
    }
    ok += "\r\n";
    let (text, _) = raw_exchange(lb.addr(), ok.as_bytes(), Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_an_inflight_download() {
    let origin = TestOrigin::start().await;
    let mut lb = lifeboat(&origin).start().await;
    let addr = lb.addr();
    let mut resp = crate::support::client()
        .get(lb.url("/gated"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.chunk().await.unwrap().unwrap().as_ref(),
        b"first-chunk\n"
    );
    lb.begin_shutdown();
    // New connections are refused once shutdown has begun.
    let refused = async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), refused)
        .await
        .expect("listener closed");
    origin.release();
    assert_eq!(resp.chunk().await.unwrap().unwrap().as_ref(), b"the-rest\n");
    assert!(resp.chunk().await.unwrap().is_none());
    assert!(
        lb.drained().await,
        "drain should complete once the download finished"
    );
}

/// Sends `head` in `pieces` separate writes, a moment apart, so that each
/// arrives in its own segment; returns the response and whether the
/// connection was closed.
async fn send_in_pieces(addr: std::net::SocketAddr, head: &[u8], pieces: usize) -> (String, bool) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for chunk in head.chunks(head.len().div_ceil(pieces)) {
        if stream.write_all(chunk).await.is_err() {
            break; // refused early: the response is already waiting
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    read_until_close(&mut stream, Duration::from_secs(10)).await
}

#[tokio::test]
async fn header_abuse_is_refused_however_it_is_written() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let huge = format!(
        "GET /status/200 HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut many = String::from("GET /status/200 HTTP/1.1\r\nHost: t\r\n");
    for i in 0..101 {
        many += &format!("X-H{i}: v\r\n");
    }
    many += "\r\n";
    for (what, head) in [("a 64 KiB header", &huge), ("101 headers", &many)] {
        for pieces in [1, 7, 64] {
            let (text, closed) = send_in_pieces(lb.addr(), head.as_bytes(), pieces).await;
            assert!(
                text.starts_with("HTTP/1.1 431"),
                "{what} in {pieces} writes: {}",
                &text[..text.len().min(200)]
            );
            assert!(closed, "{what} in {pieces} writes: connection left open");
        }
    }
    assert_eq!(origin.requests(), 0, "a refused head reached the origin");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_and_frees_its_origin_slot() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.body_idle_timeout", "\"500ms\"")
        .start()
        .await;
    // A small receive window, then never a read: the 64 MiB response
    // cannot fit in the socket buffers, so lifeboat's writes block.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(lb.addr()).await.unwrap();
    stream
        .write_all(b"GET /bytes/67108864 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    crate::support::wait_until("the download to reach the origin", || {
        origin.requests() == 1
    })
    .await;
    crate::support::wait_until("the stalled download to be cut and its slot freed", || {
        lb.shared.admission.origin.inflight() == 0 && lb.shared.admission.inflight.total() == 0
    })
    .await;
    drop(stream);
    // The proxy is unharmed.
    assert_eq!(crate::support::status_of(lb.url("/status/200")).await, 200);
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_download_frees_its_origin_slot_at_once() {
    // The origin has sent a first chunk and goes quiet; the client reads it
    // and hangs up. Nothing more will be written to the client, so no write
    // can fail: lifeboat has to notice the hang-up by itself and give the
    // origin slot back, not hold it until the body idle timeout (a minute
    // here, longer than the wait below).
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.body_idle_timeout", "\"60s\"")
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(lb.addr()).await.unwrap();
    stream
        .write_all(b"GET /gated HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("first-chunk") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the first chunk within 10 s")
            .unwrap();
        assert!(n > 0, "closed before the first chunk");
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(lb.shared.admission.origin.inflight(), 1);
    drop(stream);
    crate::support::wait_until("the slot to be given back after the hang-up", || {
        lb.shared.admission.origin.inflight() == 0 && lb.shared.admission.inflight.total() == 0
    })
    .await;
    origin.release();
    assert_eq!(crate::support::status_of(lb.url("/status/200")).await, 200);
}

#[tokio::test]
async fn an_http2_stream_cancelled_mid_download_frees_its_origin_slot_at_once() {
    // The HTTP/2 form of the hang-up: the client cancels one stream
    // (RST_STREAM) and keeps its connection. The slot must come back at
    // once, and the connection must go on serving.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.body_idle_timeout", "\"60s\"")
        .start()
        .await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut download = h2.get(lb.url("/gated")).send().await.unwrap();
    assert_eq!(download.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        download.chunk().await.unwrap().unwrap().as_ref(),
        b"first-chunk\n"
    );
    assert_eq!(lb.shared.admission.origin.inflight(), 1);
    drop(download);
    crate::support::wait_until("the slot to be given back after the cancel", || {
        lb.shared.admission.origin.inflight() == 0 && lb.shared.admission.inflight.total() == 0
    })
    .await;
    origin.release();
    let next = h2.get(lb.url("/status/200")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.version(), reqwest::Version::HTTP_2);
}

#[tokio::test]
async fn http2_requests_are_held_to_max_headers() {
    // hyper limits HTTP/2 heads by size only: lifeboat counts the fields
    // itself, so 120 small ones get the same 431 as over HTTP/1.1.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut req = h2.get(lb.url("/status/200"));
    for i in 0..120 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 431);
    assert_eq!(resp.headers()["x-lifeboat-error"], "too-many-headers");
    assert_eq!(origin.requests(), 0);

    let mut req = h2.get(lb.url("/status/200"));
    for i in 0..90 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    assert_eq!(origin.requests(), 1);
}
