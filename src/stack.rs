//! The request's path, top to bottom. This is the one place that says what
//! happens to a request and in which order:
//!
//! 1. **snapshot** — one load of the live configuration; the request uses
//!    this version from start to end, whatever reloads happen meanwhile;
//! 2. **record** — an [`Exchange`] starts the access-log entry and marks the
//!    connection busy (so the idle watchdog leaves it alone);
//! 3. **forward** — [`Upstream::forward`](crate::upstream::Upstream::forward)
//!    sends it to the origin and streams the answer back;
//! 4. **rescue** — any failure becomes a page (`apology`); the service's
//!    error type is `Infallible`, so hyper never sees an error and never
//!    closes a connection for lack of a response;
//! 5. **tunnel** — an accepted upgrade is joined in the background, holding
//!    the connection's activity and the shutdown drain.
//!
//! [`Gateway`] is a `tower::Service` (tests drive it with `oneshot`); the
//! listener adapts it to hyper with `TowerToHyperService`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;

use crate::access_log::Exchange;
use crate::apology;
use crate::body::ResponseBody;
use crate::listener::{Activity, DrainToken};
use crate::runtime::Shared;
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
}

/// The service handed to hyper for one connection.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    conn: ConnCtx,
}

impl Gateway {
    /// The service for one accepted connection.
    pub fn new(shared: Arc<Shared>, conn: ConnCtx) -> Self {
        Gateway { shared, conn }
    }

    async fn handle(self, req: Request<Incoming>) -> Response<ResponseBody> {
        let rt = self.shared.runtime();
        let mut exchange = Exchange::begin(
            &req,
            self.conn.inbound.peer,
            rt.config.log.access,
            self.conn.activity.begin(),
        );
        let response = match rt.upstream.forward(req, &self.conn.inbound).await {
            Ok(forwarded) => {
                if let Some(tunnel) = forwarded.tunnel {
                    tunnel.spawn((self.conn.activity.begin(), self.conn.drain.clone()));
                }
                forwarded.response
            }
            Err(err) => {
                tracing::warn!(error = %err, "origin request failed");
                apology::for_upstream(&err)
            }
        };
        exchange.set_status(response.status());
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, body.with_exchange(exchange))
    }
}

impl tower::Service<Request<Incoming>> for Gateway {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}
