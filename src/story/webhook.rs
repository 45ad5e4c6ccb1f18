//! Webhooks: a JSON POST of every mode change and override to each
//! configured URL. Each target has its own bounded queue and task, with a
//! timeout per attempt and retries with exponential backoff; a dead or slow
//! target delays nothing but its own deliveries, and a full queue drops (and
//! counts) rather than grows.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use super::{Event, Record};

/// Deliveries waiting per target, at most.
const QUEUE: usize = 64;
/// First retry after 500 ms, doubling.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

pub use crate::config::webhook::{Target, redacted};

/// The running webhook senders.
#[derive(Default)]
pub struct Webhooks {
    queues: Vec<mpsc::Sender<Bytes>>,
}

impl Webhooks {
    /// Starts one sender task per target.
    pub fn start(targets: &[Target]) -> Self {
        let queues = targets
            .iter()
            .map(|t| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver(client(t), t.clone(), rx));
                tx
            })
            .collect();
        Webhooks { queues }
    }

    /// Queues `record` for every target if it is a mode change or override.
    pub fn offer(&self, record: &Record) {
        let relevant = matches!(
            record.event,
            Event::ModeChanged { .. } | Event::OverrideSet { .. } | Event::OverrideExpired { .. }
        );
        if !relevant || self.queues.is_empty() {
            return;
        }
        let Ok(body) = serde_json::to_vec(record) else {
            return;
        };
        let body = Bytes::from(body);
        for q in &self.queues {
            if q.try_send(body.clone()).is_err() {
                metrics::counter!("lifeboat_webhook_dropped_total").increment(1);
            }
        }
    }
}

type WebhookClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for `target`: TLS (h2 or HTTP/1.1 by ALPN) with its roots
/// when it is https://.
fn client(target: &Target) -> WebhookClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let config = target
        .tls
        .as_deref()
        .cloned()
        .unwrap_or_else(crate::tls::unused_client_config);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn deliver(client: WebhookClient, target: Target, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(body) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 0..=target.retries {
            let req = Request::post(target.url.clone())
                .header("content-type", "application/json")
                .header(
                    "user-agent",
                    concat!("lifeboat/", env!("CARGO_PKG_VERSION")),
                )
                .body(Full::new(body.clone()));
            let Ok(req) = req else { break };
            let outcome = tokio::time::timeout(target.timeout, client.request(req)).await;
            match outcome {
                Ok(Ok(resp)) if resp.status().is_success() => {
                    metrics::counter!("lifeboat_webhook_deliveries_total", "result" => "ok")
                        .increment(1);
                    break;
                }
                other => {
                    let why = match other {
                        Ok(Ok(resp)) => format!("status {}", resp.status()),
                        Ok(Err(e)) => crate::upstream::chain(&e),
                        Err(_) => format!("no answer within {:?}", target.timeout),
                    };
                    metrics::counter!("lifeboat_webhook_deliveries_total", "result" => "error")
                        .increment(1);
                    if attempt == target.retries {
                        tracing::warn!(url = %target.url, attempts = attempt + 1, error = %why, "webhook delivery failed; giving up on this event");
                    } else {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        }
    }
}
