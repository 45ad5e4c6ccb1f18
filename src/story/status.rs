//! The public status endpoint (`/.well-known/lifeboat/status` by default):
//! is it down for everyone, since when, what are they doing about it. Served
//! by lifeboat itself, so it answers while the origin is down; never shed,
//! never proxied. JSON for programs, a small HTML page for people (Accept).
//!
//! The ticker renders both about once a second from the tallies; a request
//! clones shared bytes.

use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use crate::apology::escape_html;

/// What the status endpoint says.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// normal, degraded or recovering.
    pub mode: String,
    /// When the current mode began.
    pub since: String,
    /// The operator's message, if any.
    pub message: Option<Message>,
    /// Live numbers over the last second or so.
    pub numbers: Numbers,
    /// When this was computed.
    pub generated_at: String,
}

/// The operator's message and when it was set.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// The text.
    pub text: String,
    /// When it was set.
    pub set_at: String,
}

/// Live numbers.
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
}

/// The rendered endpoint.
pub struct StatusPages {
    /// `application/json`.
    pub json: Bytes,
    /// `text/html`.
    pub html: Bytes,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Status {
    /// Assembles a status.
    pub fn new(
        mode: &str,
        since: SystemTime,
        message: Option<(&str, SystemTime)>,
        numbers: Numbers,
    ) -> Self {
        Status {
            mode: mode.to_string(),
            since: rfc3339(since),
            message: message
                .filter(|(t, _)| !t.is_empty())
                .map(|(text, at)| Message {
                    text: text.to_string(),
                    set_at: rfc3339(at),
                }),
            numbers,
            generated_at: rfc3339(SystemTime::now()),
        }
    }

    /// Renders JSON and HTML.
    pub fn render(&self) -> StatusPages {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        let headline = match self.mode.as_str() {
            "normal" => "Everything is running normally.",
            "recovering" => "We are recovering: visitors are being let back in gradually.",
            _ => "We are overloaded: downloads have priority, the rest of the site is paused.",
        };
        let message = self.message.as_ref().map_or(String::new(), |m| {
            format!(
                "<blockquote>{}<br><small>posted {}</small></blockquote>",
                escape_html(&m.text),
                escape_html(&m.set_at)
            )
        });
        let n = &self.numbers;
        let success = n
            .primary_success_rate
            .map_or("n/a".to_string(), |r| format!("{:.1} %", r * 100.0));
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"10\"><title>Status: {mode}</title>\
<style>body{{font:17px/1.5 system-ui,sans-serif;max-width:38em;margin:3em auto;padding:0 1em}}td{{padding:.2em 1em .2em 0}}\
blockquote{{border-left:4px solid #0b63ce;margin:1em 0;padding-left:1em}}</style></head>\
<body><h1>Status: {mode}</h1><p>{headline}</p><p>Since {since}.</p>{message}\
<table><tr><td>Requests per second</td><td>{rps:.0}</td></tr><tr><td>Apologies per second</td><td>{shed:.0}</td></tr>\
<tr><td>Requests in progress</td><td>{inflight}</td></tr><tr><td>Downloads succeeding</td><td>{success}</td></tr></table>\
<p><small>Updated {generated}. This page is served by lifeboat and refreshes itself.</small></p></body></html>\n",
            mode = escape_html(&self.mode),
            since = escape_html(&self.since),
            rps = n.requests_per_s,
            shed = n.shed_per_s,
            inflight = n.inflight,
            generated = escape_html(&self.generated_at),
        );
        StatusPages {
            json: Bytes::from(json),
            html: Bytes::from(html),
        }
    }
}
