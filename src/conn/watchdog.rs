//! Per-connection deadlines that hyper cannot express on its own.
//!
//! hyper's h1 header-read timer restarts whenever a connection waits for a
//! new request, so it cannot tell "slow to send a head" (10 s) from "idle
//! between requests" (60 s); and the protocol-detecting server has no timer
//! at all while it waits for the first bytes. The [`Watchdog`] wraps the
//! socket and enforces both from one place:
//!
//! - no request in progress and no bytes since the last response: the
//!   connection may idle for `keepalive_timeout`;
//! - bytes of a new request have arrived (or the connection is brand new):
//!   the head must be complete within `header_read_timeout`;
//! - a request is being served ([`Activity`] > 0): no deadline here; body
//!   idle timeouts and the origin timeouts govern instead.
//!
//! On expiry a read fails with `TimedOut` and hyper closes the connection.
//!
//! Writes have a deadline of their own, `send_timeout` (the body idle
//! timeout): a client that stops reading (slow read, a dead peer behind a
//! full window) would otherwise hold its connection, and the download's
//! origin slot, forever. A write that stays blocked that long fails with
//! `TimedOut`; any byte accepted by the socket restarts the clock.
//!
//! A client's end of input (FIN) means one of two things, which TCP cannot
//! tell apart: a half-close (`nc -N`: the request is out, the client still
//! reads its answer) or a hang-up. hyper closes at end of input (its
//! `half_close` option would instead stop looking for it during a response,
//! so a hang-up would hold its origin slot until a timeout). So the
//! watchdog decides. A FIN that arrives while a request waits for its
//! answer, with no request body left unread, is a half-close: it is kept
//! from hyper until no request is in progress, so the answer is written
//! whole, then hyper sees the end of input and closes. A FIN that arrives
//! once the answer is being written (or mid-body) reaches hyper at once: a
//! hang-up, and the response, with the origin slot it holds, is dropped.
//!
//! On HTTP/1 connections the watchdog also says when hyper has come
//! to rest between two requests (see `rounds`): the last response written
//! and flushed, every request body read to its end, and hyper waiting for
//! the next head. The connection can then drop hyper and rest as a bare
//! socket.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::deadline::poll_until;

/// Requests (and tunnels) on one connection, shared between the watchdog
/// and the service that handles the connection's requests. `begun` counts
/// every request ever started, so a request that starts and finishes between
/// two socket reads is still noticed.
///
/// When the last request finishes, the connection task is woken: hyper does
/// not poll an idle socket again until it is readable, so without the wake
/// the watchdog would never arm the keep-alive deadline (nor see the rest).
#[derive(Debug, Default)]
pub struct Activity {
    active: AtomicUsize,
    begun: AtomicU64,
    /// Request bodies not yet read to their end: until they are, hyper may
    /// still be reading one, and the connection is not at rest.
    unread_bodies: AtomicUsize,
    /// Set by the watchdog when hyper waits for a new head with nothing in
    /// flight; read by the connection task (`rounds`).
    at_rest: AtomicBool,
    /// The connection task is ending hyper's round to rest: the socket must
    /// not be shut down.
    resting: AtomicBool,
    /// The connection task, parked on a read while a request was in progress.
    parked: Mutex<Option<Waker>>,
}

impl Activity {
    /// Marks a request as started; the returned guard marks it finished.
    /// Call it when hyper hands the request over, before any await, so the
    /// connection never looks idle while a request waits to be polled.
    pub fn begin(self: &Arc<Self>) -> ActivityGuard {
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ActivityGuard(self.clone())
    }

    /// Notes a request body that hyper is still reading; [`BodyEnd::ended`]
    /// notes its end. A body dropped before its end leaves the connection
    /// never at rest again, which is the safe answer: hyper may be in the
    /// middle of it.
    pub fn unread_body(self: &Arc<Self>) -> BodyEnd {
        self.unread_bodies.fetch_add(1, Ordering::Relaxed);
        BodyEnd(self.clone())
    }

