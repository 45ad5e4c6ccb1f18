//! Tests of the line formats: the layout tracing-subscriber gave the
//! lines, escaping, stamps, the summary.

use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn at() -> Stamp {
    Clock::default().stamp(UNIX_EPOCH + Duration::from_micros(1_795_969_411_845_610))
}

fn sample(path: &str) -> Request<'_> {
    Request {
        method: &Method::GET,
        path,
        version: Version::HTTP_11,
        status: 503,
        bytes: 3037,
        duration_us: 45,
        peer: "127.0.0.1:57988".parse().unwrap(),
        class: Some(RouteClass::Normal),
        shed: Some(ShedReason::Degraded),
        end: End::Complete,
    }
}

fn text(r: &Request<'_>) -> String {
    let mut out = Vec::new();
    request(&mut out, LogFormat::Text, &at(), r);
    String::from_utf8(out).unwrap()
}

fn json(r: &Request<'_>) -> serde_json::Value {
    let mut out = Vec::new();
    request(&mut out, LogFormat::Json, &at(), r);
    assert_eq!(out.last(), Some(&b'\n'));
    assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn text_reads_as_tracing_wrote_it_with_integer_microseconds() {
    assert_eq!(
        text(&sample("/x")),
        "2026-11-29T16:23:31.845610Z  INFO lifeboat::access: method=GET path=\"/x\" \
         version=HTTP/1.1 status=503 bytes=3037 duration_us=45 peer=127.0.0.1:57988 \
         class=\"normal\" shed=\"degraded\" end=\"complete\"\n"
    );
}

#[test]
fn json_has_the_same_fields_and_the_target() {
    let v = json(&sample("/x"));
    assert_eq!(v["timestamp"], "2026-11-29T16:23:31.845610Z");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/x");
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["status"], 503);
    assert_eq!(v["bytes"], 3037);
    assert_eq!(v["duration_us"], 45);
    assert!(v["duration_us"].is_u64());
    assert_eq!(v["peer"], "127.0.0.1:57988");
    assert_eq!(v["class"], "normal");
    assert_eq!(v["shed"], "degraded");
    assert_eq!(v["end"], "complete");
    assert_eq!(v["target"], TARGET);
}

#[test]
fn no_value_can_break_a_line_or_a_quote() {
    let nasty = "/a\"b\\c\nd\u{1}é";
    let v = json(&sample(nasty));
    assert_eq!(v["path"], nasty);
    let t = text(&sample(nasty));
    assert!(t.contains(r#"path="/a\"b\\c\nd\u{1}é""#), "{t}");
    assert_eq!(t.matches('\n').count(), 1);
}

#[test]
fn optional_fields_are_left_out_and_failures_say_why() {
    let err = BodyError::Idle(Duration::from_secs(30));
    let r = Request {
        class: None,
        shed: None,
        end: End::Failed(&err),
        ..sample("/")
    };
    let v = json(&r);
    assert!(v.get("class").is_none() && v.get("shed").is_none());
    assert_eq!(v["end"], "body made no progress for 30s");
    assert!(text(&r).ends_with(" end=\"body made no progress for 30s\"\n"));
    let aborted = Request {
        end: End::Aborted,
        ..sample("/")
    };
    assert!(text(&aborted).ends_with(" end=\"aborted by client\"\n"));
}

#[test]
fn stamps_are_rfc3339_micros_as_humantime_writes_them() {
    let mut clock = Clock::default();
    let base = UNIX_EPOCH + Duration::from_secs(1_795_969_411);
    for us in [0, 7, 845_610, 999_999, 1_000_000, 86_400_000_001] {
        let at = base + Duration::from_micros(us);
        let want = humantime::format_rfc3339_micros(at).to_string();
        assert_eq!(std::str::from_utf8(&clock.stamp(at)).unwrap(), want);
    }
    let mut out = Vec::new();
    for n in [0, 7, 10, 1234, u64::MAX] {
        out.clear();
        decimal(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
    assert_eq!(version(Version::HTTP_2), format!("{:?}", Version::HTTP_2));
    assert_eq!(version(Version::HTTP_10), format!("{:?}", Version::HTTP_10));
}

#[test]
fn a_summary_counts_the_reason_by_class() {
    let s = ShedSummary {
        reason: ShedReason::Degraded,
        classes: [0, 1213, 39000],
        logged: 402,
    };
    let at = UNIX_EPOCH + Duration::from_secs(1_795_969_411);
    let mut out = Vec::new();
    summary(&mut out, LogFormat::Text, at, &s);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "2026-11-29T16:23:31.000000Z  INFO lifeboat::access: shed summary reason=\"degraded\" \
         count=40213 logged=402 classes=primary:0,keep:1213,normal:39000\n"
    );
    let mut out = Vec::new();
    summary(&mut out, LogFormat::Json, at, &s);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["message"], "shed summary");
    assert_eq!(v["reason"], "degraded");
    assert_eq!(v["count"], 40213);
    assert_eq!(v["logged"], 402);
    assert_eq!(v["classes"]["keep"], 1213);
    assert_eq!(v["classes"]["normal"], 39000);
    assert_eq!(v["target"], TARGET);
}
