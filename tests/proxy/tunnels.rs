//! Upgrades and tunnels (issue #13, items 1 and 2): only WebSocket is
//! tunnelled, so no tunnel carries requests past classification (an h2c
//! upgrade to a real h2c-capable origin is stripped); a tunnel holds its
//! request's origin slot and in-flight count for its whole life, shows in
//! the metrics, and is closed when silent for `tunnel_idle_timeout`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::h2c_origin::{H2cOrigin, h2c_client};
use crate::support::{Running, TestOrigin, client, lifeboat_to, text_of, wait_until};

/// lifeboat in degraded mode in front of an h2c-capable origin, with
/// `/download/*` primary.
async fn degraded_in_front_of(origin: &H2cOrigin) -> Running {
    lifeboat_to(&origin.url())
        .set("shedding.mode", "\"degraded\"")
        .route("downloads", "match", "/download/*", "primary")
        .start()
        .await
}

#[tokio::test]
async fn an_h2c_upgrade_opens_no_tunnel_past_the_shedding() {
    let origin = H2cOrigin::start().await;
    // The origin really is h2c-capable: asked directly, it switches, and
    // requests inside the tunnel reach it.
    let (status, inside) = h2c_client(origin.addr, "/download/x", &["/admin"]).await;
    assert_eq!(status, 101, "the test origin does not speak h2c");
    assert_eq!(inside, vec!["secret /admin".to_string()]);
    assert!(origin.paths().contains(&"HTTP/2.0 /admin".to_string()));

    let lb = degraded_in_front_of(&origin).await;
    let before = origin.seen().len();
    let (status, inside) =
        h2c_client(lb.addr(), "/download/x", &["/admin", "/internal/debug"]).await;
    assert_eq!(status, 200, "lifeboat let the origin switch protocols");
    assert!(inside.is_empty(), "a tunnel was opened: {inside:?}");
    let reached: Vec<_> = origin.seen().split_off(before);
    assert_eq!(reached.len(), 1, "{:?}", origin.paths());
    let download = &reached[0];
    assert_eq!(
        (download.version, download.path.as_str()),
        (http::Version::HTTP_11, "/download/x")
    );
    for hop in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !download.headers.contains_key(hop),
            "{hop} reached the origin: {:?}",
            download.headers
        );
    }
    // The same paths asked directly get the apology.
    for path in ["/admin", "/internal/debug"] {
        let resp = client().get(lb.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 503, "{path}");
    }

    // An h2c client that does not wait for the 101 and sends its preface
    // and an HTTP/2 request right behind the upgrade request: the bytes
    // are parsed as HTTP/1, refused, and the connection closed.
    let mut raw = b"GET /download/y HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n\
        Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    crate::support::h2raw::frame(&mut raw, crate::support::h2raw::SETTINGS, 0, 0, &[]);
    crate::support::h2raw::get(&mut raw, 1, "t", "/admin");
    let (text, closed) =
        crate::support::raw_exchange(lb.addr(), &raw, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains(" 101 "), "{text}");
    assert!(closed, "the connection stayed open after the h2 preface");
    // Through lifeboat, the origin saw the two downloads, over HTTP/1.1,
    // and nothing else.
    let through_lifeboat: Vec<_> = origin.paths().split_off(before);
    assert_eq!(
        through_lifeboat,
        vec![
            "HTTP/1.1 /download/x".to_string(),
            "HTTP/1.1 /download/y".to_string()
        ]
    );
}

#[tokio::test]
async fn a_switch_to_another_protocol_than_websocket_is_refused() {
    // The origin answers a WebSocket handshake with a 101 to h2c: lifeboat
    // tunnels nothing and apologises (the origin broke the exchange).
    let origin = H2cOrigin::start().await;
    let lb = degraded_in_front_of(&origin).await;
    let url = format!("ws://{}/lie", lb.addr());
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("the handshake should fail");
    let tungstenite::Error::Http(resp) = err else {
        panic!("expected an HTTP answer, got {err}");
    };
    assert_eq!(resp.status(), 503);
    // `/lie` is not primary, so in degraded mode it does not even reach
    // the origin; in normal mode it does, and the 101 is refused.
    let lb = lifeboat_to(&origin.url()).start().await;
    let url = format!("ws://{}/lie", lb.addr());
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("refused");
    let tungstenite::Error::Http(resp) = err else {
        panic!("expected an HTTP answer, got {err}");
    };
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-lifeboat-shed"], "origin-down");
    assert!(origin.paths().contains(&"HTTP/1.1 /lie".to_string()));
}

