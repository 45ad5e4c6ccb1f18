//! A download is not a page: slow visitors never hold the origin. The
//! origin's answer is read ahead of its visitor into the spool (memory,
//! then a nameless file), the origin's slot ends at the origin's last byte,
//! and where a bound is reached the slot is held (backpressure), counted,
//! and nothing is lost.

use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::support::origin::pattern_byte;
use crate::support::{TestOrigin, client, json_of, lifeboat, wait_until_async};

fn pattern_sha(len: u64) -> Vec<u8> {
    let bytes: Vec<u8> = (0..len).map(pattern_byte).collect();
    Sha256::digest(&bytes).to_vec()
}

/// Reads `resp` at about `per_s` bytes a second; its length and digest.
async fn read_slowly(resp: reqwest::Response, per_s: u64) -> (u64, Vec<u8>) {
    let started = tokio::time::Instant::now();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("the body arrives whole");
        total += chunk.len() as u64;
        hasher.update(&chunk);
        let due = started + Duration::from_secs_f64(total as f64 / per_s as f64);
        tokio::time::sleep_until(due).await;
    }
    (total, hasher.finalize().to_vec())
}

/// `GET /mode` once `ok` holds of it (20 s at most).
async fn mode_when(
    lb: &crate::support::lifeboat::Running,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_until_async(what, || async {
        let m = json_of(lb.admin_url("/mode")).await;
        ok(&m).then_some(m)
    })
    .await
}

fn toml_path(p: &std::path::Path) -> String {
    format!("\"{}\"", p.display())
}

#[tokio::test]
async fn slow_visitors_beyond_the_initial_limit_all_get_their_download() {
    // 24 visitors at once, each reading 8 MiB (more than the sockets'
    // buffers hold) at 4 MB/s: two seconds, more than the queue's 1 s. With
    // each transfer holding its slot until its last bytes were handed to
    // its socket, the 8 beyond the initial limit of 16 waited out the
    // queue and got `503 queue-timeout`.
    let _heavy = crate::support::heavy().await;
    let origin = TestOrigin::start().await;
    let spool = tempfile::tempdir().unwrap();
    let lb = lifeboat(&origin)
        .route("downloads", "match", "/bytes/*", "primary")
        .set("buffering.path", &toml_path(spool.path()))
        .start()
        .await;
    let size = 8u64 << 20;
    let c = client();
    let visitors: Vec<_> = (0..24)
        .map(|_| {
            let (c, url) = (c.clone(), lb.url(&format!("/bytes/{size}")));
            tokio::spawn(async move {
                let resp = c.get(url).send().await.unwrap();
                let status = resp.status();
                if status != 200 {
                    let head = format!("{:?}", resp.headers());
                    let why = format!("{head} {}", resp.text().await.unwrap_or_default());
                    return (status, (0, why.into_bytes()));
                }
                (status, read_slowly(resp, 4_000_000).await)
            })
        })
        .collect();
    let want = pattern_sha(size);
    for v in visitors {
        let (status, (len, sha)) = v.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&sha));
        assert_eq!(len, size);
        assert_eq!(sha, want);
    }
    let mode = json_of(lb.admin_url("/mode")).await;
    assert_eq!(mode["origin"]["inflight"], 0, "{mode}");
    assert_eq!(mode["transfers"]["in_progress"], 0, "{mode}");
    assert_eq!(mode["transfers"]["spooled_bytes"], 0, "{mode}");
}

#[tokio::test]
async fn the_origin_slot_is_free_at_the_origins_last_byte_not_the_visitors() {
    let origin = TestOrigin::start().await;
    let spool = tempfile::tempdir().unwrap();
    let lb = lifeboat(&origin)
        .set("origin.max_inflight", "1")
        .set("buffering.path", &toml_path(spool.path()))
        .start()
        .await;
    let size = 8u64 << 20;
    // A visitor who asks and then reads nothing for now.
    let stalled = client()
        .get(lb.url(&format!("/bytes/{size}")))
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);
    let mode = mode_when(&lb, "the origin's part done, the transfer going on", |m| {
        m["origin"]["inflight"] == 0
            && m["transfers"]["in_progress"] == 1
            && m["transfers"]["origin_sending"] == 0
    })
    .await;
    assert!(
        mode["transfers"]["spooled_bytes"].as_u64().unwrap() > 0,
        "what the sockets do not hold waits on disk: {mode}"
    );
    // The one slot is free: another visitor is served at once.
    let other = client().get(lb.url("/bytes/1024")).send().await.unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(other.bytes().await.unwrap().len(), 1024);
    let text = lb.metrics().await;
    assert!(text.contains("lifeboat_transfers 1"), "{text}");
    // The stalled visitor still gets every byte, in order.
    let (len, sha) = read_slowly(stalled, 1 << 30).await;
    assert_eq!((len, sha), (size, pattern_sha(size)));
    mode_when(&lb, "the spool emptied", |m| {
        m["transfers"]["in_progress"] == 0 && m["transfers"]["spooled_bytes"] == 0
    })
    .await;
}

