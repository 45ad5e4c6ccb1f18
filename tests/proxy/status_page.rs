//! The public status page a visitor can trust: the answer first, the
//! operators' updates with their stages and signatures (newest first), the
//! episode's timeline, the last day's history, what happened once it is
//! over; the same in JSON with a Statuspage-compatible subset; all of it
//! kept across a restart, because it is in the journal.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Running, TestOrigin, admin_post, client, lifeboat};

const STATUS: &str = "/.well-known/lifeboat/status";

async fn html(lb: &Running) -> String {
    client()
        .get(lb.url(STATUS))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn json_status(lb: &Running) -> Value {
    client()
        .get(lb.url(STATUS))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the JSON until `ok` holds (the page is rendered once a second).
async fn until(lb: &Running, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = json_status(lb).await;
        if ok(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start(origin: &TestOrigin, journal: &std::path::Path) -> crate::support::Harness {
    lifeboat(origin)
        .set("journal.path", &format!("{journal:?}"))
        .set("shedding.tick", "\"20ms\"")
        .set("apology.signed", "\"Ada, for the release team\"")
        .route("downloads", "match", "/bytes/*", "primary")
}

#[tokio::test]
async fn the_status_page_during_and_after_an_episode() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let lb = start(&origin, &dir.path().join("journal.jsonl"))
        .start()
        .await;
    admin_post(&lb, "/mode", json!({"mode": "degraded", "reason": "drill"})).await;
    admin_post(
        &lb,
        "/message",
        json!({"text": "We are looking into it.", "stage": "investigating"}),
    )
    .await;
    admin_post(
        &lb,
        "/message",
        json!({"text": "Mirrors are being added.", "stage": "identified", "signed": "Louis, ops"}),
    )
    .await;
    // A stage that is not one of Statuspage's is refused, clearly.
    let r = client()
        .post(lb.admin_url("/message"))
        .json(&json!({"text": "x", "stage": "panicking"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("investigating, identified, monitoring, resolved")
    );

    let v = until(&lb, "two updates", |v| {
        v["updates"].as_array().is_some_and(|u| u.len() == 2)
    })
    .await;
    assert_eq!(v["mode"], "degraded");
    let headline = v["headline"].as_str().unwrap();
    assert!(
        headline.starts_with("It's not you: the site has been under heavy load since "),
        "{headline}"
    );
    assert!(headline.ends_with("Downloads are working."), "{headline}");
    assert_eq!(
        v["updates"][0]["text"], "Mirrors are being added.",
        "newest first"
    );
    assert_eq!(v["updates"][0]["stage"], "identified");
    assert_eq!(v["updates"][0]["signed"], "Louis, ops");
    assert_eq!(
        v["updates"][1]["signed"], "Ada, for the release team",
        "signed by default"
    );
    assert_eq!(v["status"]["indicator"], "major");
    assert_eq!(v["incidents"][0]["status"], "identified");
    assert_eq!(
        v["incidents"][0]["incident_updates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["what"].as_str().unwrap().contains("operator"))
    );
    assert_eq!(v["history"].as_array().unwrap().len(), 48);
    assert_eq!(v["history"][47]["state"], "degraded");

    let page = html(&lb).await;
    assert!(page.contains("<html lang=\"en\">") && page.contains("<main>"));
    assert!(
        page.contains("<h1>It&#39;s not you") || page.contains("<h1>It's not you"),
        "{page}"
    );
    let (newest, oldest) = (
        page.find("Mirrors are being added.").unwrap(),
        page.find("We are looking into it.").unwrap(),
    );
    assert!(newest < oldest, "updates newest first");
    assert!(page.contains("Louis, ops"));
    assert!(page.contains("<time datetime="));
    assert!(page.contains("aria-labelledby=\"updates\""));

    // Over: a resolved update and back to normal.
    admin_post(
        &lb,
        "/message",
        json!({"text": "All clear, thank you.", "stage": "resolved"}),
    )
    .await;
    admin_post(
        &lb,
        "/mode",
        json!({"mode": "normal", "reason": "drill over"}),
    )
    .await;
    let v = until(&lb, "the summary", |v| !v["summary"].is_null()).await;
    assert_eq!(v["status"]["indicator"], "none");
    assert_eq!(v["incidents"][0]["status"], "resolved");
    assert!(
        v["headline"]
            .as_str()
            .unwrap()
            .starts_with("Everything is working normally again since "),
        "{v:#}"
    );
    let page = html(&lb).await;
    assert!(page.contains("What happened"), "{page}");
    assert!(page.contains("drill over"), "what was done: {page}");
}

#[tokio::test]
async fn updates_and_history_survive_a_restart() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let lb = start(&origin, &journal).start().await;
    admin_post(&lb, "/mode", json!({"mode": "degraded", "reason": "drill"})).await;
    admin_post(
        &lb,
        "/message",
        json!({"text": "Back in a moment.", "stage": "monitoring"}),
    )
    .await;
    until(&lb, "the update", |v| {
        v["updates"][0]["text"] == "Back in a moment."
    })
    .await;
    assert!(lb.drained().await, "a clean shutdown writes the journal");

    let again = start(&origin, &journal).start().await;
    let v = json_status(&again).await;
    assert_eq!(v["updates"][0]["text"], "Back in a moment.", "{v:#}");
    assert_eq!(v["updates"][0]["stage"], "monitoring");
    assert_eq!(v["history"][47]["state"], "degraded", "{v:#}");
}
