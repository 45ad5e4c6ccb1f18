//! The request's path: one stack of tower layers, built in one place
//! ([`stack`]) and read top to bottom.
//!
//! 1. **snapshot** ([`Snapshot`]) — one load of the live configuration;
//!    the request uses this version from start to end, whatever reloads
//!    happen meanwhile;
//! 2. **record** ([`Record`]) — the access-log entry ([`crate::access_log::Exchange`]) starts
//!    here, so it times the whole request and sees every answer, refusals
//!    included; it completes when the response body ends;
//! 3. **rescue** ([`Rescue`]) — every cause a request stops for below
//!    (a refused head, a shed, an origin failure, a broken client body)
//!    becomes its response here, in one function ([`rescue::respond`]);
//!    nothing below it writes an apology, and hyper never sees an error;
//! 4. **classify** ([`Classify`]) — a head with too many fields, no single
//!    valid host, or CONNECT is refused (`screen`); the status endpoint
//!    answers from memory; then method, host and canonical path → primary,
//!    keep or normal (no header can make a request primary);
//! 5. **admit** ([`Admit`]) — the published mode and the ramp say how long
//!    the request may wait for the origin, or shed it (`admission::decide`,
//!    pure, no lock); then count the request in, take the primary class's
//!    own slot (if configured) and a slot at the origin (under the learned
//!    or pinned limit), waiting in lifeboat's priority queue only if the
//!    wait it can expect fits. A request with a body still to come is
//!    admitted as keep at most, so an upload never trickles into a slot
//!    reserved for the downloads. In a dry run every refusal is counted as
//!    "would have shed" and the request goes on;
//! 6. **forward** ([`Forward`]) — `Upstream::forward` sends it to the
//!    origin and streams the answer back; its time to first byte and
//!    outcome feed the signals and the server's learner. An accepted
//!    WebSocket upgrade is joined in the background, holding the request's
//!    slots, the connection's activity and the shutdown drain until it
//!    closes or idles out.
//!
//! Information goes down in the request ([`Call`]: the snapshot, the
//! class, the slots) and comes back up in the answer ([`Answer`]: the
//! response, the class, the shed reason, the slots, which the access
//! record holds until the body ends) or the stop ([`Stop`]).
//!
//! Every layer is generic over the request body (`B: http_body::Body`), so
//! the stack runs without a socket (`tower::ServiceExt::oneshot` in the
//! tests). Every layer is always ready: a request waits, if at all, in
//! lifeboat's queue, which is bounded in length and time.
//!
//! [`Gateway`] is the small hyper adapter: hyper calls it the moment a
//! request head is parsed, it counts the request as in progress on its
//! connection (before anything is polled, so the connection can never look
//! idle with a request waiting) and calls the stack there and then.

mod admit;
mod forward;
mod front;
pub mod rescue;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};

pub use admit::Admit;
pub use forward::Forward;
pub use front::{Classify, Record, Snapshot};
pub use rescue::Rescue;

use crate::access_log::AccessLog;
use crate::admission::{Held, ShedReason};
use crate::apology::Asked;
use crate::body::ResponseBody;
use crate::classify::RouteClass;
use crate::conn::{Activity, ActivityGuard, BodyEnd, Cancels, DrainToken};
use crate::runtime::{Runtime, Shared};
use crate::screen::Refusal;
use crate::upstream::Inbound;

/// Everything a request needs to know about its connection.
#[derive(Clone)]
pub struct ConnCtx {
    /// Peer address and TLS flag.
    pub inbound: Inbound,
    /// Requests in progress on this connection (for the idle watchdog).
    pub activity: Arc<Activity>,
    /// Held by upgraded tunnels so shutdown waits for them.
    pub drain: DrainToken,
    /// Requests cancelled before their answer (the rapid-reset guard).
    pub cancels: Arc<Cancels>,
    /// Where the requests' access lines go.
    pub access: AccessLog,
}

/// What every request on one connection shares: the process's state and
/// the connection's. It rides down the stack in the request, so the layers
/// themselves hold nothing and a stack is cheap to clone.
pub struct Ctx {
    /// The live state: config swap, admission, pages, status.
    pub shared: Arc<Shared>,
    /// The connection.
    pub conn: ConnCtx,
}

/// A request as hyper hands it over, with what was counted at dispatch.
pub struct Arrival<B> {
    /// The request.
    pub req: Request<B>,
    /// The request is in progress on its connection from dispatch on.
    pub activity: ActivityGuard,
    /// Told when the request body has been read to its end (`None`: no
    /// body to come).
    pub body_end: Option<BodyEnd>,
}

/// An arrival with the configuration version it will use throughout.
pub struct Loaded<B> {
    /// What hyper handed over.
    pub arrival: Arrival<B>,
    /// The snapshot.
    pub rt: Arc<Runtime>,
    /// The connection.
    pub ctx: Arc<Ctx>,
}

/// A request on its way down, with what the layers above it found out.
pub struct Call<B> {
    /// The request.
    pub req: Request<B>,
    /// The configuration version it uses throughout.
    pub rt: Arc<Runtime>,
    /// The connection.
    pub ctx: Arc<Ctx>,
    /// Told when the request body has been read to its end.
    pub body_end: Option<BodyEnd>,
    /// What the client accepts, for the apology it may get.
    pub asked: Asked,
    /// Its class, once `classify` has run.
    pub class: Option<RouteClass>,
    /// Its slots, once `admit` has run.
    pub held: Held,
    /// When admission began (its wait in the queue counts toward the
    /// downloads' time to answer).
    pub admitted_at: Option<Instant>,
}

impl<B> Call<B> {
    /// The request's class; a request is classified before admission.
    fn class(&self) -> RouteClass {
        self.class.unwrap_or(RouteClass::Normal)
    }

