//! Upgraded connections (WebSocket, the only upgrade lifeboat forwards):
//! once both the client and the origin have switched protocols, bytes are
//! copied both ways until either side closes, or until the tunnel has been
//! silent both ways for `limits.tunnel_idle_timeout`.
//!
//! A tunnel is a request that has not ended: it holds whatever the caller
//! gives it for its whole life, namely the request's admission slots (its
//! in-flight count and its origin slot, so it counts in the signals, the
//! metrics and the origin cap), the connection's activity and the shutdown
//! drain. [`Open`] counts the tunnels for the `lifeboat_tunnels` gauge.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Both halves of an accepted upgrade, waiting to be joined.
pub struct Pending {
    client: OnUpgrade,
    origin: OnUpgrade,
    idle: Duration,
}

impl Pending {
    pub(crate) fn new(client: OnUpgrade, origin: OnUpgrade, idle: Duration) -> Self {
        Pending {
            client,
            origin,
            idle,
        }
    }

    /// Joins the halves in a background task that owns `guard` until the
    /// tunnel closes or idles out.
    pub fn spawn<G: Send + 'static>(self, guard: G) {
        tokio::spawn(async move {
            let _guard = guard;
            let (client, origin) = match tokio::try_join!(self.client, self.origin) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let clock = Arc::new(Clock::new());
            let mut client = Metered::new(TokioIo::new(client), &clock);
            let mut origin = Metered::new(TokioIo::new(origin), &clock);
            let copy = tokio::io::copy_bidirectional(&mut client, &mut origin);
            tokio::pin!(copy);
            loop {
                tokio::select! {
                    r = &mut copy => {
                        match r {
                            Ok((up, down)) => tracing::debug!(up, down, "tunnel closed"),
                            Err(e) => tracing::debug!(error = %e, "tunnel closed with error"),
                        }
                        return;
                    }
                    () = tokio::time::sleep_until(clock.last() + self.idle) => {
                        if clock.last() + self.idle <= Instant::now() {
                            tracing::debug!(idle = ?self.idle, "tunnel silent both ways; closing");
                            metrics::counter!("lifeboat_tunnels_idle_closed_total").increment(1);
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Tunnels open now.
#[derive(Debug, Default)]
pub struct Open(Arc<AtomicUsize>);

impl Open {
    /// How many are open.
    pub fn count(&self) -> usize {
        self.0.load(Relaxed)
    }

    /// Counts one more until the returned guard is dropped.
    pub fn enter(&self) -> OpenGuard {
        self.0.fetch_add(1, Relaxed);
        OpenGuard(self.0.clone())
    }
}

/// One open tunnel (see [`Open::enter`]).
#[derive(Debug)]
pub struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// When a byte last moved through the tunnel, either way.
struct Clock {
    start: Instant,
    /// Milliseconds from `start` to the last byte.
    last_ms: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Relaxed))
    }
}

/// One side of the tunnel; every byte read or written restarts the clock.
struct Metered<T> {
    io: T,
    clock: Arc<Clock>,
}

impl<T> Metered<T> {
    fn new(io: T, clock: &Arc<Clock>) -> Self {
        Metered {
            io,
            clock: clock.clone(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
