//! Every failure becomes a response here, and only here.
//!
//! Shed requests and origin failures get the **apology**: `503`, a
//! `Retry-After` with jitter, `Cache-Control: no-store`, `X-Lifeboat-Shed:
//! <reason>`, and the page from [`Pages`], negotiated (HTML or
//! `application/problem+json`; brotli, gzip or identity). Serving one copies
//! no body: the page is shared `Bytes`; only the headers are built.
//!
//! Failures that are the client's own get a short page instead: a broken
//! upload `408` if it stalled or trickled, `400` if it was malformed or cut
//! off; a head refused by `screen` `431`, `400` or `501`.

mod page;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

pub use page::{Context, Pages, escape_html};

use crate::body::ResponseBody;
use crate::screen::Refusal;
use crate::upstream::UpstreamError;

pub use crate::admission::ShedReason;

/// The reason for an origin-side failure, if it is one (a stalled client
/// upload is not).
pub fn reason_for(err: &UpstreamError) -> Option<ShedReason> {
    match err {
        UpstreamError::Connect(_) | UpstreamError::Protocol(_) => Some(ShedReason::OriginDown),
        UpstreamError::ConnectTimeout(_) | UpstreamError::Ttfb(_) => {
            Some(ShedReason::OriginTimeout)
        }
        UpstreamError::ClientBody { .. } => None,
    }
}

/// The request facts the apology depends on, read before the request moves on.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    head: bool,
    json: bool,
    br: bool,
    gzip: bool,
}

impl Asked {
    /// Reads method, `Accept` and `Accept-Encoding`.
    pub fn from_request(method: &Method, headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let enc = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Asked {
            head: method == Method::HEAD,
            json: accept.contains("json") && !accept.contains("text/html"),
            br: accepts(enc, "br"),
            gzip: accepts(enc, "gzip"),
        }
    }
}

/// Whether an `Accept-Encoding` list allows `coding` (present, not `q=0`).
fn accepts(list: &str, coding: &str) -> bool {
    list.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        parts.next().is_some_and(|c| c.eq_ignore_ascii_case(coding))
            && !parts.any(|p| {
                p.replace(' ', "").starts_with("q=0")
                    && !p.contains(|c: char| ('1'..='9').contains(&c))
            })
    })
}

/// The apology response for `reason`.
pub fn respond(pages: &Pages, reason: ShedReason, asked: Asked) -> Response<ResponseBody> {
    let (body, ctype, encoding) = if asked.json {
        (
            pages.json[reason as usize].clone(),
            "application/problem+json",
            None,
        )
    } else if asked.br {
        (
            pages.html_br.clone(),
            "text/html; charset=utf-8",
            Some("br"),
        )
    } else if asked.gzip {
        (
            pages.html_gzip.clone(),
            "text/html; charset=utf-8",
            Some("gzip"),
        )
    } else {
        (pages.html.clone(), "text/html; charset=utf-8", None)
    };
    let retry = pages.retry_after + fastrand::u64(0..=pages.retry_jitter);
    let len = body.len();
    let mut resp = Response::new(if asked.head {
        ResponseBody::empty()
    } else {
        ResponseBody::full(body)
    });
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::VARY,
        HeaderValue::from_static("accept, accept-encoding"),
    );
    h.insert("x-lifeboat-shed", HeaderValue::from_static(reason.as_str()));
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    resp
}

const TOO_MANY: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Please wait before trying again</title></head>\
<body><h1>Please wait before trying again</h1><p>We are overloaded, and your network has asked many times in the last few seconds. \
Please wait for the time we said before trying again: it helps everyone get in sooner.</p></body></html>\n";

/// The answer to a client over its apology budget: `429`, the same
/// `Retry-After` as the apology, a short page, and the connection closed
/// (on HTTP/1; `close`) so that every further try costs it a handshake.
pub fn too_many(pages: &Pages, reason: ShedReason, close: bool) -> Response<ResponseBody> {
    let retry = pages.retry_after + fastrand::u64(0..=pages.retry_jitter);
    let mut resp = Response::new(ResponseBody::full(TOO_MANY.as_bytes()));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-lifeboat-shed", HeaderValue::from_static(reason.as_str()));
    h.insert("x-lifeboat-budget", HeaderValue::from_static("exceeded"));
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

const CLIENT_TIMEOUT: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your request stalled</title></head>\
<body><h1>Your request stalled</h1><p>We stopped receiving your request before it was complete, or it arrived too slowly. Please try again.</p></body></html>\n";

const BAD_BODY: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your request was malformed</title></head>\
<body><h1>Your request was malformed</h1><p>The body of your request was cut off or not validly framed.</p></body></html>\n";

/// The response when the client's own upload failed: `408` if it stalled,
/// `400` if it was malformed or cut off; never the apology (the origin is
/// fine; the client is not). Origin failures get the apology for the
/// reason [`reason_for`] finds.
pub fn client_body_error(stalled: bool) -> Response<ResponseBody> {
    let (page, status, code) = if stalled {
        (
            CLIENT_TIMEOUT,
            StatusCode::REQUEST_TIMEOUT,
            "client-timeout",
        )
    } else {
        (BAD_BODY, StatusCode::BAD_REQUEST, "bad-request-body")
    };
    let mut resp = Response::new(ResponseBody::full(page.as_bytes()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-lifeboat-error", HeaderValue::from_static(code));
    resp
}

/// The response to a head refused by `screen`: `431`, `400` or `501`, a
/// short page, never the apology (nothing is wrong with the site).
pub fn refusal(refusal: Refusal) -> Response<ResponseBody> {
    let (status, title, text) = match refusal {
        Refusal::TooManyHeaders => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Too many header fields",
            "Your request carried more header fields than this site accepts.",
        ),
        Refusal::BadHost => (
            StatusCode::BAD_REQUEST,
            "Which site?",
            "Your request must name exactly one valid host.",
        ),
        Refusal::Connect => (
            StatusCode::NOT_IMPLEMENTED,
            "No tunnels here",
            "This server does not open tunnels (CONNECT).",
        ),
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>\n"
    );
    let mut resp = Response::new(ResponseBody::full(page));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-lifeboat-error",
        HeaderValue::from_static(refusal.as_str()),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("br;q=0.5", "br"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(accepts("br;q=0.1", "br"));
        assert!(!accepts("gzip", "br"));
    }
}
