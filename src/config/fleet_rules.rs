//! `[fleet]` and its validation: the Redis the instances share, who this one
//! is, and the origin limit the fleet divides.

use std::time::Duration;

use toml::Spanned;

use super::raw::RawFleet;
use super::validate::Ctx;
use super::{ConfigError, OriginLimit};

/// `[fleet]`: several lifeboats that act as one, over Redis. Fixed at start.
#[derive(Clone, PartialEq)]
pub struct Fleet {
    /// `redis://host:port[/db]`, perhaps with a password.
    pub redis: String,
    /// This instance's id in the fleet.
    pub instance: String,
    /// Prefix of every key lifeboat uses.
    pub prefix: String,
    /// How often this instance says it is alive (its record lives 3 times
    /// as long).
    pub heartbeat: Duration,
    /// The origin limit for the whole fleet, divided among live instances.
    pub max_inflight: Option<usize>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A password in the URL stays out of `GET /config` and the logs.
        let redis = match self.redis.split_once('@') {
            Some((_, host)) => format!("redis://REDACTED@{host}"),
            None => self.redis.clone(),
        };
        f.debug_struct("Fleet")
            .field("redis", &redis)
            .field("instance", &self.instance)
            .field("prefix", &self.prefix)
            .field("heartbeat", &self.heartbeat)
            .field("max_inflight", &self.max_inflight)
            .finish()
    }
}

/// Instances say they are alive once a second ...
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Whether `id` can name an instance: 1 to 64 letters, digits, `-`, `_`
/// or `.` (it is shown on pages and in keys).
pub fn valid_instance(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The instance id when none is configured: the pod's name on Kubernetes
/// (`POD_NAME` from the downward API), else the host name, with anything
/// an id may not hold replaced by `-`.
fn default_instance() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| {
            s.chars()
                .take(64)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "lifeboat".to_string())
}

pub(super) fn fleet(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<RawFleet>>,
    origin: OriginLimit,
    origin_limit_set: bool,
) -> Result<Option<Fleet>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let f = raw.get_ref();
    let url = f.redis.as_ref().ok_or_else(|| {
        ctx.err_key(
            raw.span(),
            "fleet.redis",
            "missing `redis`: the fleet's shared state, e.g. redis = \"redis://redis:6379\"",
        )
    })?;
    let parsed: http::Uri = url.get_ref().parse().map_err(|_| {
        ctx.err(
            url.span(),
            format!("expected a redis:// URL, found \"{}\"", url.get_ref()),
        )
    })?;
    if parsed.scheme_str() != Some("redis") || parsed.authority().is_none() {
        return Err(ctx.err(
            url.span(),
            format!(
                "expected a redis://host:port URL (rediss:// is not supported yet), found \"{}\"",
                url.get_ref()
            ),
        ));
    }
    let instance = match &f.instance {
        Some(i) => {
            let id = i.get_ref();
            if !valid_instance(id) {
                return Err(ctx.err(
                    i.span(),
                    format!("expected 1 to 64 letters, digits, '-', '_' or '.', found \"{id}\""),
                ));
            }
            id.clone()
        }
        None => default_instance(),
    };
    let prefix = match &f.prefix {
        Some(p) if p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace) => {
            return Err(ctx.err(
                p.span(),
                format!(
                    "expected a key prefix without spaces, found \"{}\"",
                    p.get_ref()
                ),
            ));
        }
        Some(p) => p.get_ref().clone(),
        None => "lifeboat".to_string(),
    };
    let max_inflight = match &f.max_inflight {
        None => None,
        Some(n) if origin_limit_set && matches!(origin, OriginLimit::Fixed(_)) => {
            return Err(ctx.err(
                n.span(),
                "the origin's limit is set twice: `origin.max_inflight` for this instance and \
                 `fleet.max_inflight` for the fleet; keep one",
            ));
        }
        Some(_) => Some(ctx.int(&f.max_inflight, 0, (1, 100_000))? as usize),
    };
    Ok(Some(Fleet {
        redis: url.get_ref().clone(),
        instance,
        prefix,
        heartbeat: ctx.duration(
            &f.heartbeat,
            HEARTBEAT,
            (Duration::from_millis(100), Duration::from_secs(10)),
        )?,
        max_inflight,
    }))
}
