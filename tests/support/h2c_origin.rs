//! An origin that speaks h2c by upgrade (RFC 7540 §3.2), as Hypercorn and
//! other ASGI servers do: to an HTTP/1.1 request carrying `Upgrade: h2c`
//! and `Connection: Upgrade` it answers `101 Switching Protocols` and serves
//! HTTP/2 on the same connection (hyper's h2 server on the upgraded io).
//! Every request it receives, over either protocol, is recorded, so a test
//! can tell which requests reached it through a tunnel.
//!
//! | path | behaviour |
//! |---|---|
//! | any, with `Upgrade: h2c` | `101`, then HTTP/2 on the connection |
//! | `/lie`, with `Sec-WebSocket-Key` | `101` with `Upgrade: h2c`: a switch to another protocol than the one asked |
//! | anything else | `200`, `plain <path>` (`secret <path>` over HTTP/2) |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP/1.1, or HTTP/2 inside an upgraded connection.
    pub version: Version,
    /// The request path.
    pub path: String,
    /// Its header fields.
    pub headers: HeaderMap,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A running h2c-upgrade origin; stops when dropped.
pub struct H2cOrigin {
    /// Its address.
    pub addr: SocketAddr,
    seen: Log,
    task: JoinHandle<()>,
}

impl Drop for H2cOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2cOrigin {
    /// Starts it on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let seen = Log::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| http1(log.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        H2cOrigin { addr, seen, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }

    /// The paths received so far, as `HTTP/1.1 /x` or `HTTP/2.0 /y`.
    pub fn paths(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| format!("{:?} {}", s.version, s.path))
            .collect()
    }
}

fn record<B>(log: &Log, req: &Request<B>) {
    if let Ok(mut l) = log.lock() {
        l.push(Seen {
            version: req.version(),
            path: req.uri().path().to_string(),
            headers: req.headers().clone(),
        });
    }
}

fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

async fn http1(log: Log, mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    record(&log, &req);
    let h = req.headers();
    let h2c = has_token(h, "upgrade", "h2c") && has_token(h, "connection", "upgrade");
    let lie = req.uri().path() == "/lie" && h.contains_key("sec-websocket-key");
    if !(h2c || lie) {
        let body = format!("plain {}", req.uri().path());
        return Ok(Response::new(Full::new(Bytes::from(body))));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            record(&log, &req);
            let body = format!("secret {}", req.uri().path());
            async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(upgraded, svc)
            .await;
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert("connection", HeaderValue::from_static("Upgrade"));
    resp.headers_mut()
        .insert("upgrade", HeaderValue::from_static("h2c"));
    Ok(resp)
}

/// As an h2c client: sends `GET path` with `Upgrade: h2c` over HTTP/1.1 to
/// `addr`; if the answer is `101`, speaks HTTP/2 on the connection and asks
/// for each of `inside`. Returns the first answer's status and the bodies
/// of the requests made inside the tunnel (empty when there was none).
pub async fn h2c_client(
    addr: SocketAddr,
    path: &str,
    inside: &[&str],
) -> (StatusCode, Vec<String>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http1 handshake");
    tokio::spawn(conn.with_upgrades());
    let req = Request::get(path)
        .header("host", "www.example.org")
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("first answer");
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return (status, Vec::new());
    }
    let upgraded = hyper::upgrade::on(resp).await.expect("upgraded");
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), upgraded)
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let mut bodies = Vec::new();
    for p in inside {
        let req = Request::get(format!("http://www.example.org{p}"))
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        let Ok(resp) = h2.send_request(req).await else {
            break;
        };
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        bodies.push(body);
    }
    (status, bodies)
}
