//! Listening sockets: bind, accept with a connection cap and error backoff,
//! TLS handshake with a deadline, serve HTTP/1.1 + HTTP/2 (auto-detected on
//! plain text, ALPN on TLS), and drain on shutdown.
//!
//! Per-connection settings (limits, TLS certificate) are read from the live
//! configuration at accept time, so a reload applies to new connections.
//!
//! Here: binding (accept queue, fd limit), running and draining, the
//! control tasks, signals. `accept`: the accept loop and each connection's
//! life. `rounds`: HTTP/1 (plain or TLS) in rounds, resting between requests.
//! `watchdog`: socket deadlines and rests. `handshake`: TLS under a slot.
//! `cancels`: the rapid-reset guard.

mod accept;
mod handshake;
mod rounds;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::runtime::Shared;

/// How long shutdown waits for the access log's last lines to be
/// written: a destination stalled longer is not going to take them.
const ACCESS_FLUSH: Duration = Duration::from_secs(2);

pub use crate::conn::DrainToken;

/// A bound, not yet serving, lifeboat.
pub struct Lifeboat {
    shared: Arc<Shared>,
    http: Option<TcpListener>,
    https: Option<TcpListener>,
    admin: Option<TcpListener>,
    hangup: Option<crate::reload::Hangup>,
    access: AccessLog,
    reopen: Option<crate::access_log::Reopen>,
}

impl Lifeboat {
    /// Binds the configured listeners. Fails if an address is in use.
    pub async fn bind(config: Config) -> io::Result<Self> {
        Self::bind_with_path(config, None).await
    }

    /// Binds, remembering the config file for reloads.
    pub async fn bind_with_path(
        config: Config,
        path: Option<std::path::PathBuf>,
    ) -> io::Result<Self> {
        raise_fd_limit(config.limits.max_connections);
        let backlog = config.listen.backlog;
        let bind = |addr: SocketAddr| async move {
            listen(addr, backlog)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        };
        let http = match config.listen.http {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let https = match &config.listen.https {
            Some((a, _)) => Some(bind(*a).await?),
            None => None,
        };
        let admin = match config.admin.listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let hangup = path.is_some().then(crate::reload::Hangup::register);
        let reopen = Some(crate::access_log::Reopen::register());
        let log = config.log.clone();
        let shared = Shared::new(config, path);
        let live = shared.clone();
        let access = AccessLog::start(&log, move || live.runtime().config.log.access_path.clone())?;
        Ok(Lifeboat {
            shared,
            http,
            https,
            admin,
            hangup,
            access,
            reopen,
        })
    }

    /// The plain listener's actual address (useful with port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The TLS listener's actual address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The admin listener's actual address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The live shared state.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits up
    /// to `shutdown.drain_timeout` for in-flight requests. Returns whether
    /// everything finished in time.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> bool {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
        let limit = Arc::new(Semaphore::new(
            self.shared.runtime().config.limits.max_connections,
        ));
        for (listener, tls) in [(self.http.take(), false), (self.https.take(), true)] {
            if let Some(listener) = listener {
                let acceptor = accept::Acceptor {
                    shared: self.shared.clone(),
                    stop: stop_rx.clone(),
                    drain: DrainToken::new(drain_tx.clone()),
                    limit: limit.clone(),
                    tls,
                    access: self.access.clone(),
                };
                tokio::spawn(acceptor.run(listener));
            }
        }
        let background = self.start_control();
        shutdown.await;
        // The admin API and the ticker keep running through the drain:
        // /readyz says "draining" so load balancers stop sending new work.
        background
            .admin
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let drain_timeout = self.shared.runtime().config.shutdown.drain_timeout;
        tracing::info!(
            ?drain_timeout,
            "shutting down: no new connections, draining requests in flight"
        );
        let _ = stop_tx.send(true);
        drop(drain_tx);
        let drained = tokio::time::timeout(drain_timeout, drain_rx.recv())
            .await
            .is_ok();
        if drained {
            tracing::info!("drained; bye");
        } else {
            tracing::warn!("drain timeout reached; closing remaining connections");
        }
        self.shared.events.emit(crate::story::Event::Stopped);
        self.shared.events.flush(Duration::from_secs(2)).await;
        // Every request has finished: its line is in the buffers, and goes
        // out now rather than with the process.
        if !self.access.flush(ACCESS_FLUSH).await {
            tracing::warn!(
                ?ACCESS_FLUSH,
                "the access log's destination did not take its last lines in time"
            );
        }
        for task in background.tasks {
            task.abort();
        }
        drained
    }

    /// Starts what runs beside the listeners: the ticker, the journal and
    /// webhook writer, the admin API, and the reload triggers.
    fn start_control(&mut self) -> Control {
        crate::admin::metrics::install();
        self.access.register_metrics();
        let shared = self.shared.clone();
        let rt = shared.runtime();
        let mut tasks = crate::control::spawn_tasks(&shared);
        // The proxy's own: its origin servers' health checks and names.
        tasks.push(tokio::spawn(crate::control::origins::health(
            shared.clone(),
        )));
        tasks.push(tokio::spawn(crate::control::origins::resolve(
            shared.clone(),
        )));
        let admin = Arc::new(crate::admin::AdminState {
            shared: shared.clone(),
            draining: Default::default(),
        });
        if let Some(listener) = self.admin.take() {
            if let Ok(a) = listener.local_addr() {
                tracing::info!(address = %a, "admin listening");
            }
            tasks.push(tokio::spawn(crate::admin::serve(listener, admin.clone())));
        }
        if let Some(reopen) = self.reopen.take() {
            tasks.push(tokio::spawn(reopen.run(self.access.clone())));
        }
        if let Some(hangup) = self.hangup.take() {
            tasks.push(tokio::spawn(crate::reload::on_sighup(
                shared.clone(),
                hangup,
            )));
        }
        if shared.config_path.is_some() {
            tasks.push(tokio::spawn(crate::reload::watch(shared.clone())));
        }
        shared.events.emit(crate::story::Event::Started {
            version: env!("CARGO_PKG_VERSION").into(),
            config: rt.config.source.clone(),
        });
        Control { tasks, admin }
    }
}

/// The background tasks of a running lifeboat.
struct Control {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    admin: Arc<crate::admin::AdminState>,
}

/// Binds a listener with `SO_REUSEADDR` (a restart can rebind at once)
/// and the given accept queue length.
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Raises the soft file-descriptor limit to the hard one, as Go and
/// HAProxy do: a default soft limit of 1024 would cap a proxy at a few
/// hundred clients whatever `max_connections` says. Says so if even the
/// hard limit cannot hold `max_connections` clients and their origin
/// connections; accepting then backs off at the limit (see `Acceptor`).
fn raise_fd_limit(max_connections: usize) {
    let wanted = 2 * max_connections as u64 + 64 + crate::runtime::ADMIN_CONNECTIONS as u64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "file descriptor limit is below 2 x limits.max_connections; raise it (ulimit -n, LimitNOFILE)"
        ),
        Ok(limit) => tracing::debug!(limit, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the file descriptor limit"),
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are registered
/// when this is called, not when the future is first polled: call it before
/// announcing the listeners, so a signal sent right after start drains
/// instead of killing the process outright. Must run inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
