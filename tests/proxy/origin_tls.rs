//! TLS to the origin and to webhooks: verified against `ca_file` (or the
//! platform's roots), h2 by ALPN, SNI from the host policy; a certificate
//! for another host or an expired one is refused (the apology, for a
//! request), never passed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::support::tls::make_ca;
use crate::support::{TestOrigin, client, json_of, lifeboat, lifeboat_to, wait_until};

fn https(origin: &TestOrigin) -> String {
    format!("https://127.0.0.1:{}", origin.addr.port())
}

#[tokio::test]
async fn an_https_server_is_verified_and_spoken_to_in_h2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let tls = ca.server_config("good", &["localhost", "127.0.0.1"], false);
    let origin = TestOrigin::start_tls(tls).await;
    let lb = lifeboat_to(&https(&origin))
        .set("origin.ca_file", &format!("{:?}", ca.file))
        .start()
        .await;
    let seen = json_of(lb.url("/echo/headers")).await;
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    assert_eq!(origin.requests(), 1);
}

#[tokio::test]
async fn sni_and_verification_follow_a_fixed_host() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let tls = ca.server_config("named", &["www.example.test"], false);
    let origin = TestOrigin::start_tls(tls).await;
    let lb = lifeboat_to(&https(&origin))
        .set("origin.ca_file", &format!("{:?}", ca.file))
        .set("origin.host", "\"www.example.test\"")
        .start()
        .await;
    let seen = json_of(lb.url("/echo/headers")).await;
    assert_eq!(seen["headers"]["host"][0], "www.example.test", "{seen}");
}

#[tokio::test]
async fn a_wrong_host_or_expired_certificate_gets_the_apology() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let other = ca.server_config("other", &["other.example.test"], false);
    let expired = ca.server_config("expired", &["localhost", "127.0.0.1"], true);
    for tls in [other, expired] {
        let origin = TestOrigin::start_tls(tls).await;
        let lb = lifeboat_to(&https(&origin))
            .set("origin.ca_file", &format!("{:?}", ca.file))
            .start()
            .await;
        let resp = client().get(lb.url("/echo/headers")).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-down");
        assert_eq!(
            origin.requests(),
            0,
            "a request crossed a refused handshake"
        );
    }
}

#[tokio::test]
async fn a_certificate_of_an_unknown_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = make_ca(other_dir.path());
    let origin = TestOrigin::start_tls(other_ca.server_config("x", &["127.0.0.1"], false)).await;
    let lb = lifeboat_to(&https(&origin))
        .set("origin.ca_file", &format!("{:?}", ca.file))
        .start()
        .await;
    let resp = client().get(lb.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(origin.requests(), 0);
}

/// An HTTPS webhook receiver: every body POSTed goes to the channel;
/// handshakes that failed are counted.
async fn tls_receiver(
    tls: Arc<rustls::ServerConfig>,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<bytes::Bytes>,
    Arc<AtomicU64>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let refused = Arc::new(AtomicU64::new(0));
    let counted = refused.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (tx, acceptor, counted) = (tx.clone(), acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    counted.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let _ = tx.send(body);
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            });
        }
    });
    (addr, rx, refused)
}

#[tokio::test]
async fn webhooks_go_over_verified_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let (good, mut heard, _) = tls_receiver(ca.server_config("hook", &["127.0.0.1"], false)).await;
    let (bad, mut overheard, refused) =
        tls_receiver(ca.server_config("elsewhere", &["other.example.test"], false)).await;
    let origin = TestOrigin::start().await;
    let mut text = lifeboat(&origin).set("shedding.mode", "\"normal\"").toml();
    for addr in [good, bad] {
        text += &format!(
            "[[webhook]]\nurl = \"https://{addr}/hook\"\nca_file = {:?}\nretries = 0\n",
            ca.file
        );
    }
    let config = ::lifeboat::config::from_str(&text, "t.toml", std::path::Path::new(".")).unwrap();
    let lb = crate::support::lifeboat::start_config(config).await;
    let r = client()
        .post(format!("http://{}/mode", lb.admin.unwrap()))
        .json(&serde_json::json!({"mode": "degraded", "reason": "rehearsal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("the https webhook delivered")
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("degraded"));
    wait_until("the wrong-host webhook refused", || {
        refused.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(
        overheard.try_recv().is_err(),
        "delivered past a wrong certificate"
    );
}

#[tokio::test]
async fn a_client_certificate_is_sent_when_the_origin_asks_for_one() {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca.file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let (cert, key) = ca.leaf("server", &["127.0.0.1"], false);
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            ::lifeboat::tls::read_chain(&cert).unwrap(),
            ::lifeboat::tls::read_key(&key).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let origin = TestOrigin::start_tls(Arc::new(config)).await;

    let anonymous = lifeboat_to(&https(&origin))
        .set("origin.ca_file", &format!("{:?}", ca.file))
        .start()
        .await;
    let resp = client()
        .get(anonymous.url("/status/200"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "no client certificate, no answer");
    assert_eq!(origin.requests(), 0);

    let (client_cert, client_key) = ca.leaf("client", &["lifeboat.client.test"], false);
    let identified = lifeboat_to(&https(&origin))
        .set("origin.ca_file", &format!("{:?}", ca.file))
        .set("origin.client_cert", &format!("{client_cert:?}"))
        .set("origin.client_key", &format!("{client_key:?}"))
        .start()
        .await;
    let resp = client()
        .get(identified.url("/status/200"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(origin.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_certificate_is_logged_with_its_reason() {
    use crate::support::process::{Process, write_config};
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let origin = TestOrigin::start_tls(ca.server_config("expired", &["127.0.0.1"], true)).await;
    let text = lifeboat_to(&https(&origin))
        .set("origin.ca_file", &format!("{:?}", ca.file))
        .set("log.level", "\"info\"")
        .toml();
    let proc = Process::start(&write_config(dir.path(), &text));
    let resp = client()
        .get(format!("http://{}/page", proc.http))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-down");
    let line = tokio::task::block_in_place(|| {
        proc.next_line("the refusal in the log", |l| {
            l.contains("origin request failed")
        })
    });
    assert!(
        line.contains(&format!("https://127.0.0.1:{}", origin.addr.port()))
            && line.contains("invalid peer certificate: certificate expired"),
        "{line}"
    );
}
