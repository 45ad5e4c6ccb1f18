//! Validation of `[log]`: the level filter, the format, and where the
//! access log goes and how much of a stampede it keeps.

use std::path::PathBuf;

use toml::Spanned;

use super::raw::RawLog;
use super::validate::Ctx;
use super::{ConfigError, Log, LogFormat};

/// Every request gets its line by default, shed ones included: a sampled
/// log is a trade the operator makes knowingly (`shed_sample`), never one
/// made for them.
const SHED_SAMPLE: f64 = 1.0;

pub(super) fn log(ctx: &Ctx<'_>, l: &RawLog) -> Result<Log, ConfigError> {
    let level = match &l.level {
        None => "info".to_string(),
        Some(v) => {
            tracing_subscriber::EnvFilter::try_new(v.get_ref()).map_err(|_| {
                ctx.err(v.span(), format!("expected a level (error, warn, info, debug, trace) or a filter like \"lifeboat=debug\", found \"{}\"", v.get_ref()))
            })?;
            v.get_ref().clone()
        }
    };
    let format = match l.format.as_ref() {
        None => LogFormat::Text,
        Some(v) if v.get_ref() == "text" => LogFormat::Text,
        Some(v) if v.get_ref() == "json" => LogFormat::Json,
        Some(v) => {
            return Err(ctx.err(
                v.span(),
                format!("expected \"text\" or \"json\", found \"{}\"", v.get_ref()),
            ));
        }
    };
    Ok(Log {
        level,
        format,
        access: l.access.unwrap_or(true),
        access_path: access_path(ctx, l.access_path.as_ref())?,
        shed_sample: shed_sample(ctx, l.shed_sample.as_ref())?,
    })
}

/// A file to append to, relative to the config's directory. Its directory
/// must exist; the file itself is created when lifeboat starts (a check
/// creates nothing).
fn access_path(ctx: &Ctx<'_>, v: Option<&Spanned<String>>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    if v.get_ref().is_empty() {
        return Err(ctx.err(
            v.span(),
            "expected a file path; leave `access_path` out to log to stderr",
        ));
    }
    let path = ctx.base_dir.join(v.get_ref());
    if path.is_dir() {
        return Err(ctx.err(
            v.span(),
            format!("{} is a directory; expected a file", path.display()),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(ctx.err(
            v.span(),
            format!("directory {} does not exist", dir.display()),
        ));
    }
    Ok(Some(path))
}

fn shed_sample(ctx: &Ctx<'_>, v: Option<&Spanned<f64>>) -> Result<f64, ConfigError> {
    match v {
        None => Ok(SHED_SAMPLE),
        Some(v) if (0.0..=1.0).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(ctx.err(
            v.span(),
            format!(
                "must be a fraction between 0 and 1 (0.01: one shed request in a hundred gets its line), found {}",
                v.get_ref()
            ),
        )),
    }
}
