//! Clearing the boards, through real sockets: the apology and its headers,
//! negotiation, the primary and keep paths, lifeboat's own queue, the mode
//! machine driven by a slowed origin, and path tricks.

use std::io::Read;
use std::time::Duration;

use ::lifeboat::admission::Mode;
use serde_json::Value;

use crate::support::{
    Harness, TestOrigin, client, header_of, lifeboat, raw_exchange, status_of, wait_until,
};

/// Primary `/bytes/*` and `/gated`, keep `/status/*`; everything else normal.
fn harness(origin: &TestOrigin) -> Harness {
    lifeboat(origin)
        .set("apology.signed", "\"Louis, for the release team\"")
        .set(
            "apology.message",
            "\"We are adding mirrors. Next update 20:00 UTC.\"",
        )
        .route("downloads", "match", "/bytes/*", "primary")
        .route("gate", "match", "/gated", "primary")
        .route("health", "prefix", "/status/", "keep")
}

async fn start(origin: &TestOrigin, settings: &[(&str, &str)]) -> crate::support::Running {
    settings
        .iter()
        .fold(harness(origin), |h, (k, v)| h.set(k, v))
        .start()
        .await
}

#[tokio::test]
async fn degraded_mode_apologises_to_normal_paths_only() {
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &[("shedding.mode", "\"degraded\"")]).await;
    let resp = client().get(lb.url("/news")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let h = resp.headers().clone();
    assert_eq!(h["x-lifeboat-shed"], "degraded");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((60..=90).contains(&retry), "Retry-After {retry}");
    let body = resp.text().await.unwrap();
    for needle in [
        "We are adding mirrors. Next update 20:00 UTC.",
        "Louis, for the release team",
        "href=\"/bytes/\"",
        "/.well-known/lifeboat/status",
    ] {
        assert!(body.contains(needle), "page lacks {needle:?}");
    }
    assert_eq!(
        origin.requests(),
        0,
        "a shed request never reaches the origin"
    );

    let primary = client().get(lb.url("/bytes/1000")).send().await.unwrap();
    assert_eq!(primary.status(), 200);
    assert_eq!(primary.bytes().await.unwrap().len(), 1000);
    let keep = client().get(lb.url("/status/204")).send().await.unwrap();
    assert_eq!(keep.status(), 204);
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn apology_negotiates_json_head_and_compression() {
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &[("shedding.mode", "\"degraded\"")]).await;
    let json = client()
        .get(lb.url("/api/x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 503);
    assert_eq!(json.headers()["content-type"], "application/problem+json");
    let v: Value = json.json().await.unwrap();
    assert_eq!(
        (v["status"].as_u64(), v["reason"].as_str()),
        (Some(503), Some("degraded"))
    );
    assert_eq!(v["retry_after"], 60);
    assert_eq!(
        v["message"],
        "We are adding mirrors. Next update 20:00 UTC."
    );

    let plain = client()
        .get(lb.url("/x"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let head = client().head(lb.url("/x")).send().await.unwrap();
    assert_eq!(head.status(), 503);
    assert_eq!(
        head.headers()["content-length"],
        plain.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    let gz = client()
        .get(lb.url("/x"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(gz.bytes().await.unwrap().as_ref())
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);
    let br = client()
        .get(lb.url("/x"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(br.headers()["content-encoding"], "br");
    let compressed = br.bytes().await.unwrap();
    assert!(
        compressed.len() < plain.len() / 2,
        "brotli {} vs {}",
        compressed.len(),
        plain.len()
    );
}

#[tokio::test]
async fn retry_after_is_spread() {
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &[("shedding.mode", "\"degraded\"")]).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let r = client().head(lb.url("/x")).send().await.unwrap();
        let v: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((60..=90).contains(&v));
        seen.insert(v);
    }
    assert!(seen.len() >= 10, "Retry-After barely varies: {seen:?}");
}

#[tokio::test]
async fn path_tricks_and_headers_never_pass_as_primary() {
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &[("shedding.mode", "\"degraded\"")]).await;
    for path in [
        "/bytes/../status/200",
        "//bytes/10",
        "/%62ytes/10",
        "/bytes/%2e%2e/status/200",
        "/bytes//10",
        "/echo/headers",
    ] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nX-Lifeboat-Class: primary\r\n\
             X-Original-URL: /bytes/10\r\nX-Rewrite-URL: /bytes/10\r\n\
             X-Forwarded-Prefix: /bytes\r\nX-Forwarded-Uri: /bytes/10\r\n\
             Connection: close\r\n\r\n"
        );
        let (text, _) = raw_exchange(lb.addr(), req.as_bytes(), Duration::from_secs(10)).await;
        assert!(
            text.starts_with("HTTP/1.1 503"),
            "{path}: {}",
            &text[..text.len().min(80)]
        );
        assert!(text.contains("x-lifeboat-shed: degraded"), "{path}");
    }
    assert_eq!(origin.requests(), 0);
}

#[tokio::test]
async fn the_queue_lives_in_lifeboat() {
    let origin = TestOrigin::start().await;
    let lb = start(
        &origin,
        &[
            ("origin.max_inflight", "1"),
            ("origin.queue_max", "1"),
            ("origin.queue_timeout", "\"300ms\""),
        ],
    )
    .await;
    // One normal request holds the only origin slot...
    let mut first = client().get(lb.url("/gated?normal")).send().await.unwrap();
    assert_eq!(
        first.chunk().await.unwrap().unwrap().as_ref(),
        b"first-chunk\n"
    );
    // ...the next waits in lifeboat's queue, the one after finds it full.
    let queued = tokio::spawn(client().get(lb.url("/news")).send());
    wait_until("the request to queue", || {
        lb.shared.admission.origin.queued() >= 1
    })
    .await;
    let full = client().get(lb.url("/about")).send().await.unwrap();
    assert_eq!(full.headers()["x-lifeboat-shed"], "queue-full");
    let waited = queued.await.unwrap().unwrap();
    assert_eq!(waited.headers()["x-lifeboat-shed"], "queue-timeout");
    assert_eq!(
        origin.requests(),
        1,
        "only the admitted request reached the origin"
    );
    origin.release();
    assert_eq!(
        first.chunk().await.unwrap().unwrap().as_ref(),
        b"the-rest\n"
    );
    drop(first);
    // The slot is free again once the body has ended.
    assert_eq!(status_of(lb.url("/status/200")).await, 200);
}

#[tokio::test]
async fn primary_has_its_own_bounded_queue() {
    let origin = TestOrigin::start().await;
    let lb = start(
        &origin,
        &[
            ("shedding.mode", "\"degraded\""),
            ("shedding.primary_max_inflight", "2"),
            ("origin.queue_max", "1"),
            ("origin.queue_timeout", "\"300ms\""),
        ],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut r = client().get(lb.url("/gated")).send().await.unwrap();
        assert_eq!(r.chunk().await.unwrap().unwrap().as_ref(), b"first-chunk\n");
        held.push(r);
    }
    let started = tokio::time::Instant::now();
    let queued = tokio::spawn(client().get(lb.url("/bytes/10")).send());
    while lb.shared.admission.primary.queued() < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "primary request never queued"
        );
        tokio::task::yield_now().await;
    }
    let busy = client().get(lb.url("/bytes/10")).send().await.unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["x-lifeboat-shed"], "primary-busy");
    let timed_out = queued.await.unwrap().unwrap();
    assert_eq!(timed_out.headers()["x-lifeboat-shed"], "primary-busy");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "queue timeout not honoured"
    );
    origin.release();
    for r in held {
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"the-rest\n");
    }
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn a_download_in_flight_survives_the_flip() {
    let origin = TestOrigin::start().await;
    let lb = start(&origin, &[]).await;
    let size: u64 = 50 << 20;
    // A normal-class download: the class that gets shed after the flip.
    let mut resp = client()
        .get(lb.url(&format!("/file/{size}")))
        .send()
        .await
        .unwrap();
    let mut got = resp.chunk().await.unwrap().unwrap().len() as u64;
    ::lifeboat::control::set_override(
        &lb.shared,
        Some(::lifeboat::runtime::Override {
            mode: Mode::Degraded,
            until: None,
            reason: "test".into(),
        }),
        None,
    );
    assert_eq!(
        header_of(lb.url("/news"), "x-lifeboat-shed").await,
        "degraded"
    );
    while let Some(chunk) = resp.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, size, "the download was cut by the mode change");
}

