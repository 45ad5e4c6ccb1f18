//! `RawConfig` → trusted [`Config`]: applies defaults, checks ranges and
//! cross-field rules, loads referenced files. Every default is a constant
//! here with the reason for its value.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use super::error::{Source, explain_unknown_key};
use super::raw::{RawConfig, RawLimits, RawListen, RawProxy, RawTls};
use super::units;
use super::{Config, ConfigError, Limits, Listen, Proxy, Shutdown, Tls};

/// Plain listener when none is configured: loopback, so a fresh install
/// exposes nothing until the operator says so.
const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// TLS handshakes normally take one or two round trips; 5 s cuts silent
/// handshakes without failing slow mobile links.
const TLS_HANDSHAKE: Duration = Duration::from_secs(5);
const TLS_MAX_HANDSHAKES: i64 = 512;
const LISTEN_BACKLOG: i64 = 4096;
/// Client connections: 10,000 fits comfortably in the default 64 Ki fd limit
/// alongside origin connections.
const MAX_CONNECTIONS: i64 = 10_000;
/// Request head must be complete within 10 s: slowloris protection.
const HEADER_READ: Duration = Duration::from_secs(10);
/// Idle keep-alive: 60 s matches what browsers keep on their side.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// A body that makes no progress for 30 s is abandoned.
const BODY_IDLE: Duration = Duration::from_secs(30);
/// 32 KiB of request head: larger than any sane cookie jar, smaller than an attack.
const MAX_HEADER_SIZE: u64 = 32 * 1024;
/// hyper's read buffer cannot be smaller than 8 KiB.
const MIN_HEADER_SIZE: u64 = 8 * 1024;
/// 100 header fields, as nginx and most CDNs allow.
const MAX_HEADERS: i64 = 100;
/// 100 concurrent h2 streams, the RFC 9113 recommended minimum.
const H2_STREAMS: i64 = 100;
/// A request body must average 500 bytes/s once its grace is spent, as
/// Apache's mod_reqtimeout (`body=20,MinRate=500`): a dial-up modem sends
/// 7 KB/s, while a body trickled a byte every few seconds, under the idle
/// timeout, would otherwise hold its origin slot for as long as it likes.
const BODY_MIN_RATE: u64 = 500;
/// The first 20 s of a body are free of the rate (Apache's `body=20`):
/// room for a slow start on a poor link.
const BODY_RATE_GRACE: Duration = Duration::from_secs(20);
/// An upgraded tunnel (WebSocket) silent both ways for 60 s is closed:
/// nginx's `proxy_read_timeout` default, which governs its WebSocket
/// tunnels; WebSocket clients ping well within it (browsers' libraries
/// every 20-30 s).
const TUNNEL_IDLE: Duration = Duration::from_secs(60);
/// Downloads in flight get 30 s to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(30);

/// What `validate` works with: the source text for spans and the parsed
/// document for key paths.
pub(super) struct Ctx<'a> {
    pub(super) src: Source<'a>,
    pub(super) doc: &'a DeTable<'a>,
    pub(super) base_dir: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        self.src.diagnostic(Some(span), Some(self.doc), None, msg)
    }

    pub(super) fn err_key(
        &self,
        span: Range<usize>,
        key: &str,
        msg: impl Into<String>,
    ) -> ConfigError {
        self.src
            .diagnostic(Some(span), Some(self.doc), Some(key.to_string()), msg)
    }

    /// A duration with a default and an inclusive range.
    pub(super) fn duration(
        &self,
        v: &Option<Spanned<units::Duration>>,
        default: Duration,
        range: (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let d = v.get_ref().0;
        if d < range.0 || d > range.1 {
            let (lo, hi) = (units::Duration(range.0), units::Duration(range.1));
            return Err(self.err(
                v.span(),
                format!("must be between {lo} and {hi}, found {}", v.get_ref()),
            ));
        }
        Ok(d)
    }

    /// An integer with a default and an inclusive range.
    pub(super) fn int(
        &self,
        v: &Option<Spanned<i64>>,
        default: i64,
        range: (i64, i64),
    ) -> Result<i64, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let n = *v.get_ref();
        if n < range.0 || n > range.1 {
            return Err(self.err(
                v.span(),
                format!("must be between {} and {}, found {n}", range.0, range.1),
            ));
        }
        Ok(n)
    }
}

pub(super) fn parse_and_validate(
    text: &str,
    name: &str,
    base_dir: &Path,
) -> Result<Config, ConfigError> {
    let src = Source { name, text };
    let doc =
        DeTable::parse(text).map_err(|e| src.diagnostic(e.span(), None, None, e.message()))?;
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc.clone())).map_err(|e| {
        let message = explain_unknown_key(e.message())
            .unwrap_or_else(|| e.message().replace("expected i64", "expected an integer"));
        src.diagnostic(e.span(), Some(doc.get_ref()), None, message)
    })?;
    let ctx = Ctx {
        src,
        doc: doc.get_ref(),
        base_dir,
    };
    validate(&ctx, raw)
}

