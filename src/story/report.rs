//! `lifeboat story JOURNAL`: a journal turned into an incident report a
//! manager can read. One section per episode (from leaving `normal` to being
//! back), with start, end, duration, trigger, peaks, primary requests served
//! against requests shed (by reason), operator actions, and a timeline.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Event, Record};

/// One incident, from the first mode change away from normal to the return.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Episode {
    /// When the boards were cleared.
    pub start: String,
    /// When lifeboat was back to normal (`None`: still going at the end of the journal).
    pub end: Option<String>,
    /// Seconds from start to end.
    pub duration_s: Option<f64>,
    /// The condition that triggered it.
    pub trigger: String,
    /// Highest in-flight seen (mode changes and counters).
    pub peak_inflight: usize,
    /// Highest origin TTFB p95 seen, ms.
    pub peak_ttfb_p95_ms: Option<u64>,
    /// Primary requests answered by the origin.
    pub primary_served: u64,
    /// Requests given the apology, by reason.
    pub shed: BTreeMap<String, u64>,
    /// Pages (and other non-primary requests) the origin answered: what
    /// clearing the boards kept serving.
    pub others_served: u64,
    /// Dry run: requests that would have got the apology, by reason.
    pub would_shed: BTreeMap<String, u64>,
    /// The origin's limit (learned or pinned), lowest and highest recorded.
    pub origin_limit: Option<(usize, usize)>,
    /// The operator's message to visitors during the episode (the last one
    /// set before it ended), if any.
    pub message: Option<String>,
    /// Overrides, messages and reloads during the episode, and those set in
    /// the minute before it opened (they usually led into it).
    pub operator_actions: Vec<String>,
    /// Every event, in order, as `time — what`.
    pub timeline: Vec<String>,
    /// With a fleet: each instance's part in it, by instance id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub instances: BTreeMap<String, InstanceRow>,
}

/// One instance's part in a fleet's episode.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstanceRow {
    /// When it first left normal in the episode.
    pub cleared: Option<String>,
    /// When it was last back to normal.
    pub back: Option<String>,
    /// Downloads it served.
    pub primary_served: u64,
    /// Apologies it gave.
    pub shed: u64,
}

impl Episode {
    fn note_limit(&mut self, limit: Option<usize>) {
        if let Some(l) = limit {
            self.origin_limit = Some(
                self.origin_limit
                    .map_or((l, l), |(lo, hi)| (lo.min(l), hi.max(l))),
            );
        }
    }
}

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

fn describe(e: &Event) -> String {
    match e {
        Event::Started { version, .. } => format!("lifeboat {version} started"),
        Event::Stopped => "lifeboat stopped".into(),
        Event::ModeChanged {
            from, to, cause, ..
        } => format!("mode {from} → {to}: {cause}"),
        Event::OverrideSet { mode, ttl, reason } => {
            format!(
                "operator forced mode {mode}{}: {reason}",
                ttl.as_ref()
                    .map(|t| format!(" for {t}"))
                    .unwrap_or_default()
            )
        }
        Event::OverrideExpired { mode } => format!("override to {mode} expired"),
        Event::Message { text, .. } if text.is_empty() => "operator cleared the message".into(),
        Event::Message { text, stage, .. } => match stage {
            Some(stage) => format!("operator message ({stage}): \"{text}\""),
            None => format!("operator message: \"{text}\""),
        },
        Event::ReloadAccepted {
            generation,
            trigger,
        } => format!("config reloaded ({trigger}), generation {generation}"),
        Event::ReloadRejected { error, trigger } => format!(
            "config rejected ({trigger}): {}",
            error.lines().next().unwrap_or("")
        ),
        Event::Counters {
            primary_served,
            shed,
            would_shed,
            ..
        } if !would_shed.is_empty() => format!(
            "counters: {primary_served} downloads served, {} shed, {} would have been shed (dry run)",
            shed.values().sum::<u64>(),
            would_shed.values().sum::<u64>()
        ),
        Event::Counters {
            primary_served,
            shed,
            ..
        } => {
            format!(
                "counters: {primary_served} downloads served, {} shed",
                shed.values().sum::<u64>()
            )
        }
    }
}

