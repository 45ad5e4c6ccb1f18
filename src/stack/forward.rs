//! The bottom of the stack: the origin.

use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::time::Instant;
use tower::Service;

use super::{Answer, BoxFuture, Call, Cause, Stop};
use crate::admission::Answered;
use crate::apology;
use crate::upstream::UpstreamError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sends an admitted request to the origin (`Upstream::forward`); its
/// answer feeds the signals and the server's learner, its failure stops
/// the request with the apology's reason.
#[derive(Clone, Copy)]
pub struct Forward;

impl<B> Service<Call<B>> for Forward
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Answer;
    type Error = Stop;
    type Future = BoxFuture<Result<Answer, Stop>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Stop>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call<B>) -> Self::Future {
        Box::pin(forward(call))
    }
}

async fn forward<B>(call: Call<B>) -> Result<Answer, Stop>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let class = call.class();
    let http1 = call.req.version() <= http::Version::HTTP_11;
    let Call {
        req,
        rt,
        ctx,
        body_end,
        asked,
        mut held,
        admitted_at,
        ..
    } = call;
    let has_body = body_end.is_some();
    let admission = &ctx.shared.admission;
    let started = Instant::now();
    let forwarded = rt.upstream.forward(req, &ctx.conn.inbound, body_end).await;
    match forwarded {
        Ok(forwarded) => {
            let ttfb = started.elapsed();
            let status = forwarded.response.status();
            let server = forwarded.server;
            server.learn_from(class, ttfb, status, has_body);
            let to_come = !http_body::Body::is_end_stream(forwarded.response.body());
            if to_come || forwarded.tunnel.is_some() {
                held.streaming = Some(server.transfer());
            }
            held.server = Some(server.into_count());
            admission.answered(Answered {
                class,
                ttfb,
                status,
                admitted_at: admitted_at.unwrap_or(started),
            });
            let mut response = forwarded.response;
            if let Some(tunnel) = forwarded.tunnel {
                // The tunnel is the request, still going: it keeps the
                // request's slots (in-flight count, origin slot).
                let conn = &ctx.conn;
                tunnel.spawn((
                    std::mem::take(&mut held),
                    ctx.shared.tunnels.enter(),
                    conn.activity.begin(),
                    conn.drain.clone(),
                ));
            } else if to_come && read_ahead(&rt.config.buffering, response.body()) {
                // The origin's part ends at its last byte, not the
                // visitor's: the slots go with the read-ahead.
                let b = &rt.config.buffering;
                let bounds = crate::spool::Bounds {
                    memory: b.memory,
                    max_file: b.max_file,
                    max_total: b.max_total,
                };
                let held = std::mem::take(&mut held);
                response = response.map(|body| body.read_ahead(held, bounds, &ctx.shared.spool));
            }
            Ok(Answer {
                response,
                class: Some(class),
                shed: None,
                held,
            })
        }
        Err(err) => {
            if let Some(reason) = apology::reason_for(&err) {
                tracing::warn!(error = %err, "origin request failed");
                admission.origin_failed(reason);
                let cause = Cause::Shed(reason);
                return Err(stopped(cause, class, asked, http1, ctx, rt));
            }
            // The client's own broken or trickled body: not the origin's
            // failure, and not worth a warning per client (a trickle attack
            // would flood the log).
            tracing::debug!(error = %err, "client request body failed");
            let stalled = matches!(err, UpstreamError::ClientBody { stalled: true, .. });
            let cause = Cause::ClientBody { stalled };
            Err(stopped(cause, class, asked, http1, ctx, rt))
        }
    }
}

/// Whether a response body is worth reading ahead of its visitor: one
/// that fits in the buffer's memory is in the sockets' buffers as soon as
/// it is sent, and is handed on as it is.
fn read_ahead(config: &crate::config::Buffering, body: &crate::body::ResponseBody) -> bool {
    let len = http_body::Body::size_hint(body).exact();
    config.enabled && len.is_none_or(|n| n > config.memory as u64)
}

/// The request's stop, from the parts of its `Call` the origin did not
/// take.
fn stopped(
    cause: Cause,
    class: crate::classify::RouteClass,
    asked: crate::apology::Asked,
    http1: bool,
    ctx: std::sync::Arc<super::Ctx>,
    rt: std::sync::Arc<crate::runtime::Runtime>,
) -> Stop {
    Stop {
        cause,
        class: Some(class),
        asked,
        http1,
        ctx,
        rt,
    }
}
