//! The proxy's own stack (`lifeboat::stack`), driven with `oneshot` and no
//! socket on the client's side, any body type, a real origin behind it:
//! what the socket tests show through hyper, shown layer by layer.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use lifeboat::runtime::Shared;
use lifeboat::stack::{self, Arrival, Ctx};
use tower::ServiceExt;

use crate::layer::get;
use crate::support::origin::TestOrigin;

/// The stack for one (imaginary) connection from `PEER`, and the tasks
/// that keep the mode and the limit current (aborted when dropped).
struct Rig {
    ctx: Arc<Ctx>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

const PEER: &str = "192.0.2.7:40000";

fn rig(origin: &TestOrigin, extra: &str) -> Rig {
    let text = format!(
        "[origin]\nurl = \"{}\"\n\n[log]\naccess = false\n{extra}\n\
         [[route]]\nname = \"downloads\"\nmatch = \"/file/*\"\nclass = \"primary\"\n",
        origin.url()
    );
    let config = lifeboat::config::from_str(&text, "pipeline.toml", std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let log = config.log.clone();
    let shared = Shared::new(config, None);
    let tasks = lifeboat::control::spawn_tasks(&shared);
    let access = lifeboat::access_log::AccessLog::start(&log, || None).unwrap();
    let peer: SocketAddr = PEER.parse().unwrap();
    Rig {
        ctx: stack::detached(shared, peer, access),
        tasks,
    }
}

impl Rig {
    async fn send<B>(&self, req: Request<B>) -> (StatusCode, http::HeaderMap, Bytes)
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let arrival = Arrival::detached(req, &self.ctx);
        let resp = stack::stack(self.ctx.clone())
            .oneshot(arrival)
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, body)
    }
}

#[tokio::test]
async fn any_body_goes_through_the_stack_to_the_origin_and_back() {
    let origin = TestOrigin::start().await;
    let rig = rig(&origin, "");

    // A body of another type than hyper's: streamed to the origin and back.
    let post = Request::post("/echo/body")
        .header("host", "example.org")
        .body(Full::new(Bytes::from_static(b"through every layer")))
        .unwrap();
    let (status, _, body) = rig.send(post).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"through every layer");

    // The forward layer's rewrite: the peer the connection context names.
    let (status, headers, body) = rig.send(get("/echo/headers")).await;
    assert_eq!(status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["headers"]["x-forwarded-for"][0], "192.0.2.7");
    assert!(headers.contains_key("via"), "{headers:?}");
    assert_eq!(origin.requests(), 2);
}

#[tokio::test]
async fn the_layers_above_the_origin_answer_for_it() {
    let origin = TestOrigin::start().await;
    let rig = rig(&origin, "[shedding]\nmode = \"degraded\"\n");

    // classify: a CONNECT is refused before anything counts it.
    let connect = Request::connect("example.org:443")
        .header("host", "example.org:443")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (status, headers, _) = rig.send(connect).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(headers["connection"], "close");

    // classify: the status endpoint answers from memory.
    let (status, headers, body) = rig.send(get("/.well-known/lifeboat/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.starts_with(b"{"), "{body:?}");

    // admit + rescue: degraded, the rest gets the apology at once...
    let (status, headers, body) = rig.send(get("/echo/headers")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert_eq!(headers["x-lifeboat-shed"], "degraded");
    assert!(!body.is_empty());
    assert_eq!(
        origin.requests(),
        0,
        "a shed request never reaches the origin"
    );

    // ... and the downloads are still proxied.
    let (status, _, body) = rig.send(get("/file/1024")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 1024);
    assert_eq!(origin.requests(), 1);

    // rescue: an origin that cannot answer is the apology too.
    let dead = TestOrigin::start().await;
    let rig = self::rig(&dead, "");
    dead.kill().await;
    let (status, headers, _) = rig.send(get("/echo/headers")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-lifeboat-shed"], "origin-down");
}
