//! Origin failures become the apology (503 + Retry-After, reason
//! `origin-down` / `origin-timeout`) in any mode, never a raw gateway error
//! or a library's default page; a stalled upload is the client's own: 408.
//! Broken origins (garbage, resets, stalls, early closes) end cleanly.

use std::time::Duration;

use std::sync::atomic::Ordering;

use crate::support::faulty::FaultyOrigin;
use crate::support::{TestOrigin, client, lifeboat, lifeboat_to, status_of, wait_until};

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

/// Origin faults (hardening item 7): each fault becomes a clean apology or a
/// visibly broken body (never a silently truncated success), the pool
/// recovers, and no connection or admission slot is left behind.
#[tokio::test]
async fn origin_faults_end_cleanly_and_the_pool_recovers() {
    let origin = FaultyOrigin::start().await;
    let lb = lifeboat_to(&origin.url())
        .set("limits.body_idle_timeout", "\"300ms\"")
        .start()
        .await;
    let c = client();

    // Garbage instead of a response: the apology, before any byte was sent.
    let resp = c.get(lb.url("/garbage")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-down");

    // A reset mid-body: the head was already sent, so the client must see
    // the body break rather than a short body that looks complete.
    let resp = c.get(lb.url("/reset")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(1024 * 1024));
    assert!(
        resp.bytes().await.is_err(),
        "a reset origin produced a complete-looking body"
    );

    // Silence after the head: cut at the body idle timeout, not hung.
    let started = std::time::Instant::now();
    let resp = c.get(lb.url("/stall")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), resp.bytes())
        .await
        .expect("a stalled origin hung the client");
    assert!(body.is_err(), "a stalled body looked complete");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Keep-alive connections the origin closes right after answering: the
    // pool must never hand out a dead one.
    for i in 0..50 {
        let resp = c.get(lb.url("/close-early")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i} on a closed keep-alive");
        assert_eq!(resp.text().await.unwrap(), "ok\n");
    }

    // After all that: ordinary requests work, on reused connections.
    for _ in 0..20 {
        assert_eq!(status_of(lb.url("/ok")).await, 200);
    }
    assert!(
        origin.accepted.load(Ordering::SeqCst) <= 4 + 50 + 2,
        "the pool did not reuse connections for /ok"
    );
    // Nothing leaks: no admission slot held, no origin connection beyond
    // the idle pool.
    wait_until("every admission slot to be released", || {
        lb.shared.admission.inflight.total() == 0 && lb.shared.admission.origin.inflight() == 0
    })
    .await;
    wait_until("origin connections to close", || origin.open() <= 2).await;
}
