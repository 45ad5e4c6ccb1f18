//! The config file as written: serde structs that mirror the TOML exactly,
//! with every field optional so that defaults live in one place
//! (`validate.rs`). Unknown keys are errors. Values that validation must
//! point at keep their span (`Spanned`).

use serde::Deserialize;
use toml::Spanned;

use super::units::{ByteSize, Cidr, Duration, LimitSetting};

type S<T> = Option<Spanned<T>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<Spanned<RawListen>>,
    pub origin: Option<Spanned<RawOrigin>>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub buffering: RawBuffering,
    #[serde(default)]
    pub proxy: RawProxy,
    #[serde(default)]
    pub shutdown: RawShutdown,
    #[serde(default)]
    pub log: RawLog,
    pub shedding: Option<Spanned<RawShedding>>,
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub apology: RawApology,
    pub admin: Option<Spanned<RawAdmin>>,
    #[serde(default)]
    pub status: RawStatus,
    #[serde(default)]
    pub journal: RawJournal,
    #[serde(default)]
    pub reload: RawReload,
    #[serde(default)]
    pub webhook: Vec<Spanned<RawWebhook>>,
    pub fleet: Option<Spanned<RawFleet>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub redis: S<String>,
    pub instance: S<String>,
    pub prefix: S<String>,
    pub heartbeat: S<Duration>,
    pub max_inflight: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub http: S<String>,
    pub backlog: S<i64>,
    pub https: S<String>,
    pub tls: Option<Spanned<RawTls>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: S<String>,
    pub key: S<String>,
    pub handshake_timeout: S<Duration>,
    pub max_handshakes: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    pub url: S<String>,
    pub servers: Option<Spanned<Vec<Spanned<RawServer>>>>,
    pub eject_after: S<i64>,
    pub eject_for: S<Duration>,
    pub eject_max: S<Duration>,
    pub health: Option<Spanned<RawHealth>>,
    pub ca_file: S<String>,
    pub resolve_every: S<Duration>,
    pub client_cert: S<String>,
    pub client_key: S<String>,
    pub connect_timeout: S<Duration>,
    pub ttfb_timeout: S<Duration>,
    pub pool_idle_timeout: S<Duration>,
    pub pool_max_idle: S<i64>,
    pub http2: Option<bool>,
    pub host: S<String>,
    pub max_inflight: S<LimitSetting>,
    pub learn_min: S<i64>,
    pub learn_max: S<i64>,
    pub learn_initial: S<i64>,
    pub primary_reserved: S<i64>,
    pub queue_max: S<i64>,
    pub queue_timeout: S<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub url: S<String>,
    pub weight: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub path: S<String>,
    pub interval: S<Duration>,
    pub timeout: S<Duration>,
    pub healthy_threshold: S<i64>,
    pub unhealthy_threshold: S<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_connections: S<i64>,
    pub header_read_timeout: S<Duration>,
    pub keepalive_timeout: S<Duration>,
    pub body_idle_timeout: S<Duration>,
    pub max_header_size: S<ByteSize>,
    pub max_headers: S<i64>,
    pub h2_max_concurrent_streams: S<i64>,
    pub body_min_rate: S<ByteSize>,
    pub body_rate_grace: S<Duration>,
    pub tunnel_idle_timeout: S<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuffering {
    pub enabled: S<bool>,
    pub memory: S<ByteSize>,
    pub max_file: S<ByteSize>,
    pub max_total: S<ByteSize>,
    pub path: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub trusted_proxies: Option<Vec<Cidr>>,
    pub via: S<String>,
    pub upgrades: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub drain_timeout: S<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: S<String>,
    pub format: S<String>,
    pub access: Option<bool>,
    pub access_path: S<String>,
    pub shed_sample: S<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShedding {
    pub mode: S<String>,
    pub tick: S<Duration>,
    pub window: S<Duration>,
    pub min_samples: S<i64>,
    pub min_dwell: S<Duration>,
    pub primary_max_inflight: S<i64>,
    pub fill_wait: S<Duration>,
    pub client_budget: S<i64>,
    pub dry_run: Option<bool>,
    pub enter: Option<Spanned<RawEnter>>,
    pub exit: Option<Spanned<RawExit>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnter {
    pub inflight: S<i64>,
    pub ttfb_p95: S<Duration>,
    pub failure_rate: S<f64>,
    pub queue_wait_p95: S<Duration>,
    pub after: S<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExit {
    pub fraction: S<f64>,
    pub after: S<Duration>,
    pub ramp: S<Duration>,
    pub ramp_start: S<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: S<String>,
    #[serde(rename = "match")]
    pub pattern: S<String>,
    pub prefix: S<String>,
    pub methods: Option<Vec<Spanned<String>>>,
    pub host: S<String>,
    pub class: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApology {
    pub template: S<String>,
    pub title: S<String>,
    pub message: S<String>,
    pub signed: S<String>,
    pub retry_after: S<Duration>,
    pub retry_jitter: S<Duration>,
    pub status_url: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: S<String>,
    pub token_file: S<String>,
    pub token_env: S<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    pub path: S<String>,
    pub summary_for: S<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    pub path: S<String>,
    pub counters_every: S<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    pub watch: Option<bool>,
    pub debounce: S<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: S<String>,
    pub ca_file: S<String>,
    pub timeout: S<Duration>,
    pub retries: S<i64>,
}
