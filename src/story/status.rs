//! The public status page (`/.well-known/lifeboat/status` by default): is it
//! down for everyone or just me, since when, what still works, what the
//! people behind the site are saying and doing, and what happened. Served
//! by lifeboat itself, so it answers while the origin is down; never shed,
//! never proxied. JSON for programs (with a Statuspage-compatible subset:
//! `status.indicator`, `incidents[].incident_updates[]`), a small HTML
//! page for people (Accept), styled like the apology page they just saw.
//!
//! Built from memory: the mode, numbers averaged over the last minute, and
//! the last day of events ([`super::history`]). The ticker renders both
//! forms once a second; a request clones shared bytes.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;

use super::history::{Bar, history};
use super::report::{self, Episode};
use super::{Event, Record};
use crate::apology::escape_html;

pub use crate::config::SUMMARY_FOR;

/// Live numbers, averaged over the last minute.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Numbers {
    /// Requests per second, all classes.
    pub requests_per_s: f64,
    /// Apologies per second.
    pub shed_per_s: f64,
    /// Requests inside lifeboat now.
    pub inflight: usize,
    /// Share of primary requests answered by the origin (not shed, no 5xx).
    pub primary_success_rate: Option<f64>,
    /// Requests the origin is given at once: learned from its own latency
    /// (or pinned by the config).
    pub origin_limit: usize,
    /// Whether `origin_limit` is learned.
    pub origin_limit_learned: bool,
    /// The origin's servers: how many, and how many take requests (no
    /// addresses on a public page; `GET /mode` names them).
    pub origin_servers: usize,
    /// Of those, in rotation.
    pub origin_servers_in_rotation: usize,
    /// Each server's state (`in-rotation` or `ejected`), in the config's
    /// order: the state of every server, without naming any.
    pub origin_server_states: Vec<&'static str>,
    /// Seconds the rates are averaged over.
    pub window_s: u64,
    /// With a fleet: how many instances there are and how many are
    /// clearing the boards (this instance's numbers are its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetCount>,
}

/// The fleet at a glance, from the heartbeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FleetCount {
    /// Live instances.
    pub instances: usize,
    /// Of those, degraded.
    pub degraded: usize,
    /// Of those, recovering.
    pub recovering: usize,
}

/// The operator's current message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The text.
    pub text: String,
    /// When it was set.
    pub set_at: String,
}

/// One incident update: an operator's message, with its stage.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    /// When, RFC 3339.
    pub at: String,
    /// investigating, identified, monitoring or resolved (if said).
    pub stage: Option<String>,
    /// The words.
    pub text: String,
    /// Who said it.
    pub signed: Option<String>,
}

/// One moment of an episode's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Moment {
    /// When, RFC 3339.
    pub at: String,
    /// What happened, in words.
    pub what: String,
}

/// The last episode, once it is over.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// When it began and ended.
    pub started: String,
    /// When it ended.
    pub ended: String,
    /// How long, in words.
    pub lasted: String,
    /// Downloads served during it.
    pub downloads_served: u64,
    /// Other requests the origin answered.
    pub others_served: u64,
    /// Visitors given the apology.
    pub turned_away: u64,
    /// What the operators did, in words.
    pub actions: Vec<String>,
}

/// Statuspage's `status` object.
#[derive(Debug, Clone, Serialize)]
pub struct Indicator {
    /// none, minor or major.
    pub indicator: &'static str,
    /// In words.
    pub description: String,
}

/// Statuspage's incident, with its updates.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// Stable for the episode: its start.
    pub id: String,
    /// A short name.
    pub name: String,
    /// The latest update's stage (investigating while none was given).
    pub status: String,
    /// When the episode began.
    pub created_at: String,
    /// The latest event.
    pub updated_at: String,
    /// When it ended, if it has.
    pub resolved_at: Option<String>,
    /// impact: major while degraded, minor otherwise.
    pub impact: &'static str,
    /// The operator's updates, newest first.
    pub incident_updates: Vec<IncidentUpdate>,
}

/// Statuspage's incident update.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentUpdate {
    /// Stable: its time.
    pub id: String,
    /// Its stage.
    pub status: String,
    /// Its words.
    pub body: String,
    /// When.
    pub created_at: String,
}