    /// Whether hyper is at rest: its last socket operation was a read that
    /// found nothing while it waited for a new head with nothing in flight.
    pub(crate) fn at_rest(&self) -> bool {
        self.at_rest.load(Ordering::Acquire)
    }

    /// Marks the end of hyper's round as a rest (the socket stays open).
    pub(crate) fn set_resting(&self, resting: bool) {
        self.resting.store(resting, Ordering::Release);
    }

    /// Whether hyper's round is ending in a rest.
    pub(crate) fn resting(&self) -> bool {
        self.resting.load(Ordering::Acquire)
    }
}

/// A request body hyper is still reading (see [`Activity::unread_body`]).
#[derive(Debug)]
pub struct BodyEnd(Arc<Activity>);

impl BodyEnd {
    /// The body was read to its end.
    pub fn ended(self) {
        self.0.unread_bodies.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Held for as long as a request's response (or a tunnel) is alive.
#[derive(Debug)]
pub struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(waker) = self.0.parked.lock().ok().and_then(|mut w| w.take())
        {
            waker.wake();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head since this instant.
    Head(Instant),
    /// Idle between requests since this instant.
    Idle(Instant),
    /// Serving a request.
    Busy,
}

/// A socket wrapper enforcing the header-read and keep-alive deadlines.
pub struct Watchdog<IO> {
    io: IO,
    activity: Arc<Activity>,
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: Phase,
    seen_begun: u64,
    timer: Option<Pin<Box<Sleep>>>,
    send_timeout: Duration,
    /// Since when the socket has refused every write (None: it has not).
    write_blocked: Option<Instant>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Requests begun before the current round of hyper started.
    round_begun: u64,
    /// No write since the last completed flush.
    flushed: bool,
    /// Requests begun as of the last write: equal to `begun` once the
    /// latest request's answer has started.
    wrote_at_begun: u64,
    /// The client half-closed while waiting for an answer: its end of input
    /// is held back until no request is in progress.
    half_closed: bool,
}

impl<IO> Watchdog<IO> {
    /// Wraps a freshly accepted socket; the first request head is due
    /// within `header_timeout`, and no write may stay blocked longer than
    /// `send_timeout`.
    pub fn new(
        io: IO,
        activity: Arc<Activity>,
        header_timeout: Duration,
        idle_timeout: Duration,
        send_timeout: Duration,
    ) -> Self {
        let phase = Phase::Head(Instant::now());
        Watchdog {
            io,
            activity,
            header_timeout,
            idle_timeout,
            phase,
            seen_begun: 0,
            timer: None,
            send_timeout,
            write_blocked: None,
            write_timer: None,
            round_begun: 0,
            flushed: true,
            wrote_at_begun: 0,
            half_closed: false,
        }
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// A new round of hyper on this socket: a rest counts once the round
    /// has served a request.
    pub(crate) fn start_round(&mut self) {
        self.activity.at_rest.store(false, Ordering::Release);
        self.round_begun = self.activity.begun.load(Ordering::Relaxed);
    }

    /// Bytes of a request are waiting (handed from one round to the next):
    /// the head deadline runs.
    pub(crate) fn bytes_arrived(&mut self) {
        self.observe(true);
    }

    /// Between rounds: drops the timers (the resting connection waits with
    /// a timer of its own) and reports when the connection's deadline is.
    pub(crate) fn rest(&mut self) -> Option<Instant> {
        self.timer = None;
        self.write_timer = None;
        self.write_blocked = None;
        self.observe(false);
        self.deadline()
    }

    /// Whether hyper, now waiting for bytes, is between two requests.
    fn at_rest(&self) -> bool {
        let a = &self.activity;
        self.flushed
            && a.active.load(Ordering::Acquire) == 0
            && a.unread_bodies.load(Ordering::Acquire) == 0
            && a.begun.load(Ordering::Relaxed) > self.round_begun
    }

    /// Records the outcome of a read or write: anything but a read at rest
    /// cancels a rest reported earlier.
    fn note_rest(&self, rest: bool) {
        self.activity.at_rest.store(rest, Ordering::Release);
    }

    fn wrote(&mut self, r: &Poll<io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            self.flushed = false;
            self.wrote_at_begun = self.activity.begun.load(Ordering::Relaxed);
            self.note_rest(false);
        }
    }

    /// Tracks write progress: `Ready` restarts the send clock, `Pending`
    /// starts it (once) and fails the write when it runs out.
    fn write_deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.write_blocked = None;
            return r;
        }
        let since = *self.write_blocked.get_or_insert_with(Instant::now);
        ready!(poll_until(
            &mut self.write_timer,
            since + self.send_timeout,
            cx
        ));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading the response",
        )))
    }

    /// Whether end of input now is a half-close to hold back from hyper: a
    /// request is in progress, its body (if any) read to the end, and
    /// (unless the client already half-closed) its answer not yet begun.
    fn holds_back_eof(&self) -> bool {
        let a = &self.activity;
        let answering = self.wrote_at_begun == a.begun.load(Ordering::Relaxed);
        a.active.load(Ordering::Acquire) > 0
            && a.unread_bodies.load(Ordering::Acquire) == 0
            && (self.half_closed || !answering)
    }

    /// Parks the connection task, to be woken when the last request in
    /// progress finishes.
    fn park(&self, cx: &Context<'_>) {
        if let Ok(mut parked) = self.activity.parked.lock()
            && !parked.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            *parked = Some(cx.waker().clone());
        }
    }

    /// The end of input of a half-closed client: `Pending` while a request
    /// is in progress (woken when the last one ends), then end of input.
    fn poll_half_closed(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        // Park before looking, so a request ending right after the look
        // still wakes us.
        self.park(cx);
        if self.holds_back_eof() {
            self.note_rest(false);
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Head(since) => Some(since + self.header_timeout),
            Phase::Idle(since) => Some(since + self.idle_timeout),
            Phase::Busy => None,
        }
    }

    /// Updates the phase from the activity count and whether bytes just arrived.
    fn observe(&mut self, got_bytes: bool) {
        let now = Instant::now();
        let begun = self.activity.begun.load(Ordering::Relaxed);
        let served_one = std::mem::replace(&mut self.seen_begun, begun) != begun;
        let busy = self.activity.active.load(Ordering::Relaxed) > 0;
        // A request served since the last look ends any head phase.
        let phase = if served_one { Phase::Busy } else { self.phase };
        self.phase = match (busy, phase, got_bytes) {
            (true, _, _) => Phase::Busy,
            (false, Phase::Busy, false) => Phase::Idle(now),
            (false, Phase::Busy | Phase::Idle(_), true) => Phase::Head(now),
            (false, phase, _) => phase,
        };
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watchdog<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.half_closed {
            return self.poll_half_closed(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let got = buf.filled().len() > before;
                if r.is_ok() && !got && buf.remaining() > 0 && self.holds_back_eof() {
                    self.half_closed = true;
                    return self.poll_half_closed(cx);
                }
                self.observe(got);
                self.note_rest(false);
                Poll::Ready(r)
            }
            Poll::Pending => {
                // Park before looking at the activity count, so a request
                // finishing right after the look still wakes us.
                self.park(cx);
                self.observe(false);
                self.note_rest(self.at_rest());
                let Some(deadline) = self.deadline() else {
                    return Poll::Pending;
                };
                ready!(poll_until(&mut self.timer, deadline, cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client sent no complete request in time",
                )))
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watchdog<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&r);
        self.write_deadline(cx, r)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        self.write_deadline(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.flushed = true;
        }
        self.write_deadline(cx, r)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
