//! The open-loop load generator: it keeps its schedule, counts apologies by
//! reason, and models clients that honour or ignore `Retry-After`.

use std::time::Duration;

use ::lifeboat_sim::loadgen::{self, Plan, Retry, Target};

use crate::support::{TestOrigin, lifeboat};

fn plan(base: String, retry: Retry) -> Plan {
    Plan {
        base,
        mix: vec![
            Target {
                path: "/news".into(),
                weight: 1,
                primary: false,
            },
            Target {
                path: "/bytes/100".into(),
                weight: 1,
                primary: true,
            },
        ],
        rate: Box::new(|_| 100.0),
        duration: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        retry,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_and_retry_models() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("shedding.mode", "\"degraded\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    let base = format!("http://{}", lb.addr());

    let honour = loadgen::run(plan(base.clone(), Retry::Honour), |_| {}).await;
    let primary = honour.primary().unwrap();
    assert_eq!(
        primary.ok(),
        primary.total(),
        "downloads pass in degraded mode"
    );
    let shed = honour.others();
    // 100 req/s for 1 s, half of them pages: about 50 sent, all shed.
    let pages = shed.get("shed:degraded").copied().unwrap_or(0);
    assert!((45..=55).contains(&pages), "{shed:?}");
    assert_eq!(shed.len(), 1, "{shed:?}");
    assert_eq!(
        honour.paths[0].retries, 0,
        "Retry-After is 60 s or more: no honouring client returns within the run"
    );

    let ignore = loadgen::run(
        plan(base, Retry::Ignore(Duration::from_millis(200))),
        |_| {},
    )
    .await;
    assert!(
        ignore.paths[0].retries > 50,
        "clients ignoring Retry-After come straight back: {}",
        ignore.paths[0].retries
    );
    assert_eq!(
        ignore.paths[1].retries, 0,
        "successful downloads are not retried"
    );
}
