//! A real headless browser for the tests that look at a page the way a
//! person does: Debian's `chromium`, driven over the Chrome DevTools
//! Protocol (a WebSocket; JSON commands with ids, answers and events).
//!
//! Only what the tests need: open a page, evaluate a script in it (and
//! wait for a condition), take a screenshot. `.ci/run` installs chromium;
//! without it, and without `LIFEBOAT_REQUIRE_TOOLS`, [`Browser::launch`]
//! says the test was skipped and returns `None`.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A headless chromium with one page open.
pub struct Browser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _child: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromium with a fresh profile and a `width`×`height` window,
    /// and attaches to a blank page.
    pub async fn launch(width: u32, height: u32) -> Option<Browser> {
        let path = super::external::tool("chromium", "chromium")?;
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(path)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        // Chromium says where its DevTools endpoint is on stderr; the rest of
        // stderr is drained so it can never block on a full pipe.
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await
        .expect("chromium's DevTools endpoint within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (ws, _) = tokio_tungstenite::connect_async(&endpoint)
            .await
            .expect("connect to DevTools");
        let mut b = Browser {
            ws,
            session: String::new(),
            next_id: 0,
            _child: child,
            _profile: profile,
        };
        let target = b
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        Some(b)
    }

    /// Sends one command (to the page once attached) and returns its result;
    /// an error answer fails the test.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to DevTools");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let frame = self.ws.next().await.expect("DevTools open").expect("frame");
                let Message::Text(text) = frame else { continue };
                let v: Value = serde_json::from_str(&text).expect("DevTools JSON");
                if v["id"] == json!(id) {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"));
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(15),
        )
        .await;
    }

    /// Evaluates `script` in the page (awaiting a promise) and returns its
    /// value; a script that throws fails the test.
    pub async fn eval(&mut self, script: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": script, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            r.get("exceptionDetails").is_none(),
            "{script} threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Evaluates `condition` until it is truthy or `limit` passes (then the
    /// test fails, naming it).
    pub async fn wait_for(&mut self, condition: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let v = self.eval(condition).await;
            let truthy =
                !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still not true after {limit:?}: {condition}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of what the page shows (the whole page when `full`).
    pub async fn screenshot(&mut self, full: bool) -> Vec<u8> {
        use base64::Engine as _;
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": full }),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("image data"))
            .expect("base64")
    }
}