/// An action line saying `what`, written within a few seconds before `at`:
/// the same fleet-wide action journaled by another instance (one that is
/// posted again later is a new action).
fn same_action(line: &str, what: &str, at: &str) -> bool {
    let when = line.split(" — ").next().and_then(parse_time);
    line.ends_with(what)
        && when.zip(parse_time(at)).is_some_and(|(a, b)| {
            let apart = b.duration_since(a).unwrap_or_else(|e| e.duration());
            apart <= Duration::from_secs(5)
        })
}

/// Operator actions this close before an episode opened belong to it: an
/// override and a message are posted a moment before the mode changes.
const LEAD_IN: Duration = Duration::from_secs(60);

/// Splits a journal into episodes, optionally only those after `since`.
pub fn episodes(records: &[Record], since: Option<SystemTime>) -> Vec<Episode> {
    let mut out: Vec<Episode> = Vec::new();
    let mut current: Option<Episode> = None;
    // Outside episodes: the operator's recent actions, the last override's
    // reason and the message in force.
    let mut lead_in: Vec<(Option<SystemTime>, String)> = Vec::new();
    let mut override_reason: Option<String> = None;
    let mut message: Option<String> = None;
    // The counters that close an episode are written just after the return
    // to normal; they still belong to it.
    let mut just_ended = false;
    // Each instance's mode (a journal without instance ids is one
    // instance): a fleet's episode runs from the first instance's leaving
    // normal to the last one's return.
    let mut modes: BTreeMap<String, String> = BTreeMap::new();
    for r in records {
        if let (Some(since), Some(at)) = (since, parse_time(&r.at))
            && at < since
        {
            continue;
        }
        let line = match &r.instance {
            Some(id) => format!("{} — [{id}] {}", r.at, describe(&r.event)),
            None => format!("{} — {}", r.at, describe(&r.event)),
        };
        let instance = r.instance.clone().unwrap_or_default();
        match &r.event {
            Event::ModeChanged {
                from,
                to,
                cause,
                inflight,
                ttfb_p95_ms,
                origin_limit,
                ..
            } => {
                modes.insert(instance.clone(), to.clone());
                let all_normal = modes.values().all(|m| m == "normal");
                if from == "normal" && current.is_none() {
                    let opened = parse_time(&r.at);
                    let led_in: Vec<String> = lead_in
                        .drain(..)
                        .filter(|(at, _)| {
                            at.zip(opened).is_some_and(|(a, o)| {
                                o.duration_since(a).is_ok_and(|d| d <= LEAD_IN)
                            })
                        })
                        .map(|(_, line)| line)
                        .collect();
                    let trigger = match (&override_reason, cause.contains("operator override")) {
                        (Some(why), true) => format!("operator override: {why}"),
                        _ => cause.clone(),
                    };
                    current = Some(Episode {
                        start: r.at.clone(),
                        trigger,
                        message: message.clone(),
                        operator_actions: led_in.clone(),
                        timeline: led_in,
                        ..Episode::default()
                    });
                }
                if let Some(ep) = current.as_mut() {
                    ep.peak_inflight = ep.peak_inflight.max(*inflight);
                    ep.peak_ttfb_p95_ms = ep.peak_ttfb_p95_ms.max(*ttfb_p95_ms);
                    ep.note_limit(*origin_limit);
                    ep.timeline.push(line);
                    if let Some(id) = &r.instance {
                        let row = ep.instances.entry(id.clone()).or_default();
                        if from == "normal" && row.cleared.is_none() {
                            row.cleared = Some(r.at.clone());
                        }
                        if to == "normal" {
                            row.back = Some(r.at.clone());
                        }
                    }
                    if to == "normal" && all_normal {
                        ep.end = Some(r.at.clone());
                        ep.duration_s = parse_time(&ep.start)
                            .zip(parse_time(&r.at))
                            .and_then(|(a, b)| b.duration_since(a).ok())
                            .map(|d| d.as_secs_f64());
                        out.extend(current.take());
                        just_ended = true;
                        continue;
                    }
                }
            }
            Event::Counters {
                mode,
                primary_served,
                keep_served,
                normal_served,
                shed,
                would_shed,
                peak_inflight,
                ttfb_p95_ms,
                origin_limit,
                ..
            } => {
                let closing = just_ended && mode == "normal";
                just_ended = false;
                let target = match current.as_mut() {
                    Some(ep) => Some(ep),
                    None if closing => out.last_mut(),
                    None => None,
                };
                if let Some(ep) = target {
                    if let Some(id) = &r.instance {
                        let row = ep.instances.entry(id.clone()).or_default();
                        row.primary_served += primary_served;
                        row.shed += shed.values().sum::<u64>();
                    }
                    ep.primary_served += primary_served;
                    ep.others_served += keep_served + normal_served;
                    for (reason, n) in shed {
                        *ep.shed.entry(reason.clone()).or_default() += n;
                    }
                    for (reason, n) in would_shed {
                        *ep.would_shed.entry(reason.clone()).or_default() += n;
                    }
                    ep.note_limit(*origin_limit);
                    ep.peak_inflight = ep.peak_inflight.max(*peak_inflight);
                    ep.peak_ttfb_p95_ms = ep.peak_ttfb_p95_ms.max(*ttfb_p95_ms);
                }
            }
            Event::OverrideSet { .. }
            | Event::OverrideExpired { .. }
            | Event::Message { .. }
            | Event::ReloadAccepted { .. }
            | Event::ReloadRejected { .. } => {
                match &r.event {
                    Event::OverrideSet { reason, .. } => override_reason = Some(reason.clone()),
                    Event::Message { text, .. } => {
                        message = Some(text.clone()).filter(|t| !t.is_empty());
                    }
                    _ => {}
                }
                match current.as_mut() {
                    Some(ep) => {
                        if let Event::Message { .. } = r.event {
                            ep.message = message.clone();
                        }
                        // A fleet-wide action is journaled by every
                        // instance that applied it: one line says it.
                        let what = describe(&r.event);
                        let said = r.instance.is_some()
                            && ep
                                .operator_actions
                                .iter()
                                .any(|a| same_action(a, &what, &r.at));
                        if !said {
                            ep.operator_actions.push(line.clone());
                        }
                        ep.timeline.push(line);
                    }
                    None if r.instance.is_some()
                        && lead_in
                            .iter()
                            .any(|(_, l)| same_action(l, &describe(&r.event), &r.at)) => {}
                    None => {
                        lead_in.push((parse_time(&r.at), line));
                        if lead_in.len() > 32 {
                            lead_in.remove(0);
                        }
                    }
                }
            }
            Event::Started { .. } | Event::Stopped => {
                if let Some(ep) = current.as_mut() {
                    ep.timeline.push(line);
                }
                // A fleet's instance that stops (or starts again) leaves
                // the episode: its last mode no longer counts.
                if r.instance.is_some() && modes.remove(&instance).is_some() {
                    let all_normal = modes.values().all(|m| m == "normal");
                    if all_normal && let Some(mut ep) = current.take() {
                        ep.end = Some(r.at.clone());
                        ep.duration_s = parse_time(&ep.start)
                            .zip(parse_time(&r.at))
                            .and_then(|(a, b)| b.duration_since(a).ok())
                            .map(|d| d.as_secs_f64());
                        out.push(ep);
                        just_ended = true;
                    }
                }
            }
        }
    }
    out.extend(current);
    out
}

#[path = "report_text.rs"]
mod text;
pub(in crate::story) use text::thousands;
pub use text::{json, markdown};

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
