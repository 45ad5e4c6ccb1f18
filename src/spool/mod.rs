//! Reading an origin's response ahead of its visitor, so a slow visitor
//! never holds the origin (nginx's `proxy_buffering`, with its
//! `proxy_max_temp_file_size` idea).
//!
//! While the visitor keeps up, it reads the origin's body itself, as a
//! plain stream would. A task beside it (`fill::watch`) looks every
//! [`STALL`]: once the visitor has not waited for the origin for that long
//! (it is the slower of the two), the task takes the body over and reads
//! it as fast as the origin sends it into a [`Spool`]: a small buffer in memory (`[buffering]
//! memory`), then a nameless file in the spool [`Dir`] for the rest,
//! bounded per response (`max_file`) and in total (`max_total`). The
//! visitor's side, a [`Reader`], takes the bytes in order at its own pace,
//! from memory or from the file, as soon as they arrive: the first bytes
//! never wait for the last. When the origin's last byte is in, the task
//! ends and drops what it was given to hold (the request's origin slot):
//! the origin is free, the transfer goes on.
//!
//! Where a bound is reached, the task stops reading until the visitor has
//! taken some: backpressure, as without a spool (the slot is held; counted
//! once per response). A file that cannot be written never truncates a
//! response: the bytes stay in memory and the response goes on at its
//! visitor's pace.
//!
//! Memory holds at most `memory` plus one frame (an origin read, at most
//! 64 KiB): a frame goes to memory while it holds less than its bound.
//!
//! The byte stream is always `memory ++ file[read..written] ++ tail`:
//! bytes go to memory only while the file holds nothing unread, so the
//! order is kept without copying what is in memory. `tail` holds at most
//! one frame, when the file failed with bytes still unread in it.
//!
//! File I/O is positional reads and writes from the runtime's threads, as
//! nginx does without `aio threads`: the spool's pages are fresh, so they
//! are in the page cache.

mod dir;
mod fill;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::conn::BodyError;
pub use dir::{Dir, PREFIX, Usage};
use dir::{SpoolFile, Transfer};

/// Most bytes read from a spool file at once: what one write to a fast
/// visitor's socket takes, and no more held per visitor.
const READ_CHUNK: usize = 64 * 1024;

/// Bytes buffered before a waiting visitor is woken while the origin is
/// still sending: half the memory a response may hold.
const WAKE_AT: usize = 32 * 1024;

/// The bounds a response is spooled within (from `[buffering]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Bytes held in memory per response before the file is used.
    pub memory: usize,
    /// Bytes in one response's file at most (0: no file).
    pub max_file: u64,
    /// Bytes in all spool files at most.
    pub max_total: u64,
}

/// The origin's body, boxed once per response.
type OriginBody = Pin<Box<dyn Body<Data = Bytes, Error = BodyError> + Send>>;
/// What the request holds at the origin, dropped at the origin's end.
type Release = Box<dyn Send>;

/// How long the visitor may read the origin's body itself without once
/// waiting for the origin before the read-ahead task takes over: a visitor
/// who keeps up costs nothing more than a plain stream (a 10 MiB answer
/// at loopback speed is over in 15 ms), one who is the slower of the two
/// lets go of the origin within this.
pub const STALL: std::time::Duration = std::time::Duration::from_millis(100);

/// What a body's poll gives.
type Polled = Poll<Option<Result<Frame<Bytes>, BodyError>>>;

/// How the origin's body ended.
enum End {
    Done(Option<HeaderMap>),
    Failed(BodyError),
}

struct State {
    mem: VecDeque<Bytes>,
    mem_bytes: usize,
    file: Option<SpoolFile>,
    written: u64,
    read: u64,
    /// One frame that could not go to the file, after what is unread there.
    tail: Option<Bytes>,
    end: Option<End>,
    /// The end was handed to the visitor.
    over: bool,
    /// The visitor's side is gone: the filler stops.
    gone: bool,
    disk_failed: bool,
    backpressured: bool,
    reader: Option<Waker>,
    filler: Option<Waker>,
    transfer: Transfer,
    /// The origin's body while the visitor reads it itself; the task takes
    /// it once the visitor is the slower one.
    inline: Option<OriginBody>,
    /// Times the visitor, reading inline, waited for the origin.
    waited: u64,
    /// Dropped at the origin's end.
    release: Option<Release>,
}

