//! TLS to the origin: verified against `ca_file` (or the platform's
//! roots), h2 by ALPN, SNI from the host policy; a certificate for another
//! host or an expired one is refused with the apology, never passed.

use crate::support::tls::make_ca;
use crate::support::{TestOrigin, client, json_of, lifeboat_to};

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
