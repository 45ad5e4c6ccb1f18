//! Every failure becomes a response here, and only here.
//!
//! The proxy core answers origin failures with short, honest pages of its
//! own (never a library's default error or a stack trace). The pages are
//! `&'static` bytes: serving one allocates nothing but the header map.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::upstream::UpstreamError;

/// Wraps a message in the minimal page frame, at compile time.
macro_rules! page {
    ($title:literal, $body:literal) => {
        concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>", $title, "</title>",
            "<style>body{font:17px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}</style>",
            "</head><body><h1>", $title, "</h1><p>", $body, "</p>",
            "<p><small>lifeboat</small></p></body></html>\n"
        )
    };
}

const ORIGIN_DOWN: &str = page!(
    "We can't reach the site right now",
    "The server behind this address is not answering. This is our problem, not yours: please try again in a minute."
);
const ORIGIN_TIMEOUT: &str = page!(
    "The site is taking too long",
    "The server behind this address did not answer in time. Please try again in a minute."
);
const ORIGIN_BROKEN: &str = page!(
    "Something went wrong on our side",
    "The server behind this address sent an answer we could not pass on. Please try again in a minute."
);
const CLIENT_TIMEOUT: &str = page!(
    "Your request stalled",
    "We stopped receiving your request before it was complete. Please try again."
);

/// Stable reason codes, sent as `X-Lifeboat-Error` and logged.
pub mod reason {
    /// The origin refused or could not be reached.
    pub const ORIGIN_DOWN: &str = "origin-down";
    /// The origin did not connect or answer in time.
    pub const ORIGIN_TIMEOUT: &str = "origin-timeout";
    /// The origin broke the exchange.
    pub const ORIGIN_BROKEN: &str = "origin-broken";
    /// The client's own request stalled.
    pub const CLIENT_TIMEOUT: &str = "client-timeout";
}

/// The response for an origin-side failure: 502, 504, or 408 when the
/// client's own upload stalled.
pub fn for_upstream(err: &UpstreamError) -> Response<ResponseBody> {
    let (status, reason, page) = match err {
        UpstreamError::Connect(_) => (StatusCode::BAD_GATEWAY, reason::ORIGIN_DOWN, ORIGIN_DOWN),
        UpstreamError::ConnectTimeout(_) | UpstreamError::Ttfb(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            reason::ORIGIN_TIMEOUT,
            ORIGIN_TIMEOUT,
        ),
        UpstreamError::Protocol(_) => (
            StatusCode::BAD_GATEWAY,
            reason::ORIGIN_BROKEN,
            ORIGIN_BROKEN,
        ),
        UpstreamError::ClientBody(_) => (
            StatusCode::REQUEST_TIMEOUT,
            reason::CLIENT_TIMEOUT,
            CLIENT_TIMEOUT,
        ),
    };
    static_page(status, reason, page)
}

fn static_page(
    status: StatusCode,
    reason: &'static str,
    page: &'static str,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(page.as_bytes()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-lifeboat-error", HeaderValue::from_static(reason));
    resp
}