/// One response's bytes between the origin's task and its visitor.
pub struct Spool {
    state: Mutex<State>,
    dir: Arc<Dir>,
    bounds: Bounds,
}

/// The visitor's side of a [`Spool`]: a body that yields the origin's
/// bytes, trailers and error in order.
pub struct Reader {
    spool: Arc<Spool>,
    hint: SizeHint,
    sent: u64,
}

/// Starts streaming `body` to its visitor, read ahead into a spool as
/// soon as the visitor is the slower of the two; `release` is dropped the
/// moment the origin's body has ended (or failed, or its visitor left).
pub fn start<B, R>(body: B, release: R, bounds: Bounds, dir: &Arc<Dir>) -> Reader
where
    B: Body<Data = Bytes, Error = BodyError> + Send + 'static,
    R: Send + 'static,
{
    let hint = body.size_hint();
    let spool = Arc::new(Spool {
        state: Mutex::new(State {
            mem: VecDeque::new(),
            mem_bytes: 0,
            file: None,
            written: 0,
            read: 0,
            tail: None,
            end: None,
            over: false,
            gone: false,
            disk_failed: false,
            backpressured: false,
            reader: None,
            filler: None,
            transfer: dir.transfer(),
            inline: Some(Box::pin(body)),
            waited: 0,
            release: Some(Box::new(release)),
        }),
        dir: dir.clone(),
        bounds,
    });
    tokio::spawn(fill::watch(spool.clone()));
    Reader {
        spool,
        hint,
        sent: 0,
    }
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Spool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under this lock is completed before it is released;
        // a panic elsewhere cannot leave it half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether one more frame may go to the file.
    fn file_ok(&self, s: &State) -> bool {
        let b = &self.bounds;
        !s.disk_failed && b.max_file > 0 && s.written < b.max_file && self.dir.bytes() < b.max_total
    }

    /// Ready(true) when there is room for one more frame; Ready(false)
    /// when the visitor has gone.
    fn poll_room(&self, cx: &Context<'_>) -> Poll<bool> {
        let mut s = self.lock();
        if s.gone {
            return Poll::Ready(false);
        }
        let unread = s.written > s.read;
        let memory = !unread && s.mem_bytes < self.bounds.memory;
        if s.tail.is_none() && (memory || self.file_ok(&s)) {
            return Poll::Ready(true);
        }
        if !std::mem::replace(&mut s.backpressured, true) {
            self.dir.backpressured();
        }
        park(&mut s.filler, cx);
        // Whatever is buffered is the visitor's to take now.
        wake(&mut s.reader);
        Poll::Pending
    }

    /// The origin has nothing more for now: whether the visitor has gone;
    /// if not, the filler is woken when it goes, and the visitor is told
    /// of what is waiting for it.
    fn idle(&self, cx: &Context<'_>) -> bool {
        let mut s = self.lock();
        if !s.gone {
            park(&mut s.filler, cx);
            wake(&mut s.reader);
        }
        s.gone
    }

    /// One frame's bytes from the origin.
    fn put(&self, data: Bytes) {
        let mut s = self.lock();
        let s = &mut *s;
        let unread = s.written > s.read;
        // Memory takes a frame while it holds less than its bound: a
        // visitor who keeps up never makes the bytes go through the file.
        let fits = s.mem_bytes < self.bounds.memory;
        if !unread && (fits || !self.file_ok(s)) {
            s.mem_bytes += data.len();
            s.mem.push_back(data);
        } else if let Err(e) = self.spill(s, &data) {
            if !std::mem::replace(&mut s.disk_failed, true) {
                tracing::warn!(error = %e, dir = %self.dir.path().display(), "spool file failed; the response goes on at its visitor's pace");
            }
            if unread {
                s.tail = Some(data);
            } else {
                s.mem_bytes += data.len();
                s.mem.push_back(data);
            }
        }
        // The visitor is woken for a batch, or when the origin pauses
        // (`idle`): one wake-up per frame would make every frame wait for
        // the scheduler.
        if s.mem_bytes + (s.written - s.read) as usize >= WAKE_AT {
            wake(&mut s.reader);
        }
    }

    fn spill(&self, s: &mut State, data: &[u8]) -> std::io::Result<()> {
        if s.file.is_none() {
            s.file = Some(self.dir.create()?);
        }
        if let Some(file) = s.file.as_mut() {
            file.append(s.written, data)?;
        }
        s.written += data.len() as u64;
        Ok(())
    }

    /// The origin's body ended: the rest is the visitor's.
    fn finish(&self, end: End) {
        let mut s = self.lock();
        s.end = Some(end);
        s.transfer.origin_done();
        wake(&mut s.reader);
    }

    /// Drops what the request holds at the origin (outside the lock).
    fn let_go(&self) {
        let release = self.lock().release.take();
        drop(release);
    }

    /// The watcher's look: the origin's body, taken from the visitor, if
    /// the visitor has not waited for the origin since `seen` (the last
    /// look's count); `Err` when there is nothing left to watch.
    fn take_if_stalled(&self, seen: &mut u64) -> Result<Option<OriginBody>, ()> {
        let mut s = self.lock();
        if s.gone || s.inline.is_none() {
            return Err(());
        }
        if s.waited != *seen {
            *seen = s.waited;
            return Ok(None);
        }
        Ok(s.inline.take())
    }

    /// The visitor reads the origin's body itself.
    fn poll_inline(&self, s: &mut State, cx: &mut Context<'_>) -> Option<Polled> {
        let body = s.inline.as_mut()?;
        let polled = body.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Pending => {
                // Woken by the origin's body, or by the task if it takes
                // the body over meanwhile.
                s.waited += 1;
                park(&mut s.reader, cx);
                false
            }
            // Trailers are the body's last frame.
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || body.is_end_stream(),
            Poll::Ready(_) => true,
        };
        if ended {
            s.inline = None;
            s.over = true;
            s.transfer.origin_done();
        }
        Some(polled)
    }

    /// The next frame for the visitor, if one is ready.
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if let Some(polled) = self.poll_inline(s, cx) {
            let release = if s.over { s.release.take() } else { None };
            drop(guard);
            drop(release);
            return polled;
        }
        if let Some(data) = s.mem.pop_front() {
            s.mem_bytes -= data.len();
            wake(&mut s.filler);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if s.written > s.read {
            let read = self.read_file(s);
            wake(&mut s.filler);
            return Poll::Ready(Some(read.map(Frame::data)));
        }
        if let Some(data) = s.tail.take() {
            wake(&mut s.filler);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        let end = s.end.take();
        s.over |= end.is_some();
        match end {
            Some(End::Done(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Some(End::Done(None)) => Poll::Ready(None),
            Some(End::Failed(e)) => Poll::Ready(Some(Err(e))),
            None if s.over => Poll::Ready(None),
            None => {
                park(&mut s.reader, cx);
                Poll::Pending
            }
        }
    }

    /// The next chunk from the file; once all of it is read, the file is
    /// emptied for what comes next.
    fn read_file(&self, s: &mut State) -> Result<Bytes, BodyError> {
        let n = (s.written - s.read).min(READ_CHUNK as u64) as usize;
        let mut buf = vec![0; n];
        let Some(file) = s.file.as_mut() else {
            return Err(BodyError::Other("spool file missing".into()));
        };
        if let Err(e) = file.read_at(s.read, &mut buf) {
            self.dir.failed();
            tracing::warn!(error = %e, "spool file read failed; the response is cut");
            return Err(BodyError::Other(Box::new(e)));
        }
        s.read += n as u64;
        if s.read == s.written {
            file.clear();
            s.read = 0;
            s.written = 0;
        }
        Ok(Bytes::from(buf))
    }
}

impl Body for Reader {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = self.spool.poll_next(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sent += data.len() as u64;
        }
        polled
    }

    fn size_hint(&self) -> SizeHint {
        match self.hint.exact() {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.sent)),
            None => SizeHint::default(),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let mut s = self.spool.lock();
        s.gone = true;
        s.transfer.visitor_done();
        wake(&mut s.filler);
        // Read inline: nobody else holds the origin; let go of it now.
        let body = s.inline.take();
        let release = body.is_some().then(|| s.release.take());
        drop(s);
        drop((body, release));
    }
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