#[tokio::test]
async fn upgrades_are_configured_and_h2c_is_refused_at_validation() {
    let origin = TestOrigin::start().await;
    let text = crate::support::lifeboat(&origin)
        .set("proxy.upgrades", "[\"websocket\", \"h2c\"]")
        .toml();
    let err = ::lifeboat::config::from_str(&text, "t.toml", std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("RFC 9113"), "{err}");
    // No upgrades: a WebSocket handshake reaches the origin as a plain GET
    // (no Upgrade field), and the origin's 101 to it is refused.
    let lb = crate::support::lifeboat(&origin)
        .set("proxy.upgrades", "[]")
        .start()
        .await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", lb.addr()))
        .await
        .expect_err("no tunnel");
    let tungstenite::Error::Http(resp) = err else {
        panic!("expected an HTTP answer, got {err}");
    };
    assert_eq!(resp.status(), 503);
    assert_eq!(origin.requests(), 1);
}

async fn metrics(lb: &Running) -> String {
    let url = format!("http://{}/metrics", lb.admin.unwrap());
    text_of(url).await
}

/// Waits until `/metrics` has every line of `lines` (the recorder is
/// shared by every lifeboat in the test process, so another test's scrape
/// may set a gauge between this one's refresh and render; read again).
async fn wait_for_metrics(lb: &Running, lines: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(lb).await;
        if lines.iter().all(|l| text.lines().any(|t| t == *l)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never showed {lines:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn websocket_tunnels_hold_their_origin_slots_for_their_whole_life() {
    let origin = TestOrigin::start().await;
    let lb = crate::support::lifeboat(&origin)
        .set("origin.max_inflight", "2")
        .set("origin.primary_reserved", "0")
        .set("origin.queue_timeout", "\"200ms\"")
        .route("socket", "match", "/ws", "primary")
        .start()
        .await;
    let ws_url = format!("ws://{}/ws", lb.addr());
    let (mut first, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let (mut second, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let a = &lb.shared.admission;
    assert_eq!(a.origin.inflight(), 2, "each tunnel holds an origin slot");
    assert_eq!(a.inflight.total(), 2, "tunnels count in flight");
    assert_eq!(lb.shared.tunnels.count(), 2);
    wait_for_metrics(
        &lb,
        &[
            "lifeboat_origin_inflight 2",
            "lifeboat_inflight{class=\"primary\"} 2",
            "lifeboat_tunnels 2",
        ],
    )
    .await;

    // With both slots held by tunnels, more handshakes wait their turn in
    // lifeboat's queue and get the apology; none reaches the origin.
    for _ in 0..20 {
        let err = tokio_tungstenite::connect_async(&ws_url)
            .await
            .expect_err("no slot for a third tunnel");
        let tungstenite::Error::Http(resp) = err else {
            panic!("expected an HTTP answer, got {err}");
        };
        assert_eq!(resp.status(), 503);
    }
    assert_eq!(
        origin.requests(),
        2,
        "a tunnel past the cap reached the origin"
    );

    // The tunnels still work, and closing one gives its slot back.
    first.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        first.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    first.close(None).await.unwrap();
    drop(first);
    wait_until("the closed tunnel's slot to come back", || {
        a.origin.inflight() == 1 && lb.shared.tunnels.count() == 1
    })
    .await;
    let (mut third, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    third.send(Message::text("in")).await.unwrap();
    assert_eq!(third.next().await.unwrap().unwrap(), Message::text("in"));
    second.close(None).await.unwrap();
    third.close(None).await.unwrap();
    drop((second, third));
    wait_until("every slot to come back", || {
        a.origin.inflight() == 0 && a.inflight.total() == 0 && lb.shared.tunnels.count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_silent_tunnel_is_closed_at_its_idle_timeout() {
    // Keep-alive and body timeouts do not apply to a tunnel; its own idle
    // timeout does, and a tunnel with traffic outlives it many times over.
    let origin = TestOrigin::start().await;
    let lb = crate::support::lifeboat(&origin)
        .set("limits.tunnel_idle_timeout", "\"400ms\"")
        .set("limits.keepalive_timeout", "\"60s\"")
        .set("limits.body_idle_timeout", "\"60s\"")
        .start()
        .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", lb.addr()))
        .await
        .unwrap();
    let busy_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut echoes = 0;
    while tokio::time::Instant::now() < busy_until {
        ws.send(Message::text("ping")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));
        echoes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(echoes >= 10, "{echoes} echoes");
    assert_eq!(lb.shared.tunnels.count(), 1, "a busy tunnel was closed");

    // Silence: the tunnel is closed, and its slot comes back.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a silent tunnel was still open after 10 s");
    wait_until("the idle tunnel's slot to come back", || {
        lb.shared.admission.origin.inflight() == 0
            && lb.shared.admission.inflight.total() == 0
            && lb.shared.tunnels.count() == 0
    })
    .await;
}
