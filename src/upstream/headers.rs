//! Header rewriting between client and origin (RFC 9110 §7.6).
//!
//! - hop-by-hop fields are removed in both directions: the fixed list plus
//!   every field the `Connection` header names (except on a WebSocket
//!   upgrade, where `Upgrade` and `Connection: upgrade` must reach the other
//!   side). Any other upgrade (`h2c`, `TLS/1.0`, …) is stripped like any
//!   hop-by-hop field: the origin sees a plain request, so no tunnel can
//!   carry requests past classification;
//! - `X-Forwarded-For/-Proto/-Host` describe the real peer; a peer outside
//!   `trusted_proxies` cannot inject them, nor `Forwarded`, nor any other
//!   client-address or URL claim an origin might believe, in any spelling
//!   (`X_Forwarded_For`, `CF-Connecting-IP`, `X-Original-URL`, …);
//! - `Via` records this hop.

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The hop-by-hop fields of RFC 9110 §7.6.1, plus the non-standard
/// `Proxy-Connection` that old clients still send, and `HTTP2-Settings`,
/// which belongs to an h2c upgrade (RFC 7540 §3.2.1) whether or not the
/// client listed it in `Connection`.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("http2-settings"),
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether a request is a WebSocket opening handshake (RFC 6455 §4.1): a
/// GET with `Connection: upgrade`, `Upgrade: websocket` and nothing else
/// offered, a `Sec-WebSocket-Key` and a `Sec-WebSocket-Version`. The only
/// upgrade lifeboat tunnels.
pub fn is_websocket_upgrade(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::GET
        && upgrades_to_websocket(headers)
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && headers.contains_key(header::SEC_WEBSOCKET_VERSION)
}

/// Whether `Connection` says upgrade and `Upgrade` is exactly `websocket`:
/// asked by a request, or confirmed by an origin's `101`.
pub fn upgrades_to_websocket(headers: &HeaderMap) -> bool {
    let mut upgrade = headers.get_all(header::UPGRADE).iter();
    let websocket = match (upgrade.next(), upgrade.next()) {
        (Some(v), None) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    };
    websocket && connection_names(headers).any(|n| n.eq_ignore_ascii_case("upgrade"))
}

fn connection_names(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// Whether the client accepts trailers (`TE: trailers`). TE is hop-by-hop,
/// but lifeboat can carry trailers, so it says the same to the origin.
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}

/// Removes hop-by-hop fields. With `upgrade`, the `Upgrade` field survives and
/// `Connection` is reduced to exactly `upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most requests carry no `Connection` header (HTTP/1.1 and h2 clients
    // rarely send one): then there is nothing to collect.
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_names(headers)
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .filter(|n| !(upgrade && n == header::UPGRADE))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    let kept_upgrade = if upgrade {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(value) = kept_upgrade {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Where a request came from, as lifeboat saw it.
pub struct Peer<'a> {
    /// The TCP peer's address, already formatted (once per connection).
    pub ip: &'a HeaderValue,
    /// Whether that peer is a trusted proxy.
    pub trusted: bool,
    /// `https` or `http`, as the client connected to lifeboat.
    pub proto: &'static str,
    /// The host the client asked for (Host header or h2 authority).
    pub host: Option<&'a HeaderValue>,
}

/// Client-address and request-line claims that origins, frameworks and
/// CDNs believe, besides every `X-Forwarded*` and `Forwarded*` (matched by
/// prefix). `X-Original-URL` and `X-Rewrite-URL` are set by rewriting
/// proxies (IIS ARR) and read by some frameworks as the real path.
const PEER_CLAIMS: [&str; 19] = [
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "fastly-client-ip",
    "akamai-client-ip",
    "x-appengine-user-ip",
    "x-azure-clientip",
    "x-azure-socketip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "remote-addr",
    "x-proxyuser-ip",
    "x-original-url",
    "x-rewrite-url",
];

/// Whether a header is a claim about the connection or the request line
/// that only a proxy may make: every `X-Forwarded*` (Port, Prefix, Server
/// and the rest, not just the three lifeboat sets), `Forwarded*`, and
/// [`PEER_CLAIMS`]. Underscores count as dashes: CGI-style origins
/// (`HTTP_X_FORWARDED_FOR`) and many frameworks read `X_Forwarded_For` as
/// `X-Forwarded-For`.
fn is_peer_claim(name: &str) -> bool {
    let dashed;
    let name = if name.contains('_') {
        dashed = name.replace('_', "-");
        dashed.as_str()
    } else {
        name
    };
    name.starts_with("x-forwarded") || name.starts_with("forwarded") || PEER_CLAIMS.contains(&name)
}

/// Sets the `X-Forwarded-*` fields. From an untrusted peer, every incoming
/// claim about the connection ([`is_peer_claim`]) is discarded; from a
/// trusted one, they pass and the chain is extended.
pub fn set_forwarded(headers: &mut HeaderMap, peer: &Peer<'_>) {
    if !peer.trusted {
        // Collecting allocates only when there is something to remove.
        let claims: Vec<HeaderName> = headers
            .keys()
            .filter(|n| is_peer_claim(n.as_str()))
            .cloned()
            .collect();
        for name in claims {
            headers.remove(name);
        }
    }
    let chain = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(prior) if !prior.trim_ascii().is_empty() => {
            HeaderValue::from_bytes(&[prior, b", ", peer.ip.as_bytes()].concat()).ok()
        }
        _ => Some(peer.ip.clone()),
    };
    if let Some(v) = chain {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(peer.proto),
        );
    }
    if let (false, Some(host)) = (headers.contains_key(&X_FORWARDED_HOST), peer.host) {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
}

