//! Validation of `[origin]`: its servers (one `url`, or several with
//! weights), timeouts and pool, the limit at the origin, passive ejection
//! and the active health check. Defaults are constants with their reasons.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawHealth, RawOrigin, RawServer};
use super::units::LimitSetting;
use super::validate::Ctx;
use super::{ConfigError, HostHeader, Origin, OriginLimit};

/// Origin connect: a healthy origin on a LAN connects in milliseconds; 4 s
/// tolerates SYN retransmission (1 s, then 3 s) once.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// Time to first byte: long enough for slow dynamic pages, short enough that
/// a stuck origin shows up as an error rather than a hung browser.
const TTFB_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle origin connections are kept 90 s, longer than typical origin
/// keep-alive settings would be wasteful, shorter costs reconnects.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle origin connections kept: enough to absorb a burst without a wave of
/// new connects, small enough not to exhaust the origin's worker slots.
const POOL_MAX_IDLE: i64 = 256;
/// The learned origin limit never goes below 2: one request at the origin
/// and one on its way keep even a single-worker origin busy.
const LEARN_MIN: i64 = 2;
/// ... nor above 4,096: more than any app server's workers, room for a
/// static server's thousands of release-day transfers at once (2,000
/// visitors each holding a download must all fit), and still a bound on
/// what a wrong measurement can let through. The limit gets near it only
/// while answers come at their baseline.
const LEARN_MAX: i64 = 4096;
/// It starts at 16, a small app server's worker count: low enough that the
/// first wave meets a queue lifeboat can prioritise, and it grows by a
/// tenth every 100 ms while the origin keeps up.
const LEARN_INITIAL: i64 = 16;
/// Requests waiting in lifeboat: a few seconds of a large site's traffic.
const QUEUE_MAX: i64 = 2048;
/// A queued request that has not reached the origin after 1 s gets the
/// apology: waiting longer helps nobody in a stampede.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// A server's weight when none is given: all servers alike.
const WEIGHT: i64 = 1;
/// Five failures in a row (connect errors, timeouts, 5xx) eject a server,
/// as Envoy's outlier detection (`consecutive_5xx`): one failure is noise,
/// five in a row at release-day rates is a server that is gone.
const EJECT_AFTER: i64 = 5;
/// A first ejection lasts 5 s; each further one twice the last: a server
/// that restarts is back within seconds, one that keeps failing is tried
/// less and less often.
const EJECT_FOR: Duration = Duration::from_secs(5);
/// ... up to 5 minutes (Envoy's `max_ejection_time`).
const EJECT_MAX: Duration = Duration::from_secs(300);
/// Health checks every 5 s: a dead server is out within
/// `unhealthy_threshold` × 5 s even with no traffic to notice it.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// A health check answers within 1 s or counts as failed.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Servers given by name are looked up again every 10 s: a Kubernetes
/// headless Service or a cloud balancer's new address is used within
/// seconds, at a cost of one lookup per name per 10 s.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);
/// Two passes in a row bring a server back (HAProxy's `rise 2`).
const HEALTHY_THRESHOLD: i64 = 2;
/// Three failures in a row take a server out (HAProxy's `fall 3`).
const UNHEALTHY_THRESHOLD: i64 = 3;

/// One origin server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `http`.
    pub scheme: http::uri::Scheme,
    /// `host:port`.
    pub authority: http::uri::Authority,
    /// Its share of new requests, relative to the others.
    pub weight: u32,
}

impl Server {
    /// `scheme://host:port`: the server's name in logs, metrics and the
    /// admin API, and what identifies it across reloads.
    pub fn name(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// TLS to the `https://` servers: verification always on.
#[derive(Clone)]
pub struct OriginTls {
    /// Roots (`ca_file`, or the platform's) and the client certificate.
    pub client_config: Arc<rustls::ClientConfig>,
    /// The CA file, if one replaces the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// The client certificate's chain, if one is sent (mTLS).
    pub client_cert: Option<PathBuf>,
}

impl std::fmt::Debug for OriginTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginTls")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .finish_non_exhaustive()
    }
}

/// Passive health: when failures eject a server, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eject {
    /// Consecutive failures (connect, timeout, 5xx) that eject a server.
    pub after: u32,
    /// The first ejection's length; each further one doubles it.
    pub base: Duration,
    /// The longest an ejection lasts.
    pub max: Duration,
}

/// The active health check: a request to every server every `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is asked for (`GET`, the Host policy as for requests).
    pub path: http::uri::PathAndQuery,
    /// Between two checks of a server.
    pub interval: Duration,
    /// A check not answered within this fails.
    pub timeout: Duration,
    /// Passes in a row that bring an ejected server back.
    pub healthy: u32,
    /// Failures in a row that take a server out.
    pub unhealthy: u32,
}