    /// The request stops here, for `cause`.
    fn stop(&self, cause: Cause) -> Stop {
        Stop {
            cause,
            class: self.class,
            asked: self.asked,
            http1: self.req.version() <= http::Version::HTTP_11,
            ctx: self.ctx.clone(),
            rt: self.rt.clone(),
        }
    }

    /// The request is answered with `response`, and no slot of its own.
    fn answer(&self, response: Response<ResponseBody>) -> Answer {
        Answer {
            response,
            class: self.class,
            shed: None,
            held: Held::default(),
        }
    }
}

/// A response on its way up, with what its access line and the record of
/// its slots need.
pub struct Answer {
    /// The response.
    pub response: Response<ResponseBody>,
    /// The request's class (none for a refused head or the status page).
    pub class: Option<RouteClass>,
    /// Set when the response is the apology.
    pub shed: Option<ShedReason>,
    /// Slots held until the response body ends.
    pub held: Held,
}

/// Why a request stopped before the origin answered it; `rescue` turns it
/// into a response.
pub struct Stop {
    /// The cause.
    pub cause: Cause,
    /// The request's class, if it got that far.
    pub class: Option<RouteClass>,
    /// What the client accepts.
    pub asked: Asked,
    /// HTTP/1 (the connection of a refused head is closed).
    pub http1: bool,
    /// The connection (for the client's apology budget).
    pub ctx: Arc<Ctx>,
    /// The request's config version.
    pub rt: Arc<Runtime>,
}

/// The causes a request stops for.
#[derive(Debug, Clone, Copy)]
pub enum Cause {
    /// A head lifeboat will not relay.
    Refused(Refusal),
    /// Shed (overload, a queue, the operator) or the origin could not
    /// answer: the apology.
    Shed(ShedReason),
    /// The client's own body broke or stalled (`stalled`).
    ClientBody {
        /// No progress for the body idle timeout or below the minimum rate.
        stalled: bool,
    },
}

/// The stack, as [`stack`] builds it.
pub type Stack = Snapshot<Record<Rescue<Classify<Admit<Forward>>>>>;

/// The request's path for one connection, one layer per line.
pub fn stack(ctx: Arc<Ctx>) -> Stack {
    ServiceBuilder::new()
        // One config version for the whole request, loaded before anything
        // reads the config.
        .layer_fn(|inner| Snapshot::new(ctx.clone(), inner))
        // The access record: above everything that can answer, so every
        // answer (the apology, a refused head) gets its line and its time.
        .layer_fn(Record::new)
        // Every stop below becomes a response here, and only here.
        .layer_fn(Rescue::new)
        // Pure, and before anything is counted: refused heads, the status
        // page, the class.
        .layer_fn(Classify::new)
        // The mode's decision and the slots: only classified requests reach
        // it, and only admitted ones leave it.
        .layer_fn(Admit::new)
        // The origin.
        .service(Forward)
}

/// The service handed to hyper for one accepted connection: the
/// dispatch-time bookkeeping, then the stack.
#[derive(Clone)]
pub struct Gateway {
    ctx: Arc<Ctx>,
    stack: Stack,
}

impl Gateway {
    /// The service for one accepted connection.
    pub fn new(shared: Arc<Shared>, conn: ConnCtx) -> Self {
        let ctx = Arc::new(Ctx { shared, conn });
        Gateway {
            stack: stack(ctx.clone()),
            ctx,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Gateway {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Answering<<Stack as Service<Arrival<Incoming>>>::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let conn = &self.ctx.conn;
        let activity = conn.activity.begin();
        let body_end = (!req.body().is_end_stream()).then(|| conn.activity.unread_body());
        let answer = conn.cancels.begin();
        // hyper's `call` takes `&self`, tower's `&mut self`: a clone per
        // request (one reference count; the layers hold nothing else).
        let mut stack = self.stack.clone();
        debug_assert!(
            Service::<Arrival<Incoming>>::poll_ready(
                &mut stack,
                &mut Context::from_waker(std::task::Waker::noop())
            )
            .is_ready(),
            "every layer is always ready"
        );
        Answering {
            inner: stack.call(Arrival {
                req,
                activity,
                body_end,
            }),
            answer: Some(answer),
        }
    }
}

/// The stack's future, marking the request answered (not cancelled) once
/// its response head exists.
pub struct Answering<F> {
    inner: F,
    answer: Option<crate::conn::Answer>,
}

impl<F> Future for Answering<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Infallible>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let response = ready!(Pin::new(&mut this.inner).poll(cx));
        if let Some(answer) = this.answer.take() {
            answer.answered();
        }
        Poll::Ready(response)
    }
}

/// A boxed future of a layer whose work awaits (admission, the origin).
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Builds the context for driving the stack without a socket (tests,
/// benches): `peer` as the client, its lines to `access`.
pub fn detached(shared: Arc<Shared>, peer: std::net::SocketAddr, access: AccessLog) -> Arc<Ctx> {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    Arc::new(Ctx {
        shared,
        conn: ConnCtx {
            inbound: Inbound::new(peer, false),
            activity: Arc::default(),
            drain: DrainToken::new(tx),
            cancels: Arc::default(),
            access,
        },
    })
}

impl<B> Arrival<B> {
    /// A request arriving outside hyper (no connection to count it on):
    /// for driving the stack without a socket.
    pub fn detached(req: Request<B>, ctx: &Ctx) -> Self
    where
        B: http_body::Body,
    {
        let body_end = (!req.body().is_end_stream()).then(|| ctx.conn.activity.unread_body());
        Arrival {
            req,
            activity: ctx.conn.activity.begin(),
            body_end,
        }
    }
}
