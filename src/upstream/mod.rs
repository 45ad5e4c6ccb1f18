//! The origin side: a pooled hyper client, the choice of server, request
//! and response rewriting, timeouts, and error classification.
//!
//! [`Upstream::forward`] picks a server ([`pool`]), turns a client request
//! into an origin request (absolute URI, HTTP/1.1 unless the origin speaks
//! h2, proxy headers), waits for response headers no longer than the TTFB
//! timeout, and hands back a response whose body streams with an idle
//! timeout. An idempotent request without a body that got no answer
//! (connection refused, reset, closed) is sent once more, to another
//! server: RFC 9110 §9.2.2 allows it, and nothing of it can have taken
//! effect twice. Failures come back as [`UpstreamError`], which `apology`
//! turns into a page.

mod headers;
pub mod health;
pub mod outlier;
pub mod pool;
pub mod resolve;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::header::{HOST, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use headers::is_websocket_upgrade;
pub use pool::{Pool, Registry, Server, ServerSlot};

use crate::body::{BodyError, IdleBody, MinRate, RequestBody, ResponseBody};
use crate::config::{Config, HostHeader, Origin};
use crate::conn::BodyEnd;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be completed by the origin.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connection refused, unreachable host, DNS failure.
    #[error("origin unreachable: {0}")]
    Connect(BoxError),
    /// The TCP connection was not established within `connect_timeout`.
    #[error("origin did not accept a connection within {0:?}")]
    ConnectTimeout(Duration),
    /// No response headers within `ttfb_timeout`.
    #[error("origin sent no response headers within {0:?}")]
    Ttfb(Duration),
    /// The client's own request body stalled (`stalled`) or was malformed or
    /// cut off while being forwarded.
    #[error("client request body: {detail}")]
    ClientBody {
        /// No progress for the body idle timeout, as opposed to broken.
        stalled: bool,
        /// What happened.
        detail: String,
    },
    /// The origin closed, reset, or sent something that is not HTTP.
    #[error("origin broke the exchange: {0}")]
    Protocol(BoxError),
}

/// Where a request came from: fixed for a connection, so it is computed
/// once at accept time and shared by every request on it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer's IP as a header value, for `X-Forwarded-For`.
    pub peer_ip: HeaderValue,
    /// Whether the client connected over TLS.
    pub tls: bool,
}

impl Inbound {
    /// Describes a freshly accepted connection.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let peer_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        Inbound { peer, peer_ip, tls }
    }
}

/// The origin's answer: the response to send, and, for a `101 Switching
/// Protocols` to a WebSocket handshake, the two halves of the tunnel still
/// to be joined.
pub struct Forwarded {
    /// Response for the client.
    pub response: Response<ResponseBody>,
    /// Present when the origin accepted an upgrade.
    pub tunnel: Option<tunnel::Pending>,
    /// The request, counted at the server that answered it.
    pub server: ServerSlot,
}

/// The most hyper reads from an origin connection at once (its adaptive
/// default grows to about 400 KiB). Every response read ahead of a slow
/// visitor holds at most one such read beside its spool's memory, so this
/// bounds what 2,000 slow downloads cost; 64 KiB is still one read per
/// several TCP segments of a fast origin.
const ORIGIN_READ_BUFFER: usize = 64 * 1024;

/// The pooled client for one origin, built from one config version.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector<resolve::Resolver>>, RequestBody>,
    /// The servers, and which of them are in rotation.
    pub pool: Pool,
    origin: Origin,
    body_idle: Duration,
    via: headers::Via,
    trusted: Vec<crate::config::Cidr>,
    /// WebSocket upgrades are tunnelled (`proxy.upgrades`).
    websocket: bool,
    tunnel_idle: Duration,
    /// The slowest a request body may arrive (`None`: no minimum).
    body_min_rate: Option<MinRate>,
}