/// What the status endpoint says.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// normal, degraded or recovering.
    pub mode: String,
    /// When the current mode began.
    pub since: String,
    /// The answer first, in one sentence.
    pub headline: String,
    /// The operator's message, if any.
    pub message: Option<Message>,
    /// Live numbers over the last minute.
    pub numbers: Numbers,
    /// Incident updates of the last day, newest first.
    pub updates: Vec<Update>,
    /// The current or last episode, moment by moment.
    pub timeline: Vec<Moment>,
    /// The last day in half hours, oldest first.
    pub history: Vec<Bar>,
    /// The last episode, once over (for a day).
    pub summary: Option<Summary>,
    /// Statuspage-compatible status.
    pub status: Indicator,
    /// Statuspage-compatible incidents (the current or last episode).
    pub incidents: Vec<Incident>,
    /// Who signs the page.
    pub signed: String,
    /// When this was computed.
    pub generated_at: String,
}

/// The rendered endpoint.
pub struct StatusPages {
    /// `application/json`.
    pub json: Bytes,
    /// `text/html`.
    pub html: Bytes,
}

/// What the page is built from.
pub struct Inputs<'a> {
    /// The current mode.
    pub mode: &'a str,
    /// When it began.
    pub since: SystemTime,
    /// The operator's message and when it was set.
    pub message: Option<(&'a str, SystemTime)>,
    /// Live numbers.
    pub numbers: Numbers,
    /// The last day of events, oldest first.
    pub records: &'a [Record],
    /// The apology page's signature.
    pub signed: &'a str,
    /// Now.
    pub now: SystemTime,
    /// How long a recovered episode's summary stays.
    pub summary_for: Duration,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// `14:01 UTC` for an RFC 3339 time.
fn clock(at: &str) -> String {
    at.get(11..16)
        .map_or(at.to_string(), |hm| format!("{hm} UTC"))
}

/// "12 minutes", "2 hours 5 minutes", "40 seconds".
fn lasted(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    match s {
        0..=59 => plural(s, "second"),
        60..=3599 => plural(s / 60, "minute"),
        _ if s % 3600 / 60 == 0 => plural(s / 3600, "hour"),
        _ => format!(
            "{} {}",
            plural(s / 3600, "hour"),
            plural(s % 3600 / 60, "minute")
        ),
    }
}

impl Status {
    /// Assembles the page from `i`.
    pub fn build(i: Inputs<'_>) -> Self {
        let episodes = report::episodes(i.records, None);
        let last = episodes.last();
        let updates = updates(i.records);
        let downloads_ok = i.numbers.primary_success_rate.is_none_or(|r| r >= 0.99);
        let headline = headline(&i, last, downloads_ok);
        let summary = last
            .filter(|_| i.mode == "normal")
            .and_then(|ep| summary(ep, i.now, i.summary_for));
        let timeline = last
            .filter(|ep| ep.end.is_none() || summary.is_some())
            .map(timeline)
            .unwrap_or_default();
        let status = Indicator {
            indicator: match i.mode {
                "degraded" => "major",
                "recovering" => "minor",
                _ => "none",
            },
            description: match i.mode {
                "degraded" if downloads_ok => {
                    "Heavy load: downloads are working, the rest of the site is limited".into()
                }
                "degraded" => "Heavy load: the site is limited".into(),
                "recovering" => "Recovering from heavy load".into(),
                _ => "All systems operational".into(),
            },
        };
        let incidents = last
            .filter(|ep| ep.end.is_none() || summary.is_some())
            .map(|ep| vec![incident(ep, &updates, i.mode)])
            .unwrap_or_default();
        Status {
            mode: i.mode.to_string(),
            since: rfc3339(i.since),
            headline,
            message: i
                .message
                .filter(|(t, _)| !t.is_empty())
                .map(|(text, at)| Message {
                    text: text.to_string(),
                    set_at: rfc3339(at),
                }),
            numbers: i.numbers,
            updates,
            timeline,
            history: history(i.records, i.now),
            summary,
            status,
            incidents,
            signed: i.signed.to_string(),
            generated_at: rfc3339(i.now),
        }
    }

    /// Renders JSON and HTML.
    pub fn render(&self) -> StatusPages {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        StatusPages {
            json: Bytes::from(json),
            html: Bytes::from(super::status_page::html(self)),
        }
    }
}

fn headline(i: &Inputs<'_>, last: Option<&Episode>, downloads_ok: bool) -> String {
    let since = rfc3339(i.since);
    let how_long = lasted(i.now.duration_since(i.since).unwrap_or_default());
    let works = if downloads_ok {
        " Downloads are working."
    } else {
        ""
    };
    match i.mode {
        "degraded" => format!(
            "It's not you: the site has been under heavy load since {} ({how_long}).{works}",
            clock(&since)
        ),
        "recovering" => format!(
            "It's not you: the site is recovering from heavy load and letting visitors back in since {}.{works}",
            clock(&since)
        ),
        _ => match last.and_then(|ep| Some((ep.end.as_ref()?, ep.duration_s?))) {
            Some((end, secs))
                if parse(end).is_some_and(|e| i.now.duration_since(e).unwrap_or_default() < i.summary_for) =>
            {
                format!(
                    "Everything is working normally again since {}. Earlier, the site was under heavy load for {}.",
                    clock(end),
                    lasted(Duration::from_secs_f64(secs))
                )
            }
            _ => "Everything is working normally. If the site does not load for you, the trouble is likely between you and us.".into(),
        },
    }
}

fn updates(records: &[Record]) -> Vec<Update> {
    let mut out: Vec<Update> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Message {
                text,
                stage,
                signed,
            } if !text.is_empty() => Some(Update {
                at: r.at.clone(),
                stage: stage.clone(),
                text: text.clone(),
                signed: signed.clone(),
            }),
            _ => None,
        })
        .collect();
    out.reverse();
    out
}

