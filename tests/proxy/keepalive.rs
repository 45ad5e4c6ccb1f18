//! Keep-alive connections between requests. A plain HTTP/1 connection rests
//! as a bare socket once hyper is idle, and is picked up again by a new
//! round when bytes arrive (`listener::plain`). Nothing a client sends may
//! be lost, duplicated or reinterpreted across that hand-over.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::faulty::FaultyOrigin;
use crate::support::tls::{install_provider, make_pki};
use crate::support::{TestOrigin, lifeboat, lifeboat_to, read_until_close};

/// Reads one response framed by Content-Length; its head and body.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().expect("content-length"));
                if out.len() >= end + 4 + len {
                    return;
                }
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&out)
            );
            out.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s");
    String::from_utf8_lossy(&out).into_owned()
}

fn seen(origin: &TestOrigin) -> Vec<String> {
    origin.state.seen.lock().unwrap().clone()
}

#[tokio::test]
async fn many_requests_on_one_connection_each_get_their_answer() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let mut stream = TcpStream::connect(lb.addr()).await.unwrap();
    for code in [200, 201, 202, 203, 204].repeat(4) {
        let req = format!("GET /status/{code} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let resp = read_response(&mut stream).await;
        assert!(resp.starts_with(&format!("HTTP/1.1 {code}")), "{resp}");
    }
    assert_eq!(origin.requests(), 20);
}

#[tokio::test]
async fn a_head_split_across_a_rest_is_served_whole() {
    // The first write holds a whole request and the start of the next one:
    // hyper reads both, answers the first, and comes to rest holding the
    // start of the second. Those bytes must reach the next round.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let mut stream = TcpStream::connect(lb.addr()).await.unwrap();
    stream
        .write_all(b"GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\nGET /status/2")
        .await
        .unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 201"), "{first}");
    // Think time past REST_AFTER, so the round most likely ends holding the
    // start of the head (the outcome must be the same either way).
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .write_all(b"02 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (second, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
    assert!(second.starts_with("HTTP/1.1 202"), "{second}");
    assert!(closed, "Connection: close is honoured");
    assert_eq!(seen(&origin), ["GET /status/201", "GET /status/202"]);
}

#[tokio::test]
async fn a_carried_partial_head_is_held_to_the_header_deadline() {
    // The start of a head left over from the last round is a head in
    // progress: it gets header_read_timeout, not the keep-alive timeout.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.header_read_timeout", "\"300ms\"")
        .set("limits.keepalive_timeout", "\"30s\"")
        .start()
        .await;
    let mut stream = TcpStream::connect(lb.addr()).await.unwrap();
    stream
        .write_all(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n\r\nGET /stat")
        .await
        .unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let (rest, closed) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "a partial head must be cut at the header deadline");
    assert!(!rest.contains("HTTP/1.1 200"), "{rest}");
    assert_eq!(seen(&origin), ["GET /status/200"]);
}

#[tokio::test]
async fn uploads_then_gets_on_one_connection() {
    // Request bodies, sized and chunked, are read to their end before the
    // connection rests; the next request on the connection is served.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let mut stream = TcpStream::connect(lb.addr()).await.unwrap();
    let sized = format!(
        "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n{}",
        "x".repeat(5000)
    );
    let chunked = "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
    for (req, body) in [(sized.as_str(), "5000"), (chunked, "7")] {
        stream.write_all(req.as_bytes()).await.unwrap();
        let resp = read_response(&mut stream).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with(&format!("\r\n\r\n{body}")), "{resp}");
        stream
            .write_all(b"GET /status/204 HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut stream).await;
        assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    }
    assert_eq!(
        seen(&origin),
        [
            "POST /sink",
            "GET /status/204",
            "POST /sink",
            "GET /status/204"
        ]
    );
}

#[tokio::test]
async fn an_unread_body_never_becomes_a_request() {
    // A shed upload is answered without its body being read. Body bytes
    // that arrive after the answer are still body: the connection must not
    // come to rest and parse them as a new request (here, a primary one,
    // which degraded mode would forward).
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("shedding.mode", "\"degraded\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    let smuggled = "GET /bytes/7 HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut stream = TcpStream::connect(lb.addr()).await.unwrap();
    let head = format!(
        "POST /news HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let apology = read_response(&mut stream).await;
    assert!(apology.starts_with("HTTP/1.1 503"), "{apology}");
    let _ = stream.write_all(smuggled.as_bytes()).await;
    let (rest, _) = read_until_close(&mut stream, Duration::from_secs(3)).await;
    assert!(
        !rest.contains("HTTP/1.1 200"),
        "body bytes were served: {rest}"
    );
    assert!(seen(&origin).is_empty(), "{:?}", seen(&origin));
}

#[tokio::test]
async fn an_upload_still_streaming_after_its_answer_is_not_a_request() {
    // The origin answers before the upload ends; lifeboat relays the
    // answer while the client is still sending. The rest of the upload is
    // body, whatever it looks like: the connection must not come to rest
    // in the middle of it and serve it as a request.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let smuggled = "GET /bytes/7 HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut stream = TcpStream::connect(lb.addr()).await.unwrap();
    let head = format!(
        "POST /status/200 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\nxxxxx",
        smuggled.len() + 5
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = stream.write_all(smuggled.as_bytes()).await;
    let (rest, _) = read_until_close(&mut stream, Duration::from_secs(3)).await;
    assert!(
        !rest.contains("HTTP/1.1 200"),
        "body bytes were served: {rest}"
    );
    assert_eq!(seen(&origin), ["POST /status/200"]);
}

#[tokio::test]
async fn an_http10_origin_is_answered_as_http11_on_a_kept_connection() {
    // lifeboat speaks its own protocol version to the client: an origin's
    // HTTP/1.0 answer goes out as HTTP/1.1 (Via records the 1.0), so an
    // HTTP/1.1 client keeps its connection, and the connection rests.
    let origin = FaultyOrigin::start().await;
    let lb = lifeboat_to(&origin.url()).start().await;
    let mut stream = TcpStream::connect(lb.addr()).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /http10 HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut stream).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(
            resp.to_ascii_lowercase().contains("via: 1.0 lifeboat"),
            "{resp}"
        );
        assert!(resp.ends_with("\r\n\r\nok\n"), "{resp}");
    }
}

#[tokio::test]
async fn a_tls_connection_rests_between_requests_and_keeps_its_session() {
    // Over TLS the round runs on the TLS stream; a rest must end it without
    // a close_notify, and the next request on the same session is served.
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).tls(&pki).start().await;
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let tcp = TcpStream::connect(lb.https.unwrap()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    for code in [200, 201, 202] {
        let req = format!("GET /status/{code} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let resp = read_response(&mut tls).await;
        assert!(resp.starts_with(&format!("HTTP/1.1 {code}")), "{resp}");
        // Think time past REST_AFTER: the connection rests between requests.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A request split across a rest, under TLS.
    tls.write_all(b"GET /status/203 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /sta")
        .await
        .unwrap();
    let resp = read_response(&mut tls).await;
    assert!(resp.starts_with("HTTP/1.1 203"), "{resp}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    tls.write_all(b"tus/204 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut tls).await;
    assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    assert_eq!(
        seen(&origin),
        [
            "GET /status/200",
            "GET /status/201",
            "GET /status/202",
            "GET /status/203",
            "GET /status/204"
        ]
    );
}