impl Upstream {
    /// Builds the connection pool for `config`'s origin, its servers from
    /// `registry` (`clock`: the process's, for ejection times).
    pub fn new(config: &Config, registry: &Registry, clock: tokio::time::Instant) -> Self {
        let origin = config.origin.clone();
        let pool = Pool::new(config, registry, clock);
        let mut connector =
            HttpConnector::new_with_resolver(resolve::Resolver::new(pool.servers()));
        connector.set_connect_timeout(Some(origin.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(origin.pool_idle_timeout)
            .pool_max_idle_per_host(origin.pool_max_idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(origin.http2)
            .http1_max_buf_size(ORIGIN_READ_BUFFER)
            .build(tls_connector(&origin, connector));
        Upstream {
            client,
            pool,
            origin,
            body_idle: config.limits.body_idle_timeout,
            via: headers::Via::new(&config.proxy.via),
            trusted: config.proxy.trusted_proxies.clone(),
            websocket: config.proxy.websocket,
            tunnel_idle: config.limits.tunnel_idle_timeout,
            body_min_rate: (config.limits.body_min_rate > 0).then_some(MinRate {
                bytes_per_sec: config.limits.body_min_rate,
                grace: config.limits.body_rate_grace,
            }),
        }
    }

    /// Sends `req` to the origin and returns its response headers; the body
    /// streams afterwards. The client's body may be any body: hyper's own is
    /// passed on as it is, any other is boxed.
    pub async fn forward<B>(
        &self,
        mut req: Request<B>,
        from: &Inbound,
        body_end: Option<BodyEnd>,
    ) -> Result<Forwarded, UpstreamError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // Only a WebSocket handshake keeps its upgrade; any other (h2c above
        // all, whose tunnel would carry HTTP/2 requests past
        // classification) is stripped with the other hop-by-hop fields.
        let upgrade = self.websocket
            && req.version() == Version::HTTP_11
            && is_websocket_upgrade(req.method(), req.headers());
        let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
        // Sent again to another server if it gets no answer: only a request
        // that cannot have changed anything (idempotent, no body) and only
        // when there is another server to try.
        let again = body_end.is_none()
            && !upgrade
            && req.method().is_idempotent()
            && self.pool.servers().len() > 1;
        let req = self.rewrite_request(req, from, upgrade, body_end);
        let (server, sent) = self.send(req, again).await?;
        let mut resp = sent?;

        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let tunnel = match (switching, client_side) {
            (false, _) => None,
            (true, Some(client)) if headers::upgrades_to_websocket(resp.headers()) => Some(
                tunnel::Pending::new(client, hyper::upgrade::on(&mut resp), self.tunnel_idle),
            ),
            // A switch lifeboat did not ask for, or to another protocol
            // than WebSocket: nothing it can tunnel.
            (true, _) => {
                return Err(UpstreamError::Protocol(
                    "the origin switched protocols without a WebSocket handshake to confirm".into(),
                ));
            }
        };
        let (mut parts, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, tunnel.is_some());
        self.via.add(&mut parts.headers, parts.version);
        // lifeboat answers in its own protocol version, whatever the
        // origin's: an HTTP/1.0 status line would tell an HTTP/1.1 client to
        // close. (hyper sends HTTP/1.0 itself to an HTTP/1.0 client.)
        parts.version = Version::HTTP_11;
        let response = Response::from_parts(parts, ResponseBody::origin(body, self.body_idle));
        Ok(Forwarded {
            response,
            tunnel,
            server,
        })
    }

    /// Sends `req` to a server; if it got no answer and `again` allows,
    /// once more to another. `Err` only when no server is in rotation.
    async fn send(
        &self,
        mut req: Request<RequestBody>,
        again: bool,
    ) -> Result<(ServerSlot, Result<Response<Incoming>, UpstreamError>), UpstreamError> {
        let head = again.then(|| {
            let h = (req.method(), req.uri(), req.version(), req.headers());
            (h.0.clone(), h.1.clone(), h.2, h.3.clone())
        });
        let Some(first) = self.pool.pick(None).cloned() else {
            return Err(UpstreamError::Connect(
                "no origin server in rotation".into(),
            ));
        };
        self.address(&mut req, &first);
        let (server, sent) = self.attempt(&first, req).await;
        if let (Err(e), Some((method, uri, version, headers))) = (&sent, head)
            && e.never_answered()
            && let Some(second) = self.pool.pick(Some(&first)).cloned()
        {
            tracing::debug!(error = %e, from = %first.name, to = %second.name, "sending the request again");
            let mut retry = Request::new(RequestBody::empty());
            *retry.method_mut() = method;
            *retry.uri_mut() = uri;
            *retry.version_mut() = version;
            *retry.headers_mut() = headers;
            self.address(&mut retry, &second);
            return Ok(self.attempt(&second, retry).await);
        }
        Ok((server, sent))
    }

    /// Sends `req` to `server`: counted there, its outcome recorded for
    /// the server's health.
    async fn attempt(
        &self,
        server: &Arc<Server>,
        req: Request<RequestBody>,
    ) -> (ServerSlot, Result<Response<Incoming>, UpstreamError>) {
        let slot = ServerSlot::new(server);
        server.requests.fetch_add(1, Relaxed);
        let sent = tokio::time::timeout(self.origin.ttfb_timeout, self.client.request(req)).await;
        let result = match sent {
            Err(_) => Err(UpstreamError::Ttfb(self.origin.ttfb_timeout)),
            Ok(Err(e)) => Err(match self.classify(e) {
                // Which server, in the log line: with several, the reason
                // alone does not say where to look.
                UpstreamError::Connect(e) => {
                    UpstreamError::Connect(format!("{}: {}", server.name, chain(&*e)).into())
                }
                other => other,
            }),
            Ok(Ok(resp)) => Ok(resp),
        };
        match &result {
            Ok(resp) => self.pool.outcome(server, !resp.status().is_server_error()),
            // The client's own body: nothing said about the server.
            Err(UpstreamError::ClientBody { .. }) => {}
            Err(_) => self.pool.outcome(server, false),
        }
        (slot, result)
    }

    /// Points a rewritten request at `server`: absolute URI, and `Host`
    /// when the policy is the origin's own.
    fn address(&self, req: &mut Request<RequestBody>, server: &Server) {
        if self.origin.host == HostHeader::Origin
            && let Ok(host) = HeaderValue::from_str(server.config.authority.as_str())
        {
            req.headers_mut().insert(HOST, host);
        }
        *req.uri_mut() = origin_uri(&server.config, req.uri());
    }

    fn rewrite_request<B>(
        &self,
        req: Request<B>,
        from: &Inbound,
        upgrade: bool,
        body_end: Option<BodyEnd>,
    ) -> Request<RequestBody>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let client_host = parts.headers.get(HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let peer = headers::Peer {
            ip: &from.peer_ip,
            trusted: self.trusted.iter().any(|c| c.contains(from.peer.ip())),
            proto: if from.tls { "https" } else { "http" },
            host: client_host.as_ref(),
        };
        let trailers = headers::accepts_trailers(&parts.headers);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        if trailers {
            parts
                .headers
                .insert(http::header::TE, HeaderValue::from_static("trailers"));
        }
        headers::set_forwarded(&mut parts.headers, &peer);
        self.via.add(&mut parts.headers, parts.version);
        // The origin's own host is set per server (`address`).
        let host = match &self.origin.host {
            HostHeader::Preserve => client_host,
            HostHeader::Origin => None,
            HostHeader::Fixed(v) => Some(v.clone()),
        };
        if let Some(host) = host {
            parts.headers.insert(HOST, host);
        }
        parts.version = if self.origin.http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let body = IdleBody::new(body, self.body_idle)
            .ending(body_end)
            .min_rate(self.body_min_rate);
        Request::from_parts(parts, body)
    }

    fn classify(&self, e: hyper_util::client::legacy::Error) -> UpstreamError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(body) = err.downcast_ref::<BodyError>() {
                return UpstreamError::ClientBody {
                    stalled: matches!(body, BodyError::Idle(_) | BodyError::TooSlow(_)),
                    detail: body.to_string(),
                };
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
                && e.is_connect()
            {
                return UpstreamError::ConnectTimeout(self.origin.connect_timeout);
            }
            source = err.source();
        }
        if e.is_connect() {
            // The whole chain: a refused certificate says why only at its end.
            UpstreamError::Connect(chain(&e).into())
        } else {
            UpstreamError::Protocol(Box::new(e))
        }
    }
}

impl UpstreamError {
    /// Whether the request cannot have been answered: no connection, or
    /// one that broke before any response (a timeout can mean the server
    /// is still working on it, so it does not count).
    pub fn never_answered(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect(_)
                | UpstreamError::ConnectTimeout(_)
                | UpstreamError::Protocol(_)
        )
    }
}