fn timeline(ep: &Episode) -> Vec<Moment> {
    ep.timeline
        .iter()
        .map(|line| match line.split_once(" — ") {
            Some((at, what)) => Moment {
                at: at.to_string(),
                what: what.to_string(),
            },
            None => Moment {
                at: String::new(),
                what: line.clone(),
            },
        })
        .collect()
}

fn summary(ep: &Episode, now: SystemTime, keep: Duration) -> Option<Summary> {
    let ended = ep.end.clone()?;
    let end = parse(&ended)?;
    if now.duration_since(end).unwrap_or_default() >= keep {
        return None;
    }
    Some(Summary {
        started: ep.start.clone(),
        ended,
        lasted: lasted(Duration::from_secs_f64(ep.duration_s.unwrap_or(0.0))),
        downloads_served: ep.primary_served,
        others_served: ep.others_served,
        turned_away: ep.shed.values().sum(),
        actions: ep
            .operator_actions
            .iter()
            .map(|a| {
                a.split_once(" — ")
                    .map_or(a.clone(), |(at, what)| format!("{} — {what}", clock(at)))
            })
            .collect(),
    })
}

fn incident(ep: &Episode, updates: &[Update], mode: &str) -> Incident {
    let start = parse(&ep.start);
    let mine: Vec<IncidentUpdate> = updates
        .iter()
        .filter(|u| {
            parse(&u.at)
                .zip(start)
                .is_some_and(|(at, s)| at + Duration::from_secs(60) >= s)
        })
        .map(|u| IncidentUpdate {
            id: u.at.clone(),
            status: u.stage.clone().unwrap_or_else(|| "investigating".into()),
            body: u.text.clone(),
            created_at: u.at.clone(),
        })
        .collect();
    let status = match (&ep.end, mine.first()) {
        (Some(_), _) => "resolved".to_string(),
        (None, Some(u)) => u.status.clone(),
        (None, None) => "investigating".into(),
    };
    Incident {
        id: ep.start.clone(),
        name: "Heavy load on the site".into(),
        status,
        created_at: ep.start.clone(),
        updated_at: ep
            .timeline
            .last()
            .and_then(|l| l.split_once(" — "))
            .map_or(ep.start.clone(), |(at, _)| at.to_string()),
        resolved_at: ep.end.clone(),
        impact: if mode == "degraded" { "major" } else { "minor" },
        incident_updates: mine,
    }
}

/// Escapes for the HTML page.
pub(super) fn esc(s: &str) -> String {
    escape_html(s)
}

/// `<time>` with the UTC clock; the page's script adds the visitor's own.
pub(super) fn time(at: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<time datetime=\"{}\">{}</time>",
        esc(at),
        esc(&clock(at))
    );
    s
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
