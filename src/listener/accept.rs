//! Accepting and serving: the accept loop (connection cap, backoff when out
//! of file descriptors, rate-limited logs), then per connection the
//! watchdog, the TLS handshake under a deadline, then HTTP/1 in rounds
//! (`rounds`) or hyper's auto h1/h2 server for HTTP/2, until the connection
//! ends, shutdown drains it, or it cancels too much.
//!
//! The connection task stays small: everything large (a hyper connection,
//! a handshake) lives in a box of its own, freed when it ends, so a resting
//! connection costs its socket and little more.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use super::DrainToken;
use super::rounds::Conn;
use crate::access_log::AccessLog;
use crate::config::Config;
use crate::conn::{Activity, Cancels, builder, watchdog};
use crate::runtime::Shared;
use crate::stack::{ConnCtx, Gateway};
use crate::upstream::Inbound;

/// Longest pause between accept retries when the process is out of file
/// descriptors: short enough to resume quickly once fds free up.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// Accept errors are logged at most this often, so fd exhaustion cannot
/// flood the log.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Accepts on one listener and serves each connection in its own task.
pub(super) struct Acceptor {
    pub(super) shared: Arc<Shared>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) drain: DrainToken,
    pub(super) limit: Arc<Semaphore>,
    pub(super) tls: bool,
    pub(super) access: AccessLog,
}

impl Acceptor {
    pub(super) async fn run(mut self, listener: TcpListener) {
        let mut backoff = Duration::from_millis(5);
        let mut last_log: Option<Instant> = None;
        loop {
            let permit = tokio::select! {
                p = self.limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = stopped(&mut self.stop) => return,
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped(&mut self.stop) => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    tokio::spawn(self.connection(stream, peer, permit));
                }
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    // Out of fds or memory: back off instead of spinning, and
                    // say so at a bounded rate.
                    if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                        tracing::error!(error = %e, retry_in = ?backoff, "accept failed");
                        last_log = Some(Instant::now());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            }
        }
    }

    fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + use<> {
        let shared = self.shared.clone();
        let stop = self.stop.clone();
        let drain = self.drain.clone();
        let access = self.access.clone();
        let tls = self.tls;
        let handshakes = self.shared.handshakes.clone();
        async move {
            let _permit = permit;
            let rt = shared.runtime();
            let config = rt.config.clone();
            drop(rt);
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            let limits = &config.limits;
            let io = watchdog::Watchdog::new(
                stream,
                activity.clone(),
                limits.header_read_timeout,
                limits.keepalive_timeout,
                limits.body_idle_timeout,
            );
            let cancels = Arc::new(Cancels::default());
            let conn = ConnCtx {
                inbound: Inbound::new(peer, tls),
                activity: activity.clone(),
                drain,
                cancels: cancels.clone(),
                access,
            };
            let gateway = Gateway::new(shared, conn);
            match (tls, &config.listen.https) {
                (false, _) => {
                    let plain = Conn {
                        io,
                        gateway,
                        activity,
                        peer,
                        config: &config,
                        stop,
                        cancels: &cancels,
                    };
                    plain.serve_plain().await
                }
                (true, Some((_, tls_cfg))) => {
                    // Boxed, and in pieces: a TLS stream is large, and the
                    // plain connections' tasks should not be sized for it;
                    // nor should a TLS connection keep the handshake's
                    // space once it is serving.
                    Box::pin(async {
                        let handshake = tokio::time::timeout(
                            tls_cfg.handshake_timeout,
                            super::handshake::handshake(
                                io,
                                tls_cfg.server_config.clone(),
                                &handshakes,
                            ),
                        );
                        // The stream is moved into the serving future within
                        // this statement, so its space here ends with it.
                        let serving: Pin<Box<dyn Future<Output = ()> + Send + '_>> =
                            match Box::pin(handshake).await {
                                Ok(Ok(stream))
                                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") =>
                                {
                                    Box::pin(serve(stream, gateway, peer, &config, stop, &cancels))
                                }
                                Ok(Ok(stream)) => Box::pin(
                                    Conn {
                                        io: stream,
                                        gateway,
                                        activity,
                                        peer,
                                        config: &config,
                                        stop,
                                        cancels: &cancels,
                                    }
                                    .rounds(),
                                ),
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        serving.await
                    })
                    .await
                }
                (true, None) => {
                    tracing::warn!(%peer, "TLS listener has no TLS configuration; closing")
                }
            }
        }
    }
}

/// Completes once shutdown has begun. (The watch guard is dropped here,
/// never held across an await by the caller.)
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Errors that concern one connection only; the next accept may succeed.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Serves a connection with hyper's auto h1/h2 server for its whole life.
pub(super) async fn serve<IO>(
    io: IO,
    gateway: Gateway,
    peer: SocketAddr,
    config: &Config,
    mut stop: watch::Receiver<bool>,
    cancels: &Cancels,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = builder(&config.limits);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), gateway);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        _ = cancels.tripped() => {
            abusive(peer, cancels);
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed with error");
    }
}

/// Says that a connection is being closed for cancelling most of what it
/// asks (rapid reset).
pub(super) fn abusive(peer: SocketAddr, cancels: &Cancels) {
    let (requests, cancelled) = cancels.counts();
    tracing::warn!(
        %peer,
        requests,
        cancelled,
        "closing a connection that cancels most of its requests (rapid reset?)"
    );
    metrics::counter!("lifeboat_abusive_connections_total", "reason" => "cancelled-requests")
        .increment(1);
}
