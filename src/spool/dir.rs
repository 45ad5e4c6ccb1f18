//! Where spooled responses spill: one directory for the process, the bytes
//! on disk in it (bounded in total), and the counters the admin API shows.
//!
//! A spool file is created, then unlinked at once: it has no name while
//! it is used, so the kernel frees it when its last descriptor closes,
//! whether the response ended, its visitor went away or lifeboat crashed.
//! Only a crash between the two calls can leave a name behind; the sweep
//! at start removes those.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Every spool file's name starts so; the sweep removes only these.
pub const PREFIX: &str = "lifeboat-spool-";

/// The process's spool directory and its accounting.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
    /// Bytes in spool files now.
    bytes: AtomicU64,
    next: AtomicU64,
    /// Responses being read ahead now (their visitor not yet done).
    transfers: AtomicUsize,
    /// Of those, the origin still sending.
    reading: AtomicUsize,
    /// Responses that met a bound and were held to their visitor's pace.
    backpressured: AtomicU64,
    /// Spool files that could not be created or written (the response
    /// went on in memory, at its visitor's pace).
    errors: AtomicU64,
    /// Bytes ever written to spool files.
    spilled: AtomicU64,
}

/// What the admin API shows of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Responses on their way to a visitor through the spool.
    pub transfers: usize,
    /// Of those, still being read from the origin.
    pub reading: usize,
    /// Bytes on disk now.
    pub bytes: u64,
    /// Bytes ever spilled to disk.
    pub spilled: u64,
    /// Responses held to their visitor's pace by a bound, since start.
    pub backpressured: u64,
    /// Spool files that failed, since start.
    pub errors: u64,
}

impl Dir {
    /// The spool directory at `path`, created if missing, and cleared of
    /// files an earlier process left behind. A directory that cannot be
    /// made is not fatal: spooling then fails file by file (counted) and
    /// responses stream at their visitor's pace, as without a spool.
    pub fn open(path: &Path) -> Arc<Self> {
        if let Err(e) = std::fs::create_dir_all(path) {
            tracing::warn!(path = %path.display(), error = %e, "spool directory unavailable; responses will not spill to disk");
        }
        let swept = sweep(path);
        if swept > 0 {
            tracing::info!(path = %path.display(), files = swept, "removed spool files left by an earlier process");
        }
        Arc::new(Dir {
            path: path.to_path_buf(),
            bytes: AtomicU64::new(0),
            next: AtomicU64::new(0),
            transfers: AtomicUsize::new(0),
            reading: AtomicUsize::new(0),
            backpressured: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
        })
    }

    /// Where spool files go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// The counters now.
    pub fn usage(&self) -> Usage {
        Usage {
            transfers: self.transfers.load(Relaxed),
            reading: self.reading.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            spilled: self.spilled.load(Relaxed),
            backpressured: self.backpressured.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// A new, already nameless, spool file.
    pub(super) fn create(self: &Arc<Self>) -> io::Result<SpoolFile> {
        let n = self.next.fetch_add(1, Relaxed);
        let path = self
            .path
            .join(format!("{PREFIX}{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .inspect_err(|_| self.failed())?;
        // Another instance's sweep may have taken the name already: the
        // file is ours through its descriptor either way.
        let _ = std::fs::remove_file(&path);
        Ok(SpoolFile {
            file,
            len: 0,
            dir: self.clone(),
        })
    }

    pub(super) fn failed(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub(super) fn backpressured(&self) {
        self.backpressured.fetch_add(1, Relaxed);
    }

    /// Counts a transfer in; the guard counts it out.
    pub(super) fn transfer(self: &Arc<Self>) -> Transfer {
        self.transfers.fetch_add(1, Relaxed);
        self.reading.fetch_add(1, Relaxed);
        Transfer {
            dir: self.clone(),
            reading: true,
            counted: true,
        }
    }
}

/// One spooled response, counted while it lasts.
#[derive(Debug)]
pub(super) struct Transfer {
    dir: Arc<Dir>,
    reading: bool,
    counted: bool,
}

impl Transfer {
    /// The origin has sent its last byte (or failed).
    pub(super) fn origin_done(&mut self) {
        if std::mem::take(&mut self.reading) {
            self.dir.reading.fetch_sub(1, Relaxed);
        }
    }
}

impl Transfer {
    /// The visitor is done (or gone).
    pub(super) fn visitor_done(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.dir.transfers.fetch_sub(1, Relaxed);
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.origin_done();
        self.visitor_done();
    }
}

/// A nameless file of one response, its bytes counted in the directory's
/// total while it is open.
#[derive(Debug)]
pub(super) struct SpoolFile {
    file: File,
    len: u64,
    dir: Arc<Dir>,
}

impl SpoolFile {
    /// Appends `data` at `at` (the file's length).
    pub(super) fn append(&mut self, at: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(data, at)
            .inspect_err(|_| self.dir.failed())?;
        let n = data.len() as u64;
        self.len = self.len.max(at + n);
        self.dir.bytes.fetch_add(n, Relaxed);
        self.dir.spilled.fetch_add(n, Relaxed);
        Ok(())
    }

    /// Reads `buf.len()` bytes at `at`.
    pub(super) fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, at)
    }

    /// Everything was read: the file starts again from nothing.
    pub(super) fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        self.dir.bytes.fetch_sub(self.len, Relaxed);
        self.len = 0;
        if self.file.set_len(0).is_err() {
            self.dir.failed();
        }
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        self.dir.bytes.fetch_sub(self.len, Relaxed);
    }
}

/// Removes spool files left in `path` (by a process that crashed between
/// creating one and unlinking it); returns how many.
fn sweep(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}
