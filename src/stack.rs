//! The request's path, top to bottom. This is the one place that says what
//! happens to a request and in which order:
//!
//! 1. **snapshot** — one load of the live configuration; the request uses
//!    this version from start to end, whatever reloads happen meanwhile;
//! 2. **record** — an [`Exchange`] starts the access-log entry and marks the
//!    connection busy (so the idle watchdog leaves it alone);
//! 3. **screen** and **classify** — a head with too many fields, no single
//!    valid host, or CONNECT is refused (`screen`); then method, host and
//!    canonical path → primary, keep or normal (`classify`; no header can
//!    make a request primary);
//! 4. **decide** — the published mode and the ramp say how long the request
//!    may wait for the origin, or shed it (`admission::decide`, pure, no
//!    lock);
//! 5. **admit** — count the request in, take the primary class's own slot
//!    (if configured) and a slot at the origin (under the learned or pinned
//!    limit), waiting in lifeboat's priority queue only if the wait it can
//!    expect fits, else refused at once; the slots are held until the
//!    response body ends, so a download keeps its slot to its last byte. A
//!    request with a body still to come is admitted as keep at most, so an
//!    upload never trickles into a slot reserved for the downloads. In a
//!    dry run every refusal is counted as "would have shed" and the request
//!    goes on;
//! 6. **forward** — `Upstream::forward` sends it to the origin and streams
//!    the answer back; its time to first byte and outcome feed the signals;
//! 7. **rescue** — every refusal and failure becomes a response (`apology`);
//!    the service's error type is `Infallible`, so hyper never sees an error;
//! 8. **tunnel** — an accepted WebSocket upgrade is joined in the
//!    background, holding the request's slots, the connection's activity
//!    and the shutdown drain until it closes or idles out.
//!
//! [`Gateway`] is a `hyper::service::Service`: hyper calls it the moment a
//! request head is parsed, and the request counts as in progress on its
//! connection from then on (before its future is first polled), so the
//! connection can never look idle with a request waiting.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::access_log::{AccessLog, Exchange};
use crate::admission::{Answered, Decision, Wait, decide};
use crate::apology::{self, Asked, ShedReason};
use crate::body::ResponseBody;
use crate::classify::RouteClass;
use crate::conn::{Activity, ActivityGuard, BodyEnd, Cancels, DrainToken};
use crate::runtime::{Runtime, Shared};
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

    async fn handle(
        &self,
        req: Request<Incoming>,
        activity: ActivityGuard,
        body_end: Option<BodyEnd>,
    ) -> Response<ResponseBody> {
        let rt = self.shared.runtime();
        let mut exchange = Exchange::begin(
            &req,
            self.conn.inbound.peer,
            &rt.config.log,
            &self.conn.access,
            activity,
        );
        let response = self.serve(&rt, req, &mut exchange, body_end).await;
        exchange.set_status(response.status());
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, body.with_exchange(exchange))
    }

    async fn serve(
        &self,
        rt: &Runtime,
        req: Request<Incoming>,
        exchange: &mut Exchange,
        body_end: Option<BodyEnd>,
    ) -> Response<ResponseBody> {
        let asked = Asked::from_request(req.method(), req.headers());
        let http1 = req.version() <= http::Version::HTTP_11;
        // Heads lifeboat will not relay (too many fields, no single valid
        // host, CONNECT) are refused before anything else looks at them.
        let host = match crate::screen::screen(&req, rt.config.limits.max_headers) {
            Ok(host) => host,
            Err(refusal) => return refuse(refusal, req.version()),
        };
        // The status endpoint answers from memory: never shed, never proxied,
        // up while the origin is down.
        if req.uri().path() == rt.config.story.status_path {
            return self.status(&req);
        }
        let (class, _route) = rt
            .config
            .routes
            .classify(req.method(), host, req.uri().path());
        exchange.set_class(class);
        let admission = &self.shared.admission;
        admission.tally.requests[class.index()].fetch_add(1, Relaxed);

        let dry_run = rt.config.shedding.dry_run;
        let wait = match decide(class, admission.view(), fastrand::f64()) {
            Decision::Admit(wait) => wait,
            Decision::Shed(reason) if dry_run => {
                self.would_shed(reason);
                Wait::Queue
            }
            Decision::Shed(reason) => return self.shed(rt, exchange, class, reason, asked, http1),
        };
        // A request whose body is still to come is admitted no higher than
        // keep: it may trickle its body into the origin for as long as the
        // body rate allows, and must not do it in a slot reserved for the
        // downloads (nor take the primary class's own slots).
        let has_body = body_end.is_some();
        let admit_as = if has_body {
            class.max(RouteClass::Keep)
        } else {
            class
        };
        let admitting = Instant::now();
        let mut held = match admission.admit(&rt.config, admit_as, wait).await {
            Ok(held) => held,
            Err((reason, held)) if dry_run => {
                self.would_shed(reason);
                held
            }
            Err((reason, _)) => return self.shed(rt, exchange, class, reason, asked, http1),
        };

        let started = Instant::now();
        match rt.upstream.forward(req, &self.conn.inbound, body_end).await {
            Ok(forwarded) => {
                let ttfb = started.elapsed();
                let status = forwarded.response.status();
                let server = forwarded.server;
                server.learn_from(class, ttfb, status, has_body);
                held.server = Some(server.into_count());
                exchange.hold(held);
                admission.answered(Answered {
                    class,
                    ttfb,
                    status,
                    admitted_at: admitting,
                });
                if let Some(tunnel) = forwarded.tunnel {
                    // The tunnel is the request, still going: it keeps the
                    // request's slots (in-flight count, origin slot).
                    tunnel.spawn((
                        exchange.take_held(),
                        self.shared.tunnels.enter(),
                        self.conn.activity.begin(),
                        self.conn.drain.clone(),
                    ));
                }
                forwarded.response
            }
            Err(err) => {
                exchange.hold(held);
                if let Some(reason) = apology::reason_for(&err) {
                    tracing::warn!(error = %err, "origin request failed");
                    admission.origin_failed(reason);
                    return self.shed(rt, exchange, class, reason, asked, http1);
                }
                // The client's own broken or trickled body: not the
                // origin's failure, and not worth a warning per client (a
                // trickle attack would flood the log).
                tracing::debug!(error = %err, "client request body failed");
                metrics::counter!("lifeboat_requests_total", "class" => class.as_str(), "outcome" => "client-error").increment(1);
                let stalled = matches!(
                    err,
                    crate::upstream::UpstreamError::ClientBody { stalled: true, .. }
                );
                apology::client_body_error(stalled)
            }
        }
    }

    /// Dry run: what would have been shed is counted, and the request goes on.
    fn would_shed(&self, reason: ShedReason) {
        self.shared.admission.would_shed(reason);
    }

    fn shed(
        &self,
        rt: &Runtime,
        exchange: &mut Exchange,
        class: RouteClass,
        reason: ShedReason,
        asked: Asked,
        http1: bool,
    ) -> Response<ResponseBody> {
        exchange.set_shed(reason);
        self.shared.admission.refused(class, reason);
        if self.over_budget(rt, class, reason) {
            let clients = &self.shared.admission.clients;
            clients.exceeded.fetch_add(1, Relaxed);
            metrics::counter!("lifeboat_client_budget_exceeded_total").increment(1);
            return apology::too_many(&self.shared.pages(), reason, http1);
        }
        apology::respond(&self.shared.pages(), reason, asked)
    }

    /// Charges an overload apology to the client's address; true when it
    /// has had more than its budget. A trusted proxy speaks for many
    /// clients and is never charged.
    /// Downloads are never charged: a download behind the same address as a
    /// greedy client (a NAT, an office) still gets its answer.
    fn over_budget(&self, rt: &Runtime, class: RouteClass, reason: ShedReason) -> bool {
        let Some(budget) = rt.config.shedding.client_budget else {
            return false;
        };
        let ip = self.conn.inbound.peer.ip();
        class != RouteClass::Primary
            && reason.is_overload()
            && !rt.config.proxy.trusts(ip)
            && self.shared.admission.clients.charge(ip, Instant::now()) > budget
    }

    /// The public status endpoint: JSON, or HTML for a browser.
    fn status(&self, req: &Request<Incoming>) -> Response<ResponseBody> {
        let pages = self.shared.status();
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
}

/// A head `screen` refused: counted, and answered with its own short page;
/// an HTTP/1 connection that sent it is closed after the answer.
fn refuse(refusal: crate::screen::Refusal, version: http::Version) -> Response<ResponseBody> {
    metrics::counter!("lifeboat_refused_total", "reason" => refusal.as_str()).increment(1);
    let mut resp = apology::refusal(refusal);
    if version < http::Version::HTTP_2 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

impl hyper::service::Service<Request<Incoming>> for Gateway {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        let activity = self.conn.activity.begin();
        let body_end = (!req.body().is_end_stream()).then(|| self.conn.activity.unread_body());
        Box::pin(async move {
            let answer = this.conn.cancels.begin();
            let response = this.handle(req, activity, body_end).await;
            answer.answered();
            Ok(response)
        })
    }
}
