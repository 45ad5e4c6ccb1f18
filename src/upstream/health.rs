//! The active health check: every `interval`, a `GET` of the configured
//! path to every server of the current config version, answered 2xx or
//! 3xx within `timeout` or failed. `unhealthy` failures in a row take a
//! server out of rotation (never the last one); `healthy` passes in a row
//! bring an ejected one back once its backoff is over.
//!
//! One task for the process (`control::origins`); the checks of one round run concurrently, so
//! a server that hangs delays no other's check.

use http::{Request, header::HOST};

use crate::body::RequestBody;
use crate::config::HostHeader;

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
