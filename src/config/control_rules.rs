//! Validation of the control plane: `[admin]`, `[status]`, `[journal]`,
//! `[reload]` and `[[webhook]]`.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawAdmin, RawJournal, RawReload, RawStatus, RawWebhook};
use super::shed_rules::STATUS_URL;
use super::validate::Ctx;
use super::webhook::Target;
use super::{Admin, ConfigError, Reload, Story};

/// Admin on loopback by default: metrics and the override switch are for
/// the operator, not the internet.
const ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Counters every 10 s while not normal: enough resolution for a report,
/// a few hundred lines for an hour-long incident.
const COUNTERS_EVERY: Duration = Duration::from_secs(10);
/// Editors write a file in several steps; wait for the last.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// Webhook attempts: 2 s each, 3 retries.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(2);
const WEBHOOK_RETRIES: i64 = 3;

/// A recovered episode's summary stays on the status page for a day.
pub const SUMMARY_FOR: Duration = Duration::from_secs(24 * 3600);

pub(super) fn admin(ctx: &Ctx<'_>, raw: Option<&Spanned<RawAdmin>>) -> Result<Admin, ConfigError> {
    let empty = RawAdmin::default();
    let a = raw.map_or(&empty, |r| r.get_ref());
    let listen = match &a.listen {
        None => ADMIN_LISTEN.parse::<SocketAddr>().ok(),
        Some(v) if v.get_ref() == "off" => None,
        Some(v) => Some(v.get_ref().parse::<SocketAddr>().map_err(|_| {
            ctx.err(
                v.span(),
                format!(
                    "expected an address like \"127.0.0.1:9090\", or \"off\", found \"{}\"",
                    v.get_ref()
                ),
            )
        })?),
    };
    let token = match (&a.token_file, &a.token_env) {
        (Some(_), Some(e)) => {
            return Err(ctx.err(e.span(), "set `token_file` or `token_env`, not both"));
        }
        (Some(f), None) => {
            let path = ctx.base_dir.join(f.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ctx.err(
                    f.span(),
                    format!("cannot read token file {}: {e}", path.display()),
                )
            })?;
            Some(
                Some(text.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ctx.err(f.span(), format!("token file {} is empty", path.display()))
                    })?,
            )
        }
        (None, Some(e)) => {
            let v = std::env::var(e.get_ref()).map_err(|_| {
                ctx.err(
                    e.span(),
                    format!("environment variable {} is not set", e.get_ref()),
                )
            })?;
            Some(
                Some(v.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ctx.err(
                            e.span(),
                            format!("environment variable {} is empty", e.get_ref()),
                        )
                    })?,
            )
        }
        (None, None) => None,
    };
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
        && token.is_none()
    {
        let span = a.listen.as_ref().map_or(0..0, |v| v.span());
        return Err(ctx.err_key(span, "admin.listen", format!("the admin listener on {addr} is reachable from other hosts: set `token_file` or `token_env`, or listen on loopback")));
    }
    Ok(Admin { listen, token })
}

pub(super) fn story(
    ctx: &Ctx<'_>,
    status: &RawStatus,
    journal: &RawJournal,
    hooks: &[Spanned<RawWebhook>],
) -> Result<Story, ConfigError> {
    let status_path = match &status.path {
        None => STATUS_URL.to_string(),
        Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
        Some(p) => {
            return Err(ctx.err(
                p.span(),
                format!(
                    "expected a path starting with \"/\", found \"{}\"",
                    p.get_ref()
                ),
            ));
        }
    };
    let webhooks = hooks
        .iter()
        .enumerate()
        .map(|(i, h)| webhook(ctx, i, h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Story {
        status_path,
        summary_for: ctx.duration(
            &status.summary_for,
            SUMMARY_FOR,
            (Duration::ZERO, Duration::from_secs(30 * 24 * 3600)),
        )?,
        journal: journal
            .path
            .as_ref()
            .filter(|p| !p.get_ref().is_empty())
            .map(|p| ctx.base_dir.join(p.get_ref())),
        counters_every: ctx.duration(
            &journal.counters_every,
            COUNTERS_EVERY,
            (Duration::from_secs(1), Duration::from_secs(3600)),
        )?,
        webhooks,
    })
}

fn webhook(ctx: &Ctx<'_>, i: usize, raw: &Spanned<RawWebhook>) -> Result<Target, ConfigError> {
    let h = raw.get_ref();
    let url = h
        .url
        .as_ref()
        .ok_or_else(|| ctx.err_key(raw.span(), &format!("webhook[{i}].url"), "missing `url`"))?;
    let uri: http::Uri = url.get_ref().parse().map_err(|_| {
        ctx.err(
            url.span(),
            format!("expected a URL, found \"{}\"", url.get_ref()),
        )
    })?;
    let https = uri.scheme_str() == Some("https");
    if !(https || uri.scheme_str() == Some("http")) || uri.authority().is_none() {
        return Err(ctx.err(
            url.span(),
            format!(
                "expected an http:// or https:// URL, found \"{}\"",
                url.get_ref()
            ),
        ));
    }
    // HTTPS as to the origin: verified against `ca_file` or the
    // platform's roots, never skipped.
    let tls = match (&h.ca_file, https) {
        (Some(ca), false) => {
            return Err(ctx.err(ca.span(), "applies only to an https:// webhook"));
        }
        (ca, true) => {
            let at = ca.as_ref().map_or_else(|| url.span(), Spanned::span);
            let path = ca.as_ref().map(|c| ctx.base_dir.join(c.get_ref()));
            Some(crate::tls::client_config(path.as_deref(), None).map_err(|e| ctx.err(at, e))?)
        }
        (None, false) => None,
    };
    Ok(Target {
        url: uri,
        tls,
        timeout: ctx.duration(
            &h.timeout,
            WEBHOOK_TIMEOUT,
            (Duration::from_millis(10), Duration::from_secs(60)),
        )?,
        retries: ctx.int(&h.retries, WEBHOOK_RETRIES, (0, 20))? as u32,
    })
}

pub(super) fn reload(ctx: &Ctx<'_>, r: &RawReload) -> Result<Reload, ConfigError> {
    Ok(Reload {
        watch: r.watch.unwrap_or(true),
        debounce: ctx.duration(
            &r.debounce,
            DEBOUNCE,
            (Duration::ZERO, Duration::from_secs(60)),
        )?,
    })
}