#[tokio::test]
async fn at_the_spool_bound_the_slot_is_held_and_counted_and_nothing_is_lost() {
    let origin = TestOrigin::start().await;
    let spool = tempfile::tempdir().unwrap();
    let lb = lifeboat(&origin)
        .set("origin.max_inflight", "4")
        .set("buffering.path", &toml_path(spool.path()))
        .set("buffering.max_total", "\"1MiB\"")
        .start()
        .await;
    let size = 16u64 << 20;
    let stalled = client()
        .get(lb.url(&format!("/bytes/{size}")))
        .send()
        .await
        .unwrap();
    let mode = mode_when(&lb, "backpressure counted", |m| {
        m["transfers"]["backpressured_total"] == 1
    })
    .await;
    assert_eq!(mode["origin"]["inflight"], 1, "the slot is held: {mode}");
    assert_eq!(mode["transfers"]["origin_sending"], 1, "{mode}");
    let text = lb.metrics().await;
    assert!(
        text.contains("lifeboat_spool_backpressured_total 1"),
        "{text}"
    );
    let (len, sha) = read_slowly(stalled, 1 << 30).await;
    assert_eq!((len, sha), (size, pattern_sha(size)));
    mode_when(&lb, "the slot released", |m| {
        m["origin"]["inflight"] == 0 && m["transfers"]["spooled_bytes"] == 0
    })
    .await;
}

#[tokio::test]
async fn a_visitor_who_leaves_mid_download_frees_the_slot_and_the_disk() {
    let origin = TestOrigin::start().await;
    let spool = tempfile::tempdir().unwrap();
    let lb = lifeboat(&origin)
        .set("origin.max_inflight", "2")
        .set("buffering.path", &toml_path(spool.path()))
        .start()
        .await;
    let mut resp = client()
        .get(lb.url(&format!("/bytes/{}", 8 << 20)))
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert_eq!(first[0], pattern_byte(0));
    mode_when(&lb, "spooled", |m| {
        m["transfers"]["spooled_bytes"].as_u64() > Some(0)
    })
    .await;
    drop(resp);
    mode_when(&lb, "everything let go", |m| {
        m["transfers"]["in_progress"] == 0
            && m["transfers"]["spooled_bytes"] == 0
            && m["origin"]["inflight"] == 0
    })
    .await;
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn spool_files_a_crash_left_are_removed_at_start() {
    let origin = TestOrigin::start().await;
    let spool = tempfile::tempdir().unwrap();
    let left = spool
        .path()
        .join(format!("{}99999-3", ::lifeboat::spool::PREFIX));
    std::fs::write(&left, vec![0u8; 4096]).unwrap();
    let _lb = lifeboat(&origin)
        .set("buffering.path", &toml_path(spool.path()))
        .start()
        .await;
    assert!(!left.exists(), "{} is still there", left.display());
}

#[tokio::test]
async fn with_buffering_off_a_transfer_holds_its_slot_to_the_visitors_last_byte() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("origin.max_inflight", "1")
        .set("buffering.enabled", "false")
        .start()
        .await;
    let size = 8u64 << 20;
    let stalled = client()
        .get(lb.url(&format!("/bytes/{size}")))
        .send()
        .await
        .unwrap();
    let mode = json_of(lb.admin_url("/mode")).await;
    assert_eq!(mode["origin"]["inflight"], 1, "{mode}");
    assert_eq!(mode["transfers"]["in_progress"], 0, "{mode}");
    assert_eq!(mode["transfers"]["at_origin_streaming"], 1, "{mode}");
    let (len, _) = read_slowly(stalled, 1 << 30).await;
    assert_eq!(len, size);
}