#[tokio::test]
async fn a_slow_origin_clears_the_boards_and_recovery_ramps_back() {
    let origin = TestOrigin::start().await;
    let lb = start(
        &origin,
        &[
            ("shedding.tick", "\"50ms\""),
            ("shedding.window", "\"2s\""),
            ("shedding.min_samples", "5"),
            ("shedding.min_dwell", "\"0s\""),
            ("shedding.enter.ttfb_p95", "\"150ms\""),
            ("shedding.enter.after", "\"300ms\""),
            ("shedding.exit.after", "\"500ms\""),
            ("shedding.exit.ramp", "\"1s\""),
        ],
    )
    .await;
    origin.set_delay(300);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, url_page, url_primary) = (stop.clone(), lb.url("/news"), lb.url("/bytes/100"));
        tokio::spawn(async move {
            let c = client();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = tokio::join!(c.get(&url_page).send(), c.get(&url_primary).send());
            }
        })
    };
    lb.wait_for_mode(Mode::Degraded, Duration::from_secs(15))
        .await;
    // Slow, but not full: in `auto`, degraded still gives pages the
    // origin's spare room (the origin's 404 comes back, not the apology).
    let page = client().get(lb.url("/news")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers().get("x-lifeboat-shed").is_none());
    assert_eq!(
        status_of(lb.url("/bytes/100")).await,
        200,
        "primary stays up"
    );

    origin.set_delay(0);
    lb.wait_for_mode(Mode::Recovering, Duration::from_secs(15))
        .await;
    lb.wait_for_mode(Mode::Normal, Duration::from_secs(15))
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        lb.shared.admission.changes(),
        3,
        "exactly one degrade, one recovery, one return"
    );
    assert_eq!(status_of(lb.url("/news")).await, 404);
}
