//! Validation of `[shedding]`, `[[route]]` and `[apology]`: the parts of the
//! config that decide when to clear the boards, for whom, and with what
//! words. Defaults are constants with their reasons.

use std::time::Duration;

use toml::Spanned;

use super::raw::{RawApology, RawRoute, RawShedding, RawStatus};
use super::validate::Ctx;
use super::{Apology, ConfigError, Enter, Exit, ModeSetting, Shedding};
use crate::classify::{Pattern, Route, RouteClass, Routes};

/// Signals are evaluated 4 times a second: a mode change lands within
/// `enter.after` + 250 ms, at a negligible cost.
const TICK: Duration = Duration::from_millis(250);
/// Percentiles over the last 10 s: long enough to smooth single slow
/// requests, short enough to notice a stampede within seconds.
const WINDOW_SECS: i64 = 10;
/// A percentile from fewer than 20 requests says nothing.
const MIN_SAMPLES: i64 = 20;
/// No mode lasts less than 5 s: flapping confuses users and operators.
const MIN_DWELL: Duration = Duration::from_secs(5);
/// In auto degraded mode a page may wait 20 ms for an origin slot: a few
/// requests' worth of queue keeps the origin busy between hand-offs, and a
/// visitor who is refused is still told within a blink.
const FILL_WAIT: Duration = Duration::from_millis(20);
/// A client address may be told "come back later" 50 times in 10 s: a
/// browser fetching a page and its assets, or an office behind one NAT
/// address, stays well within it; a client retrying every 50 ms does not.
const CLIENT_BUDGET: i64 = 50;
/// Enter levels, after the brief: 512 requests inside lifeboat, TTFB p95
/// 800 ms, 20 % failures, 200 ms p95 queue wait; held for 2 s.
const ENTER_INFLIGHT: i64 = 512;
const ENTER_TTFB: Duration = Duration::from_millis(800);
const ENTER_FAILURES: f64 = 0.2;
const ENTER_QUEUE_WAIT: Duration = Duration::from_millis(200);
const ENTER_AFTER: Duration = Duration::from_secs(2);
/// Leave when every signal is below 70 % of its enter level, and the demand
/// fits in 70 % of the capacity measured while saturated, for 5 s; then let
/// normal traffic queue again, from 10 % to 100 % of it, over 5 s. Back to
/// normal within about 12 s of the wave's end: degraded mode fills the
/// origin anyway, so waiting longer only keeps the apology up, and the
/// demand check (not a long wait) is what keeps a returning herd from
/// knocking lifeboat over again.
const EXIT_FRACTION: f64 = 0.7;
const EXIT_AFTER: Duration = Duration::from_secs(5);
const RAMP: Duration = Duration::from_secs(5);
const RAMP_START: f64 = 0.1;
/// The page's default words and timing.
const DEFAULT_TEMPLATE: &str = include_str!("../../config/apology.html");
const TITLE: &str = "We are overwhelmed, and we are sorry";
const SIGNED: &str = "The release team";
/// Come back in a minute, give or take half a minute, so that the clients
/// sent away together do not return together.
const RETRY_AFTER: Duration = Duration::from_secs(60);
const RETRY_JITTER: Duration = Duration::from_secs(30);
/// The status endpoint's default path (RFC 8615 well-known space).
pub(super) const STATUS_URL: &str = "/.well-known/lifeboat/status";

