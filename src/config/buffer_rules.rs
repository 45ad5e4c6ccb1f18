//! `[buffering]`: how far lifeboat reads an origin's response ahead of its
//! visitor (the spool), its schema and its validation.

use std::path::PathBuf;

use toml::Spanned;

use super::ConfigError;
use super::raw::RawBuffering;
use super::units::ByteSize;
use super::validate::Ctx;

/// In memory per response before the spool file is used: 64 KiB, as
/// nginx's `proxy_buffers 8 8k` (and a page or two of most sites: a small
/// answer never touches the disk). 2,000 slow visitors hold 128 MiB at most.
const MEMORY: u64 = 64 << 10;
/// One response's spool file at most: nginx's `proxy_max_temp_file_size`
/// default (1024m). A larger file is read ahead this far, then at its
/// visitor's pace.
const MAX_FILE: u64 = 1 << 30;
/// All spool files at most: 4 GiB holds 20 release images of 200 MiB read
/// ahead at once, well within a server's page cache and free disk; past
/// it, new transfers go at their visitors' pace (counted), never truncated.
const MAX_TOTAL: u64 = 4 << 30;
/// Below this a response could not hold one of hyper's frames.
const MIN_MEMORY: u64 = 4 << 10;

/// `[buffering]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffering {
    /// Read ahead at all (`false`: the origin's body at its visitor's pace,
    /// the slot held to the visitor's last byte).
    pub enabled: bool,
    /// Bytes held in memory per response.
    pub memory: usize,
    /// Bytes in one response's spool file at most (0: memory only).
    pub max_file: u64,
    /// Bytes in all spool files at most.
    pub max_total: u64,
    /// The spool directory (fixed at start; files in it named
    /// `lifeboat-spool-*` are removed at start).
    pub path: PathBuf,
}

impl Default for Buffering {
    fn default() -> Self {
        Buffering {
            enabled: true,
            memory: MEMORY as usize,
            max_file: MAX_FILE,
            max_total: MAX_TOTAL,
            path: default_path(),
        }
    }
}

/// `$TMPDIR/lifeboat-spool`.
fn default_path() -> PathBuf {
    std::env::temp_dir().join("lifeboat-spool")
}

pub(super) fn buffering(ctx: &Ctx<'_>, raw: &RawBuffering) -> Result<Buffering, ConfigError> {
    let size = |v: &Option<Spanned<ByteSize>>, default: u64, min: u64| match v {
        None => Ok(default),
        Some(v) if v.get_ref().0 >= min && v.get_ref().0 <= 1 << 40 => Ok(v.get_ref().0),
        Some(v) => Err(ctx.err(
            v.span(),
            format!(
                "must be between {} and 1024GiB, found {}",
                ByteSize(min),
                v.get_ref()
            ),
        )),
    };
    let memory = size(&raw.memory, MEMORY, MIN_MEMORY)?;
    if memory > 64 << 20 {
        let span = raw.memory.as_ref().map_or(0..0, Spanned::span);
        return Err(ctx.err(
            span,
            format!(
                "must be at most 64MiB (it is held per response), found {}",
                ByteSize(memory)
            ),
        ));
    }
    Ok(Buffering {
        enabled: raw.enabled.as_ref().is_none_or(|v| *v.get_ref()),
        memory: memory as usize,
        max_file: size(&raw.max_file, MAX_FILE, 0)?,
        max_total: size(&raw.max_total, MAX_TOTAL, 0)?,
        path: raw
            .path
            .as_ref()
            .map_or_else(default_path, |p| ctx.base_dir.join(p.get_ref())),
    })
}
