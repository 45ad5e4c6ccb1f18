//! `lifeboat::ShedLayer` around a plain tower service, driven with
//! `oneshot` and no socket: the same classification, mode, limit and
//! apology as the proxy, for anyone's service.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use tower::{Layer, ServiceExt};

fn layer(extra: &str) -> lifeboat::ShedLayer {
    let text = format!(
        "[origin]\nurl = \"http://app.internal\"\n{extra}\n\
         [[route]]\nname = \"downloads\"\nmatch = \"/download/*\"\nclass = \"primary\"\n"
    );
    let config = ::lifeboat::config::from_str(&text, "layer.toml", std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    lifeboat::ShedLayer::new(config)
}

/// A service that answers `hello` after `delay`, counting calls and the
/// most it was ever asked at once.
#[derive(Clone, Default)]
struct App {
    calls: Arc<AtomicUsize>,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    delay_ms: u64,
}

type AppService =
    tower::util::BoxCloneService<Request<Empty<Bytes>>, Response<Full<Bytes>>, Infallible>;

impl App {
    fn service(&self) -> AppService {
        let app = self.clone();
        AppService::new(tower::service_fn(move |_req: Request<Empty<Bytes>>| {
            let app = app.clone();
            async move {
                app.calls.fetch_add(1, Ordering::SeqCst);
                let now = app.now.fetch_add(1, Ordering::SeqCst) + 1;
                app.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(app.delay_ms)).await;
                app.now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
            }
        }))
    }
}

/// A GET for `path` with a body-less `Empty` (also `pipeline::`'s).
pub(crate) fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "example.org")
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn normal_mode_is_transparent() {
    let app = App::default();
    let svc = layer("").layer(app.service());
    let resp = svc.oneshot(get("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cleared_boards_keep_the_downloads_and_apologise_to_the_rest() {
    let app = App::default();
    let shed = layer("[shedding]\nmode = \"degraded\"\n");
    let svc = shed.layer(app.service());
    let ok = svc.clone().oneshot(get("/download/os.iso")).await.unwrap();
    assert_eq!(ok.status(), 200);
    let sorry = svc.clone().oneshot(get("/news")).await.unwrap();
    assert_eq!(sorry.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sorry.headers()["x-lifeboat-shed"], "degraded");
    assert!(sorry.headers().contains_key("retry-after"));
    let page = sorry.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&page).contains("<html"),
        "not the apology page"
    );
    // The shed request never reached the service.
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);
    // The tallies the status page and dashboard read count both.
    let tally = shed.shared().admission.tally.snapshot();
    assert_eq!(tally.requests.iter().sum::<u64>(), 2);
    assert_eq!(tally.shed.iter().sum::<u64>(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_the_service_and_a_slot_is_kept_until_the_body_ends() {
    let app = App {
        delay_ms: 50,
        ..App::default()
    };
    let shed = layer("max_inflight = 3\nqueue_timeout = \"5s\"\n");
    let svc = shed.layer(app.service());
    // Twelve at once: never more than three inside the service, all served.
    let all: Vec<_> = (0..12)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let resp = svc.oneshot(get(&format!("/page/{i}"))).await.unwrap();
                let status = resp.status();
                resp.into_body().collect().await.unwrap();
                status
            })
        })
        .collect();
    for r in all {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(app.calls.load(Ordering::SeqCst), 12);
    assert!(
        app.most.load(Ordering::SeqCst) <= 3,
        "{}",
        app.most.load(Ordering::SeqCst)
    );
    // A response whose body is not read yet still holds its slot.
    let origin = &shed.shared().admission.origin;
    let resp = svc.clone().oneshot(get("/page/held")).await.unwrap();
    assert_eq!(origin.inflight(), 1);
    resp.into_body().collect().await.unwrap();
    assert_eq!(origin.inflight(), 0);
}

#[tokio::test]
async fn the_limit_is_learned_by_default() {
    let shed = layer("");
    let c = shed.shared().admission.capacity();
    assert!(c.learned);
    assert_eq!(c.limit, 16);
}