/// This hop's `Via` entries, rendered once per config version.
#[derive(Debug, Clone)]
pub struct Via {
    h10: HeaderValue,
    h11: HeaderValue,
    h2: HeaderValue,
}

impl Via {
    /// Entries for `pseudonym` (validated as visible ASCII by the config).
    pub fn new(pseudonym: &str) -> Self {
        let make = |proto: &str| {
            HeaderValue::from_str(&format!("{proto} {pseudonym}"))
                .unwrap_or(HeaderValue::from_static("1.1 lifeboat"))
        };
        Via {
            h10: make("1.0"),
            h11: make("1.1"),
            h2: make("2"),
        }
    }

    /// Appends this hop to `Via` (`1.1 lifeboat`, `2 lifeboat`).
    pub fn add(&self, headers: &mut HeaderMap, version: Version) {
        let hop = match version {
            Version::HTTP_09 | Version::HTTP_10 => &self.h10,
            Version::HTTP_2 => &self.h2,
            _ => &self.h11,
        };
        let value = match headers.get(header::VIA) {
            Some(prior) => {
                HeaderValue::from_bytes(&[prior.as_bytes(), b", ", hop.as_bytes()].concat()).ok()
            }
            None => Some(hop.clone()),
        };
        if let Some(v) = value {
            headers.insert(header::VIA, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_listed_and_connection_named_fields() {
        let mut h = map(&[
            ("connection", "close, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn only_a_websocket_handshake_is_an_upgrade() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ];
        assert!(is_websocket_upgrade(&http::Method::GET, &map(&ws)));
        assert!(!is_websocket_upgrade(&http::Method::POST, &map(&ws)));
        for (what, swap) in [
            ("h2c", ("upgrade", "h2c")),
            ("h2c offered first", ("upgrade", "h2c, websocket")),
            ("websocket beside another", ("upgrade", "websocket, foo/1")),
            ("TLS", ("upgrade", "TLS/1.2")),
            ("no Connection: upgrade", ("connection", "keep-alive")),
            ("no key", ("sec-websocket-key", "")),
        ] {
            let mut fields: Vec<(&str, &str)> =
                ws.iter().copied().filter(|(k, _)| *k != swap.0).collect();
            if !swap.1.is_empty() {
                fields.push(swap);
            }
            assert!(
                !is_websocket_upgrade(&http::Method::GET, &map(&fields)),
                "{what}"
            );
        }
        let mut h2c = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
        ]);
        strip_hop_by_hop(&mut h2c, false);
        assert!(h2c.is_empty(), "an h2c upgrade left {h2c:?}");
        let mut unlisted = map(&[("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA")]);
        strip_hop_by_hop(&mut unlisted, false);
        assert!(
            unlisted.is_empty(),
            "HTTP2-Settings is hop-by-hop even when not listed"
        );
    }

    #[test]
    fn upgrade_keeps_upgrade_fields() {
        let mut h = map(&[
            ("connection", "Upgrade, x-foo"),
            ("upgrade", "websocket"),
            ("x-foo", "1"),
        ]);
        assert!(upgrades_to_websocket(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!h.contains_key("x-foo"));
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-port", "1"),
            ("x-forwarded-prefix", "/admin"),
            ("x-real-ip", "6.6.6.6"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_real_ip", "6.6.6.6"),
            ("client-ip", "6.6.6.6"),
            ("client_ip", "6.6.6.6"),
            ("x-cluster-client-ip", "6.6.6.6"),
            ("cf-connecting-ip", "6.6.6.6"),
            ("x-original-url", "/admin"),
            ("forwarded-for", "6.6.6.6"),
            ("x-forwarded", "for=6.6.6.6"),
            ("x-request-id", "kept"),
        ]);
        let host = HeaderValue::from_static("example.org");
        let peer = Peer {
            ip: &HeaderValue::from_static("203.0.113.9"),
            trusted: false,
            proto: "http",
            host: Some(&host),
        };
        set_forwarded(&mut h, &peer);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.org");
        assert!(!h.contains_key("forwarded"));
        for spoofed in [
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-real-ip",
            "x_forwarded_for",
            "x_real_ip",
            "client-ip",
            "client_ip",
            "x-cluster-client-ip",
            "cf-connecting-ip",
            "x-original-url",
            "forwarded-for",
            "x-forwarded",
        ] {
            assert!(!h.contains_key(spoofed), "{spoofed} passed");
        }
        assert_eq!(h["x-request-id"], "kept", "an ordinary header was dropped");
    }

    #[test]
    fn trusted_peer_extends_chain() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer = Peer {
            ip: &HeaderValue::from_static("10.0.0.2"),
            trusted: true,
            proto: "http",
            host: None,
        };
        set_forwarded(&mut h, &peer);
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn via_appends() {
        let mut h = map(&[("via", "1.1 cdn")]);
        Via::new("lifeboat").add(&mut h, Version::HTTP_2);
        assert_eq!(h["via"], "1.1 cdn, 2 lifeboat");
    }
}
