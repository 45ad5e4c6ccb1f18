//! The story: a journal written during a forced episode, the `story` report
//! of a checked-in journal, webhooks (delivered, and a dead target that
//! slows nothing), and a journal that cannot be written.

use std::time::Duration;

use ::lifeboat::story::{Event, journal, report};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::process::bin;
use crate::support::{Running, TestOrigin, client, lifeboat, status_of, wait_until};

async fn set_mode(lb: &Running, mode: &str) {
    let r = client()
        .post(format!("http://{}/mode", lb.admin.unwrap()))
        .json(&json!({"mode": mode, "reason": "rehearsal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_forced_episode_is_journaled_and_told() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/journal.jsonl");
    let mut lb = lifeboat(&origin)
        .set("journal.path", &format!("{:?}", path))
        .set("journal.counters_every", "\"1s\"")
        .set("shedding.mode", "\"normal\"")
        .set("shedding.tick", "\"20ms\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    set_mode(&lb, "degraded").await;
    for _ in 0..5 {
        assert_eq!(status_of(lb.url("/news")).await, 503);
    }
    for _ in 0..2 {
        assert_eq!(status_of(lb.url("/bytes/100")).await, 200);
    }
    let r = client()
        .post(format!("http://{}/message", lb.admin.unwrap()))
        .json(&json!({"text": "mirrors coming"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let has = |kind: &str| {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains(&format!("\"event\":\"{kind}\"")))
    };
    wait_until("periodic counters", || has("counters")).await;
    set_mode(&lb, "auto").await;
    lb.begin_shutdown();
    assert!(lb.drained().await);

    let records = journal::read(&path).unwrap();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| match &r.event {
            Event::Started { .. } => "started",
            Event::Stopped => "stopped",
            Event::ModeChanged { .. } => "mode_changed",
            Event::OverrideSet { .. } => "override_set",
            Event::OverrideExpired { .. } => "override_expired",
            Event::Message { .. } => "message",
            Event::ReloadAccepted { .. } => "reload_accepted",
            Event::ReloadRejected { .. } => "reload_rejected",
            Event::Counters { .. } => "counters",
        })
        .collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"stopped"), "{kinds:?}");
    for kind in ["override_set", "mode_changed", "message", "counters"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let Event::ModeChanged {
        from, to, cause, ..
    } = &records
        .iter()
        .find(|r| matches!(r.event, Event::ModeChanged { .. }))
        .unwrap()
        .event
    else {
        unreachable!()
    };
    assert_eq!((from.as_str(), to.as_str()), ("normal", "degraded"));
    assert!(cause.contains("operator override"), "{cause}");
    let episodes = report::episodes(&records, None);
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0].shed.get("degraded"), Some(&5));
    assert_eq!(episodes[0].primary_served, 2);
}

#[test]
fn story_renders_the_fixture_journal() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let out = std::process::Command::new(bin())
        .args(["story", &format!("{fixtures}/journal.jsonl")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read_to_string(format!("{fixtures}/story.md")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);

    let json = std::process::Command::new(bin())
        .args([
            "story",
            "--format",
            "json",
            "--since",
            "2026-10-14T00:00:00Z",
            &format!("{fixtures}/journal.jsonl"),
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["episodes"].as_array().unwrap().len(),
        0,
        "--since excludes the episode"
    );

    let missing = std::process::Command::new(bin())
        .args(["story", "/nonexistent.jsonl"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

/// A tiny webhook receiver: every POST body goes to the channel.
async fn receiver() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let _ = tx.send(serde_json::from_slice::<Value>(&body).unwrap());
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn webhooks_hear_mode_changes() {
    let origin = TestOrigin::start().await;
    let (addr, mut rx) = receiver().await;
    let text = format!(
        "{}[[webhook]]\nurl = \"http://{addr}/hook\"\n",
        lifeboat(&origin).set("shedding.mode", "\"normal\"").toml()
    );
    let config = ::lifeboat::config::from_str(&text, "t.toml", std::path::Path::new(".")).unwrap();
    let lb = crate::support::lifeboat::start_config(config).await;
    set_mode(&lb, "degraded").await;
    let mut events = Vec::new();
    while events.len() < 2 {
        let v = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("webhook delivered")
            .unwrap();
        events.push(v["event"].as_str().unwrap().to_string());
    }
    assert!(
        events.contains(&"mode_changed".to_string())
            && events.contains(&"override_set".to_string()),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_dead_webhook_slows_nothing() {
    let origin = TestOrigin::start().await;
    // A black hole: connections are accepted by the kernel, never answered.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let text = format!(
        "{}[[webhook]]\nurl = \"http://{}/hook\"\ntimeout = \"30s\"\nretries = 5\n",
        lifeboat(&origin).set("shedding.mode", "\"normal\"").toml(),
        hole.local_addr().unwrap()
    );
    let config = ::lifeboat::config::from_str(&text, "t.toml", std::path::Path::new(".")).unwrap();
    let lb = crate::support::lifeboat::start_config(config).await;
    // Each of these would wait on the hung webhook if delivery were inline.
    for mode in ["degraded", "normal", "degraded", "auto"] {
        tokio::time::timeout(Duration::from_secs(5), set_mode(&lb, mode))
            .await
            .expect("the admin API did not wait for the webhook");
    }
    for _ in 0..20 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            client().get(lb.url("/status/200")).send(),
        )
        .await;
        assert_eq!(
            r.expect("a request waited on the webhook")
                .unwrap()
                .status(),
            200
        );
    }
    drop(hole);
}

#[tokio::test]
async fn an_unwritable_or_full_journal_does_not_stop_the_show() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A directory (every open fails) and /dev/full (every write fails with
    // ENOSPC, as on a full disk).
    for path in [dir.path(), std::path::Path::new("/dev/full")] {
        let lb = lifeboat(&origin)
            .set("journal.path", &format!("{path:?}"))
            .set("shedding.tick", "\"20ms\"")
            .start()
            .await;
        let errors = || {
            let text = ::lifeboat::admin::metrics::render(&lb.shared);
            text.lines()
                .filter(|l| l.starts_with("lifeboat_journal_errors_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        let before = errors();
        set_mode(&lb, "degraded").await;
        assert_eq!(status_of(lb.url("/news")).await, 503, "{path:?}: shedding");
        set_mode(&lb, "normal").await;
        assert_eq!(status_of(lb.url("/status/200")).await, 200, "{path:?}");
        wait_until("journal errors counted", || errors() > before).await;
    }
}
