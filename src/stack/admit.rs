//! The admit layer: the mode's decision, then the request's slots.

use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::Service;

use super::front::Now;
use super::{Answer, BoxFuture, Call, Cause, Stop};
use crate::admission::{Decision, Wait, decide};
use crate::classify::RouteClass;

/// Sheds what the mode says to shed, and takes the slots of the rest
/// (waiting in lifeboat's priority queue only as long as it can expect to
/// be served); the slots travel down with the request.
#[derive(Clone)]
pub struct Admit<S> {
    inner: S,
}

impl<S> Admit<S> {
    /// The layer around `inner`.
    pub fn new(inner: S) -> Self {
        Admit { inner }
    }
}

impl<S, B> Service<Call<B>> for Admit<S>
where
    S: Service<Call<B>, Response = Answer, Error = Stop> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Answer;
    type Error = Stop;
    /// A shed is answered at once, without an allocation: the apology's
    /// path is the busiest during a stampede.
    type Future = Now<BoxFuture<Result<Answer, Stop>>>;

    /// Always ready: a request waits, if at all, in lifeboat's queue.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Stop>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut call: Call<B>) -> Self::Future {
        // The clone that was made ready is the one that serves (tower's
        // rule); this one stays behind for the next call.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let class = call.class();
        let admission = &call.ctx.shared.admission;
        let dry_run = call.rt.config.shedding.dry_run;
        let wait = match decide(class, admission.view(), fastrand::f64()) {
            Decision::Admit(wait) => wait,
            Decision::Shed(reason) if dry_run => {
                admission.would_shed(reason);
                Wait::Queue
            }
            Decision::Shed(reason) => {
                let stop = call.stop(Cause::Shed(reason));
                return Now::Done(Some(Err(stop)));
            }
        };
        Now::Later(Box::pin(async move {
            // A request whose body is still to come is admitted no higher
            // than keep: it may trickle its body into the origin for as
            // long as the body rate allows, and must not do it in a slot
            // reserved for the downloads (nor take the primary class's own
            // slots).
            let admit_as = if call.body_end.is_some() {
                class.max(RouteClass::Keep)
            } else {
                class
            };
            call.admitted_at = Some(Instant::now());
            let admission = &call.ctx.shared.admission;
            call.held = match admission.admit(&call.rt.config, admit_as, wait).await {
                Ok(held) => held,
                Err((reason, held)) if dry_run => {
                    admission.would_shed(reason);
                    held
                }
                Err((reason, _)) => return Err(call.stop(Cause::Shed(reason))),
            };
            inner.call(call).await
        }))
    }
}