pub(super) fn shedding(
    ctx: &Ctx<'_>,
    raw: Option<&Spanned<RawShedding>>,
) -> Result<Shedding, ConfigError> {
    let empty = RawShedding::default();
    let s = raw.map_or(&empty, |r| r.get_ref());
    let (ms, secs) = (Duration::from_millis, Duration::from_secs);
    let mode = match s.mode.as_ref() {
        None => ModeSetting::Auto,
        Some(v) => match v.get_ref().as_str() {
            "auto" => ModeSetting::Auto,
            "degraded" => ModeSetting::Degraded,
            "normal" => ModeSetting::Normal,
            other => {
                return Err(ctx.err(
                    v.span(),
                    format!("expected \"auto\", \"degraded\" or \"normal\", found \"{other}\""),
                ));
            }
        },
    };
    let e = s.enter.as_ref().map(|e| e.get_ref());
    let x = s.exit.as_ref().map(|x| x.get_ref());
    // 0 (or "0s") switches an enter condition off.
    let off_if_zero = |d: Duration| (!d.is_zero()).then_some(d);
    let enter = Enter {
        inflight: Some(ctx.int(
            &e.and_then(|e| e.inflight.clone()),
            ENTER_INFLIGHT,
            (0, 10_000_000),
        )? as usize)
        .filter(|n| *n > 0),
        ttfb_p95: off_if_zero(ctx.duration(
            &e.and_then(|e| e.ttfb_p95.clone()),
            ENTER_TTFB,
            (Duration::ZERO, secs(600)),
        )?),
        failure_rate: fraction(
            ctx,
            e.and_then(|e| e.failure_rate.as_ref()),
            ENTER_FAILURES,
            0.0,
        )?
        .filter(|f| *f > 0.0),
        queue_wait_p95: off_if_zero(ctx.duration(
            &e.and_then(|e| e.queue_wait_p95.clone()),
            ENTER_QUEUE_WAIT,
            (Duration::ZERO, secs(600)),
        )?),
        after: ctx.duration(
            &e.and_then(|e| e.after.clone()),
            ENTER_AFTER,
            (Duration::ZERO, secs(3600)),
        )?,
    };
    let exit = Exit {
        fraction: fraction(
            ctx,
            x.and_then(|x| x.fraction.as_ref()),
            EXIT_FRACTION,
            0.01,
        )?
        .unwrap_or(EXIT_FRACTION),
        after: ctx.duration(
            &x.and_then(|x| x.after.clone()),
            EXIT_AFTER,
            (Duration::ZERO, secs(3600)),
        )?,
        ramp: ctx.duration(
            &x.and_then(|x| x.ramp.clone()),
            RAMP,
            (Duration::ZERO, secs(3600)),
        )?,
        ramp_start: fraction(ctx, x.and_then(|x| x.ramp_start.as_ref()), RAMP_START, 0.0)?
            .unwrap_or(RAMP_START),
    };
    let nothing_on = enter.inflight.is_none()
        && enter.ttfb_p95.is_none()
        && enter.failure_rate.is_none()
        && enter.queue_wait_p95.is_none();
    if mode == ModeSetting::Auto && nothing_on {
        let span = s.enter.as_ref().map_or(0..0, |e| e.span());
        return Err(ctx.err_key(
            span,
            "shedding.enter",
            "mode \"auto\" needs at least one enter condition; all are switched off",
        ));
    }
    Ok(Shedding {
        mode,
        tick: ctx.duration(&s.tick, TICK, (ms(10), secs(10)))?,
        window_secs: ctx.int(
            &s.window
                .as_ref()
                .map(|w| Spanned::new(w.span(), w.get_ref().0.as_secs() as i64)),
            WINDOW_SECS,
            (2, 600),
        )? as usize,
        min_samples: ctx.int(&s.min_samples, MIN_SAMPLES, (1, 1_000_000))? as u64,
        min_dwell: ctx.duration(&s.min_dwell, MIN_DWELL, (Duration::ZERO, secs(3600)))?,
        primary_max_inflight: s
            .primary_max_inflight
            .as_ref()
            .map(|_| ctx.int(&s.primary_max_inflight, 0, (1, 100_000)))
            .transpose()?
            .map(|n| n as usize),
        fill_wait: ctx.duration(&s.fill_wait, FILL_WAIT, (Duration::ZERO, secs(10)))?,
        dry_run: s.dry_run.unwrap_or(false),
        client_budget: Some(ctx.int(&s.client_budget, CLIENT_BUDGET, (0, 1_000_000))? as u32)
            .filter(|n| *n > 0),
        enter,
        exit,
    })
}

/// A number in [min, 1], with a default.
fn fraction(
    ctx: &Ctx<'_>,
    v: Option<&Spanned<f64>>,
    default: f64,
    min: f64,
) -> Result<Option<f64>, ConfigError> {
    match v {
        None => Ok(Some(default)),
        Some(v) if (min..=1.0).contains(v.get_ref()) => Ok(Some(*v.get_ref())),
        Some(v) => Err(ctx.err(
            v.span(),
            format!(
                "must be a fraction between {min} and 1, found {}",
                v.get_ref()
            ),
        )),
    }
}