/// The connector for `http://` and `https://` servers: TLS with the
/// origin's roots (verification always on), ALPN h2 and http/1.1, SNI the
/// `host` policy's fixed name if there is one, else the server's host.
fn tls_connector<R>(origin: &Origin, http: HttpConnector<R>) -> HttpsConnector<HttpConnector<R>> {
    let config = match &origin.tls {
        Some(tls) => (*tls.client_config).clone(),
        // No https:// server: the TLS side is never used.
        None => crate::tls::unused_client_config(),
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let fixed = match &origin.host {
        HostHeader::Fixed(v) => v
            .to_str()
            .ok()
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_string())
            .and_then(|h| rustls::pki_types::ServerName::try_from(h).ok()),
        _ => None,
    };
    let builder = match fixed {
        Some(name) => {
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    if origin.http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().enable_http2().wrap_connector(http)
    }
}

/// An error and its sources, `: `-separated: a refused certificate says
/// why only at the end of the chain.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out += ": ";
        out += &s.to_string();
        source = s.source();
    }
    out
}

/// `scheme://authority/path?query` at `server`.
fn origin_uri(server: &crate::config::Server, uri: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(server.scheme.clone());
    parts.authority = Some(server.authority.clone());
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    // Scheme, authority and path are all present, so this cannot fail;
    // fall back to the bare origin rather than panic.
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("http://invalid./"))
}
