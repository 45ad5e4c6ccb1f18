//! HTTP/1 connections, plain or TLS, served so that an idle keep-alive
//! connection costs next to nothing.
//!
//! hyper's HTTP/1 connection keeps its read and write buffers and its state
//! machine (about 33 KiB in all) for as long as the connection lives, idle
//! or not. Here an HTTP/1 connection is served in *rounds*: a round is
//! one boxed hyper connection over the socket, and it ends as soon as the
//! watchdog has reported hyper at rest between two requests (the last
//! response written and flushed, every request body read to its end, hyper
//! waiting for the next head) for [`REST_AFTER`]. The round is then shut
//! down gracefully, which hyper does at once for an idle connection, without
//! touching the socket. Its memory is freed and the connection rests as a
//! bare socket until it is readable again or its keep-alive deadline passes.
//! Requests that follow each other closely keep their round: setting one
//! up costs an allocation of hyper's buffers, which a busy connection should
//! not pay per request. Bytes hyper had read but not yet parsed (the start
//! of a pipelined request) go to the next round first, so nothing the
//! client sent is lost.
//!
//! Under TLS the round runs over the TLS stream and the connection rests
//! with it: rustls keeps its session, hyper's buffers go. The rest ends
//! without a word on the wire (no `close_notify`): a round's shutdown is a
//! no-op when it ends in a rest ([`RoundIo`]).
//!
//! A plain connection that opens with the HTTP/2 preface (or a prefix of
//! it), and a TLS connection that chose `h2` by ALPN, are served by hyper's
//! auto server for their whole life: HTTP/2 keeps connection state (HPACK
//! tables, flow-control windows) that cannot be dropped between requests.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::accept::{abusive, stopped};
use super::handshake::SlotIo;
use crate::config::{Config, Limits};
use crate::conn::{Activity, Cancels, Watchdog};
use crate::deadline::poll_until;
use crate::stack::Gateway;

/// How long hyper stays at rest before its round ends.
pub(super) const REST_AFTER: Duration = Duration::from_millis(100);

/// What an HTTP/2 client with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The stream hyper's rounds run on: the socket and its watchdog, plain or
/// under TLS.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The watchdog on the socket.
    fn watchdog(&mut self) -> &mut Watchdog<TcpStream>;
    /// The socket, waited on while the connection rests.
    fn socket(&self) -> &TcpStream;
}

impl Stream for Watchdog<TcpStream> {
    fn watchdog(&mut self) -> &mut Watchdog<TcpStream> {
        self
    }
    fn socket(&self) -> &TcpStream {
        self.get_ref()
    }
}

impl Stream for tokio_rustls::server::TlsStream<SlotIo<Watchdog<TcpStream>>> {
    fn watchdog(&mut self) -> &mut Watchdog<TcpStream> {
        self.get_mut().0.get_mut()
    }
    fn socket(&self) -> &TcpStream {
        self.get_ref().0.get_ref().get_ref()
    }
}

/// Everything an HTTP/1 connection holds for its whole life.
pub(super) struct Conn<'a, S> {
    pub(super) io: S,
    pub(super) gateway: Gateway,
    pub(super) activity: Arc<Activity>,
    pub(super) peer: SocketAddr,
    pub(super) config: &'a Config,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) cancels: &'a Cancels,
}

impl Conn<'_, Watchdog<TcpStream>> {
    /// Serves a plain connection until it closes, times out, or shutdown
    /// begins.
    // Not an `async fn`, here and in `rounds`: an `async fn` keeps its
    // argument twice in the future (as the argument, and moved into the
    // body), and a resting connection's task is mostly this `Conn`.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its argument twice"
    )]
    pub(super) fn serve_plain(mut self) -> impl Future<Output = ()> {
        async move {
            // The first bytes decide the protocol; until they come, the
            // connection is a socket and a timer.
            let Some(deadline) = self.io.rest() else {
                return;
            };
            let mut first = [0u8; H2_PREFACE.len()];
            let peeked = tokio::select! {
                r = tokio::time::timeout_at(deadline, self.io.get_ref().peek(&mut first)) => r,
                _ = stopped(&mut self.stop) => return,
            };
            let n = match peeked {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            };
            if first[..n] == H2_PREFACE[..n] {
                let Conn {
                    io,
                    gateway,
                    peer,
                    config,
                    stop,
                    cancels,
                    ..
                } = self;
                Box::pin(super::accept::serve(
                    io, gateway, peer, config, stop, cancels,
                ))
                .await;
                return;
            }
            self.rounds().await
        }
    }
}

