//! Unit tests of the status page, included from `status.rs` under
//! `#[cfg(test)]`: built from made-up journal records.

use std::time::{Duration, SystemTime};

use super::*;
use crate::story::{Event, Record};

const T0: u64 = 1_790_000_000;

fn at(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + s)
}

fn rec(s: u64, event: Event) -> Record {
    Record {
        at: humantime::format_rfc3339_millis(at(s)).to_string(),
        instance: None,
        event,
    }
}

fn changed(from: &str, to: &str, cause: &str) -> Event {
    Event::ModeChanged {
        from: from.into(),
        to: to.into(),
        cause: cause.into(),
        inflight: 10,
        ttfb_p95_ms: None,
        failure_rate: None,
        queue_wait_p95_ms: None,
        origin_limit: Some(6),
    }
}

fn update(text: &str, stage: &str) -> Event {
    Event::Message {
        text: text.into(),
        stage: Some(stage.into()),
        signed: Some("Ada, release team".into()),
    }
}

fn episode() -> Vec<Record> {
    vec![
        rec(
            0,
            changed("normal", "degraded", "queue wait p95 1s >= 200ms for 2s"),
        ),
        rec(60, update("We are looking into it.", "investigating")),
        rec(300, update("Mirrors are being added.", "identified")),
        rec(
            600,
            Event::Counters {
                mode: "degraded".into(),
                seconds: 600.0,
                primary_served: 990,
                keep_served: 0,
                normal_served: 5000,
                shed: [
                    ("degraded".to_string(), 40_000),
                    ("primary-busy".to_string(), 10),
                ]
                .into_iter()
                .collect(),
                peak_inflight: 40,
                ttfb_p95_ms: Some(30),
                origin_limit: Some(6),
                would_shed: Default::default(),
            },
        ),
    ]
}

fn build(mode: &str, since: u64, records: &[Record], now: u64) -> Status {
    Status::build(Inputs {
        mode,
        since: at(since),
        message: None,
        numbers: Numbers {
            primary_success_rate: Some(1.0),
            ..Numbers::default()
        },
        records,
        signed: "Ada, release team",
        now: at(now),
        summary_for: SUMMARY_FOR,
    })
}

#[test]
fn during_an_episode_the_answer_comes_first_with_the_updates_newest_first() {
    let s = build("degraded", 0, &episode(), 720);
    assert_eq!(
        s.headline,
        "It's not you: the site has been under heavy load since 14:13 UTC (12 minutes). Downloads are working."
    );
    let texts: Vec<&str> = s.updates.iter().map(|u| u.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Mirrors are being added.", "We are looking into it."]
    );
    assert_eq!(s.updates[0].stage.as_deref(), Some("identified"));
    assert_eq!(s.updates[0].signed.as_deref(), Some("Ada, release team"));
    assert_eq!(s.status.indicator, "major");
    assert_eq!(s.incidents.len(), 1);
    assert_eq!(s.incidents[0].status, "identified");
    assert_eq!(s.incidents[0].incident_updates.len(), 2);
    assert!(s.summary.is_none());
    assert!(
        s.timeline
            .iter()
            .any(|m| m.what.contains("normal → degraded"))
    );
    // The current half hour shows the heavy load, with the downloads served.
    let last = s.history.last().unwrap();
    assert_eq!(last.state, "degraded");
    assert_eq!(last.downloads_served, Some(0.99));
    let html = String::from_utf8(s.render().html.to_vec()).unwrap();
    assert!(html.contains("<html lang=\"en\">"));
    assert!(
        html.contains("It&#39;s not you") || html.contains("It's not you"),
        "{html}"
    );
    let newest = html.find("Mirrors are being added.").unwrap();
    let oldest = html.find("We are looking into it.").unwrap();
    assert!(newest < oldest, "newest first");
    assert!(html.contains("<time datetime="));
    assert!(html.contains("--accent"), "the apology page's stylesheet");
}

#[test]
fn after_recovery_a_signed_summary_stays_and_the_incident_is_resolved() {
    let mut records = episode();
    records.push(rec(
        900,
        changed("degraded", "recovering", "all signals calm"),
    ));
    records.push(rec(
        910,
        update("Back to normal. Thank you for your patience.", "resolved"),
    ));
    records.push(rec(1200, changed("recovering", "normal", "ramp completed")));
    let s = build("normal", 1200, &records, 1500);
    assert!(
        s.headline
            .starts_with("Everything is working normally again since 14:33 UTC."),
        "{}",
        s.headline
    );
    assert!(
        s.headline.contains("heavy load for 20 minutes"),
        "{}",
        s.headline
    );
    let sum = s.summary.as_ref().unwrap();
    assert_eq!((sum.downloads_served, sum.turned_away), (990, 40_010));
    assert_eq!(s.status.indicator, "none");
    assert_eq!(s.incidents[0].status, "resolved");
    assert!(s.incidents[0].resolved_at.is_some());
    let html = String::from_utf8(s.render().html.to_vec()).unwrap();
    assert!(html.contains("What happened"), "{html}");
    assert!(html.contains("back to normal"), "{html}");
    // A day later, the page is quiet again.
    let later = build("normal", 1200, &records, 1200 + 25 * 3600);
    assert!(later.summary.is_none() && later.incidents.is_empty());
    assert!(
        later
            .headline
            .starts_with("Everything is working normally.")
    );
}

#[test]
fn a_quiet_day_has_green_bars_and_no_incident() {
    let s = build("normal", 0, &[], 3600);
    assert_eq!(s.history.len(), 48);
    assert!(s.history.iter().all(|b| b.state == "normal"));
    assert!(s.updates.is_empty() && s.incidents.is_empty());
    assert_eq!(s.status.description, "All systems operational");
}
