//! The settings that take effect only when lifeboat starts, as one part.
//!
//! Everything else in a [`Config`] is read per request or per tick and
//! changes with a reload. These are not: they size sockets, semaphores,
//! threads and tasks that exist from start to stop. A reload compares this
//! part as a whole and names every setting in it that changed (in the log
//! and in `POST /reload`'s answer), rather than a hand-kept list that
//! forgets some: a setting added here is compared without more code.

use serde::Serialize;

use super::Config;

/// What only a restart applies, named by the keys an operator writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Startup {
    /// Sockets bound at start.
    #[serde(rename = "listen.http")]
    listen_http: Option<String>,
    #[serde(rename = "listen.https")]
    listen_https: Option<String>,
    #[serde(rename = "listen.backlog")]
    listen_backlog: u32,
    /// The TLS handshake semaphore.
    #[serde(rename = "listen.tls.max_handshakes")]
    max_handshakes: Option<usize>,
    /// The connection semaphore and the raised file-descriptor limit.
    #[serde(rename = "limits.max_connections")]
    max_connections: usize,
    #[serde(rename = "admin.listen")]
    admin_listen: Option<String>,
    /// The tracing subscriber is installed once.
    #[serde(rename = "log.level")]
    log_level: String,
    /// The log and the access log's line format.
    #[serde(rename = "log.format")]
    log_format: String,
    /// The signal windows are sized at start.
    #[serde(rename = "shedding.window")]
    window_secs: usize,
    /// The journal writer task holds its path.
    #[serde(rename = "journal.path")]
    journal: Option<String>,
    /// The webhook queues and their targets.
    #[serde(rename = "webhook")]
    webhooks: Vec<String>,
    /// The fleet's link to Redis and this instance's id.
    #[serde(rename = "fleet")]
    fleet: Option<String>,
}

impl Startup {
    /// The start-only part of `config`.
    pub fn of(config: &Config) -> Self {
        let https = config.listen.https.as_ref();
        Startup {
            listen_http: config.listen.http.map(|a| a.to_string()),
            listen_https: https.map(|(a, _)| a.to_string()),
            listen_backlog: config.listen.backlog,
            max_handshakes: https.map(|(_, tls)| tls.max_handshakes),
            max_connections: config.limits.max_connections,
            admin_listen: config.admin.listen.map(|a| a.to_string()),
            log_level: config.log.level.clone(),
            log_format: format!("{:?}", config.log.format),
            window_secs: config.shedding.window_secs,
            journal: config
                .story
                .journal
                .as_ref()
                .map(|p| p.display().to_string()),
            webhooks: config
                .story
                .webhooks
                .iter()
                .map(|t| format!("{} {:?} {}", t.url, t.timeout, t.retries))
                .collect(),
            // Compared whole, password included; only the key's name is
            // ever shown.
            fleet: config.fleet.as_ref().map(|f| {
                format!(
                    "{} {} {} {:?} {:?}",
                    f.redis, f.instance, f.prefix, f.heartbeat, f.max_inflight
                )
            }),
        }
    }

    /// The settings that differ between `self` (running) and `new`, by
    /// name, alphabetically.
    pub fn changed(&self, new: &Startup) -> Vec<String> {
        if self == new {
            return Vec::new();
        }
        let (old, new) = (fields(self), fields(new));
        old.iter()
            .zip(new.iter())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0.clone())
            .collect()
    }
}

/// Each field's name and value, by name.
fn fields(s: &Startup) -> Vec<(String, serde_json::Value)> {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => Vec::new(),
    }
}
