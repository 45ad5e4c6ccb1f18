//! TLS under pressure (hardening item 10): a stampede of new handshakes
//! queues for `max_handshakes` slots and every client gets through; silent
//! clients, before or after their ClientHello, hold no slot and are cut at
//! `handshake_timeout`; session resumption works. (testssl.sh checks the
//! protocol and cipher list: tests/external.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::tls::{TestPki, make_pki};
use crate::support::{Running, TestOrigin, lifeboat, read_until_close};

async fn start(origin: &TestOrigin, pki: &TestPki, slots: usize, timeout: &str) -> Running {
    lifeboat(origin)
        .tls(pki)
        .set("listen.tls.max_handshakes", &slots.to_string())
        .set("listen.tls.handshake_timeout", &format!("{timeout:?}"))
        .start()
        .await
}

/// One HTTP/1.1 request over a fresh TLS connection: how the handshake went
/// and the status line.
async fn tls_get(config: &Arc<ClientConfig>, addr: SocketAddr) -> (HandshakeKind, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let kind = tls.get_ref().1.handshake_kind().expect("handshake done");
    tls.write_all(b"GET /status/200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    // Reading to the end also takes in the TLS 1.3 session ticket.
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    (kind, text.lines().next().unwrap_or("").to_string())
}

#[tokio::test]
async fn a_handshake_stampede_queues_for_slots_and_everyone_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &pki, 2, "10s").await;
    let addr = lb.https.unwrap();
    let config = pki.client_config();
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { tls_get(&config, addr).await })
        })
        .collect();
    for c in clients {
        let (_, status) = c.await.unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
    }
    assert_eq!(
        lb.shared.handshakes.available_permits(),
        2,
        "every slot was given back"
    );
}

#[tokio::test]
async fn silent_clients_hold_no_slot_and_are_cut_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &pki, 1, "3s").await;
    let addr = lb.https.unwrap();
    let config = pki.client_config();

    // Five clients that connect and say nothing, and five that send a
    // ClientHello and then never read the answer nor finish.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..5 {
        let mut conn = rustls::ClientConnection::new(
            config.clone(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&hello).await.unwrap();
        silent.push(s);
    }
    // With one slot and ten stalled handshakes, a real client still gets in
    // long before any of them times out.
    let started = std::time::Instant::now();
    let (_, status) = tokio::time::timeout(Duration::from_secs(2), tls_get(&config, addr))
        .await
        .expect("a stalled handshake is holding the only slot");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(started.elapsed() < Duration::from_secs(2));

    // And every stalled one is cut at the handshake deadline.
    for (i, s) in silent.iter_mut().enumerate() {
        let (_, closed) = read_until_close(s, Duration::from_secs(10)).await;
        assert!(closed, "stalled handshake {i} was never cut");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "cut before the deadline"
    );
    assert_eq!(lb.shared.handshakes.available_permits(), 1);
}

#[tokio::test]
async fn sessions_resume() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &pki, 8, "5s").await;
    let addr = lb.https.unwrap();
    let config = pki.client_config();
    let (first, status) = tls_get(&config, addr).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(first, HandshakeKind::Full);
    let (second, status) = tls_get(&config, addr).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(second, HandshakeKind::Resumed, "no session resumption");
}
