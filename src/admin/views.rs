//! What the admin listener's reads answer: the mode and the origin's limit
//! (`GET /mode`), the fleet (`GET /fleet`), the live page and its data
//! (`GET /`, `GET /dashboard/data`).

use http::{StatusCode, header};
use serde_json::json;

use super::{Resp, reply};
use crate::runtime::Shared;

/// The live page. It may not be framed (its buttons must not be clicked
/// through someone else's page) and may fetch only from this listener.
pub(super) fn dashboard_page() -> Resp {
    let mut r = reply(
        StatusCode::OK,
        "text/html; charset=utf-8",
        crate::dashboard::PAGE,
    );
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(crate::dashboard::csp()),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    r
}

/// What the live page polls for: the points after `after=<ms>` (all of
/// the window without it), the window's marks, and `/mode`'s answer.
pub(super) fn dashboard_data(shared: &Shared, query: &str) -> serde_json::Value {
    use crate::dashboard::{WINDOW, marks, unix_ms};
    let after = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("after="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let now = std::time::SystemTime::now();
    let from = now
        .checked_sub(std::time::Duration::from_secs(WINDOW as u64))
        .unwrap_or(std::time::UNIX_EPOCH);
    json!({
        "now": unix_ms(now),
        "window_s": WINDOW,
        "status": mode_json(shared),
        "message": shared.message(),
        "token_required": shared.runtime().config.admin.token.is_some(),
        "points": shared.live.after(after),
        "marks": marks(&shared.events.history.since(from)),
    })
}

/// `GET /fleet`: the fleet as the heartbeats tell it. Without `[fleet]`,
/// a fleet of this one instance.
pub fn fleet_json(shared: &Shared) -> serde_json::Value {
    let Some(link) = &shared.fleet else {
        let me = crate::control::member(shared, "this instance");
        return json!({
            "configured": false,
            "connected": false,
            "fleet": crate::fleet::summary(std::slice::from_ref(&me)),
            "instances": [me],
        });
    };
    let mut members = link.members();
    if members.is_empty() {
        // Redis unreachable: this instance is all it knows of.
        members.push(crate::control::member(shared, &link.instance));
    }
    json!({
        "configured": true,
        "instance": link.instance,
        "connected": link.connected(),
        "fleet": crate::fleet::summary(&members),
        "instances": members,
    })
}

pub(super) fn mode_json(shared: &Shared) -> serde_json::Value {
    let rt = shared.runtime();
    let view = shared.admission.view();
    let s = shared.admission.signals(rt.config.shedding.min_samples);
    let o = shared.override_mode();
    json!({
        "mode": view.mode.as_str(),
        "since": humantime::format_rfc3339_seconds(shared.admission.since()).to_string(),
        "admit_fraction": view.admit_fraction,
        "configured": format!("{:?}", rt.config.shedding.mode).to_lowercase(),
        "override": o.map(|o| json!({
            "mode": o.mode.as_str(),
            "reason": o.reason,
            "expires_in_s": o.until.map(|u| u.saturating_duration_since(tokio::time::Instant::now()).as_secs()),
        })),
        "signals": {
            "inflight": s.inflight,
            "ttfb_p95_ms": s.ttfb_p95.map(|d| d.as_millis() as u64),
            "failure_rate": s.failure_rate,
            "queue_wait_p95_ms": s.queue_wait_p95.map(|d| d.as_millis() as u64),
            "samples": s.samples,
        },
        "origin": capacity_json(shared),
        "transfers": transfers_json(shared, &rt),
        "servers": rt.upstream.pool.report(),
        "dry_run": rt.config.shedding.dry_run,
        "generation": shared.generation(),
    })
}

/// The origin's limit, learned or pinned, as `GET /mode` shows it.
fn capacity_json(shared: &Shared) -> serde_json::Value {
    let c = shared.admission.capacity();
    let o = &shared.admission.origin;
    json!({
        "limit": c.limit,
        "learned": c.learned,
        "applied": c.applied,
        "reserved_for_primary": c.reserved,
        "inflight": o.inflight(),
        "queued": o.queued(),
        "congestion": c.ratio.map(|r| (r * 100.0).round() / 100.0),
        "baseline_ttfb_ms": c.baseline.map(|d| (d.as_secs_f64() * 10_000.0).round() / 10.0),
        // Never measured (every slot held by a long transfer since start):
        // unknown, not zero.
        "drain_per_s": (c.drain_per_s > 0.0).then(|| c.drain_per_s.round()),
    })
}

/// Responses on their way to visitors, apart from the requests the origin
/// works on: those read ahead through the spool, and the origin's own
/// count of answers still sending their body.
fn transfers_json(shared: &Shared, rt: &crate::runtime::Runtime) -> serde_json::Value {
    let u = shared.spool.usage();
    let streaming: usize = rt
        .upstream
        .pool
        .servers()
        .iter()
        .map(|s| s.streaming())
        .sum();
    json!({
        "in_progress": u.transfers,
        "origin_sending": u.reading,
        "at_origin_streaming": streaming,
        "spooled_bytes": u.bytes,
        "spilled_bytes_total": u.spilled,
        "backpressured_total": u.backpressured,
        "spool_errors_total": u.errors,
    })
}
