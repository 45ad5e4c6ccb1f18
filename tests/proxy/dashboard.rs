//! The live dashboard on the admin listener, looked at the way an operator
//! looks at it: in a real browser (Debian's chromium, headless) while
//! traffic flows. The charts must draw and move, the numbers must be the
//! traffic's, and the buttons must do what they say (with the token, and
//! refuse without it). Beside it, the page's own rules (self-contained,
//! not frameable) and its data endpoint, read without a browser.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::{Running, TestOrigin, client, lifeboat};

const TOKEN: &str = "rescue-boat-7";

/// Downloads and pages through `lb` until dropped, a few dozen a second.
struct Traffic {
    stop: Arc<AtomicBool>,
}

impl Traffic {
    fn start(lb: &Running) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        for path in ["/bytes/2048", "/delay/5", "/status/404"] {
            let (stop, url, c) = (stop.clone(), lb.url(path), client());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = c.get(&url).send().await.and_then(|r| r.error_for_status());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        Traffic { stop }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// lifeboat with an admin token (in a file, as operators keep it) and the
/// downloads as its primary path. The directory lives as long as it runs.
async fn start(origin: &TestOrigin) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let lb = lifeboat(origin)
        .set("admin.token_file", "\"token\"")
        .route("downloads", "match", "/bytes/*", "primary")
        // The test's traffic all comes from one address: no apology budget.
        .set("shedding.client_budget", "0")
        .start_from_file(&dir.path().join("lifeboat.toml"))
        .await;
    (lb, dir)
}

async fn data(lb: &Running, after: u64) -> Value {
    let admin = lb.admin.unwrap();
    crate::support::json_of(format!("http://{admin}/dashboard/data?after={after}")).await
}

/// Polls the data endpoint until `ok` holds for it (10 s at most).
async fn data_until(lb: &Running, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = data(lb, 0).await;
        if ok(&d) {
            return d;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {what}: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_page_is_one_self_contained_file_that_cannot_be_framed() {
    let origin = TestOrigin::start().await;
    let (lb, _dir) = start(&origin).await;
    for path in ["/", "/dashboard"] {
        let r = client()
            .get(format!("http://{}{path}", lb.admin.unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        // Its one script runs by its hash: no other inline script could.
        assert!(csp.contains("script-src 'sha256-"), "{csp}");
        assert!(!csp.contains("script-src 'unsafe-inline'"), "{csp}");
        let page = r.text().await.unwrap();
        assert!(page.len() < 32 * 1024, "{} bytes", page.len());
        // Nothing is fetched from elsewhere: no CDN, no font service.
        for outside in ["http://", "https://", "//cdn", " src=\""] {
            assert!(!page.contains(outside), "the page refers to {outside}");
        }
    }
    // Reading is open, acting needs the token: a POST to the page is not a
    // way around it.
    let r = client()
        .post(format!("http://{}/", lb.admin.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_is_each_second_of_traffic_and_what_the_operator_did() {
    let origin = TestOrigin::start().await;
    let (lb, _dir) = start(&origin).await;
    let _traffic = Traffic::start(&lb);

    let d = data_until(&lb, "traffic in a point", |d| {
        d["points"].as_array().unwrap().iter().any(|p| {
            p["offered"].as_f64().unwrap() > 5.0 && p["downloads_ok"].as_f64() == Some(1.0)
        })
    })
    .await;
    let points = d["points"].as_array().unwrap();
    let busy = points
        .iter()
        .rev()
        .find(|p| p["offered"].as_f64().unwrap() > 5.0)
        .unwrap();
    // The three loops send at the same pace: downloads are about a third
    // of what was offered, every one answered; the 404s are proxied too.
    let (offered, downloads) = (
        busy["offered"].as_f64().unwrap(),
        busy["downloads"].as_f64().unwrap(),
    );
    assert!(
        downloads > offered / 6.0 && downloads < offered * 0.6,
        "{busy}"
    );
    assert!(busy["proxied"].as_f64().unwrap() >= offered * 0.9, "{busy}");
    assert!(busy["downloads_p99_ms"].as_f64().unwrap() > 0.0, "{busy}");
    assert_eq!(busy["mode"], "normal");
    assert!(busy["limit"].as_u64().unwrap() >= 2, "{busy}");
    assert_eq!(d["status"]["mode"], "normal");
    assert_eq!(d["token_required"], true);

    // `after` hands out only the seconds not seen yet.
    let last = points.last().unwrap()["t"].as_u64().unwrap();
    let newer = data(&lb, last).await;
    assert!(
        newer["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["t"].as_u64().unwrap() > last),
        "{newer}"
    );

    // An override is a mark, in the operator's words, and the seconds
    // after it are degraded and overridden, with apologies by reason.
    let r = client()
        .post(format!("http://{}/mode", lb.admin.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .json(&serde_json::json!({ "mode": "degraded", "ttl": "5m", "reason": "drill" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    data_until(&lb, "a degraded second with apologies", |d| {
        d["points"].as_array().unwrap().iter().any(|p| {
            p["mode"] == "degraded"
                && p["overridden"] == true
                && p["shed"]["degraded"].as_f64() > Some(0.0)
        })
    })
    .await;
    // A reload is a mark too.
    let r = client()
        .post(format!("http://{}/reload", lb.admin.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d = data_until(&lb, "a reload mark", |d| {
        d["marks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "reload")
    })
    .await;
    let marks: Vec<&str> = d["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(
        marks.contains(&"override degraded for 5m: drill"),
        "{marks:?}"
    );
    assert!(
        marks.iter().any(|m| m.starts_with("normal → degraded")),
        "{marks:?}"
    );
    assert!(marks.contains(&"config generation 2 (admin)"), "{marks:?}");
}

/// The share of a canvas's pixels that something was drawn on.
const INKED: &str = "((id) => { const c = document.getElementById(id); \
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; \
  return n / (c.width * c.height); })";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_charts_draw_and_move_and_the_buttons_act() {
    // A browser is heavy on two cores: not beside the timing-sensitive
    // stampede tests.
    let _heavy = crate::support::heavy().await;
    let origin = TestOrigin::start().await;
    let (lb, _dir) = start(&origin).await;
    let Some(mut browser) = Browser::launch(1280, 1500).await else {
        return;
    };
    let _traffic = Traffic::start(&lb);
    let admin = lb.admin.unwrap();
    browser.open(&format!("http://{admin}/")).await;

    // It polls: the update counter climbs and the newest second moves on.
    browser
        .wait_for(
            "Number(document.body.dataset.updates) >= 2",
            Duration::from_secs(10),
        )
        .await;
    let first = browser.eval("window.lifeboat.last").await.as_u64().unwrap();
    browser
        .wait_for(
            &format!("window.lifeboat.last > {first}"),
            Duration::from_secs(10),
        )
        .await;

    // The charts draw the traffic: lines with points, ink on the canvas,
    // the legend's numbers those of the traffic.
    let offered = browser
        .wait_for(
            "(() => { const v = parseFloat(document.querySelector('#l-requests [data-series=offered] b').textContent); \
             return v > 5 ? v : 0; })()",
            Duration::from_secs(10),
        )
        .await;
    assert!(offered.as_f64().unwrap() < 1_000.0, "{offered}");
    for chart in ["requests", "downloads", "dlttfb", "origin", "latency"] {
        let drawn = browser
            .eval(&format!(
                "Number(document.getElementById('c-{chart}').dataset.drawn)"
            ))
            .await;
        assert!(drawn.as_u64().unwrap() >= 2, "{chart}: {drawn}");
        let ink = browser.eval(&format!("{INKED}('c-{chart}')")).await;
        assert!(ink.as_f64().unwrap() > 0.01, "{chart} is blank: {ink}");
    }
    assert_eq!(
        browser
            .eval("document.querySelector('#l-downloads [data-series=downloads-ok] b').textContent")
            .await,
        "100 %"
    );
    // Transfers to visitors are drawn apart from requests at the origin,
    // with what is spooled to disk.
    assert_eq!(
        browser
            .eval(
                "[...document.querySelectorAll('#l-transfers [data-series]')].map(e => e.dataset.series).join(',')"
            )
            .await,
        "transfers,reading,spooled"
    );
    // Alone, there is no fleet to draw.
    assert_eq!(
        browser
            .eval("document.getElementById('fleet').hidden")
            .await,
        true
    );
    // And they move: the requests chart is not the same picture a few
    // seconds later.
    let before = browser
        .eval("document.getElementById('c-requests').toDataURL()")
        .await;
    let at = browser.eval("window.lifeboat.last").await.as_u64().unwrap();
    browser
        .wait_for(
            &format!("window.lifeboat.last >= {at} + 2000"),
            Duration::from_secs(10),
        )
        .await;
    let after = browser
        .eval("document.getElementById('c-requests').toDataURL()")
        .await;
    assert_ne!(before, after, "the chart did not change");

    // Without the right token, the button is refused and nothing changes.
    browser
        .eval("document.getElementById('token').value = 'guess'")
        .await;
    browser
        .eval("document.getElementById('clear').click()")
        .await;
    let refused = browser
        .wait_for(
            "document.getElementById('result').className === 'err' && document.getElementById('result').textContent",
            Duration::from_secs(5),
        )
        .await;
    assert!(refused.as_str().unwrap().contains("401"), "{refused}");
    assert!(lb.shared.override_mode().is_none());

    // With it, the boards are cleared with the TTL and reason given.
    browser
        .eval(&format!(
            "document.getElementById('token').value = '{TOKEN}'; \
             document.querySelector('#f-clear [name=ttl]').value = '10m'; \
             document.querySelector('#f-clear [name=reason]').value = 'drill from the dashboard'; \
             document.getElementById('clear').click()"
        ))
        .await;
    browser
        .wait_for(
            "document.getElementById('result').className === 'ok'",
            Duration::from_secs(5),
        )
        .await;
    let o = lb.shared.override_mode().expect("an override");
    assert_eq!(o.mode.as_str(), "degraded");
    assert_eq!(o.reason, "drill from the dashboard");
    let left = o.until.expect("a TTL") - tokio::time::Instant::now();
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    // The page shows it: the pill, the mark, and the mode strip turns red.
    browser
        .wait_for(
            "document.getElementById('mode').textContent === 'degraded'",
            Duration::from_secs(5),
        )
        .await;
    browser
        .wait_for(
            "[...document.querySelectorAll('#marks li')].some(li => li.textContent.includes('drill from the dashboard'))",
            Duration::from_secs(5),
        )
        .await;
    browser
        .wait_for(
            "(() => { const p = window.lifeboat.points.at(-1); return p.mode === 'degraded' && p.overridden; })()",
            Duration::from_secs(5),
        )
        .await;
    // The middle of the newest second's band on the strip (the page's own
    // geometry: 44 px of axis on the left, 6 on the right).
    let newest = browser
        .eval(
            "(() => { const s = window.lifeboat, c = document.getElementById('c-mode'), p = s.points.at(-1); \
             const x = 44 + (c.width - 50) * (1 - (s.now - p.t + 500) / s.span); \
             const d = c.getContext('2d').getImageData(Math.round(x), 4, 1, 1).data; return [d[0], d[1], d[2]]; })()",
        )
        .await;
    let rgb: Vec<u64> = newest
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        rgb[0] > 150 && rgb[1] < 120,
        "the newest second is not drawn degraded: {rgb:?}"
    );

    // The message reaches the visitors' apology.
    browser
        .eval(
            "document.querySelector('#f-message [name=text]').value = 'Mirrors are being added.'; \
             document.querySelector('#f-message [name=stage]').value = 'identified'; \
             document.getElementById('post').click()",
        )
        .await;
    browser
        .wait_for(
            "document.getElementById('message').textContent === 'Mirrors are being added.'",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(lb.shared.message(), "Mirrors are being added.");
    let apology = client().get(lb.url("/delay/1")).send().await.unwrap();
    assert_eq!(apology.status(), 503);
    assert!(
        apology
            .text()
            .await
            .unwrap()
            .contains("Mirrors are being added.")
    );

    // Back to auto lifts the override.
    browser
        .eval("document.getElementById('auto').click()")
        .await;
    browser
        .wait_for(
            "document.getElementById('result').textContent === 'Back to automatic.'",
            Duration::from_secs(5),
        )
        .await;
    assert!(lb.shared.override_mode().is_none());
    browser
        .wait_for(
            "document.getElementById('override').textContent === 'automatic'",
            Duration::from_secs(5),
        )
        .await;

    let png = browser.screenshot(false).await;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

#[tokio::test]
async fn another_sites_page_may_not_act_and_a_ttl_is_at_most_a_year() {
    let origin = TestOrigin::start().await;
    let (lb, _dir) = start(&origin).await;
    let admin = lb.admin.unwrap();
    let post = |origin_header: Option<String>, body: serde_json::Value| {
        let mut r = client()
            .post(format!("http://{admin}/mode"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .json(&body);
        if let Some(o) = origin_header {
            r = r.header("origin", o);
        }
        async move { r.send().await.unwrap().status() }
    };
    let degraded = serde_json::json!({ "mode": "degraded", "ttl": "1m" });
    // A page elsewhere, even with the token in hand (the browser adds its
    // Origin): refused, nothing changes.
    assert_eq!(
        post(Some("http://evil.example".into()), degraded.clone()).await,
        403
    );
    assert!(lb.shared.override_mode().is_none());
    // The dashboard itself (same origin) and curl (no Origin) may.
    assert_eq!(
        post(Some(format!("http://{admin}")), degraded.clone()).await,
        200
    );
    assert_eq!(post(None, serde_json::json!({ "mode": "auto" })).await, 200);
    // A TTL of years is a typo.
    let years = serde_json::json!({ "mode": "degraded", "ttl": "300years" });
    assert_eq!(post(None, years).await, 400);
    assert!(lb.shared.override_mode().is_none());
}
