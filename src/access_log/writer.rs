//! The access log's own thread: every [`FLUSH_EVERY`] (sooner when a
//! buffer passes half full, at once when asked to flush) it swaps the
//! request side's buffers out and writes them, a few large `write`s instead
//! of one per request. It is the only code that touches the destination,
//! so a slow disk or a stalled pipe stalls this thread and nothing else:
//! meanwhile the buffers fill, then lines are dropped and counted.
//!
//! It also reopens the file on SIGUSR1 (after a log rotation) and when a
//! reload names another file, and writes the shed summary lines once a
//! second. Lines it fails to write are counted (`drops.rs`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use super::buffer::Pending;
use super::{Inner, line};

/// Lines wait at most about this long in memory: soon enough to `tail -f`,
/// and at 40,000 lines a second a pass writes 0.8 MB in one call.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The shed summary lines, and the check for a reloaded `access_path`.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);
/// Writes to a stderr that is not a regular file are cut at line ends into
/// pieces of at most `PIPE_BUF` bytes: a pipe keeps such a write whole, so
/// access lines never interleave with the process's other log lines on a
/// shared pipe (journald, a container runtime). A regular file (`2>file`)
/// needs no cutting (Linux does not interleave two writes to one), and
/// there 4 KiB pieces would cost thousands of writes a second.
const PIPE_BUF: usize = 4096;
/// Merged lines are written in pieces of about this size: a few writes a
/// pass, and a bounded buffer for the merge.
const OUT_CHUNK: usize = 128 << 10;

/// Where lines go.
pub enum Destination {
    /// The process's stderr (the default), through a descriptor of its own
    /// (a `dup`): a stalled stderr then stalls this thread's `write`, and
    /// never leaves the standard library's stderr lock held against the
    /// rest of the process.
    Stderr {
        /// Our own descriptor, if the platform gave one.
        own: Option<File>,
        /// Cut writes into `PIPE_BUF` pieces (stderr is not a regular file).
        pieces: bool,
    },
    /// A file, appended to.
    File {
        /// As configured (reopened by this name).
        path: PathBuf,
        /// The open file.
        file: File,
    },
}

impl Destination {
    /// Opens `path` for appending (creating it), or stderr for `None`.
    pub fn open(path: Option<&Path>) -> io::Result<Self> {
        let Some(path) = path else {
            let own = stderr_of_our_own();
            let regular = own
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .is_some_and(|m| m.file_type().is_file());
            return Ok(Destination::Stderr {
                own,
                pieces: !regular,
            });
        };
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Destination::File {
            path: path.to_path_buf(),
            file,
        })
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Destination::Stderr { .. } => None,
            Destination::File { path, .. } => Some(path),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Destination::Stderr {
                own: Some(own),
                pieces: false,
            } => own.write_all(bytes),
            Destination::Stderr {
                own: Some(own),
                pieces: true,
            } => pipe_pieces(bytes).try_for_each(|piece| own.write_all(piece)),
            Destination::Stderr { own: None, .. } => {
                let mut err = io::stderr().lock();
                pipe_pieces(bytes).try_for_each(|piece| err.write_all(piece))
            }
            Destination::File { file, .. } => file.write_all(bytes),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path() {
            None => f.write_str("stderr"),
            Some(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A descriptor of our own for stderr, if the platform gives one.
fn stderr_of_our_own() -> Option<File> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from)
    }
    #[cfg(not(unix))]
    None
}

/// `bytes` (whole lines) in pieces of at most [`PIPE_BUF`] bytes that end
/// at a line's end; a line longer than that is a piece of its own.
fn pipe_pieces(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        let window = &bytes[..bytes.len().min(PIPE_BUF)];
        let end = match window.iter().rposition(|&b| b == b'\n') {
            Some(i) if window.len() < bytes.len() => i + 1,
            _ if window.len() == bytes.len() => bytes.len(),
            _ => bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| i + 1),
        };
        let (piece, rest) = bytes.split_at(end);
        bytes = rest;
        Some(piece)
    })
}

/// Calls `emit` with every line of `shards`, earliest first. Each shard's
/// lines are already in time order (stamped under its lock), so this is a
/// merge: the head of the shard whose next line is earliest, until none
/// is left.
fn merge(shards: &[Pending], mut emit: impl FnMut(&[u8])) {
    let mut next = vec![0usize; shards.len()];
    loop {
        let earliest = shards
            .iter()
            .zip(&next)
            .enumerate()
            .filter_map(|(s, (p, &i))| p.ends.get(i).map(|&(at, _)| (at, s)))
            .min();
        let Some((_, s)) = earliest else { return };
        emit(shards[s].line(next[s]));
        next[s] += 1;
    }
}

/// Where the configuration says lines should go now (`None`: stderr);
/// asked once a second, so a reload that names another file applies.
pub type Follow = Box<dyn Fn() -> Option<PathBuf> + Send>;

/// The thread's state.
pub struct Writer {
    inner: Weak<Inner>,
    dest: Destination,
    /// What `follow` said last time.
    wanted: Option<PathBuf>,
    follow: Follow,
    /// The shards' lines, swapped out (one `Pending` per shard).
    taken: Vec<Pending>,
    /// Merged lines on their way out, and how many.
    out: Vec<u8>,
    out_lines: u64,
    next_summary: Instant,
}

impl Writer {
    /// A writer for `inner`'s buffers into `dest`.
    pub fn new(inner: Weak<Inner>, dest: Destination, follow: Follow) -> Self {
        Writer {
            inner,
            wanted: dest.path().map(Path::to_path_buf),
            dest,
            follow,
            taken: Vec::new(),
            out: Vec::new(),
            out_lines: 0,
            next_summary: Instant::now() + SUMMARY_EVERY,
        }
    }

