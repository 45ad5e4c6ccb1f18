//! The proxy's tasks over its origin servers: the active health check and
//! the name lookups. (What a check or a lookup does is `upstream`'s.)

use std::sync::Arc;

use crate::runtime::Shared;
use crate::upstream::Server;
use crate::upstream::resolve::{host_name, lookup};

/// Checks the servers until the process ends; idle while no check is
/// configured.
pub async fn health(shared: Arc<Shared>) {
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

/// Looks every named server up every `resolve_every`, until the process
/// ends.
pub async fn resolve(shared: Arc<Shared>) {
    loop {
        let rt = shared.runtime();
        let every = rt.config.origin.resolve_every;
        let named: Vec<Arc<Server>> = rt
            .upstream
            .pool
            .servers()
            .iter()
            .filter(|s| host_name(&s.config).is_some())
            .cloned()
            .collect();
        drop(rt);
        let mut changed = false;
        for server in &named {
            let Some(host) = host_name(&server.config) else {
                continue;
            };
            match lookup(host).await {
                Ok(found) => {
                    let first = server.addresses.list().is_empty();
                    if server.addresses.update(found) && !first {
                        tracing::warn!(server = %server.name, addresses = ?server.addresses.list(), "origin server's addresses changed");
                        changed = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(server = %server.name, error = %e, "origin server name did not resolve; keeping its last addresses");
                }
            }
        }
        if changed {
            shared.renew_pool();
        }
        tokio::time::sleep(every).await;
    }
}
