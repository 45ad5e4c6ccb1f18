//! The admit layer: the mode's decision, then the request's slots.

use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::Service;

use super::front::Now;
use super::{Answer, BoxFuture, Call, Cause, Stop};

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
        let wait = match call.ctx.shared.admission.gate(&call.rt.config, class) {
            Ok(wait) => wait,
            Err(reason) => return Now::Done(Some(Err(call.stop(Cause::Shed(reason))))),
        };
        Now::Later(Box::pin(async move {
            call.admitted_at = Some(Instant::now());
            let has_body = call.body_end.is_some();
            let admission = &call.ctx.shared.admission;
            call.held = match admission
                .enter(&call.rt.config, class, has_body, wait)
                .await
            {
                Ok(held) => held,
                Err(reason) => return Err(call.stop(Cause::Shed(reason))),
            };
            inner.call(call).await
        }))
    }
}