fn validate(ctx: &Ctx<'_>, raw: RawConfig) -> Result<Config, ConfigError> {
    let Some(origin) = &raw.origin else {
        return Err(ctx.err_key(
            0..0,
            "origin",
            "missing table [origin]: lifeboat needs an origin `url` to proxy to",
        ));
    };
    let mut origin_cfg = super::origin_rules::origin(ctx, origin)?;
    let origin_limit_set = origin.get_ref().max_inflight.is_some();
    let fleet = super::fleet_rules::fleet(
        ctx,
        raw.fleet.as_ref(),
        origin_cfg.max_inflight,
        origin_limit_set,
    )?;
    // The fleet's limit pins this instance's (spread over its servers)
    // until the fleet divides it.
    if let Some(n) = fleet.as_ref().and_then(|f| f.max_inflight) {
        let per_server = n.div_ceil(origin_cfg.servers.len().max(1)).max(1);
        origin_cfg.max_inflight = super::OriginLimit::Fixed(per_server);
    }
    Ok(Config {
        source: ctx.src.name.to_string(),
        digest: super::digest(ctx.src.text.as_bytes()),
        listen: listen(ctx, raw.listen.as_ref())?,
        origin: origin_cfg,
        limits: limits(ctx, &raw.limits)?,
        buffering: super::buffer_rules::buffering(ctx, &raw.buffering)?,
        proxy: proxy(ctx, &raw.proxy)?,
        shutdown: Shutdown {
            drain_timeout: ctx.duration(
                &raw.shutdown.drain_timeout,
                DRAIN,
                (Duration::ZERO, Duration::from_secs(3600)),
            )?,
        },
        log: super::log_rules::log(ctx, &raw.log)?,
        shedding: super::shed_rules::shedding(ctx, raw.shedding.as_ref())?,
        routes: super::shed_rules::routes(ctx, &raw.route)?,
        apology: super::shed_rules::apology(ctx, &raw.apology, &raw.status)?,
        admin: super::control_rules::admin(ctx, raw.admin.as_ref())?,
        story: super::control_rules::story(ctx, &raw.status, &raw.journal, &raw.webhook)?,
        reload: super::control_rules::reload(ctx, &raw.reload)?,
        fleet,
    })
}

fn listen(ctx: &Ctx<'_>, raw: Option<&Spanned<RawListen>>) -> Result<Listen, ConfigError> {
    let Some(raw) = raw else {
        let http = DEFAULT_HTTP.parse().ok();
        return Ok(Listen {
            http,
            https: None,
            backlog: LISTEN_BACKLOG as u32,
        });
    };
    let addr = |v: &Spanned<String>| -> Result<SocketAddr, ConfigError> {
        v.get_ref().parse().map_err(|_| {
            ctx.err(
                v.span(),
                format!(
                    "expected an address like \"127.0.0.1:8080\" or \"[::]:443\", found \"{}\"",
                    v.get_ref()
                ),
            )
        })
    };
    let http = raw.get_ref().http.as_ref().map(addr).transpose()?;
    let https_addr = raw.get_ref().https.as_ref().map(addr).transpose()?;
    let https = match (&raw.get_ref().https, https_addr, &raw.get_ref().tls) {
        (Some(_), Some(a), Some(tls)) => Some((a, self::tls(ctx, tls)?)),
        (Some(v), _, None) => {
            return Err(ctx.err(
                v.span(),
                "`https` needs a [listen.tls] table with `cert` and `key`",
            ));
        }
        (None, _, Some(tls)) => {
            return Err(ctx.err_key(
                tls.span(),
                "listen.tls",
                "[listen.tls] is set but there is no `https` address to use it on",
            ));
        }
        _ => None,
    };
    if let (Some(h), Some((s, _))) = (http, &https)
        && h == *s
        && h.port() != 0
    {
        let span = raw
            .get_ref()
            .https
            .as_ref()
            .map_or(raw.span(), |v| v.span());
        return Err(ctx.err(
            span,
            format!("`http` and `https` cannot both listen on {h}"),
        ));
    }
    if http.is_none() && https.is_none() {
        return Err(ctx.err_key(
            raw.span(),
            "listen",
            "no listener: set `http`, `https`, or both",
        ));
    }
    let backlog = ctx.int(&raw.get_ref().backlog, LISTEN_BACKLOG, (16, 65_535))? as u32;
    Ok(Listen {
        http,
        https,
        backlog,
    })
}