pub(super) fn origin(ctx: &Ctx<'_>, raw: &Spanned<RawOrigin>) -> Result<Origin, ConfigError> {
    let o = raw.get_ref();
    let servers = servers(ctx, raw)?;
    let host = match o.host.as_ref() {
        None => HostHeader::Preserve,
        Some(h) if h.get_ref() == "preserve" => HostHeader::Preserve,
        Some(h) if h.get_ref() == "origin" => HostHeader::Origin,
        Some(h) => HostHeader::Fixed(http::HeaderValue::from_str(h.get_ref()).map_err(|_| {
            ctx.err(
                h.span(),
                "expected \"preserve\", \"origin\" or a valid host name",
            )
        })?),
    };
    let secs = |s| Duration::from_secs(s);
    let max_inflight = origin_limit(ctx, o)?;
    Ok(Origin {
        tls: tls(ctx, raw, &servers)?,
        resolve_every: ctx.duration(
            &o.resolve_every,
            RESOLVE_EVERY,
            (Duration::from_millis(100), Duration::from_secs(3600)),
        )?,
        servers,
        eject: eject(ctx, o)?,
        health: health(ctx, o.health.as_ref())?,
        connect_timeout: ctx.duration(
            &o.connect_timeout,
            CONNECT_TIMEOUT,
            (Duration::from_millis(1), secs(120)),
        )?,
        ttfb_timeout: ctx.duration(
            &o.ttfb_timeout,
            TTFB_TIMEOUT,
            (Duration::from_millis(1), secs(3600)),
        )?,
        pool_idle_timeout: ctx.duration(
            &o.pool_idle_timeout,
            POOL_IDLE,
            (Duration::ZERO, secs(3600)),
        )?,
        pool_max_idle: ctx.int(&o.pool_max_idle, POOL_MAX_IDLE, (0, 100_000))? as usize,
        http2: o.http2.unwrap_or(false),
        host,
        max_inflight,
        primary_reserved: match (&o.primary_reserved, max_inflight) {
            (None, _) => None,
            (Some(v), OriginLimit::Fixed(n)) if !(0..n as i64).contains(v.get_ref()) => {
                return Err(ctx.err(
                    v.span(),
                    format!(
                        "must be at least 0 and less than max_inflight ({n}), found {}",
                        v.get_ref()
                    ),
                ));
            }
            (Some(_), _) => Some(ctx.int(&o.primary_reserved, 0, (0, 100_000))? as usize),
        },
        queue_max: ctx.int(&o.queue_max, QUEUE_MAX, (0, 1_000_000))? as usize,
        queue_timeout: ctx.duration(
            &o.queue_timeout,
            QUEUE_TIMEOUT,
            (Duration::ZERO, secs(600)),
        )?,
    })
}

/// `max_inflight`: a number pins it; `"auto"` (the default) learns it
/// within `learn_min`..=`learn_max`, starting at `learn_initial`.
pub(super) fn origin_limit(ctx: &Ctx<'_>, o: &RawOrigin) -> Result<OriginLimit, ConfigError> {
    let learn_keys = [&o.learn_min, &o.learn_max, &o.learn_initial];
    match o.max_inflight.as_ref().map(|v| (*v.get_ref(), v.span())) {
        Some((LimitSetting::Fixed(n), span)) => {
            if let Some(k) = learn_keys.iter().find_map(|k| k.as_ref()) {
                return Err(ctx.err(
                    k.span(),
                    "learn_min, learn_max and learn_initial apply only with max_inflight = \"auto\"",
                ));
            }
            if !(1..=100_000).contains(&n) {
                return Err(ctx.err(span, format!("must be between 1 and 100000, found {n}")));
            }
            Ok(OriginLimit::Fixed(n as usize))
        }
        None | Some((LimitSetting::Auto, _)) => {
            let min = ctx.int(&o.learn_min, LEARN_MIN, (1, 100_000))?;
            let max = ctx.int(&o.learn_max, LEARN_MAX.max(min), (min, 100_000))?;
            let initial = ctx.int(&o.learn_initial, LEARN_INITIAL.clamp(min, max), (min, max))?;
            Ok(OriginLimit::Auto {
                min: min as usize,
                max: max as usize,
                initial: initial as usize,
            })
        }
    }
}

