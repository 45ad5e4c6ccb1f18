//! Bodies stream both ways and the HTTP semantics that ride on them pass
//! through: Range, HEAD, conditional requests, chunked uploads, trailers.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use crate::support::origin::pattern_byte;
use crate::support::{TestOrigin, client, lifeboat};

fn expected_sha(start: u64, len: u64) -> Vec<u8> {
    let mut h = Sha256::new();
    let mut pos = start;
    while pos < start + len {
        let n = (start + len - pos).min(1 << 16);
        let chunk: Vec<u8> = (pos..pos + n).map(pattern_byte).collect();
        h.update(&chunk);
        pos += n;
    }
    h.finalize().to_vec()
}

#[tokio::test]
async fn download_arrives_intact() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let size = 32 << 20;
    let resp = client()
        .get(lb.url(&format!("/bytes/{size}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], size.to_string().as_str());
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        total += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(total, size);
    assert_eq!(hasher.finalize().to_vec(), expected_sha(0, size));
}

#[tokio::test]
async fn first_bytes_arrive_before_origin_finishes() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let mut resp = client().get(lb.url("/gated")).send().await.unwrap();
    // The origin is holding back the rest of the body until released: the
    // first chunk must already be through.
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), resp.chunk())
        .await
        .expect("first chunk in time");
    assert_eq!(
        first.unwrap().unwrap(),
        Bytes::from_static(b"first-chunk\n")
    );
    origin.release();
    let rest = resp.bytes().await.unwrap();
    assert_eq!(rest, Bytes::from_static(b"the-rest\n"));
}

#[tokio::test]
async fn range_request_gets_206_with_the_right_bytes() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let resp = client()
        .get(lb.url("/bytes/100000"))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 1000-1999/100000");
    let body = resp.bytes().await.unwrap();
    let expected: Vec<u8> = (1000..2000).map(pattern_byte).collect();
    assert_eq!(body.as_ref(), expected.as_slice());
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let resp = client().head(lb.url("/bytes/5000")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "5000");
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn conditional_request_gets_304() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let resp = client()
        .get(lb.url("/bytes/10"))
        .header("if-none-match", "\"bytes-10\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"], "\"bytes-10\"");
}

#[tokio::test]
async fn chunked_upload_streams_to_origin_and_back() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..64)
        .map(|i| Ok(Bytes::from(vec![i as u8; 16 * 1024])))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = client()
        .post(lb.url("/echo/body"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen-transfer-encoding"], "chunked");
    let echoed = resp.bytes().await.unwrap();
    assert_eq!(echoed.len(), 64 * 16 * 1024);
    assert!(
        echoed
            .chunks(16 * 1024)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8))
    );
}

#[tokio::test]
async fn trailers_pass_through() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    let stream = tokio::net::TcpStream::connect(lb.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/trailers")
        .header("host", "test")
        .header("te", "trailers")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers forwarded");
    assert_eq!(trailers["x-checksum"], "abc123");
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"payload\n"));
}
