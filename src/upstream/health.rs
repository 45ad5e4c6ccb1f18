//! The active health check: every `interval`, a `GET` of the configured
//! path to every server of the current config version, answered 2xx or
//! 3xx within `timeout` or failed. `unhealthy` failures in a row take a
//! server out of rotation (never the last one); `healthy` passes in a row
//! bring an ejected one back once its backoff is over.
//!
//! One task for the process; the checks of one round run concurrently, so
//! a server that hangs delays no other's check.

use std::sync::Arc;

use http::{Request, header::HOST};

use crate::body::RequestBody;
use crate::config::HostHeader;
use crate::runtime::Shared;

/// Checks the servers until the process ends; idle while no check is
/// configured.
pub async fn run(shared: Arc<Shared>) {
    loop {
        let rt = shared.runtime();
        let Some(check) = rt.config.origin.health.clone() else {
            // No check in this version: look again after a reload. The
            // version is not held meanwhile: an old one's connection pool
            // closes as soon as its last request ends.
            drop(rt);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            continue;
        };
        let round = tokio::time::sleep(check.interval);
        let checks: Vec<_> = rt
            .upstream
            .pool
            .servers()
            .iter()
            .map(|server| {
                let rt = rt.clone();
                let server = server.clone();
                let check = check.clone();
                tokio::spawn(async move {
                    let pool = &rt.upstream.pool;
                    let passed = rt.upstream.probe(&server, &check).await;
                    let now = pool.now_ms();
                    if passed {
                        if server.health.check_passed(check.healthy, now) {
                            tracing::warn!(server = %server.name, "origin server back in rotation: its health check passes");
                        }
                    } else if server.health.check_failed(check.unhealthy) {
                        pool.eject(&server, now, false, "health check failing");
                    }
                })
            })
            .collect();
        drop(rt);
        for c in checks {
            let _ = c.await;
        }
        round.await;
    }
}

impl super::Upstream {
    /// One health check of `server`: true when it answers 2xx or 3xx in time.
    pub async fn probe(&self, server: &super::Server, check: &crate::config::HealthCheck) -> bool {
        let mut req = Request::new(RequestBody::empty());
        *req.uri_mut() = http::Uri::from(check.path.clone());
        let host = match &self.origin.host {
            HostHeader::Fixed(v) => Some(v.clone()),
            HostHeader::Origin | HostHeader::Preserve => {
                http::HeaderValue::from_str(server.config.authority.as_str()).ok()
            }
        };
        if let Some(host) = host {
            req.headers_mut().insert(HOST, host);
        }
        self.address(&mut req, server);
        if self.origin.http2 {
            *req.version_mut() = http::Version::HTTP_2;
        }
        let answer = tokio::time::timeout(check.timeout, self.client.request(req)).await;
        match answer {
            Ok(Ok(resp)) => {
                let ok = resp.status().is_success() || resp.status().is_redirection();
                if !ok {
                    tracing::debug!(server = %server.name, status = %resp.status(), "health check failed");
                }
                ok
            }
            Ok(Err(e)) => {
                tracing::debug!(server = %server.name, error = %e, "health check failed");
                false
            }
            Err(_) => {
                tracing::debug!(server = %server.name, "health check timed out");
                false
            }
        }
    }
}
