//! Servers given by host name (a headless Kubernetes Service, a cloud load
//! balancer whose addresses change): their addresses are looked up again
//! every `resolve_every`, and the set follows.
//!
//! - [`Addresses`]: a server's current set, kept with the server (so across
//!   reloads). A lookup that fails or finds nothing keeps the last set: a
//!   DNS hiccup never empties a server;
//! - [`Resolver`]: what the connection pool asks for a name: the server's
//!   current set, rotated by one at each new connection so connections
//!   spread over the addresses (the pool then tries them in that order, so
//!   a dead address costs one refused connect, not a failed request);
//! - `control::origins`: the task that looks the names up; when a set changes it has
//!   the pool built anew, so no keep-alive connection stays on an address
//!   that left (requests in flight finish on the old pool).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

use super::Server;

/// A server's addresses as last looked up.
#[derive(Default)]
pub struct Addresses {
    set: Mutex<Vec<SocketAddr>>,
    next: AtomicUsize,
    /// Lookups done since start.
    pub lookups: AtomicU64,
}

impl Addresses {
    /// The current set, sorted.
    pub fn list(&self) -> Vec<SocketAddr> {
        self.set.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The set, starting one further each call (`None`: never resolved).
    fn rotated(&self) -> Option<Vec<SocketAddr>> {
        let mut set = self.list();
        if set.is_empty() {
            return None;
        }
        let by = self.next.fetch_add(1, Relaxed) % set.len();
        set.rotate_left(by);
        Some(set)
    }

    /// Records a lookup's answer; true when the set changed. An empty
    /// answer changes nothing.
    pub fn update(&self, mut found: Vec<SocketAddr>) -> bool {
        self.lookups.fetch_add(1, Relaxed);
        found.sort();
        found.dedup();
        if found.is_empty() {
            return false;
        }
        let Ok(mut set) = self.set.lock() else {
            return false;
        };
        if *set == found {
            return false;
        }
        *set = found;
        true
    }
}

/// The host of `server` when it is a name, not an address literal.
pub fn host_name(server: &crate::config::Server) -> Option<&str> {
    let host = server.authority.host();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    literal.parse::<IpAddr>().is_err().then_some(host)
}

/// Looks `host` up (port 0: the pool sets the URL's).
pub async fn lookup(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host, 0)).await?.collect())
}

/// The connection pool's resolver: the servers' current sets.
#[derive(Clone)]
pub struct Resolver {
    servers: Arc<Vec<Arc<Server>>>,
}

impl Resolver {
    /// A resolver for `servers`' names.
    pub fn new(servers: &[Arc<Server>]) -> Self {
        Resolver {
            servers: Arc::new(servers.to_vec()),
        }
    }
}

type Lookup = Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Lookup;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let server = self
            .servers
            .iter()
            .find(|s| host_name(&s.config) == Some(name.as_str()))
            .cloned();
        if let Some(set) = server.as_ref().and_then(|s| s.addresses.rotated()) {
            return Box::pin(std::future::ready(Ok(set.into_iter())));
        }
        // Not looked up yet (the first connection): now, and kept.
        Box::pin(async move {
            let found = lookup(name.as_str()).await?;
            if let Some(server) = server {
                server.addresses.update(found.clone());
            }
            Ok(found.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    #[test]
    fn a_set_changes_only_when_its_members_do() {
        let a = Addresses::default();
        assert!(a.update(vec![addr("10.0.0.2:0"), addr("10.0.0.1:0")]));
        assert!(
            !a.update(vec![addr("10.0.0.1:0"), addr("10.0.0.2:0")]),
            "same set"
        );
        assert!(!a.update(Vec::new()), "an empty answer keeps the set");
        assert_eq!(a.list().len(), 2);
        assert!(a.update(vec![addr("10.0.0.3:0")]));
        assert_eq!(a.list(), vec![addr("10.0.0.3:0")]);
        assert_eq!(a.lookups.load(Relaxed), 4);
    }

    #[test]
    fn new_connections_go_round_the_set() {
        let a = Addresses::default();
        assert!(a.rotated().is_none());
        a.update(vec![
            addr("10.0.0.1:0"),
            addr("10.0.0.2:0"),
            addr("10.0.0.3:0"),
        ]);
        let firsts: Vec<_> = (0..3)
            .filter_map(|_| a.rotated()?.first().copied())
            .collect();
        assert_eq!(
            firsts,
            vec![addr("10.0.0.1:0"), addr("10.0.0.2:0"), addr("10.0.0.3:0")]
        );
    }

    #[test]
    fn only_names_are_looked_up() {
        let server = |url: &str| {
            let uri: http::Uri = url.parse().unwrap_or_default();
            crate::config::Server {
                scheme: http::uri::Scheme::HTTP,
                authority: uri
                    .authority()
                    .cloned()
                    .unwrap_or_else(|| http::uri::Authority::from_static("x")),
                weight: 1,
            }
        };
        assert_eq!(
            host_name(&server("http://app.internal:80")),
            Some("app.internal")
        );
        assert_eq!(host_name(&server("http://10.0.0.1:80")), None);
        assert_eq!(host_name(&server("http://[::1]:80")), None);
    }
}
