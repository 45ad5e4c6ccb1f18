//! Tests of `report`: episodes and their Markdown.
use super::*;

fn at(ms: u64, event: Event) -> Record {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000) + Duration::from_millis(ms);
    Record {
        at: humantime::format_rfc3339_millis(t).to_string(),
        instance: None,
        event,
    }
}

fn changed(from: &str, to: &str, cause: &str) -> Event {
    Event::ModeChanged {
        from: from.into(),
        to: to.into(),
        cause: cause.into(),
        inflight: 3,
        ttfb_p95_ms: None,
        failure_rate: None,
        queue_wait_p95_ms: None,
        origin_limit: Some(5),
    }
}

#[test]
fn the_operators_words_lead_into_the_episode_they_opened() {
    let records = vec![
        at(
            0,
            Event::Message {
                text: "an old note".into(),
                stage: None,
                signed: None,
            },
        ),
        at(
            120_000,
            Event::Message {
                text: "Mirrors at 20:00".into(),
                stage: None,
                signed: None,
            },
        ),
        at(
            120_004,
            Event::OverrideSet {
                mode: "degraded".into(),
                ttl: Some("30m".into()),
                reason: "drill".into(),
            },
        ),
        at(120_009, changed("normal", "degraded", "operator override")),
        at(
            125_000,
            Event::OverrideSet {
                mode: "auto".into(),
                ttl: None,
                reason: "drill over".into(),
            },
        ),
        at(125_001, changed("degraded", "normal", "operator override")),
    ];
    let eps = episodes(&records, None);
    assert_eq!(eps.len(), 1);
    let ep = &eps[0];
    assert_eq!(ep.trigger, "operator override: drill");
    assert_eq!(ep.message.as_deref(), Some("Mirrors at 20:00"));
    let actions = ep.operator_actions.join("\n");
    assert!(
        actions.contains("operator message: \"Mirrors at 20:00\""),
        "{actions}"
    );
    assert!(
        actions.contains("operator forced mode degraded for 30m: drill"),
        "{actions}"
    );
    assert!(actions.contains("drill over"), "{actions}");
    assert!(
        !actions.contains("an old note"),
        "two minutes before is not a lead-in: {actions}"
    );
    let md = markdown(&eps);
    assert!(
        md.contains("| Trigger | operator override: drill |"),
        "{md}"
    );
    assert!(
        md.contains("| Message to visitors | \"Mirrors at 20:00\" |"),
        "{md}"
    );
    assert!(
        md.contains("| Origin limit (requests at once) | 5 |"),
        "{md}"
    );
}

fn on(id: &str, ms: u64, event: Event) -> Record {
    Record {
        instance: Some(id.to_string()),
        ..at(ms, event)
    }
}

fn counters(mode: &str, primary: u64, shed: u64) -> Event {
    Event::Counters {
        mode: mode.into(),
        seconds: 2.0,
        primary_served: primary,
        keep_served: 0,
        normal_served: 10,
        shed: BTreeMap::from([("degraded".to_string(), shed)]),
        peak_inflight: 4,
        ttfb_p95_ms: Some(40),
        origin_limit: Some(6),
        would_shed: BTreeMap::new(),
    }
}

#[test]
fn a_fleet_is_one_episode_from_the_first_degrade_to_the_last_recovery() {
    let forced = || Event::OverrideSet {
        mode: "degraded".into(),
        ttl: Some("10m".into()),
        reason: "launch".into(),
    };
    let records = vec![
        on("a", 0, forced()),
        on("b", 40, forced()),
        on("a", 50, changed("normal", "degraded", "operator override")),
        on("b", 90, changed("normal", "degraded", "operator override")),
        on(
            "a",
            5_000,
            changed("degraded", "normal", "operator override lifted"),
        ),
        on("a", 5_010, counters("normal", 100, 900)),
        on(
            "b",
            9_000,
            changed("degraded", "recovering", "signals below"),
        ),
        on(
            "b",
            14_000,
            changed("recovering", "normal", "ramp of 5s completed"),
        ),
        on("b", 14_010, counters("normal", 50, 300)),
    ];
    let eps = episodes(&records, None);
    assert_eq!(eps.len(), 1, "{eps:#?}");
    let ep = &eps[0];
    assert_eq!(ep.start, records[2].at);
    assert_eq!(ep.end.as_deref(), Some(records[7].at.as_str()));
    assert_eq!(ep.trigger, "operator override: launch");
    assert_eq!(ep.primary_served, 150);
    // The override both instances applied is one operator action.
    assert_eq!(ep.operator_actions.len(), 1, "{:?}", ep.operator_actions);
    assert!(ep.operator_actions[0].contains("[a] operator forced mode degraded for 10m: launch"));
    let a = &ep.instances["a"];
    assert_eq!(a.cleared.as_deref(), Some(records[2].at.as_str()));
    assert_eq!(a.back.as_deref(), Some(records[4].at.as_str()));
    assert_eq!((a.primary_served, a.shed), (100, 900));
    assert_eq!(
        ep.instances["b"].back.as_deref(),
        Some(records[7].at.as_str())
    );
    let md = markdown(&eps);
    assert!(md.contains("### Instances"), "{md}");
    assert!(
        md.contains(&format!(
            "| a | {} | {} | 100 | 900 |",
            records[2].at, records[4].at
        )),
        "{md}"
    );
    assert!(md.contains("— [b] mode recovering → normal"), "{md}");
}

#[test]
fn an_instance_that_stops_while_degraded_does_not_hold_the_episode_open() {
    let records = vec![
        on("a", 0, changed("normal", "degraded", "queue wait")),
        on("b", 10, changed("normal", "degraded", "queue wait")),
        // a is killed mid-incident (a rolling deploy): it never recovers.
        on("a", 2_000, Event::Stopped),
        on(
            "b",
            9_000,
            changed("degraded", "normal", "ramp of 5s completed"),
        ),
        on("b", 20_000, changed("normal", "degraded", "queue wait")),
    ];
    let eps = episodes(&records, None);
    assert_eq!(eps.len(), 2, "{eps:#?}");
    assert_eq!(eps[0].end.as_deref(), Some(records[3].at.as_str()));
    assert_eq!(eps[1].start, records[4].at);
}

#[test]
fn an_action_posted_again_later_is_a_new_action() {
    let message = |text: &str| Event::Message {
        text: text.into(),
        stage: None,
        signed: None,
    };
    let records = vec![
        on("a", 0, changed("normal", "degraded", "queue wait")),
        on("a", 1_000, message("Mirrors coming.")),
        on("b", 1_050, message("Mirrors coming.")),
        on("a", 60_000, message("Mirrors coming.")),
    ];
    let eps = episodes(&records, None);
    assert_eq!(
        eps[0].operator_actions.len(),
        2,
        "{:?}",
        eps[0].operator_actions
    );
}
