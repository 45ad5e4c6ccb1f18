//! The layers that do their work at dispatch, without waiting: snapshot,
//! record, classify.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tower::Service;

use super::{Answer, Arrival, Call, Cause, Ctx, Loaded, Stop};
use crate::access_log::Exchange;
use crate::admission::Held;
use crate::apology::Asked;
use crate::body::ResponseBody;

/// Loads the live configuration once for the request.
#[derive(Clone)]
pub struct Snapshot<S> {
    ctx: Arc<Ctx>,
    inner: S,
}

impl<S> Snapshot<S> {
    /// The layer around `inner` for the connection `ctx`.
    pub fn new(ctx: Arc<Ctx>, inner: S) -> Self {
        Snapshot { ctx, inner }
    }
}

impl<S, B> Service<Arrival<B>> for Snapshot<S>
where
    S: Service<Loaded<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, arrival: Arrival<B>) -> S::Future {
        self.inner.call(Loaded {
            arrival,
            rt: self.ctx.shared.runtime(),
            ctx: self.ctx.clone(),
        })
    }
}

/// Starts the request's access record and, on the way back, hands it to
/// the response body, which completes it when it ends.
#[derive(Clone)]
pub struct Record<S> {
    inner: S,
}

impl<S> Record<S> {
    /// The layer around `inner`.
    pub fn new(inner: S) -> Self {
        Record { inner }
    }
}

impl<S, B> Service<Loaded<B>> for Record<S>
where
    S: Service<Call<B>, Response = Answer, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, loaded: Loaded<B>) -> Self::Future {
        let Loaded { arrival, rt, ctx } = loaded;
        let Arrival {
            req,
            activity,
            body_end,
        } = arrival;
        let conn = &ctx.conn;
        let exchange = Exchange::begin(
            &req,
            conn.inbound.peer,
            &rt.config.log,
            &conn.access,
            activity,
        );
        let asked = Asked::from_request(req.method(), req.headers());
        let call = Call {
            req,
            rt,
            ctx,
            body_end,
            asked,
            class: None,
            held: Held::default(),
            admitted_at: None,
        };
        Recorded {
            inner: self.inner.call(call),
            exchange: Some(exchange),
        }
    }
}

/// [`Record`]'s future.
pub struct Recorded<F> {
    inner: F,
    exchange: Option<Exchange>,
}

impl<F> Future for Recorded<F>
where
    F: Future<Output = Result<Answer, Infallible>> + Unpin,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Ok(answer) = ready!(Pin::new(&mut this.inner).poll(cx));
        let Answer {
            response,
            class,
            shed,
            held,
        } = answer;
        let Some(mut exchange) = this.exchange.take() else {
            return Poll::Ready(Ok(response));
        };
        exchange.set_status(response.status());
        if let Some(class) = class {
            exchange.set_class(class);
        }
        if let Some(reason) = shed {
            exchange.set_shed(reason);
        }
        exchange.hold(held);
        let (parts, body) = response.into_parts();
        Poll::Ready(Ok(Response::from_parts(
            parts,
            body.with_exchange(exchange),
        )))
    }
}

/// Refuses heads lifeboat will not relay, answers the status endpoint, and
/// classifies the rest.
#[derive(Clone)]
pub struct Classify<S> {
    inner: S,
}

impl<S> Classify<S> {
    /// The layer around `inner`.
    pub fn new(inner: S) -> Self {
        Classify { inner }
    }
}

impl<S, B> Service<Call<B>> for Classify<S>
where
    S: Service<Call<B>, Response = Answer, Error = Stop>,
    S::Future: Unpin,
{
    type Response = Answer;
    type Error = Stop;
    type Future = Now<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Stop>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call<B>) -> Self::Future {
        let rt = &call.rt;
        // Heads lifeboat will not relay (too many fields, no single valid
        // host, CONNECT) are refused before anything else looks at them.
        let host = match crate::screen::screen(&call.req, rt.config.limits.max_headers) {
            Ok(host) => host,
            Err(refusal) => return Now::Done(Some(Err(call.stop(Cause::Refused(refusal))))),
        };
        // The status endpoint answers from memory: never shed, never
        // proxied, up while the origin is down.
        if call.req.uri().path() == rt.config.story.status_path {
            let response = status(&call.ctx, &call.req);
            return Now::Done(Some(Ok(call.answer(response))));
        }
        let (class, _route) =
            rt.config
                .routes
                .classify(call.req.method(), host, call.req.uri().path());
        call.ctx.shared.admission.tally.requests[class.index()].fetch_add(1, Relaxed);
        call.class = Some(class);
        Now::Later(self.inner.call(call))
    }
}

/// An answer known at once, or the inner service's future.
// Not boxed: it is built once and moved once, into hyper's own boxed slot;
// a box would cost an allocation per apology, the busiest answer of a
// stampede.
#[allow(clippy::large_enum_variant)]
pub enum Now<F> {
    /// Answered without going further (taken when polled).
    Done(Option<Result<Answer, Stop>>),
    /// Handed on.
    Later(F),
}

impl<F> Future for Now<F>
where
    F: Future<Output = Result<Answer, Stop>> + Unpin,
{
    type Output = Result<Answer, Stop>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Now::Done(answer) => Poll::Ready(answer.take().expect("polled after completion")),
            Now::Later(inner) => Pin::new(inner).poll(cx),
        }
    }
}

/// The public status endpoint: JSON, or HTML for a browser.
fn status<B>(ctx: &Ctx, req: &Request<B>) -> Response<ResponseBody> {
    let pages = ctx.shared.status();
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (body, ctype) = if accept.contains("text/html") {
        (pages.html.clone(), "text/html; charset=utf-8")
    } else {
        (pages.json.clone(), "application/json")
    };
    let head = req.method() == http::Method::HEAD;
    let mut resp = Response::new(if head {
        ResponseBody::empty()
    } else {
        ResponseBody::full(body)
    });
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ctype),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, max-age=1"),
    );
    h.insert(http::header::VARY, http::HeaderValue::from_static("accept"));
    resp
}