    /// Runs until every handle to the log is gone.
    pub fn run(mut self) {
        loop {
            std::thread::park_timeout(FLUSH_EVERY);
            let Some(inner) = self.inner.upgrade() else {
                return;
            };
            self.pass(&inner);
        }
    }

    /// One round: reopen if asked, summaries if due, write what is
    /// pending, then tell whoever asked for a flush.
    fn pass(&mut self, inner: &Inner) {
        let flushes = std::mem::take(&mut *inner.flushes());
        let now = Instant::now();
        let second = now >= self.next_summary || !flushes.is_empty();
        let mut target = None;
        if second {
            let wanted = (self.follow)();
            if wanted != self.wanted {
                target = Some(wanted);
            }
        }
        if inner.reopen.swap(false, Relaxed) {
            target = target.or_else(|| Some(self.wanted.clone()));
        }
        if let Some(target) = target {
            // What was logged before goes where it was meant to go.
            self.drain(inner);
            self.reopen(inner, target);
        }
        if second {
            self.next_summary = now + SUMMARY_EVERY;
            self.summaries(inner);
        }
        self.drain(inner);
        for done in flushes {
            let _ = done.send(());
        }
    }

    /// Writes every shard's pending lines, merged back into time order.
    fn drain(&mut self, inner: &Inner) {
        let shards = inner.buffers.shards();
        self.taken.resize_with(shards, Pending::default);
        // Every shard first, then the writing: one moment's lines.
        for (i, pending) in self.taken.iter_mut().enumerate() {
            inner.buffers.swap(i, pending);
        }
        let mut taken = std::mem::take(&mut self.taken);
        if let [only] = taken.as_slice() {
            if only.lines() > 0 {
                self.write(inner, &only.bytes, only.lines());
            }
        } else {
            merge(&taken, |line| self.put(inner, line));
            self.flush_out(inner);
        }
        for pending in &mut taken {
            pending.clear();
        }
        self.taken = taken;
    }

    /// Adds one line to `out`, written once it holds [`OUT_CHUNK`] bytes.
    fn put(&mut self, inner: &Inner, line: &[u8]) {
        self.out.extend_from_slice(line);
        self.out_lines += 1;
        if self.out.len() >= OUT_CHUNK {
            self.flush_out(inner);
        }
    }

    fn flush_out(&mut self, inner: &Inner) {
        if self.out_lines > 0 {
            let out = std::mem::take(&mut self.out);
            self.write(inner, &out, self.out_lines);
            self.out = out;
        }
        self.out.clear();
        self.out_lines = 0;
    }

    /// Writes `bytes` (`lines` whole lines); on failure they are counted
    /// as dropped.
    fn write(&mut self, inner: &Inner, bytes: &[u8], lines: u64) {
        if let Err(e) = self.dest.write(bytes) {
            inner.drops.write_failed(lines, &e);
        }
    }

    /// One line per reason that shed anything since the last summary.
    fn summaries(&mut self, inner: &Inner) {
        let summaries = inner.buffers.shed.take();
        if summaries.is_empty() {
            return;
        }
        let at = SystemTime::now();
        let mut out = Vec::new();
        for s in &summaries {
            line::summary(&mut out, inner.format, at, s);
        }
        self.write(inner, &out, summaries.len() as u64);
    }

    /// Opens `target` (SIGUSR1: the same name again, now a new file after
    /// a rotation). If it cannot be opened, lines keep going where they
    /// went, and the operator is told.
    fn reopen(&mut self, inner: &Inner, target: Option<PathBuf>) {
        match Destination::open(target.as_deref()) {
            Ok(dest) => {
                tracing::info!(destination = %dest, previous = %self.dest, "access log reopened");
                self.dest = dest;
                inner.drops.name_destination(&self.dest);
            }
            Err(e) => tracing::warn!(
                path = %target.as_deref().unwrap_or(Path::new("stderr")).display(),
                error = %e,
                destination = %self.dest,
                "cannot open the access log; lines keep going to the previous destination"
            ),
        }
        self.wanted = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(lines: &[(u64, &str)]) -> Pending {
        let mut p = Pending::default();
        for (at, text) in lines {
            p.bytes.extend_from_slice(text.as_bytes());
            p.ends.push((*at, p.bytes.len()));
        }
        p
    }

    #[test]
    fn shards_are_merged_back_into_time_order() {
        let a = shard(&[(1, "a1\n"), (4, "a4\n"), (5, "a5\n")]);
        let b = shard(&[(2, "b2\n"), (3, "b3\n"), (6, "b6\n")]);
        let empty = Pending::default();
        let mut out = Vec::new();
        merge(&[a, empty, b], |l| out.extend_from_slice(l));
        assert_eq!(out, b"a1\nb2\nb3\na4\na5\nb6\n");
    }

    fn pieces(bytes: &[u8]) -> Vec<usize> {
        pipe_pieces(bytes).map(<[u8]>::len).collect()
    }

    #[test]
    fn stderr_writes_are_whole_lines_of_at_most_pipe_buf() {
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let many: Vec<u8> = line.repeat(100);
        let p = pieces(&many);
        assert_eq!(p.iter().sum::<usize>(), 10_000);
        assert!(p.iter().all(|&n| n <= PIPE_BUF && n % 100 == 0), "{p:?}");
        assert_eq!(pieces(&line), [100]);
        assert!(pieces(b"").is_empty());
        // A line longer than PIPE_BUF goes alone, whole.
        let mut long = vec![b'y'; 5000];
        long.push(b'\n');
        let mixed = [line.clone(), long, line].concat();
        assert_eq!(pieces(&mixed), [100, 5001, 100]);
    }
}
