//! The headline behaviour, bounded for CI: a 4-worker origin (200 req/s of
//! capacity) offered 5x its capacity in page requests, open loop, while
//! downloads keep coming. Every download must succeed, and once the boards
//! are cleared, page requests are answered at once (`degraded`), not after a
//! queue timeout. The full wave, with percentiles, is `cargo bench --bench
//! stampede`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::lifeboat::admission::Mode;
use ::lifeboat_sim::origin_sim::{SimConfig, SimOrigin};

use crate::support::{client, lifeboat_to};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_survive_a_page_stampede() {
    let _heavy = crate::support::heavy().await;
    let sim = SimConfig {
        workers: 4,
        service_time: Duration::from_millis(20),
        // Downloads as costly as pages: the harder case for lifeboat.
        download_service_time: Duration::from_millis(20),
        download_size: 256 * 1024,
    };
    let origin = SimOrigin::bind(SocketAddr::from(([127, 0, 0, 1], 0)), sim)
        .await
        .unwrap();
    let origin_url = format!("http://{}", origin.addr().unwrap());
    let origin_task = tokio::spawn(origin.run());
    let lb = lifeboat_to(&origin_url)
        .set("origin.max_inflight", "4")
        .set("origin.queue_timeout", "\"1s\"")
        .set("shedding.tick", "\"100ms\"")
        .set("shedding.enter.queue_wait_p95", "\"200ms\"")
        .set("shedding.enter.after", "\"1s\"")
        .route("downloads", "match", "/download/*", "primary")
        .start()
        .await;

    let outcomes: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let c = client();
    let mut tasks = Vec::new();
    // 1000 page requests per second for 4 s, sent on schedule whatever happens.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for i in 0..4000u32 {
        tick.tick().await;
        let (pc, url, outcomes) = (
            c.clone(),
            lb.url(if i % 2 == 0 { "/news" } else { "/docs" }),
            outcomes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let key = match tokio::time::timeout(Duration::from_secs(10), pc.get(&url).send()).await
            {
                Ok(Ok(r)) => r
                    .headers()
                    .get("x-lifeboat-shed")
                    .map_or(r.status().to_string(), |v| {
                        v.to_str().unwrap_or("?").to_string()
                    }),
                Ok(Err(_)) => "error".into(),
                Err(_) => "timeout".into(),
            };
            *outcomes.lock().unwrap().entry(key).or_default() += 1;
        }));
        // Every 100 ms, a download (40 in all), in the middle of it.
        if i % 100 == 50 {
            let (dc, url) = (c.clone(), lb.url(&format!("/download/release-{i}.iso")));
            tasks.push(tokio::spawn(async move {
                let r = tokio::time::timeout(Duration::from_secs(10), async {
                    dc.get(&url).send().await?.bytes().await
                })
                .await;
                let ok = matches!(&r, Ok(Ok(b)) if b.len() == 256 * 1024);
                assert!(ok, "a download failed during the stampede: {r:?}");
            }));
        }
    }
    assert_eq!(
        lb.mode(),
        Mode::Degraded,
        "5x capacity should have cleared the boards"
    );
    for t in tasks {
        t.await.unwrap();
    }
    origin_task.abort();
    let outcomes = outcomes.lock().unwrap().clone();
    eprintln!("page outcomes: {outcomes:?}");
    let total: u32 = outcomes.values().sum();
    let count = |k: &str| outcomes.get(k).copied().unwrap_or(0);
    assert_eq!(total, 4000);
    assert!(
        !outcomes.contains_key("error") && !outcomes.contains_key("timeout"),
        "{outcomes:?}"
    );
    // Refused at once: by the cleared boards ("degraded"), or before they
    // were cleared because the wait they could expect was longer than the
    // queue allows ("queue-full"). Almost nobody waits out a timeout.
    assert!(
        (count("degraded") + count("queue-full")) * 10 >= total * 6,
        "most shed users should be answered at once: {outcomes:?}"
    );
    assert!(
        count("queue-timeout") * 100 <= total,
        "refused after waiting: {outcomes:?}"
    );
}