impl<S: Stream> Conn<'_, S> {
    /// Serves HTTP/1 in rounds, resting between them, until the connection
    /// closes, times out, or shutdown begins.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn keeps its argument twice"
    )]
    pub(super) fn rounds(mut self) -> impl Future<Output = ()> {
        async move {
            let mut carry = Bytes::new();
            loop {
                self.io.watchdog().start_round();
                if !carry.is_empty() {
                    self.io.watchdog().bytes_arrived();
                }
                let io = RoundIo {
                    prefix: carry,
                    io: self.io,
                    activity: self.activity.clone(),
                };
                let Some((io, rest, gateway)) = Box::pin(round(
                    io,
                    self.gateway,
                    &self.config.limits,
                    &self.activity,
                    &mut self.stop,
                    self.cancels,
                    self.peer,
                ))
                .await
                else {
                    return;
                };
                (self.io, carry, self.gateway) = (io, rest, gateway);
                if carry.is_empty() && !self.wait_readable().await {
                    return;
                }
            }
        }
    }

    /// Rests until the socket is readable (true), or the keep-alive
    /// deadline passes or shutdown begins (false).
    async fn wait_readable(&mut self) -> bool {
        let deadline = self.io.watchdog().rest().unwrap_or_else(Instant::now);
        tokio::select! {
            r = tokio::time::timeout_at(deadline, self.io.socket().readable()) => matches!(r, Ok(Ok(()))),
            _ = stopped(&mut self.stop) => false,
        }
    }
}

/// hyper's HTTP/1 server as configured for every round.
fn http1(limits: &Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        // The watchdog enforces header-read and idle deadlines; hyper's own
        // timer would also cut idle keep-alive connections at the head deadline.
        .header_read_timeout(None)
        // The head limit itself, not only the buffer's: a read can bring in
        // more than the buffer limit, and a head parsed whole from it would
        // get through.
        .max_header_size(limits.max_header_size)
        .max_buf_size(limits.max_header_size)
        .max_headers(limits.max_headers);
    b
}

/// One round of hyper on the socket. Returns the socket, the bytes read but
/// not yet served, and the service when the connection comes to rest;
/// `None` when it is finished (closed, failed, upgraded, shut down).
async fn round<S: Stream>(
    io: RoundIo<S>,
    gateway: Gateway,
    limits: &Limits,
    activity: &Activity,
    stop: &mut watch::Receiver<bool>,
    cancels: &Cancels,
    peer: SocketAddr,
) -> Option<(S, Bytes, Gateway)> {
    let mut conn = http1(limits)
        .serve_connection(TokioIo::new(io), gateway)
        .with_upgrades();
    let mut stopping = pin!(stopped(stop));
    let mut tripped = pin!(cancels.tripped());
    let mut ending = false;
    let mut resting = false;
    let mut rest_since: Option<Instant> = None;
    let mut rest_timer = None;
    let result = poll_fn(|cx| {
        loop {
            if let Poll::Ready(r) = Pin::new(&mut conn).poll(cx) {
                return Poll::Ready(r);
            }
            if ending {
                return Poll::Pending;
            }
            if stopping.as_mut().poll(cx).is_ready() {
                // Shutdown: finish the request in progress, then close.
            } else if tripped.as_mut().poll(cx).is_ready() {
                abusive(peer, cancels);
            } else if activity.at_rest() {
                let since = *rest_since.get_or_insert_with(Instant::now);
                if poll_until(&mut rest_timer, since + REST_AFTER, cx).is_pending() {
                    return Poll::Pending;
                }
                resting = true;
                activity.set_resting(true);
            } else {
                rest_since = None;
                return Poll::Pending;
            }
            ending = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
    })
    .await;
    activity.set_resting(false);
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed with error");
        return None;
    }
    if !resting {
        return None;
    }
    let parts = conn.into_parts()?;
    let RoundIo { prefix, io, .. } = parts.io.into_inner();
    // hyper's unparsed bytes came off the socket before any prefix it had
    // not yet read. They are copied out: `read_buf` is a view of hyper's
    // whole read buffer, and even an empty view would keep it alive.
    let carry = if parts.read_buf.is_empty() && prefix.is_empty() {
        Bytes::new()
    } else {
        let mut both = BytesMut::with_capacity(parts.read_buf.len() + prefix.len());
        both.extend_from_slice(&parts.read_buf);
        both.extend_from_slice(&prefix);
        both.freeze()
    };
    Some((io, carry, parts.service))
}

/// What a round's hyper sees: the bytes an earlier round read but did not
/// serve, then the stream; and a shutdown that does nothing when the round
/// ends in a rest, so the connection (and a TLS session) stays open.
struct RoundIo<IO> {
    prefix: Bytes,
    io: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for RoundIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for RoundIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.resting() {
            // hyper's round ends, the connection does not.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
