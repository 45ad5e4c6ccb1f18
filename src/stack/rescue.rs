//! The rescue layer: every cause a request stops for becomes its response
//! here, in [`respond`], the one place that does it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use tokio::time::Instant;
use tower::Service;

use super::{Answer, Call, Cause, Ctx, Stop};
use crate::admission::{Held, ShedReason};
use crate::apology;
use crate::classify::RouteClass;
use crate::runtime::Runtime;

/// Turns the stops below it into responses: its error type is
/// `Infallible`.
#[derive(Clone)]
pub struct Rescue<S> {
    inner: S,
}

impl<S> Rescue<S> {
    /// The layer around `inner`.
    pub fn new(inner: S) -> Self {
        Rescue { inner }
    }
}

impl<S, B> Service<Call<B>> for Rescue<S>
where
    S: Service<Call<B>, Response = Answer, Error = Stop>,
    S::Future: Unpin,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Rescued<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every layer below is always ready; a stop is an answer, not an
        // error of readiness.
        let _ = ready!(self.inner.poll_ready(cx));
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<B>) -> Self::Future {
        Rescued {
            inner: self.inner.call(call),
        }
    }
}

/// [`Rescue`]'s future.
pub struct Rescued<F> {
    inner: F,
}

impl<F> Future for Rescued<F>
where
    F: Future<Output = Result<Answer, Stop>> + Unpin,
{
    type Output = Result<Answer, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = ready!(Pin::new(&mut self.get_mut().inner).poll(cx));
        Poll::Ready(Ok(result.unwrap_or_else(respond)))
    }
}

/// The response for every cause a request stops for: a refused head gets
/// its short page (and an HTTP/1 connection is closed after it); a shed or
/// an origin that could not answer gets the apology (or, past the client's
/// budget, the short 429); a broken client body gets its 400 or 408.
pub fn respond(stop: Stop) -> Answer {
    let Stop {
        cause,
        class,
        asked,
        http1,
        ctx,
        rt,
    } = stop;
    let (response, shed) = match cause {
        Cause::Refused(refusal) => {
            metrics::counter!("lifeboat_refused_total", "reason" => refusal.as_str()).increment(1);
            let mut resp = apology::refusal(refusal);
            if http1 {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            (resp, None)
        }
        Cause::Shed(reason) => {
            let class = class.unwrap_or(RouteClass::Normal);
            let admission = &ctx.shared.admission;
            admission.refused(class, reason);
            let resp = if over_budget(&ctx, &rt, class, reason) {
                admission.clients.exceeded.fetch_add(1, Relaxed);
                metrics::counter!("lifeboat_client_budget_exceeded_total").increment(1);
                apology::too_many(&ctx.shared.pages(), reason, http1)
            } else {
                apology::respond(&ctx.shared.pages(), reason, asked)
            };
            (resp, Some(reason))
        }
        Cause::ClientBody { stalled } => {
            let class = class.unwrap_or(RouteClass::Normal);
            metrics::counter!("lifeboat_requests_total", "class" => class.as_str(), "outcome" => "client-error").increment(1);
            (apology::client_body_error(stalled), None)
        }
    };
    Answer {
        response,
        class,
        shed,
        held: Held::default(),
    }
}

/// Charges an overload apology to the client's address; true when it has
/// had more than its budget. A trusted proxy speaks for many clients and
/// is never charged. Downloads are never charged: a download behind the
/// same address as a greedy client (a NAT, an office) still gets its
/// answer.
fn over_budget(ctx: &Ctx, rt: &Runtime, class: RouteClass, reason: ShedReason) -> bool {
    let Some(budget) = rt.config.shedding.client_budget else {
        return false;
    };
    let ip = ctx.conn.inbound.peer.ip();
    class != RouteClass::Primary
        && reason.is_overload()
        && !rt.config.proxy.trusts(ip)
        && ctx.shared.admission.clients.charge(ip, Instant::now()) > budget
}
