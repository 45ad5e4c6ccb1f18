//! The floor under lifeboat's data path: the leanest reverse proxy hyper
//! allows, with none of lifeboat (no admission, no header rewriting, no
//! body wrappers, no timeouts, no logs). `benches/compare/run.sh` measures
//! it beside HAProxy and nginx (`FLOOR=1` or `FLOOR_ONLY=1`) to tell how
//! fast a proxy that keeps hyper can be on that setup, before anyone
//! rewrites lifeboat's path to reach HAProxy's rate (issue #15).
//!
//! ```sh
//! hyper_floor conn 127.0.0.1:18010 127.0.0.1:18000
//! hyper_floor pool 127.0.0.1:18011 127.0.0.1:18000
//! ```
//!
//! - `conn`: one origin connection per client connection
//!   (`hyper::client::conn::http1`), made again for the next request when
//!   it dies; the request goes as it came (origin-form URI, Host kept).
//! - `pool`: hyper-util's legacy `Client` with its keep-alive pool, the
//!   client lifeboat uses; the request's URI is made absolute for it.
//!
//! Bodies pass through as hyper's `Incoming`, both ways. A request that
//! cannot reach the origin closes its client connection (hyper's answer to
//! a service error) instead of getting a 502: this measures, it does not
//! serve anyone.

use std::error::Error;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::http::uri::{Authority, Scheme};
use hyper::service::{Service, service_fn};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str = "usage: hyper_floor conn|pool LISTEN ORIGIN (addresses as host:port)";

/// How long to wait after a failed `accept` (out of descriptors, say)
/// before the next: long enough not to spin, short beside a wrk run.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// `conn` mode: one client connection's own origin connection, made on its
/// first request and again after it dies. hyper's HTTP/1 server calls the
/// service for one request at a time, so the lock is never contended; the
/// sender is out of the slot only while it waits to be ready.
#[derive(Clone)]
struct Dedicated {
    origin: Arc<str>,
    sender: Arc<Mutex<Option<SendRequest<Incoming>>>>,
}

impl Dedicated {
    fn slot(&self) -> MutexGuard<'_, Option<SendRequest<Incoming>>> {
        self.sender.lock().expect("lock poisoned: a panic held it")
    }

    async fn forward(self, req: Request<Incoming>) -> Result<Response<Incoming>, BoxError> {
        let kept = self.slot().take();
        let ready = match kept {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match ready {
            Some(sender) => sender,
            None => connect(&self.origin).await?,
        };
        let response = sender.send_request(req);
        *self.slot() = Some(sender);
        Ok(response.await?)
    }
}

/// A new HTTP/1 connection to the origin, its connection future driven by
/// a task of its own.
async fn connect(origin: &str) -> Result<SendRequest<Incoming>, BoxError> {
    let stream = TcpStream::connect(origin).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// `pool` mode: the request through hyper-util's pooled client, its URI
/// made absolute (`http://ORIGIN/path`) as that client requires.
fn pooled(
    client: &Client<HttpConnector, Incoming>,
    origin: &Authority,
    mut req: Request<Incoming>,
) -> impl Future<Output = Result<Response<Incoming>, BoxError>> + use<> {
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(origin.clone());
    let sent = Uri::from_parts(parts).map(|uri| {
        *req.uri_mut() = uri;
        client.request(req)
    });
    async move { Ok(sent?.await?) }
}

/// Accepts client connections for ever, each served by hyper's HTTP/1
/// server (keep-alive on, its defaults) with the service `make` gives it.
async fn serve<S>(listener: TcpListener, make: impl Fn() -> S) -> Result<(), BoxError>
where
    S: Service<Request<Incoming>, Response = Response<Incoming>, Error = BoxError>,
    S: Send + 'static,
    S::Future: Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        stream.set_nodelay(true)?;
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), make());
        tokio::spawn(async move {
            // A closed or failed connection is simply over: nothing logs.
            let _ = conn.await;
        });
    }
}

/// The single-threaded scheduler on one CPU (pinned by `taskset`), as
/// lifeboat chooses it; one worker per CPU otherwise.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(listen), Some(origin), None) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        return Err(USAGE.into());
    };
    let pooling = match mode.as_str() {
        "conn" => false,
        "pool" => true,
        _ => return Err(USAGE.into()),
    };
    runtime()?.block_on(async {
        let listener = TcpListener::bind(&listen).await?;
        if pooling {
            let authority: Authority = origin.parse()?;
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client = Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(connector);
            serve(listener, || {
                let (client, authority) = (client.clone(), authority.clone());
                service_fn(move |req| pooled(&client, &authority, req))
            })
            .await
        } else {
            let origin: Arc<str> = origin.into();
            serve(listener, || {
                let dedicated = Dedicated {
                    origin: origin.clone(),
                    sender: Arc::default(),
                };
                service_fn(move |req| dedicated.clone().forward(req))
            })
            .await
        }
    })
}
