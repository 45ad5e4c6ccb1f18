//! Proxy headers: hop-by-hop fields stripped both ways, X-Forwarded-* from
//! the real peer (spoofing overwritten, trusted proxies extended), Via,
//! Host preserved or rewritten.

use serde_json::Value;

use crate::support::{TestOrigin, client, lifeboat};

async fn seen_headers(lb: &crate::support::Running, req: reqwest::RequestBuilder) -> Value {
    let _ = lb;
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_reach_the_origin() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let req = client()
        .get(lb.url("/echo/headers"))
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "gzip")
        .header("x-end-to-end", "kept");
    let seen = seen_headers(&lb, req).await;
    let h = &seen["headers"];
    for name in [
        "connection",
        "x-private",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the origin: {h}");
    }
    assert_eq!(h["x-end-to-end"][0], "kept");
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_reach_the_client() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let resp = client().get(lb.url("/hop")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-origin-secret").is_none());
    assert!(resp.headers().get("keep-alive").is_none());
    assert_eq!(resp.headers()["x-end-to-end"], "kept");
    assert_eq!(resp.headers()["via"], "1.1 lifeboat");
}

#[tokio::test]
async fn spoofed_forwarding_headers_are_overwritten() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let req = client()
        .get(lb.url("/echo/headers"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6");
    let seen = seen_headers(&lb, req).await;
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-host"][0], lb.addr().to_string());
    assert!(h.get("forwarded").is_none());
    assert_eq!(h["via"][0], "1.1 lifeboat");
}

#[tokio::test]
async fn trusted_proxy_extends_the_chain() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("proxy.trusted_proxies", "[\"127.0.0.0/8\"]")
        .start()
        .await;
    let req = client()
        .get(lb.url("/echo/headers"))
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https");
    let seen = seen_headers(&lb, req).await;
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"][0], "198.51.100.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "https");
}

#[tokio::test]
async fn host_is_preserved_by_default_and_rewritten_on_request() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let seen = seen_headers(
        &lb,
        client()
            .get(lb.url("/echo/headers"))
            .header("host", "www.example.org"),
    )
    .await;
    assert_eq!(seen["headers"]["host"][0], "www.example.org");
    assert_eq!(seen["uri"], "/echo/headers");
    assert_eq!(seen["version"], "HTTP/1.1");

    let lb = lifeboat(&origin)
        .set("origin.host", "\"origin\"")
        .start()
        .await;
    let seen = seen_headers(
        &lb,
        client()
            .get(lb.url("/echo/headers"))
            .header("host", "www.example.org"),
    )
    .await;
    assert_eq!(seen["headers"]["host"][0], origin.addr.to_string());

    let lb = lifeboat(&origin)
        .set("origin.host", "\"backend.internal\"")
        .start()
        .await;
    let seen = seen_headers(&lb, client().get(lb.url("/echo/headers"))).await;
    assert_eq!(seen["headers"]["host"][0], "backend.internal");
}

#[tokio::test]
async fn client_address_claims_in_every_spelling_are_dropped() {
    // CGI-style origins read `X_Forwarded_For` as `X-Forwarded-For`
    // (HTTP_X_FORWARDED_FOR); CDNs' own client-address headers and URL
    // overrides are claims only a proxy in front may make.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let claims = [
        "X_Forwarded_For",
        "X_Real_IP",
        "Client-IP",
        "Client_IP",
        "X-Cluster-Client-IP",
        "CF-Connecting-IP",
        "Fastly-Client-IP",
        "True_Client_IP",
        "X-Original-URL",
        "X_Rewrite_URL",
        "X-Forwarded",
        "Forwarded-For",
    ];
    let mut raw = String::from("GET /echo/headers HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for name in claims {
        raw += &format!("{name}: 6.6.6.6\r\n");
    }
    raw += "X-Request-Id: kept\r\n\r\n";
    let (text, _) = crate::support::raw_exchange(
        lb.addr(),
        raw.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let seen: Value = serde_json::from_str(body).unwrap();
    let h = seen["headers"].as_object().unwrap();
    for name in claims {
        assert!(
            !h.contains_key(&name.to_ascii_lowercase()),
            "{name} reached the origin: {h:?}"
        );
    }
    assert!(
        !body.contains("6.6.6.6"),
        "a claimed address reached the origin: {body}"
    );
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-request-id"][0], "kept");
}

/// Sends `raw` (one request) and returns the status line's code.
async fn status_for(lb: &crate::support::Running, raw: &str) -> String {
    let (text, _) = crate::support::raw_exchange(
        lb.addr(),
        raw.as_bytes(),
        std::time::Duration::from_secs(10),
    )
    .await;
    text.split(' ').nth(1).unwrap_or("none").to_string()
}

#[tokio::test]
async fn a_request_names_exactly_one_valid_host() {
    // RFC 9112 §3.2: no Host in HTTP/1.1, more than one, or an invalid one
    // is a 400; never "the first value" or the origin's authority.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    for (what, raw) in [
        (
            "two Host fields",
            "GET /echo/headers HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        ),
        (
            "the same Host twice",
            "GET /echo/headers HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        ),
        (
            "a Host with a space",
            "GET /echo/headers HTTP/1.1\r\nHost: a.example b.example\r\n\r\n",
        ),
        (
            "an empty Host",
            "GET /echo/headers HTTP/1.1\r\nHost: \r\n\r\n",
        ),
        (
            "a Host with userinfo",
            "GET /echo/headers HTTP/1.1\r\nHost: me@a.example\r\n\r\n",
        ),
        (
            "no Host",
            "GET /echo/headers HTTP/1.1\r\nAccept: */*\r\n\r\n",
        ),
        (
            "a target for another host",
            "GET http://b.example/echo/headers HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
    ] {
        let (text, closed) = crate::support::raw_exchange(
            lb.addr(),
            raw.as_bytes(),
            std::time::Duration::from_secs(10),
        )
        .await;
        assert!(text.starts_with("HTTP/1.1 400"), "{what}: {text}");
        assert!(
            text.contains("x-lifeboat-error: bad-host"),
            "{what}: {text}"
        );
        assert!(closed, "{what}: the connection stayed open");
    }
    assert_eq!(
        origin.requests(),
        0,
        "a request without one valid host reached the origin"
    );
    let fine = [
        "GET /echo/headers HTTP/1.1\r\nHost: a.example:8080\r\nConnection: close\r\n\r\n",
        "GET http://a.example/echo/headers HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        "GET /echo/headers HTTP/1.0\r\n\r\n",
    ];
    for raw in fine {
        assert_eq!(status_for(&lb, raw).await, "200", "{raw:?}");
    }
    assert_eq!(origin.requests(), 3);
}

#[tokio::test]
async fn an_http2_host_must_agree_with_the_authority() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .get(lb.url("/echo/headers"))
        .header("host", "other.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-lifeboat-error"], "bad-host");
    assert_eq!(origin.requests(), 0);
    let resp = h2.get(lb.url("/echo/headers")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
