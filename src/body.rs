//! Body types. Bodies stream: nothing here buffers more than one frame.
//!
//! - [`RequestBody`]: the client's body on its way to the origin, with an
//!   idle timeout so a stalled upload cannot pin an origin connection, and
//!   a minimum rate ([`MinRate`]) so a trickled one cannot either.
//! - [`ResponseBody`]: what lifeboat sends to the client: a streamed origin
//!   body (with its own idle timeout), the same read ahead of its visitor
//!   through the [`crate::spool`], or a static page from memory. It
//!   carries the request's [`Exchange`] record, which is completed when the
//!   body ends, fails or is dropped: that is when the access-log line is
//!   written and the connection's activity count drops.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::access_log::Exchange;
use crate::conn::BodyEnd;

pub use crate::conn::BodyError;

/// The slowest a request body may arrive, as Apache's mod_reqtimeout
/// measures it (`body=20,MinRate=500`): `grace`, plus one second per
/// `bytes_per_sec` bytes received. Only time spent waiting for the client
/// counts: while the origin is slow to read, the client is not to blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes per second the body must average once `grace` is spent.
    pub bytes_per_sec: u64,
    /// Time allowed on top.
    pub grace: Duration,
}

/// Progress of a body held to a [`MinRate`].
struct Rate {
    min: MinRate,
    received: u64,
    /// Time spent waiting for the client, not counting the current wait.
    waited: Duration,
    /// Since when the current wait has lasted.
    waiting_since: Option<Instant>,
}

impl Rate {
    /// When the current wait runs out of allowance.
    fn deadline(&mut self, now: Instant) -> Instant {
        let since = *self.waiting_since.get_or_insert(now);
        let earned = Duration::from_secs_f64(self.received as f64 / self.min.bytes_per_sec as f64);
        since + (self.min.grace + earned).saturating_sub(self.waited)
    }

    fn progressed(&mut self, now: Instant, bytes: usize) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += now - since;
        }
        self.received += bytes as u64;
    }
}

/// A body that fails if no frame arrives within `timeout`, or, with a
/// [`MinRate`], if it arrives slower than that. The timer is created only
/// when a read actually has to wait.
pub struct IdleBody {
    /// `None`: no body at all (a retried or a health-check request).
    inner: Option<Source>,
    timeout: Duration,
    last_progress: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    /// For a client's body: told when the body has been read to its end.
    end: Option<BodyEnd>,
    rate: Option<Box<Rate>>,
}

/// The client's request body as sent to the origin.
pub type RequestBody = IdleBody;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where an [`IdleBody`]'s frames come from: hyper's own body as it is (the
/// proxy's case, no allocation), or any other body, boxed (a service
/// driving the pipeline without a socket).
enum Source {
    Incoming(Incoming),
    Other(Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>),
}

impl Source {
    /// `body` as a source (never `None`: the slot is emptied only for
    /// hyper's own body, which is then the source).
    fn of<B>(body: B) -> Option<Self>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        let incoming = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<Incoming>>()
            .and_then(Option::take);
        match incoming {
            Some(incoming) => Some(Source::Incoming(incoming)),
            None => slot.map(|body| {
                Source::Other(Box::pin(http_body_util::BodyExt::map_err(body, Into::into)))
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Source::Incoming(b) => b.is_end_stream(),
            Source::Other(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Source::Incoming(b) => b.size_hint(),
            Source::Other(b) => b.size_hint(),
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self {
            Source::Incoming(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BodyError::from))),
            Source::Other(b) => b
                .as_mut()
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BodyError::Other))),
        }
    }
}

impl IdleBody {
    /// Wraps `inner`; the idle clock starts now.
    pub fn new<B>(inner: B, timeout: Duration) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        IdleBody {
            inner: Source::of(inner),
            timeout,
            last_progress: Instant::now(),
            timer: None,
            end: None,
            rate: None,
        }
    }

    /// No body: a request without one, sent again or made by lifeboat.
    pub fn empty() -> Self {
        IdleBody {
            inner: None,
            timeout: Duration::MAX,
            last_progress: Instant::now(),
            timer: None,
            end: None,
            rate: None,
        }
    }

    /// Tells `end` once the body has been read to its end.
    pub fn ending(mut self, end: Option<BodyEnd>) -> Self {
        self.end = end;
        self
    }

    /// Holds the body to `min` (`None`: no minimum rate).
    pub fn min_rate(mut self, min: Option<MinRate>) -> Self {
        self.rate = min.filter(|m| m.bytes_per_sec > 0).map(|min| {
            Box::new(Rate {
                min,
                received: 0,
                waited: Duration::ZERO,
                waiting_since: None,
            })
        });
        self
    }
}

