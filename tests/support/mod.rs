//! Test support: a real origin, a real lifeboat, and small clients.

#![allow(dead_code)]

pub mod browser;
pub mod external;
pub mod faulty;
pub mod h2c_origin;
pub mod h2raw;
pub mod lifeboat;
pub mod origin;
pub mod process;
pub mod redis;
pub mod tls;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[allow(unused_imports)]
pub use lifeboat::{Harness, Running, lifeboat, lifeboat_to};
pub use origin::TestOrigin;

/// A plain reqwest client (HTTP/1.1, no proxy from the environment).
pub fn client() -> reqwest::Client {
    tls::install_provider();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A client that opens a new connection for every request (so each one
/// has to be accepted) and gives up after 5 s.
pub fn fresh_client() -> reqwest::Client {
    tls::install_provider();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Sends raw bytes and reads until the server closes or `limit` passes.
/// Returns what was read and whether the server closed the connection.
pub async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
    limit: Duration,
) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_until_close(&mut stream, limit).await
}

/// Reads until EOF (true) or until `limit` passes (false).
pub async fn read_until_close(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// GET `url` with a plain client; the status code.
pub async fn status_of(url: impl reqwest::IntoUrl) -> reqwest::StatusCode {
    client().get(url).send().await.expect("request").status()
}

/// GET `url` with a plain client; the JSON body.
pub async fn json_of(url: impl reqwest::IntoUrl) -> serde_json::Value {
    let resp = client().get(url).send().await.expect("request");
    resp.json().await.expect("a JSON body")
}

/// GET `url` with a plain client; the body as text.
pub async fn text_of(url: impl reqwest::IntoUrl) -> String {
    let resp = client().get(url).send().await.expect("request");
    resp.text().await.expect("a text body")
}

/// POSTs `body` as JSON to `path` on `lb`'s admin listener (no token),
/// which must answer 200; its JSON answer.
pub async fn admin_post(
    lb: &lifeboat::Running,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = client()
        .post(lb.admin_url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "{path} {body}");
    r.json().await.expect("a JSON answer")
}

/// GET `url` with a plain client; the value of the header `name`, which
/// must be present.
pub async fn header_of(url: impl reqwest::IntoUrl, name: &str) -> String {
    let resp = client().get(url).send().await.expect("request");
    let value = resp.headers().get(name);
    let value = value.unwrap_or_else(|| panic!("no {name} header"));
    value.to_str().expect("a text header").to_string()
}

/// Waits until `check` holds, polling every 5 ms; fails the test naming
/// `what` if it does not hold within 10 s. A condition with a deadline,
/// never a sleep that hopes.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the async `check` gives a value, polling every 20 ms;
/// fails the test naming `what` if it gives none within 20 s.
pub async fn wait_until_async<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Held by the tests that load both cores on purpose (stampedes, storms,
/// attack tools): they run one at a time, so that each measures lifeboat
/// rather than the other's load. Light tests still run beside them.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    HEAVY
        .get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}
