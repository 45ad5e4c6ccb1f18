//! Screening: the rules a request head must keep before lifeboat classifies
//! it or sends it anywhere. Pure, like `classify`; the refusals become
//! responses in `apology`.
//!
//! - **Header count.** At most `limits.max_headers` fields, over HTTP/2 as
//!   over HTTP/1.1 (where hyper already counts them while parsing; h2 has
//!   only a size limit). HTTP/2 clients may split `Cookie` into one field
//!   per cookie (RFC 9113 §8.2.3), so the cookie fields count as one, as
//!   they would on an HTTP/1.1 line.
//! - **One host** (RFC 9112 §3.2, RFC 9113 §8.3.1): an HTTP/1.1 request
//!   has exactly one `Host`; any request has at most one; its value is a
//!   valid `host[:port]` (no space, no userinfo); when the target also names
//!   an authority (absolute form, HTTP/2 `:authority`), the two agree.
//!   Otherwise `400`: the route's `host` and the origin's virtual host
//!   would be chosen from different values. HTTP/1.0 may omit it.
//! - **No CONNECT.** lifeboat is a reverse proxy: it opens no tunnels to
//!   arbitrary hosts, and an origin's `200` to a CONNECT would be passed
//!   back as if one existed. `501 Not Implemented` (no resource here
//!   supports it, so there is no `Allow` list to give, as a 405 needs).

use http::header::{COOKIE, HOST};
use http::{Method, Request, Version};

/// Why a request head is refused before classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More header fields than `max_headers`: `431`.
    TooManyHeaders,
    /// No host, several, an invalid one, or two that disagree: `400`.
    BadHost,
    /// A CONNECT request: `501`.
    Connect,
}

impl Refusal {
    /// The stable code, as in `X-Lifeboat-Error`, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooManyHeaders => "too-many-headers",
            Refusal::BadHost => "bad-host",
            Refusal::Connect => "connect-not-supported",
        }
    }
}

/// Checks `req`'s head; on success, the one host it names (`None` only for
/// an HTTP/1.0 request without one), which classification and the origin's
/// `Host` both use.
pub fn screen<B>(req: &Request<B>, max_headers: usize) -> Result<Option<&str>, Refusal> {
    if req.method() == Method::CONNECT {
        return Err(Refusal::Connect);
    }
    let headers = req.headers();
    let cookies = headers.get_all(COOKIE).iter().count();
    if headers.len() - cookies + usize::from(cookies > 0) > max_headers {
        return Err(Refusal::TooManyHeaders);
    }
    let mut hosts = headers.get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(Refusal::BadHost),
        (Some(v), None) => Some(
            v.to_str()
                .ok()
                .filter(|h| valid_host(h))
                .ok_or(Refusal::BadHost)?,
        ),
        (None, _) => None,
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    if authority.is_some_and(|a| !valid_host(a)) {
        return Err(Refusal::BadHost);
    }
    match (host, authority) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a) => Err(Refusal::BadHost),
        (Some(h), _) => Ok(Some(h)),
        (None, _) if req.version() == Version::HTTP_11 => Err(Refusal::BadHost),
        (None, Some(a)) => Ok(Some(a)),
        (None, None) if req.version() < Version::HTTP_11 => Ok(None),
        (None, None) => Err(Refusal::BadHost),
    }
}

/// `host[:port]` as RFC 3986 writes it, without userinfo.
fn valid_host(value: &str) -> bool {
    let Ok(authority) = value.parse::<http::uri::Authority>() else {
        return false;
    };
    // What follows the host is nothing, or `:` and a port number.
    let after_host = value.get(authority.host().len()..).unwrap_or("x");
    !value.contains('@')
        && !authority.host().is_empty()
        && (after_host.is_empty() || authority.port_u16().is_some() && after_host.starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn h11(headers: &[(&str, &str)]) -> Result<Option<String>, Refusal> {
        screen(&req(Version::HTTP_11, "/x", headers), 100).map(|h| h.map(str::to_string))
    }

    #[test]
    fn one_valid_host() {
        assert_eq!(
            h11(&[("host", "example.org")]),
            Ok(Some("example.org".into()))
        );
        assert_eq!(
            h11(&[("host", "example.org:8080")]),
            Ok(Some("example.org:8080".into()))
        );
        assert_eq!(
            h11(&[("host", "[::1]:8080")]),
            Ok(Some("[::1]:8080".into()))
        );
        for bad in [
            vec![],
            vec![("host", "a.example"), ("host", "b.example")],
            vec![("host", "a.example"), ("host", "a.example")],
            vec![("host", "a example")],
            vec![("host", "")],
            vec![("host", "user@a.example")],
            vec![("host", "a.example:80:80")],
            vec![("host", "a.example/x")],
        ] {
            assert_eq!(h11(&bad), Err(Refusal::BadHost), "{bad:?}");
        }
    }

    fn check(
        version: Version,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<Option<String>, Refusal> {
        screen(&req(version, uri, headers), 100).map(|h| h.map(str::to_string))
    }

    #[test]
    fn target_authority_must_agree() {
        let abs = "http://a.example/x";
        let ok = |h: &str| Ok(Some(h.to_string()));
        assert_eq!(
            check(Version::HTTP_11, abs, &[("host", "A.example")]),
            ok("A.example")
        );
        assert_eq!(
            check(Version::HTTP_11, abs, &[("host", "b.example")]),
            Err(Refusal::BadHost)
        );
        assert_eq!(
            check(Version::HTTP_11, abs, &[]),
            Err(Refusal::BadHost),
            "HTTP/1.1 needs Host"
        );
        assert_eq!(check(Version::HTTP_2, abs, &[]), ok("a.example"));
        assert_eq!(
            check(Version::HTTP_2, abs, &[("host", "b.example")]),
            Err(Refusal::BadHost)
        );
        assert_eq!(check(Version::HTTP_2, "/x", &[]), Err(Refusal::BadHost));
        assert_eq!(
            check(Version::HTTP_10, "/x", &[]),
            Ok(None),
            "HTTP/1.0 may omit Host"
        );
        let userinfo = check(Version::HTTP_2, "http://u@a.example/x", &[]);
        assert_eq!(userinfo, Err(Refusal::BadHost));
    }

    #[test]
    fn header_count_includes_http2_and_counts_cookies_once() {
        let h2 = |fields: &[(String, String)]| {
            let refs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            check(Version::HTTP_2, "http://a/x", &refs).err()
        };
        let mut many: Vec<(String, String)> =
            (0..100).map(|i| (format!("x-{i}"), "v".into())).collect();
        assert_eq!(h2(&many), None, "100 fields are allowed");
        many.push(("x-100".into(), "v".into()));
        assert_eq!(h2(&many), Some(Refusal::TooManyHeaders));
        let mut cookies: Vec<(String, String)> = (0..60)
            .map(|i| ("cookie".into(), format!("c{i}=1")))
            .collect();
        cookies.extend((0..99).map(|i| (format!("x-{i}"), "v".into())));
        assert_eq!(h2(&cookies), None, "60 cookie crumbs count as one field");
        cookies.push(("x-99".into(), "v".into()));
        assert_eq!(h2(&cookies), Some(Refusal::TooManyHeaders));
    }

    #[test]
    fn connect_is_refused() {
        let r = Request::builder()
            .method(Method::CONNECT)
            .uri("a.example:443")
            .header("host", "a.example:443")
            .body(())
            .unwrap();
        assert_eq!(screen(&r, 100), Err(Refusal::Connect));
    }
}
