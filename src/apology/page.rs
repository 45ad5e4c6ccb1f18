//! The apology page, rendered once per change (config, mode, operator
//! message), never per request: HTML from the template, gzip and brotli of
//! it, and one `application/problem+json` body per shed reason.

use std::time::SystemTime;

use bytes::Bytes;

use super::ShedReason;
use crate::classify::Routes;
use crate::config::Apology;

/// Everything an apology response needs, ready to send.
pub struct Pages {
    /// HTML, identity.
    pub html: Bytes,
    /// HTML, gzip.
    pub html_gzip: Bytes,
    /// HTML, brotli.
    pub html_br: Bytes,
    /// `application/problem+json`, one per reason (indexed by `ShedReason as usize`).
    pub json: Vec<Bytes>,
    /// Base `Retry-After`, seconds.
    pub retry_after: u64,
    /// Jitter added to `Retry-After`, seconds.
    pub retry_jitter: u64,
}

/// What changes between renders.
pub struct Context<'a> {
    /// The apology settings.
    pub apology: &'a Apology,
    /// Routes, for links to the primary path.
    pub routes: &'a Routes,
    /// When the current mode began.
    pub since: SystemTime,
    /// The operator's message ("" for none).
    pub message: &'a str,
}

impl Pages {
    /// Renders and compresses.
    pub fn render(ctx: &Context<'_>) -> Pages {
        let a = ctx.apology;
        let since = humantime::format_rfc3339_seconds(ctx.since).to_string();
        let retry = a.retry_after.as_secs();
        let html = a
            .template
            .replace("{{title}}", &escape_html(&a.title))
            .replace("{{message}}", &escape_html(ctx.message))
            .replace("{{since}}", &escape_html(&since))
            .replace("{{retry_after}}", &retry.to_string())
            .replace("{{primary_links}}", &primary_links(ctx.routes))
            .replace("{{status_url}}", &escape_html(&a.status_url))
            .replace("{{signed}}", &escape_html(&a.signed));
        let json = ShedReason::ALL
            .iter()
            .map(|r| {
                let body = serde_json::json!({
                    "type": format!("https://lifeboat.invalid/shed/{}", r.as_str()),
                    "title": a.title,
                    "status": 503,
                    "detail": r.detail(),
                    "reason": r.as_str(),
                    "retry_after": retry,
                    "since": since,
                    "message": ctx.message,
                    "status_url": a.status_url,
                    "signed": a.signed,
                });
                Bytes::from(body.to_string())
            })
            .collect();
        Pages {
            html_gzip: gzip(html.as_bytes()),
            html_br: brotli(html.as_bytes()),
            html: Bytes::from(html),
            json,
            retry_after: retry,
            retry_jitter: a.retry_jitter.as_secs(),
        }
    }
}

/// Links to the primary routes whose pattern has a literal directory part
/// (`/download/*` → `/download/`).
fn primary_links(routes: &Routes) -> String {
    let links: Vec<String> = routes
        .primary_patterns()
        .filter_map(|r| {
            let p = r.pattern.as_str();
            let literal = &p[..p.find('*').unwrap_or(p.len())];
            let dir = &literal[..=literal.rfind('/')?];
            Some(format!(
                "<a class=\"download\" href=\"{}\">Go to {}</a>",
                escape_html(dir),
                escape_html(&r.name)
            ))
        })
        .collect();
    links.join("\n    ")
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    Bytes::from(enc.finish().unwrap_or_default())
}

fn brotli(data: &[u8]) -> Bytes {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    let _ = brotli::BrotliCompress(&mut std::io::Cursor::new(data), &mut out, &params);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_operator_text() {
        assert_eq!(
            escape_html("<b>\"R&D\"</b>"),
            "&lt;b&gt;&quot;R&amp;D&quot;&lt;/b&gt;"
        );
    }
}
