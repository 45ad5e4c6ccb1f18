//! Origin failures become the apology (503 + Retry-After, reason
//! `origin-down` / `origin-timeout`) in any mode, never a raw gateway error
//! or a library's default page; a stalled upload is the client's own: 408.

use std::time::Duration;

use crate::support::{TestOrigin, client, lifeboat, lifeboat_to, status_of};

/// A loopback port with nothing listening on it.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn origin_down_gives_the_apology() {
    let port = closed_port().await;
    let lb = lifeboat_to(&format!("http://127.0.0.1:{port}"))
        .start()
        .await;
    let resp = client().get(lb.url("/anything")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-down");
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.headers().contains_key("retry-after"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("We are sorry"), "{body}");
    assert!(!body.contains("{{"), "unrendered placeholder: {body}");
}

#[tokio::test]
async fn slow_origin_gives_the_apology() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("origin.ttfb_timeout", "\"200ms\"")
        .start()
        .await;
    let resp = client().get(lb.url("/delay/3000")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-timeout");
    // A fast request on the same proxy is unaffected.
    assert_eq!(status_of(lb.url("/status/200")).await, 200);
}

#[tokio::test]
async fn origin_errors_pass_through_unchanged() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let resp = client().get(lb.url("/status/503")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("x-lifeboat-error").is_none());
    assert_eq!(resp.text().await.unwrap(), "status 503\n");
}

#[tokio::test]
async fn stalled_upload_gets_408() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("limits.body_idle_timeout", "\"300ms\"")
        .start()
        .await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tx.send(Ok(bytes::Bytes::from_static(b"start of upload")))
        .await
        .unwrap();
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let send = client()
        .post(lb.url("/sink"))
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    // The client keeps its stream open (tx alive) but sends nothing more.
    let resp = tokio::time::timeout(Duration::from_secs(10), send)
        .await
        .expect("no hang")
        .unwrap();
    assert_eq!(resp.status(), 408);
    assert_eq!(resp.headers()["x-lifeboat-error"], "client-timeout");
    drop(tx);
    // The proxy and its origin pool are fine afterwards.
    assert_eq!(status_of(lb.url("/status/200")).await, 200);
}