/// `url = "..."` (one server) or `servers = [{ url, weight }, ...]`.
fn servers(ctx: &Ctx<'_>, raw: &Spanned<RawOrigin>) -> Result<Vec<Server>, ConfigError> {
    let o = raw.get_ref();
    let list = match (&o.url, &o.servers) {
        (Some(_), Some(s)) => {
            return Err(ctx.err(
                s.span(),
                "give either `url` (one server) or `servers` (several), not both",
            ));
        }
        (Some(url), None) => return Ok(vec![server(ctx, url, WEIGHT as u32)?]),
        (None, Some(s)) => s,
        (None, None) => {
            return Err(ctx.err_key(
                raw.span(),
                "origin.url",
                "missing `url`: the origin to proxy to, like \"http://127.0.0.1:8000\" \
                 (or `servers`, a list of them)",
            ));
        }
    };
    if list.get_ref().is_empty() {
        return Err(ctx.err(list.span(), "expected at least one server"));
    }
    let mut out: Vec<Server> = Vec::new();
    for entry in list.get_ref() {
        let RawServer { url, weight } = entry.get_ref();
        let url = url
            .as_ref()
            .ok_or_else(|| ctx.err(entry.span(), "missing `url` for this server"))?;
        let weight = ctx.int(weight, WEIGHT, (1, 1000))? as u32;
        let server = server(ctx, url, weight)?;
        if out.iter().any(|s| s.name() == server.name()) {
            return Err(ctx.err(url.span(), format!("{} is listed twice", server.name())));
        }
        out.push(server);
    }
    Ok(out)
}

fn server(ctx: &Ctx<'_>, url: &Spanned<String>, weight: u32) -> Result<Server, ConfigError> {
    let bad = |why: &str| ctx.err(url.span(), format!("{why}, found \"{}\"", url.get_ref()));
    let uri: http::Uri = url
        .get_ref()
        .parse()
        .map_err(|_| bad("expected a URL like \"http://127.0.0.1:8000\""))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| bad("expected a URL with a scheme, like \"http://127.0.0.1:8000\""))?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err(bad("expected an http:// or https:// URL"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| bad("expected a host and port"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad(
            "the origin URL cannot have a path or query (path prefixes are not supported)",
        ));
    }
    Ok(Server {
        scheme,
        authority,
        weight,
    })
}

fn eject(ctx: &Ctx<'_>, o: &RawOrigin) -> Result<Eject, ConfigError> {
    let (ms, secs) = (Duration::from_millis, Duration::from_secs);
    let base = ctx.duration(&o.eject_for, EJECT_FOR, (ms(10), secs(3600)))?;
    Ok(Eject {
        after: ctx.int(&o.eject_after, EJECT_AFTER, (1, 1000))? as u32,
        base,
        max: ctx.duration(&o.eject_max, EJECT_MAX.max(base), (base, secs(86_400)))?,
    })
}

fn health(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<RawHealth>>,
) -> Result<Option<HealthCheck>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let h = raw.get_ref();
    let path = match &h.path {
        None => http::uri::PathAndQuery::from_static("/"),
        Some(p) => match p.get_ref().parse::<http::uri::PathAndQuery>() {
            Ok(pq) if p.get_ref().starts_with('/') => pq,
            _ => {
                return Err(ctx.err(
                    p.span(),
                    format!(
                        "expected a path like \"/healthz\", found \"{}\"",
                        p.get_ref()
                    ),
                ));
            }
        },
    };
    let (ms, secs) = (Duration::from_millis, Duration::from_secs);
    let interval = ctx.duration(&h.interval, HEALTH_INTERVAL, (ms(10), secs(3600)))?;
    Ok(Some(HealthCheck {
        path,
        interval,
        timeout: ctx.duration(&h.timeout, HEALTH_TIMEOUT.min(interval), (ms(1), interval))?,
        healthy: ctx.int(&h.healthy_threshold, HEALTHY_THRESHOLD, (1, 100))? as u32,
        unhealthy: ctx.int(&h.unhealthy_threshold, UNHEALTHY_THRESHOLD, (1, 100))? as u32,
    }))
}

/// `ca_file`, `client_cert` and `client_key`, loaded when a server is
/// `https://` (and refused when none is: they would do nothing).
fn tls(
    ctx: &Ctx<'_>,
    raw: &Spanned<RawOrigin>,
    servers: &[Server],
) -> Result<Option<OriginTls>, ConfigError> {
    let o = raw.get_ref();
    let https = servers.iter().any(|s| s.scheme == http::uri::Scheme::HTTPS);
    let given = [&o.ca_file, &o.client_cert, &o.client_key];
    if !https {
        return match given.iter().find_map(|k| k.as_ref()) {
            Some(k) => Err(ctx.err(
                k.span(),
                "applies only to https:// servers, and none is listed",
            )),
            None => Ok(None),
        };
    }
    let path = |v: &Spanned<String>| ctx.base_dir.join(v.get_ref());
    let ca_file = o.ca_file.as_ref().map(path);
    let identity = match (&o.client_cert, &o.client_key) {
        (Some(c), Some(k)) => Some((path(c), path(k))),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            return Err(ctx.err(one.span(), "client_cert and client_key go together"));
        }
    };
    let at = o
        .ca_file
        .as_ref()
        .or(o.client_cert.as_ref())
        .map_or_else(|| raw.span(), Spanned::span);
    let client_config = crate::tls::client_config(
        ca_file.as_deref(),
        identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .map_err(|e| ctx.err(at, e))?;
    Ok(Some(OriginTls {
        client_config,
        ca_file,
        client_cert: identity.map(|(c, _)| c),
    }))
}