impl Body for IdleBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                let now = Instant::now();
                this.last_progress = now;
                if let Some(rate) = this.rate.as_deref_mut() {
                    let bytes = match &frame {
                        Some(Ok(f)) => f.data_ref().map_or(0, Bytes::len),
                        _ => 0,
                    };
                    rate.progressed(now, bytes);
                }
                if (frame.is_none() || inner.is_end_stream())
                    && let Some(end) = this.end.take()
                {
                    end.ended();
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let idle = this.last_progress + this.timeout;
                let (deadline, error) = match this.rate.as_deref_mut() {
                    Some(rate) => {
                        let slow = rate.deadline(Instant::now());
                        if slow < idle {
                            (slow, BodyError::TooSlow(rate.min.bytes_per_sec))
                        } else {
                            (idle, BodyError::Idle(this.timeout))
                        }
                    }
                    None => (idle, BodyError::Idle(this.timeout)),
                };
                ready!(crate::deadline::poll_until(&mut this.timer, deadline, cx));
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Source::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Source::size_hint)
    }
}

enum Inner {
    /// A page or message held in memory (often `&'static`, so no copy).
    Full(Option<Bytes>),
    /// The origin's body, streamed.
    Origin(IdleBody),
    /// The origin's body, read ahead of the visitor.
    Spooled(crate::spool::Reader),
}

/// The body of every response lifeboat sends.
pub struct ResponseBody {
    inner: Inner,
    exchange: Option<Exchange>,
}

impl ResponseBody {
    /// A body from memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let inner = Inner::Full((!bytes.is_empty()).then_some(bytes));
        ResponseBody {
            inner,
            exchange: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody {
            inner: Inner::Full(None),
            exchange: None,
        }
    }

    /// The origin's body, streamed with an idle timeout.
    pub fn origin(body: Incoming, idle: Duration) -> Self {
        ResponseBody {
            inner: Inner::Origin(IdleBody::new(body, idle)),
            exchange: None,
        }
    }

    /// Reads the origin's body ahead of its visitor from now on (see
    /// [`crate::spool`]); `release` (the request's origin slot) is dropped
    /// at the origin's last byte. Any other body is left as it is.
    pub fn read_ahead<R: Send + 'static>(
        self,
        release: R,
        bounds: crate::spool::Bounds,
        dir: &std::sync::Arc<crate::spool::Dir>,
    ) -> Self {
        match self.inner {
            Inner::Origin(body) => ResponseBody {
                inner: Inner::Spooled(crate::spool::start(body, release, bounds, dir)),
                exchange: self.exchange,
            },
            inner => ResponseBody {
                inner,
                exchange: self.exchange,
            },
        }
    }

    /// Attaches the request's record, completed when this body finishes.
    pub fn with_exchange(mut self, exchange: Exchange) -> Self {
        if self.is_end_stream() {
            exchange.finish(None);
        } else {
            self.exchange = Some(exchange);
        }
        self
    }

    fn finish(&mut self, error: Option<&BodyError>) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish(error);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Origin(body) => Pin::new(body).poll_frame(cx),
            Inner::Spooled(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(ex)) = (frame.data_ref(), this.exchange.as_mut()) {
                    ex.add_bytes(data.len());
                }
                if this.is_end_stream() {
                    this.finish(None);
                }
            }
            Poll::Ready(Some(Err(e))) => this.finish(Some(e)),
            Poll::Ready(None) => this.finish(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Origin(b) => b.is_end_stream(),
            Inner::Spooled(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Origin(b) => b.size_hint(),
            Inner::Spooled(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_time_spent_waiting_for_the_client_counts_against_the_rate() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut rate = Rate {
            min: MinRate {
                bytes_per_sec: 100,
                grace: s(1),
            },
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
        };
        // Nothing received yet: the grace alone.
        assert_eq!(rate.deadline(t0), t0 + s(1));
        // 50 bytes after half a second of waiting: half a second earned.
        rate.progressed(t0 + Duration::from_millis(500), 50);
        // Ten seconds with the origin not reading: not the client's fault.
        let later = t0 + s(10);
        assert_eq!(rate.deadline(later), later + s(1));
        // A spurious wake-up does not restart the wait.
        assert_eq!(rate.deadline(later + s(1)), later + s(1));
    }
}
