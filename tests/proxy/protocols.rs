//! Protocols: h2c prior knowledge, h2 and HTTP/1.1 over TLS (ALPN) with a
//! rcgen test CA, HTTP/2 to the origin, and WebSocket through the proxy.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::tls::{install_provider, make_pki};
use crate::support::{TestOrigin, client, lifeboat};

#[tokio::test]
async fn h2c_prior_knowledge() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2.get(lb.url("/echo/headers")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let seen: serde_json::Value = resp.json().await.unwrap();
    // h2 has no Host header; the origin (HTTP/1.1) must get one from :authority.
    assert_eq!(seen["headers"]["host"][0], lb.addr().to_string());
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(seen["headers"]["via"][0], "2 lifeboat");
}

#[tokio::test]
async fn tls_negotiates_h2_and_http11() {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).tls(&pki).start().await;
    let addr = lb.https.unwrap();
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca.clone()])
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/echo/headers", addr.port());
    let resp = h2.get(&url).send().await.unwrap();
    assert_eq!(
        resp.version(),
        reqwest::Version::HTTP_2,
        "ALPN should pick h2"
    );
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https");

    let h1 = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .http1_only()
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let resp = h1.get(&url).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn tls_refuses_untrusted_clients_nothing() {
    // A client that does not trust the certificate fails its own handshake;
    // lifeboat keeps serving the next one.
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .unset("listen.http")
        .tls(&pki)
        .start()
        .await;
    let addr = lb.https.unwrap();
    let url = format!("https://localhost:{}/status/200", addr.port());
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .resolve("localhost", addr)
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(untrusting.get(&url).send().await.is_err());
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .resolve("localhost", addr)
        .build()
        .unwrap();
    assert_eq!(trusting.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn http2_to_the_origin() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).set("origin.http2", "true").start().await;
    let resp = client().get(lb.url("/echo/headers")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/2.0");
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", lb.addr()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(format!("hello {i}")));
    }
    ws.send(Message::binary(vec![7u8; 100_000])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![7u8; 100_000])
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn connect_is_refused_not_relayed() {
    // lifeboat opens no tunnels: an origin's 200 to a CONNECT must not be
    // passed back as if one existed.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let (text, _) = crate::support::raw_exchange(
        lb.addr(),
        b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 501"), "{text}");
    assert!(
        text.contains("x-lifeboat-error: connect-not-supported"),
        "{text}"
    );
    assert_eq!(origin.requests(), 0, "CONNECT reached the origin");
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_its_answer() {
    // `printf 'GET ...' | nc -N` and friends shut their write side down
    // once the request is out; the answer must still come, whole, whoever
    // gives it: the status endpoint, the apology, or the origin, late or
    // long. (A client that hangs up once its answer has begun is another
    // matter: `limits::a_client_that_hangs_up_mid_download_frees_its_origin_slot_at_once`.)
    use tokio::io::AsyncWriteExt;
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("shedding.mode", "\"degraded\"")
        .route("health", "prefix", "/status/", "keep")
        .route("slow", "prefix", "/delay/", "keep")
        .route("files", "prefix", "/bytes/", "keep")
        .start()
        .await;
    for (path, status) in [
        ("/.well-known/lifeboat/status", "200"),
        ("/news", "503"),
        ("/status/204", "204"),
        ("/delay/300", "200"),
        ("/bytes/1000000", "200"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(lb.addr()).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let (text, closed) =
            crate::support::read_until_close(&mut stream, std::time::Duration::from_secs(10)).await;
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {:?}",
            &text[..text.len().min(80)]
        );
        assert!(
            closed,
            "{path}: the connection stayed open after the answer"
        );
        if path == "/bytes/1000000" {
            // Each generated byte is one character of the lossy text (the
            // pattern never forms a multi-byte sequence).
            let body = text
                .split_once("\r\n\r\n")
                .map_or(0, |(_, b)| b.chars().count());
            assert_eq!(body, 1_000_000, "{path}: a short body");
        }
    }
    assert_eq!(origin.requests(), 3);
}
