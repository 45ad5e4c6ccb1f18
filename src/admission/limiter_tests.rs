//! Unit tests of the limiter, included from `limiter.rs` under `#[cfg(test)]`.

use std::time::Duration;

use super::*;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn fast_path_then_queue_then_handoff() {
    let l = Limiter::new(1, 10);
    let first = l.acquire(2, LONG).await.unwrap();
    let l2 = l.clone();
    let waiting = tokio::spawn(async move { l2.acquire(2, LONG).await.map(|_p| ()) });
    tokio::task::yield_now().await;
    assert_eq!(l.queued(), 1);
    drop(first);
    waiting.await.unwrap().unwrap();
    assert_eq!((l.inflight(), l.queued()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn primary_is_served_before_earlier_normal_waiters() {
    let l = Limiter::new(1, 10);
    let first = l.acquire(0, LONG).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (prio, name) in [
        (2, "normal-1"),
        (2, "normal-2"),
        (1, "keep"),
        (0, "primary"),
    ] {
        let (l, tx) = (l.clone(), tx.clone());
        tokio::spawn(async move {
            let p = l.acquire(prio, LONG).await.unwrap();
            tx.send(name).unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(p);
        });
        tokio::task::yield_now().await;
    }
    drop(first);
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(rx.recv().await.unwrap());
    }
    assert_eq!(order, ["primary", "keep", "normal-1", "normal-2"]);
}

#[tokio::test(start_paused = true)]
async fn bounded_queue_and_timeout() {
    let l = Limiter::new(1, 1);
    let _held = l.acquire(0, LONG).await.unwrap();
    assert!(
        matches!(l.acquire(2, Duration::ZERO).await, Err(Refused::Full)),
        "no waiting allowed"
    );
    let l2 = l.clone();
    let waiter =
        tokio::spawn(async move { l2.acquire(2, Duration::from_millis(500)).await.map(|_| ()) });
    tokio::task::yield_now().await;
    assert!(
        matches!(l.acquire(2, LONG).await, Err(Refused::Full)),
        "queue of 1 is full"
    );
    assert_eq!(waiter.await.unwrap(), Err(Refused::Timeout));
    assert_eq!((l.inflight(), l.queued()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn abandoned_waiters_leak_nothing() {
    let l = Limiter::new(2, 100);
    let a = l.acquire(0, LONG).await.unwrap();
    let b = l.acquire(0, LONG).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            l.acquire(i % 3, LONG).await.map(|_| ())
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(l.queued(), 20);
    for t in &tasks[..10] {
        t.abort();
    }
    drop(a);
    drop(b);
    for t in tasks.into_iter().skip(10) {
        t.await.unwrap().unwrap();
    }
    assert_eq!((l.inflight(), l.queued()), (0, 0), "every slot came back");
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_serves_waiters() {
    let l = Limiter::new(0, 10);
    let l2 = l.clone();
    let waiter = tokio::spawn(async move { l2.acquire(1, LONG).await.map(|_| ()) });
    tokio::task::yield_now().await;
    l.set_limits(1, 10);
    waiter.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn reserved_slots_are_for_the_primary_path_only() {
    let l = Limiter::new(3, 10);
    l.set_reserved(1);
    let _a = l.acquire(2, LONG).await.unwrap();
    let _b = l.acquire(1, LONG).await.unwrap();
    // Two slots taken by keep/normal: the third is reserved.
    assert_eq!(
        l.acquire(2, Duration::ZERO).await.err(),
        Some(Refused::Full)
    );
    let primary = l.acquire(0, Duration::ZERO).await;
    assert!(
        primary.is_ok(),
        "the reserved slot goes to the primary path"
    );
    drop(primary);
    // Freed again: normal still cannot take the reserved slot from the queue.
    let l2 = l.clone();
    let normal =
        tokio::spawn(async move { l2.acquire(2, Duration::from_millis(100)).await.map(|_| ()) });
    assert_eq!(normal.await.unwrap(), Err(Refused::Timeout));
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_cannot_be_met_is_refused_at_once() {
    let l = Limiter::new(1, 100);
    let held = l.acquire(2, LONG).await.unwrap();
    assert_eq!(held.depth(), 1);
    // Pages get a slot every 10 ms: two waiters fit in 25 ms, a third not.
    l.set_drain_rate(2, 100.0);
    let max = Duration::from_millis(25);
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let l = l.clone();
        waiters.push(tokio::spawn(
            async move { l.acquire(2, max).await.map(|_| ()) },
        ));
        tokio::task::yield_now().await;
    }
    assert_eq!(l.queued(), 2);
    let asked = tokio::time::Instant::now();
    assert_eq!(l.acquire(2, max).await.err(), Some(Refused::Full));
    assert_eq!(asked.elapsed(), Duration::ZERO, "refused without waiting");
    // A download has nobody ahead of it in its own queue: it may wait.
    let l2 = l.clone();
    let primary = tokio::spawn(async move { l2.acquire(0, max).await.map(|p| p.depth()) });
    tokio::task::yield_now().await;
    assert_eq!(l.queued(), 3);
    drop(held);
    assert_eq!(primary.await.unwrap(), Ok(1), "the download went first");
    // The pressure was counted: four requests found no free slot.
    assert_eq!(l.take_pressure(), (1, 4));
    for w in waiters {
        w.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_drain_rate_lets_requests_wait() {
    let l = Limiter::new(1, 10);
    let held = l.acquire(2, LONG).await.unwrap();
    let l2 = l.clone();
    let waiter = tokio::spawn(async move { l2.acquire(2, LONG).await.map(|p| p.depth()) });
    tokio::task::yield_now().await;
    assert_eq!(l.queued(), 1, "no measurement yet: no refusal on a guess");
    drop(held);
    assert_eq!(waiter.await.unwrap(), Ok(1));
}

#[tokio::test(start_paused = true)]
async fn the_primary_reserve_holds_when_the_limit_drops_below_what_is_held() {
    let l = Limiter::new(8, 10);
    l.set_reserved(1);
    // Long requests of other classes hold seven slots...
    let mut long = Vec::new();
    for _ in 0..7 {
        long.push(l.acquire(1, Duration::ZERO).await.unwrap());
    }
    // ...when a probe halves the limit under them.
    l.set_limit(4);
    assert_eq!(
        l.acquire(2, Duration::ZERO).await.err(),
        Some(Refused::Full)
    );
    let download = l.acquire(0, Duration::ZERO).await;
    assert!(download.is_ok(), "the reserve is the downloads' own");
    assert_eq!(
        l.acquire(0, Duration::ZERO).await.err(),
        Some(Refused::Full),
        "one reserved slot, one download beyond the limit"
    );
    drop(download);
    assert!(l.acquire(0, Duration::ZERO).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_drain_rate_decayed_to_almost_nothing_refuses_without_panicking() {
    // The ticker's smoothed rate of a class idle for minutes decays
    // geometrically: (ahead + 1) / rate overflowed Duration::from_secs_f64,
    // and the request's task panicked (seen in benches/compare, on a
    // lifeboat idle for a minute between two measurements).
    let l = Limiter::new(1, 10);
    let held = l.acquire(2, LONG).await.unwrap();
    for rate in [1e-300, f64::MIN_POSITIVE, 5e-324] {
        l.set_drain_rate(2, rate);
        assert_eq!(l.acquire(2, LONG).await.err(), Some(Refused::Full));
    }
    drop(held);
}