fn tls(ctx: &Ctx<'_>, raw: &Spanned<RawTls>) -> Result<Tls, ConfigError> {
    let t = raw.get_ref();
    let missing = |k: &str| {
        ctx.err_key(
            raw.span(),
            &format!("listen.tls.{k}"),
            format!("missing `{k}`: the path to a PEM file"),
        )
    };
    let cert = t.cert.as_ref().ok_or_else(|| missing("cert"))?;
    let key = t.key.as_ref().ok_or_else(|| missing("key"))?;
    let cert_path = ctx.base_dir.join(cert.get_ref());
    let key_path = ctx.base_dir.join(key.get_ref());
    let chain = crate::tls::read_chain(&cert_path).map_err(|e| ctx.err(cert.span(), e))?;
    let private = crate::tls::read_key(&key_path).map_err(|e| ctx.err(key.span(), e))?;
    let server_config = crate::tls::server_config(chain, private).map_err(|e| {
        ctx.err(
            key.span(),
            format!("certificate and key do not make a usable TLS config: {e}"),
        )
    })?;
    Ok(Tls {
        cert_path,
        server_config,
        handshake_timeout: ctx.duration(
            &t.handshake_timeout,
            TLS_HANDSHAKE,
            (Duration::from_millis(100), Duration::from_secs(60)),
        )?,
        max_handshakes: ctx.int(&t.max_handshakes, TLS_MAX_HANDSHAKES, (1, 100_000))? as usize,
    })
}

fn limits(ctx: &Ctx<'_>, l: &RawLimits) -> Result<Limits, ConfigError> {
    let (ms, secs) = (Duration::from_millis, Duration::from_secs);
    let max_header_size = match &l.max_header_size {
        None => MAX_HEADER_SIZE,
        Some(v) if (MIN_HEADER_SIZE..=1 << 20).contains(&v.get_ref().0) => v.get_ref().0,
        Some(v) => {
            return Err(ctx.err(
                v.span(),
                format!("must be between 8KiB and 1MiB, found {}", v.get_ref()),
            ));
        }
    };
    Ok(Limits {
        max_connections: ctx.int(&l.max_connections, MAX_CONNECTIONS, (1, 1_000_000))? as usize,
        header_read_timeout: ctx.duration(
            &l.header_read_timeout,
            HEADER_READ,
            (ms(100), secs(300)),
        )?,
        keepalive_timeout: ctx.duration(&l.keepalive_timeout, KEEPALIVE, (ms(100), secs(3600)))?,
        body_idle_timeout: ctx.duration(&l.body_idle_timeout, BODY_IDLE, (ms(100), secs(3600)))?,
        max_header_size: max_header_size as usize,
        max_headers: ctx.int(&l.max_headers, MAX_HEADERS, (8, 1000))? as usize,
        h2_max_concurrent_streams: ctx.int(&l.h2_max_concurrent_streams, H2_STREAMS, (1, 10_000))?
            as u32,
        body_min_rate: match &l.body_min_rate {
            None => BODY_MIN_RATE,
            Some(v) if v.get_ref().0 <= 1 << 30 => v.get_ref().0,
            Some(v) => {
                return Err(ctx.err(
                    v.span(),
                    format!(
                        "must be at most 1GiB (bytes per second; 0 for no minimum), found {}",
                        v.get_ref()
                    ),
                ));
            }
        },
        body_rate_grace: ctx.duration(
            &l.body_rate_grace,
            BODY_RATE_GRACE,
            (ms(100), secs(3600)),
        )?,
        tunnel_idle_timeout: ctx.duration(
            &l.tunnel_idle_timeout,
            TUNNEL_IDLE,
            (ms(100), secs(86_400)),
        )?,
    })
}

fn proxy(ctx: &Ctx<'_>, p: &RawProxy) -> Result<Proxy, ConfigError> {
    let via = match &p.via {
        None => "lifeboat".to_string(),
        Some(v) if !v.get_ref().is_empty() && v.get_ref().bytes().all(|b| b.is_ascii_graphic()) => {
            v.get_ref().clone()
        }
        Some(v) => {
            return Err(ctx.err(
                v.span(),
                "expected a single word (visible ASCII, no spaces)",
            ));
        }
    };
    let mut websocket = p.upgrades.is_none();
    for u in p.upgrades.iter().flatten() {
        match u.get_ref().to_ascii_lowercase().as_str() {
            "websocket" => websocket = true,
            "h2c" => {
                return Err(ctx.err(
                    u.span(),
                    "h2c upgrades cannot be tunnelled: RFC 9113 deprecated them, and a tunnel \
                     would carry HTTP/2 requests past classification (clients use h2c with \
                     prior knowledge, or h2 over TLS, which lifeboat serves itself)",
                ));
            }
            other => {
                return Err(ctx.err(
                    u.span(),
                    format!("lifeboat tunnels only \"websocket\", found \"{other}\""),
                ));
            }
        }
    }
    Ok(Proxy {
        trusted_proxies: p.trusted_proxies.clone().unwrap_or_default(),
        via,
        websocket,
    })
}