pub(super) fn routes(ctx: &Ctx<'_>, raw: &[Spanned<RawRoute>]) -> Result<Routes, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| route(ctx, i, r))
        .collect::<Result<Vec<_>, _>>()
        .map(Routes)
}

fn route(ctx: &Ctx<'_>, i: usize, raw: &Spanned<RawRoute>) -> Result<Route, ConfigError> {
    let r = raw.get_ref();
    let key = |k: &str| format!("route[{i}].{k}");
    let pattern = match (&r.pattern, &r.prefix) {
        (Some(m), None) => Pattern::glob(m.get_ref()).map_err(|e| ctx.err(m.span(), e))?,
        (None, Some(p)) => Pattern::prefix(p.get_ref()).map_err(|e| ctx.err(p.span(), e))?,
        (Some(_), Some(p)) => {
            return Err(ctx.err(p.span(), "a route has either `match` or `prefix`, not both"));
        }
        (None, None) => {
            return Err(ctx.err_key(
                raw.span(),
                &key("match"),
                "missing `match` (a pattern like \"/download/*\") or `prefix`",
            ));
        }
    };
    let class = match r.class.as_ref() {
        None => {
            return Err(ctx.err_key(
                raw.span(),
                &key("class"),
                "missing `class`: \"primary\", \"keep\" or \"normal\"",
            ));
        }
        Some(c) => match c.get_ref().as_str() {
            "primary" => RouteClass::Primary,
            "keep" => RouteClass::Keep,
            "normal" => RouteClass::Normal,
            other => {
                return Err(ctx.err(
                    c.span(),
                    format!("expected \"primary\", \"keep\" or \"normal\", found \"{other}\""),
                ));
            }
        },
    };
    let methods = r
        .methods
        .iter()
        .flatten()
        .map(|m| {
            http::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes())
                .map_err(|_| ctx.err(m.span(), format!("not an HTTP method: \"{}\"", m.get_ref())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Route {
        name: r
            .name
            .as_ref()
            .map_or_else(|| format!("route {}", i + 1), |n| n.get_ref().clone()),
        pattern,
        methods,
        host: r.host.as_ref().map(|h| h.get_ref().to_ascii_lowercase()),
        class,
    })
}

pub(super) fn apology(
    ctx: &Ctx<'_>,
    a: &RawApology,
    status: &RawStatus,
) -> Result<Apology, ConfigError> {
    let (template, template_source) = match &a.template {
        None => (
            DEFAULT_TEMPLATE.to_string(),
            "built-in template".to_string(),
        ),
        Some(p) => {
            let path = ctx.base_dir.join(p.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ctx.err(
                    p.span(),
                    format!("cannot read template {}: {e}", path.display()),
                )
            })?;
            (text, path.display().to_string())
        }
    };
    let text = |v: &Option<Spanned<String>>, default: &str| {
        v.as_ref()
            .map_or_else(|| default.to_string(), |v| v.get_ref().clone())
    };
    // The page links to lifeboat's own status endpoint unless told otherwise.
    let status_url = text(&a.status_url, &text(&status.path, STATUS_URL));
    if !status_url.starts_with('/')
        && !status_url.starts_with("https://")
        && !status_url.starts_with("http://")
    {
        let span = a.status_url.as_ref().map_or(0..0, |v| v.span());
        return Err(ctx.err(
            span,
            format!("expected a path like \"/status\" or an absolute URL, found \"{status_url}\""),
        ));
    }
    let hour = Duration::from_secs(3600);
    Ok(Apology {
        template,
        template_source,
        title: text(&a.title, TITLE),
        message: text(&a.message, ""),
        signed: text(&a.signed, SIGNED),
        retry_after: ctx.duration(&a.retry_after, RETRY_AFTER, (Duration::from_secs(1), hour))?,
        retry_jitter: ctx.duration(&a.retry_jitter, RETRY_JITTER, (Duration::ZERO, hour))?,
        status_url,
    })
}
