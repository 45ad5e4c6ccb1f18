//! Live control and the story, through real sockets: the admin API and its
//! token rules, overrides with TTL, the live message, metrics, the public
//! status endpoint, the journal, webhooks.

use std::time::Duration;

use ::lifeboat::admission::Mode;
use serde_json::{Value, json};

use crate::support::{
    Running, TestOrigin, client, header_of, json_of, lifeboat, lifeboat_to, status_of, text_of,
};

async fn post(lb: &Running, path: &str, body: Value, token: Option<&str>) -> reqwest::Response {
    let mut req = client().post(lb.admin_url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn health_readiness_and_mode() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    assert_eq!(status_of(lb.admin_url("/healthz")).await, 200);
    assert_eq!(status_of(lb.admin_url("/readyz")).await, 200);
    let mode: Value = json_of(lb.admin_url("/mode")).await;
    assert_eq!(mode["mode"], "normal");
    assert_eq!(mode["configured"], "auto");
    assert_eq!(mode["override"], Value::Null);
    let config = text_of(lb.admin_url("/config")).await;
    assert!(config.contains(&origin.addr.to_string()), "{config}");
    assert_eq!(status_of(lb.admin_url("/nope")).await, 404);
    assert_eq!(status_of(lb.admin_url("/reload")).await, 405);
}

#[tokio::test]
async fn override_with_ttl_expires_on_its_own() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("shedding.mode", "\"normal\"")
        .set("shedding.tick", "\"20ms\"")
        .start()
        .await;
    let r = post(
        &lb,
        "/mode",
        json!({"mode": "degraded", "ttl": "300ms", "reason": "rehearsal"}),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mode"], "degraded");
    assert_eq!(body["override"]["reason"], "rehearsal");
    // Applied at once, not at the next tick.
    assert_eq!(
        header_of(lb.url("/news"), "x-lifeboat-shed").await,
        "degraded"
    );
    lb.wait_for_mode(Mode::Normal, Duration::from_secs(10))
        .await;
    let mode: Value = json_of(lb.admin_url("/mode")).await;
    assert_eq!(mode["override"], Value::Null);
    assert_eq!(status_of(lb.url("/status/200")).await, 200);
}

#[tokio::test]
async fn bad_override_requests_change_nothing() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    for body in [
        json!({"mode": "panic"}),
        json!({"mode": "degraded", "ttl": "soon"}),
        json!({"mood": "degraded"}),
    ] {
        let r = post(&lb, "/mode", body.clone(), None).await;
        assert_eq!(r.status(), 400, "{body}");
    }
    let r = client()
        .post(lb.admin_url("/mode"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(lb.mode(), Mode::Normal);
}

#[tokio::test]
async fn the_live_message_reaches_the_apology_and_the_status_page() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("shedding.mode", "\"degraded\"")
        .start()
        .await;
    let text = "Adding mirrors <now>; next update 20:00 UTC";
    assert_eq!(
        post(&lb, "/message", json!({"text": text}), None)
            .await
            .status(),
        200
    );
    let page = text_of(lb.url("/news")).await;
    assert!(
        page.contains("Adding mirrors &lt;now&gt;; next update 20:00 UTC"),
        "message missing or unescaped"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status: Value = json_of(lb.url("/.well-known/lifeboat/status")).await;
        if status["message"]["text"] == text {
            assert_eq!(status["mode"], "degraded");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never showed the message: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn token_rules() {
    let origin = TestOrigin::start().await;
    // Off loopback without a token: refused at validation.
    let text = lifeboat(&origin)
        .set("admin.listen", "\"0.0.0.0:0\"")
        .toml();
    let err = ::lifeboat::config::from_str(&text, "t.toml", std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin.listen") && err.contains("set `token_file` or `token_env`"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cret-token\n").unwrap();
    let lb = lifeboat(&origin)
        .set("admin.token_file", "\"token\"")
        .start_in(dir.path())
        .await;
    for token in [
        None,
        Some(""),
        Some("wrong"),
        Some("s3cret-tokenX"),
        Some("s3cret-toke"),
        Some("S3CRET-TOKEN"),
    ] {
        let r = post(&lb, "/mode", json!({"mode": "degraded"}), token).await;
        assert_eq!(r.status(), 401, "{token:?}");
        assert_eq!(
            post(&lb, "/message", json!({"text": "x"}), token)
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        lb.mode(),
        Mode::Normal,
        "a refused request changed the mode"
    );
    assert_eq!(
        status_of(lb.admin_url("/mode")).await,
        200,
        "reads need no token"
    );
    assert_eq!(
        post(
            &lb,
            "/mode",
            json!({"mode": "degraded"}),
            Some("s3cret-token")
        )
        .await
        .status(),
        200
    );
    assert_eq!(lb.mode(), Mode::Degraded);
    let config = text_of(lb.admin_url("/config")).await;
    assert!(
        !config.contains("s3cret"),
        "the token leaked through /config"
    );
}

#[tokio::test]
async fn metrics_after_traffic() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    assert_eq!(status_of(lb.url("/bytes/10")).await, 200);
    post(&lb, "/mode", json!({"mode": "degraded"}), None).await;
    assert_eq!(status_of(lb.url("/news")).await, 503);
    post(&lb, "/mode", json!({"mode": "auto"}), None).await;
    let text = lb.metrics().await;
    for series in [
        "lifeboat_requests_total{class=\"primary\",outcome=\"proxied\"}",
        "lifeboat_requests_total{class=\"normal\",outcome=\"shed\"}",
        "lifeboat_shed_total{reason=\"degraded\"}",
        "lifeboat_inflight{class=\"primary\"}",
        "lifeboat_mode{mode=\"degraded\"}",
        "lifeboat_mode_changes_total{from=\"normal\",to=\"degraded\"}",
        "lifeboat_origin_ttfb_seconds_bucket",
        "lifeboat_queue_depth{queue=\"origin\"}",
        "lifeboat_queue_wait_seconds_bucket",
        "lifeboat_config_generation",
    ] {
        assert!(text.contains(series), "missing {series}");
    }
    // The proxied request above was timed (other tests in this process may
    // have added more).
    let timed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("lifeboat_origin_ttfb_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a TTFB count");
    assert!(timed >= 1, "no TTFB sample counted:\n{text}");
}

#[tokio::test]
async fn status_answers_while_the_origin_is_down() {
    let lb = lifeboat_to("http://127.0.0.1:9")
        .set("shedding.tick", "\"20ms\"")
        .start()
        .await;
    assert_eq!(
        header_of(lb.url("/anything"), "x-lifeboat-shed").await,
        "origin-down"
    );
    let json = client()
        .get(lb.url("/.well-known/lifeboat/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
    assert_eq!(json.headers()["content-type"], "application/json");
    let v: Value = json.json().await.unwrap();
    assert!(
        ["normal", "degraded"].contains(&v["mode"].as_str().unwrap()),
        "{v}"
    );
    assert!(v["numbers"]["requests_per_s"].is_number());
    let html = client()
        .get(lb.url("/.well-known/lifeboat/status"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let html = html.text().await.unwrap();
    assert!(html.contains("<title>Status: "), "{html}");
    assert!(html.contains("<main>") && html.contains("<h1>"), "{html}");
}

#[tokio::test]
async fn readiness_turns_503_while_draining() {
    let origin = TestOrigin::start().await;
    let mut lb = lifeboat(&origin).start().await;
    let admin = lb.admin.unwrap();
    let mut download = client().get(lb.url("/gated")).send().await.unwrap();
    assert_eq!(
        download.chunk().await.unwrap().unwrap().as_ref(),
        b"first-chunk\n"
    );
    lb.begin_shutdown();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = client()
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never said draining"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    origin.release();
    assert_eq!(
        download.chunk().await.unwrap().unwrap().as_ref(),
        b"the-rest\n"
    );
    assert!(lb.drained().await);
}

#[tokio::test]
async fn config_shows_no_secret() {
    // GET /config needs no token: every secret in the config is redacted,
    // webhook credentials (userinfo, and the secret path and query that
    // chat webhooks use) and origin credentials as well as the token.
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t0ken-s3cret\n").unwrap();
    let url = format!(
        "http://hookuser:hookpass@{}/services/T000/B000/PathS3cret?sig=QueryS3cret",
        origin.addr
    );
    let toml = lifeboat(&origin)
        .set("admin.token_file", "\"token\"")
        .set(
            "origin.url",
            &format!("\"http://originuser:originpass@{}\"", origin.addr),
        )
        .toml()
        + &format!("[[webhook]]\nurl = \"{url}\"\n");
    let config = ::lifeboat::config::from_str(&toml, "t.toml", dir.path()).unwrap();
    let lb = crate::support::lifeboat::start_config(config).await;
    let shown = text_of(lb.admin_url("/config")).await;
    for secret in [
        "t0ken-s3cret",
        "hookuser",
        "hookpass",
        "PathS3cret",
        "QueryS3cret",
        "originuser",
        "originpass",
    ] {
        assert!(
            !shown.contains(secret),
            "{secret} shown by /config:\n{shown}"
        );
    }
    assert!(
        shown.contains(&format!("http://{}/<redacted>", origin.addr)),
        "the webhook's host should still be shown:\n{shown}"
    );
}

/// An admin listener that sends a head and then stalls its body must not
/// hang the operator's shell: `lifeboat ctl` gives up on the whole answer
/// after its deadline, and says so.
#[tokio::test]
async fn ctl_gives_up_on_an_answer_that_stalls_mid_body() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"mode\":")
            .await
            .unwrap();
        // Hold the connection open, the body never finished.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(s);
    });
    let started = std::time::Instant::now();
    let (ok, _, stderr) = crate::fleet::ctl(admin, "", &["status"]).await;
    let took = started.elapsed();
    server.abort();
    assert!(!ok, "a stalled answer is a failure");
    assert!(stderr.contains("no whole answer within 10 s"), "{stderr}");
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
}
