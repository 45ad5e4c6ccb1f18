//! An axum app behind lifeboat's shedding, without the proxy: the app's
//! downloads are its primary path; when it slows, or when the operator
//! clears the boards, everything else gets lifeboat's apology at once
//! while the downloads keep their slots.
//!
//! ```sh
//! cargo run --example shed_axum             # serves on 127.0.0.1:3000
//! cargo run --example shed_axum -- --check  # serves, tries itself, exits (CI)
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// lifeboat's own config format: the routes, the shedding, the apology.
/// `[origin]` sizes the limit in front of the app (learned by default);
/// its `url` only names the app in logs.
const CONFIG: &str = r#"
[origin]
url = "http://axum-app.internal"

[[route]]
name = "downloads"
match = "/download/*"
class = "primary"

[apology]
signed = "The example team"
"#;

async fn release_page() -> &'static str {
    tokio::time::sleep(Duration::from_millis(5)).await;
    "Example OS 3.0 is out.\n"
}

async fn download() -> &'static str {
    "pretend this is an ISO\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let config = lifeboat::config::from_str(CONFIG, "shed_axum.toml", std::path::Path::new("."))?;
    let shed = lifeboat::ShedLayer::new(config);
    let app = Router::new()
        .route("/", get(release_page))
        .route("/download/{file}", get(download))
        .layer(shed.clone());
    let addr: SocketAddr = if check {
        "127.0.0.1:0".parse()?
    } else {
        "127.0.0.1:3000".parse()?
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("axum behind lifeboat's shedding on http://{addr}");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if !check {
        server.await??;
        return Ok(());
    }

    // The check: normal, then the boards cleared by hand, then back.
    let get = |path: &'static str| async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let resp = client.get(format!("http://{addr}{path}").parse()?).await?;
        let status = resp.status().as_u16();
        let shed = resp.headers().get("x-lifeboat-shed").cloned();
        let retry = resp.headers().contains_key("retry-after");
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error>>((status, shed, retry, body))
    };
    let (status, ..) = get("/").await?;
    assert_eq!(status, 200, "the page in normal mode");
    lifeboat::control::set_override(
        &shed.shared(),
        Some(lifeboat::runtime::Override {
            mode: lifeboat::admission::Mode::Degraded,
            until: Some(tokio::time::Instant::now() + Duration::from_secs(60)),
            reason: "the example's check".into(),
        }),
        Some("1m".into()),
    );
    let (status, shed_reason, retry, body) = get("/").await?;
    assert_eq!(status, 503, "the page while the boards are cleared");
    assert_eq!(
        shed_reason.as_ref().map(|v| v.as_bytes()),
        Some(&b"degraded"[..])
    );
    assert!(retry, "an apology says when to come back");
    assert!(String::from_utf8_lossy(&body).contains("The example team"));
    let (status, _, _, body) = get("/download/os.iso").await?;
    assert_eq!(status, 200, "downloads keep working");
    assert_eq!(&body[..], b"pretend this is an ISO\n");
    lifeboat::control::set_override(&shed.shared(), None, None);
    let (status, ..) = get("/").await?;
    assert_eq!(status, 200, "the page once back to auto");
    println!(
        "check passed: transparent, then the apology for the page and the download served, then back"
    );
    server.abort();
    Ok(())
}
