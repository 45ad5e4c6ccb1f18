//! The status page in HTML: the answer first, then the operators' updates,
//! the episode's timeline, the last day as bars, what happened, the live
//! numbers. The built-in apology page's stylesheet, so a visitor sent here
//! from an apology sees the same place. Works without JavaScript; a small
//! inline script adds the visitor's local time beside each UTC time.

use std::fmt::Write as _;

use super::report::thousands;
use super::status::{Status, esc, time};

/// The apology page's stylesheet, taken from the built-in template.
fn apology_style() -> &'static str {
    const TEMPLATE: &str = include_str!("../../config/apology.html");
    TEMPLATE
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map_or("", |(css, _)| css)
}

/// What the status page adds to it: the updates, the timeline, the bars.
const STYLE: &str = "
  ol.updates, ol.timeline { list-style: none; padding: 0; margin: .4rem 0 0; }
  ol.updates li { border-left: 4px solid var(--accent); padding: .1rem 0 .1rem 1rem; margin: 0 0 1rem; }
  .stage { display: inline-block; font-size: .75rem; text-transform: uppercase; letter-spacing: .06em; font-weight: 600; margin-right: .5rem; }
  ol.timeline li { margin: 0 0 .35rem; }
  .bars { display: flex; gap: 2px; height: 2.2rem; margin: .6rem 0 .3rem; }
  .bars span { flex: 1; border-radius: 2px; background: #2e9d5b; }
  .bars span.recovering { background: #e0a800; }
  .bars span.degraded { background: #c94a3a; }
  .legend { display: flex; justify-content: space-between; }
  dl.numbers { display: grid; grid-template-columns: auto auto; gap: .2rem 1.2rem; margin: .4rem 0 0; }
  dl.numbers dd { margin: 0; font-weight: 600; }
";

/// Adds "(HH:MM your time)" after each `<time>`: the page works without it.
const SCRIPT: &str = "<script>for (const t of document.querySelectorAll('time[datetime]')) { \
const d = new Date(t.getAttribute('datetime')); if (isNaN(d)) continue; \
const s = document.createElement('span'); s.className = 'meta'; \
s.textContent = ' (' + d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'}) + ' your time)'; \
t.after(s); }</script>";

/// The page.
pub fn html(s: &Status) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let badge = match s.mode.as_str() {
        "degraded" => "Under heavy load",
        "recovering" => "Recovering",
        _ => "Operating normally",
    };
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"30\"><title>Status: {badge}</title>\
<style>{}{STYLE}</style></head><body><main>\
<span class=\"badge\">{badge}</span><h1>{}</h1>",
        apology_style(),
        esc(&s.headline)
    );
    updates(&mut h, s);
    summary(&mut h, s);
    timeline(&mut h, s);
    history(&mut h, s);
    numbers(&mut h, s);
    let _ = writeln!(
        h,
        "<p class=\"sig\">{}</p><footer><p class=\"meta\">Updated {} (UTC). This page is served by lifeboat, \
which protects the site during a rush, so it answers even when the site does not. It refreshes itself every 30 seconds.</p></footer>\
</main>{SCRIPT}</body></html>",
        esc(&s.signed),
        time(&s.generated_at)
    );
    h
}

fn updates(h: &mut String, s: &Status) {
    if s.updates.is_empty() {
        return;
    }
    h.push_str("<section class=\"card\" aria-labelledby=\"updates\"><h2 id=\"updates\">Updates</h2><ol class=\"updates\">");
    for u in &s.updates {
        let stage = u.stage.as_deref().map_or(String::new(), |st| {
            format!("<span class=\"stage\">{}</span>", esc(st))
        });
        let signed = u
            .signed
            .as_deref()
            .map_or(String::new(), |by| format!(" — {}", esc(by)));
        let _ = write!(
            h,
            "<li>{stage}<p>{}</p><p class=\"meta\">{}{signed}</p></li>",
            esc(&u.text),
            time(&u.at)
        );
    }
    h.push_str("</ol></section>");
}

fn summary(h: &mut String, s: &Status) {
    let Some(sum) = &s.summary else { return };
    let _ = write!(
        h,
        "<section class=\"card\" aria-labelledby=\"happened\"><h2 id=\"happened\">What happened</h2>\
<p>From {} to {}, {}, the site had more visitors than it could serve. We kept the downloads going \
({} served), served {} other pages, and asked {} visitors to come back a little later.</p>",
        time(&sum.started),
        time(&sum.ended),
        esc(&sum.lasted),
        thousands(sum.downloads_served),
        thousands(sum.others_served),
        thousands(sum.turned_away)
    );
    if !sum.actions.is_empty() {
        h.push_str("<p>What we did:</p><ul>");
        for a in &sum.actions {
            let _ = write!(h, "<li>{}</li>", esc(a));
        }
        h.push_str("</ul>");
    }
    let _ = write!(h, "<p class=\"meta\">— {}</p></section>", esc(&s.signed));
}

fn timeline(h: &mut String, s: &Status) {
    if s.timeline.is_empty() {
        return;
    }
    h.push_str("<section class=\"card\" aria-labelledby=\"timeline\"><h2 id=\"timeline\">Timeline</h2><ol class=\"timeline\">");
    for m in &s.timeline {
        let _ = write!(h, "<li>{} — {}</li>", time(&m.at), esc(&plain(&m.what)));
    }
    h.push_str("</ol></section>");
}

fn history(h: &mut String, s: &Status) {
    h.push_str("<section class=\"card\" aria-labelledby=\"history\"><h2 id=\"history\">The last 24 hours</h2><div class=\"bars\" role=\"img\" aria-label=\"");
    let degraded = s.history.iter().filter(|b| b.state != "normal").count();
    let _ = write!(h, "{} of 48 half hours with heavy load\">", degraded);
    for b in &s.history {
        let served = b.downloads_served.map_or(String::new(), |r| {
            format!(", downloads served {:.1} %", r * 100.0)
        });
        let _ = write!(
            h,
            "<span class=\"{}\" title=\"{}: {}{served}\"></span>",
            esc(&b.state),
            esc(&b.from),
            esc(&b.state)
        );
    }
    h.push_str(
        "</div><p class=\"legend meta\"><span>24 hours ago</span><span>now</span></p></section>",
    );
}

fn numbers(h: &mut String, s: &Status) {
    let n = &s.numbers;
    let success = n
        .primary_success_rate
        .map_or("no downloads in the last minute".to_string(), |r| {
            format!("{:.1} % succeeding", r * 100.0)
        });
    let _ = write!(
        h,
        "<section class=\"card\" aria-labelledby=\"now\"><h2 id=\"now\">Right now (the last minute)</h2><dl class=\"numbers\">\
<dt>Requests per second</dt><dd>{:.0}</dd><dt>Asked to come back later, per second</dt><dd>{:.0}</dd>\
<dt>Downloads</dt><dd>{success}</dd><dt>Requests in progress</dt><dd>{}</dd>{}</dl></section>",
        n.requests_per_s,
        n.shed_per_s,
        n.inflight,
        n.fleet.map_or(String::new(), |f| format!(
            "<dt>Servers clearing the boards</dt><dd>{} of {}{}</dd>",
            f.degraded,
            f.instances,
            if f.recovering > 0 {
                format!(" ({} more recovering)", f.recovering)
            } else {
                String::new()
            }
        ))
    );
}

/// The journal's wording, made plain for visitors.
fn plain(what: &str) -> String {
    what.replace("mode normal → degraded", "cleared the boards (heavy load)")
        .replace(
            "mode degraded → recovering",
            "recovering: letting visitors back in",
        )
        .replace("mode recovering → normal", "back to normal")
        .replace("mode recovering → degraded", "heavy load again")
}
