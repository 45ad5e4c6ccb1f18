//! [`ShedLayer`]: lifeboat's shedding around any tower service.
//!
//! The same machinery the proxy runs, without the proxy: requests are
//! classified by the `[[route]]` table (primary, keep, normal), the mode
//! machine clears the boards when the service slows (its time to first
//! byte, failures and lifeboat's own queue wait are the signals), the
//! service's concurrency is held to the learned (or configured) limit with
//! lifeboat's priority queue in front of it, and whoever cannot be served
//! gets the pre-rendered apology (`503`, `Retry-After`) at once. A request
//! keeps its slot until its response body ends, so a download holds it to
//! its last byte.
//!
//! ```no_run
//! # async fn doc() -> Result<(), Box<dyn std::error::Error>> {
//! use tower::Layer;
//! let config = lifeboat::config::from_str(
//!     "[origin]\nurl = \"http://app.internal\"\n\n\
//!      [[route]]\nname = \"downloads\"\nmatch = \"/download/*\"\nclass = \"primary\"\n",
//!     "shed.toml",
//!     std::path::Path::new("."),
//! )?;
//! let shed = lifeboat::ShedLayer::new(config);
//! let app = tower::service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
//! });
//! let service = shed.layer(app);
//! # let _ = service; Ok(()) }
//! ```
//!
//! The config is lifeboat's own file: `[origin]` gives the limit
//! (`max_inflight`, learned by default), the queue and its timeout (its
//! `url` only names the service in the logs); `[shedding]`, `[[route]]`,
//! `[apology]`, `[journal]` and `[[webhook]]` mean what they mean for the
//! proxy. The ticker, the learner and the journal writer run on the tokio
//! runtime that builds the layer, until the layer and every service made
//! from it are dropped. The per-address apology budget needs the peer's
//! address, which a generic service does not have: it is the proxy's only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::admission::{Answered, Held, ShedReason};
use crate::apology::{self, Asked};
use crate::body::ResponseBody;
use crate::config::Config;
use crate::runtime::Shared;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The shared state and the tasks that keep it current; the tasks stop
/// when the last layer or service holding it is dropped.
struct Core {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Core {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// lifeboat's shedding as a tower [`tower::Layer`].
#[derive(Clone)]
pub struct ShedLayer {
    core: Arc<Core>,
}

impl ShedLayer {
    /// Builds the shedding state for `config` and starts its ticker,
    /// learner and journal writer on the current tokio runtime (so: call it
    /// inside one).
    pub fn new(config: Config) -> Self {
        let shared = Shared::new(config, None);
        let tasks = crate::control::spawn_tasks(&shared);
        ShedLayer {
            core: Arc::new(Core { shared, tasks }),
        }
    }

    /// The live state: the mode, the limit, the override switch
    /// (`set_override`), the message (`post_update`), the status page.
    pub fn shared(&self) -> Arc<Shared> {
        self.core.shared.clone()
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            core: self.core.clone(),
        }
    }
}

/// A service behind lifeboat's shedding (made by [`ShedLayer`]).
#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    core: Arc<Core>,
}

impl<S, B, RB> tower::Service<Request<B>> for Shed<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body + Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ShedBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    /// Always ready: a request waits, if at all, in lifeboat's queue
    /// (bounded in length and time), and the inner service's readiness is
    /// awaited once the request has its slot.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone that was made ready is the one that serves (tower's
        // rule); this one stays behind for the next call.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        Box::pin(serve(self.core.clone(), inner, req))
    }
}

async fn serve<S, B, RB>(
    core: Arc<Core>,
    mut inner: S,
    req: Request<B>,
) -> Result<Response<ShedBody<RB>>, S::Error>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    B: Body,
    RB: Body<Data = Bytes>,
{
    let shared = &core.shared;
    let rt = shared.runtime();
    let a = &shared.admission;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host());
    let (class, _) = rt
        .config
        .routes
        .classify(req.method(), host, req.uri().path());
    a.tally.requests[class.index()].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let asked = Asked::from_request(req.method(), req.headers());
    let apology = |reason: ShedReason| {
        a.refused(class, reason);
        Ok(apology::respond(&shared.pages(), reason, asked).map(ShedBody::apology))
    };
    let wait = match a.gate(&rt.config, class) {
        Ok(wait) => wait,
        Err(reason) => return apology(reason),
    };
    // A request with a body to come is admitted as keep at most, as in
    // the proxy.
    let has_body = !req.body().is_end_stream();
    let admitted_at = Instant::now();
    let mut held = match a.enter(&rt.config, class, has_body, wait).await {
        Ok(held) => held,
        Err(reason) => return apology(reason),
    };
    // The service is the origin's one server: its learner learns the
    // service's limit, from its answers.
    let slot = rt
        .upstream
        .pool
        .servers()
        .first()
        .map(crate::upstream::ServerSlot::new);
    let started = Instant::now();
    let answer = async {
        std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
        inner.call(req).await
    };
    match answer.await {
        Ok(resp) => {
            let (ttfb, status) = (started.elapsed(), resp.status());
            if let Some(slot) = slot {
                slot.learn_from(class, ttfb, status, has_body);
                held.server = Some(slot.into_count());
            }
            a.answered(Answered {
                class,
                ttfb,
                status,
                admitted_at,
            });
            Ok(resp.map(|body| ShedBody::inner(body, held)))
        }
        Err(e) => {
            // The service's own error is its caller's to handle; lifeboat
            // counts it as a failure, as an origin that broke the exchange.
            a.origin_failed(ShedReason::OriginDown);
            Err(e)
        }
    }
}

/// The response body: the service's (holding the request's slots until it
/// ends), or the apology.
pub struct ShedBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Inner {
        body: Pin<Box<B>>,
        held: Option<Held>,
    },
    /// Boxed: lifeboat's body type is sized for streaming an origin's.
    Apology(Box<ResponseBody>),
}

impl<B> ShedBody<B> {
    fn inner(body: B, held: Held) -> Self {
        ShedBody {
            kind: Kind::Inner {
                body: Box::pin(body),
                held: Some(held),
            },
        }
    }

    fn apology(body: ResponseBody) -> Self {
        ShedBody {
            kind: Kind::Apology(Box::new(body)),
        }
    }
}

impl<B> Body for ShedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Both variants are `Unpin` (the service's body is boxed).
        match &mut self.get_mut().kind {
            Kind::Inner { body, held } => {
                let polled = body.as_mut().poll_frame(cx);
                if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
                    // The last byte is out: the slots go back now, not
                    // when the server gets round to dropping the body.
                    held.take();
                }
                polled.map(|f| f.map(|r| r.map_err(Into::into)))
            }
            Kind::Apology(body) => Pin::new(body.as_mut())
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body, .. } => body.is_end_stream(),
            Kind::Apology(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body, .. } => body.size_hint(),
            Kind::Apology(body) => body.size_hint(),
        }
    }
}
