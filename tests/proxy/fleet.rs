//! A fleet that acts as one, over a real `redis-server`: the operator's
//! switch and message reach every live instance within a second, and an
//! instance that starts later; a TTL ends everywhere at once; a fixed
//! origin limit is divided among the live instances; every journal record
//! says which instance wrote it and reaches the fleet's stream. And when
//! Redis is lost, nobody's requests notice: each instance carries on
//! alone, keeps what the operator posted meanwhile, and the fleet forms
//! again when Redis is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::redis::Redis;
use crate::support::{Running, TestOrigin, admin_post, client, lifeboat, text_of};

async fn member(origin: &TestOrigin, redis: &Redis, id: &str) -> Running {
    lifeboat(origin)
        .set("fleet.redis", &format!("\"{}\"", redis.url()))
        .set("fleet.instance", &format!("\"{id}\""))
        .set("fleet.heartbeat", "\"200ms\"")
        .start()
        .await
}

async fn admin_get(lb: &Running, path: &str) -> Value {
    crate::support::json_of(lb.admin_url(path)).await
}

/// An origin and two instances, `a` and `b`, sharing `redis`, once each
/// knows the other.
async fn pair(redis: &Redis) -> (TestOrigin, Running, Running) {
    let origin = TestOrigin::start().await;
    let a = member(&origin, redis, "a").await;
    let b = member(&origin, redis, "b").await;
    fleet_of(&a, 2).await;
    (origin, a, b)
}

/// `lifeboat story ARGS`, which must succeed: its report.
async fn story(args: &[&std::ffi::OsStr]) -> String {
    let out = tokio::process::Command::new(crate::support::process::bin())
        .arg("story")
        .args(args)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}{errors}");
    report
}

/// Waits (up to `limit`) until `ok` holds; how long it took.
async fn within(limit: Duration, what: &str, ok: impl Fn() -> bool) -> Duration {
    let start = tokio::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// Waits until `lb`'s `GET /fleet` lists `n` instances.
async fn fleet_of(lb: &Running, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let f = admin_get(lb, "/fleet").await;
        if f["instances"].as_array().map(Vec::len) == Some(n) && f["connected"] == true {
            return f;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never a fleet of {n}: {f}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_switch_and_one_message_reach_every_instance_within_a_second() {
    // Three instances and a browser: not beside the stampede tests.
    let _heavy = crate::support::heavy().await;
    let Some(redis) = Redis::start().await else {
        return;
    };
    let origin = TestOrigin::start().await;
    let a = member(&origin, &redis, "pod-a").await;
    let b = member(&origin, &redis, "pod-b").await;
    let f = fleet_of(&a, 2).await;
    assert_eq!(f["instance"], "pod-a");
    assert_eq!(f["fleet"]["mode"], "normal");

    // The switch, posted to one instance, holds on the other within 1 s.
    let answer = admin_post(
        &a,
        "/mode",
        json!({"mode": "degraded", "ttl": "5m", "reason": "drill"}),
    )
    .await;
    assert_eq!(answer["scope"], "fleet");
    let took = within(Duration::from_secs(1), "b follows a's override", || {
        b.shared
            .override_mode()
            .is_some_and(|o| o.reason == "drill")
    })
    .await;
    eprintln!("override reached the other instance in {took:?}");
    let o = b.shared.override_mode().unwrap();
    assert_eq!(o.mode.as_str(), "degraded");
    let left = o.until.unwrap() - tokio::time::Instant::now();
    assert!(
        left > Duration::from_secs(295) && left <= Duration::from_secs(300),
        "{left:?}"
    );
    // Both degraded: the fleet says so.
    within(Duration::from_secs(3), "the fleet is degraded", || {
        b.shared.admission.view().mode.as_str() == "degraded"
    })
    .await;

    // The message, posted to the other one, reaches the first.
    admin_post(
        &b,
        "/message",
        json!({"text": "Mirrors coming.", "stage": "identified"}),
    )
    .await;
    within(Duration::from_secs(1), "a shows b's message", || {
        a.shared.message() == "Mirrors coming."
    })
    .await;

    // An instance that starts later takes both at once.
    let c = member(&origin, &redis, "pod-c").await;
    within(
        Duration::from_secs(1),
        "c takes the override and message",
        || {
            c.shared
                .override_mode()
                .is_some_and(|o| o.reason == "drill")
                && c.shared.message() == "Mirrors coming."
        },
    )
    .await;
    let f = fleet_of(&a, 3).await;
    assert_eq!(f["fleet"]["instances"], 3);
    let ids: Vec<&str> = f["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["pod-a", "pod-b", "pod-c"]);

    // One status: the public page counts the fleet's instances, and the
    // dashboard draws a line for each.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status: Value = client()
            .get(a.url("/.well-known/lifeboat/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["numbers"]["fleet"]["instances"] == 3 {
            assert_eq!(status["numbers"]["fleet"]["degraded"], 3, "{status}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let html = client()
        .get(a.url("/.well-known/lifeboat/status"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<dt>Servers clearing the boards</dt><dd>3 of 3</dd>"),
        "{html}"
    );
    if let Some(mut browser) = crate::support::browser::Browser::launch(1200, 1400).await {
        browser.open(&format!("http://{}/", a.admin.unwrap())).await;
        browser
            .wait_for(
                "document.getElementById('c-fleet').dataset.lines === '3'",
                Duration::from_secs(10),
            )
            .await;
        let legend = browser
            .eval("document.getElementById('l-fleet').textContent")
            .await;
        let legend = legend.as_str().unwrap();
        assert!(
            legend.contains("pod-a (degraded)") && legend.contains("pod-c"),
            "{legend}"
        );
        let hidden = browser
            .eval("document.getElementById('fleet').hidden")
            .await;
        assert_eq!(hidden, false);
    }

    // Back to auto from the newest: lifted everywhere.
    admin_post(&c, "/mode", json!({"mode": "auto"})).await;
    within(Duration::from_secs(1), "a and b lift it", || {
        a.shared.override_mode().is_none() && b.shared.override_mode().is_none()
    })
    .await;

    // Scope "instance" stays where it was posted.
    let answer = admin_post(
        &b,
        "/mode",
        json!({"mode": "degraded", "reason": "just b", "scope": "instance"}),
    )
    .await;
    assert_eq!(answer["scope"], "instance");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(a.shared.override_mode().is_none() && c.shared.override_mode().is_none());
    assert!(b.shared.override_mode().is_some());
    // And the fleet's own lift leaves it alone: it is not the fleet's.
    admin_post(&a, "/mode", json!({"mode": "auto"})).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        b.shared.override_mode().map(|o| o.reason),
        Some("just b".to_string())
    );

    // Every record says who wrote it, and the fleet's stream has them all.
    let mut conn = redis.conn().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let entries: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
            .arg("lifeboat:journal")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let records: Vec<Value> = entries
            .iter()
            .map(|(_, fields)| serde_json::from_str(&fields[0].1).unwrap())
            .collect();
        let from = |id: &str, event: &str| {
            records
                .iter()
                .any(|r| r["instance"] == id && r["event"] == event)
        };
        if from("pod-a", "override_set")
            && from("pod-b", "override_set")
            && from("pod-c", "message")
        {
            assert!(records.iter().all(|r| r["instance"].is_string()));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And `lifeboat story --redis` tells the fleet's one incident, with a
    // row per instance and the operator's reason as its trigger.
    let story = story(&["--redis".as_ref(), redis.url().as_ref()]).await;
    assert!(story.contains("## Episode 1"), "{story}");
    assert!(
        story.contains("| Trigger | operator override: drill |"),
        "{story}"
    );
    assert!(story.contains("### Instances"), "{story}");
    for id in ["pod-a", "pod-b"] {
        assert!(story.contains(&format!("| {id} | ")), "{story}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_ends_everywhere_at_once_and_is_not_taken_up_after() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (origin, a, b) = pair(&redis).await;
    admin_post(
        &a,
        "/mode",
        json!({"mode": "degraded", "ttl": "2s", "reason": "short"}),
    )
    .await;
    within(Duration::from_secs(1), "b has it", || {
        b.shared.override_mode().is_some()
    })
    .await;
    let (ua, ub) = (
        a.shared.override_mode().unwrap().until.unwrap(),
        b.shared.override_mode().unwrap().until.unwrap(),
    );
    let apart = if ua > ub { ua - ub } else { ub - ua };
    assert!(apart < Duration::from_millis(100), "ends {apart:?} apart");
    within(Duration::from_secs(4), "both lifted", || {
        a.shared.override_mode().is_none() && b.shared.override_mode().is_none()
    })
    .await;
    // Redis let it go too: an instance that starts now stays automatic.
    let c = member(&origin, &redis, "c").await;
    fleet_of(&c, 3).await;
    assert!(c.shared.override_mode().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_fleet_limit_is_divided_among_the_live_instances() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let origin = TestOrigin::start().await;
    let start = |id: &'static str| {
        lifeboat(&origin)
            .set("fleet.redis", &format!("\"{}\"", redis.url()))
            .set("fleet.instance", &format!("\"{id}\""))
            .set("fleet.heartbeat", "\"200ms\"")
            .set("fleet.max_inflight", "12")
            .start()
    };
    let a = start("a").await;
    let limit = |lb: &Running| lb.shared.admission.capacity().limit;
    within(Duration::from_secs(3), "a alone has all 12", || {
        limit(&a) == 12
    })
    .await;
    let b = start("b").await;
    within(Duration::from_secs(3), "6 each", || {
        limit(&a) == 6 && limit(&b) == 6
    })
    .await;
    assert!(!a.shared.admission.capacity().learned);
    drop(b);
    // b's heartbeat lapses (3 beats): a takes the whole limit again.
    within(Duration::from_secs(5), "a has 12 again", || limit(&a) == 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_under_load_costs_no_request_and_loses_no_message() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let (_origin, a, b) = pair(&redis).await;

    // Traffic through a the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url, c) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            a.url("/delay/2"),
            client(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let served = ok.load(Ordering::Relaxed);
    redis.kill();
    within(Duration::from_secs(3), "a knows it is alone", || {
        a.shared.fleet.as_ref().is_some_and(|l| !l.connected())
    })
    .await;
    let f = admin_get(&a, "/fleet").await;
    assert_eq!(f["connected"], false);
    assert_eq!(f["instances"].as_array().unwrap().len(), 1, "{f}");

    // The operator speaks to a while Redis is down: a applies it.
    admin_post(
        &a,
        "/message",
        json!({"text": "Written while Redis was down."}),
    )
    .await;
    assert_eq!(a.shared.message(), "Written while Redis was down.");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(b.shared.message(), "Written while Redis was down.");

    // Redis comes back (empty): the fleet forms again, and b gets the
    // message a kept.
    redis.restart().await;
    fleet_of(&b, 2).await;
    within(Duration::from_secs(5), "b gets the message a kept", || {
        b.shared.message() == "Written while Redis was down."
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > served + 50, "the load stalled");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed while Redis was lost"
    );
}

#[tokio::test]
async fn fleet_config_errors_point_at_the_line() {
    const ORIGIN: &str = "[origin]\nurl = \"http://127.0.0.1:1\"\n";
    let cases = [
        (
            "[fleet]\ninstance = \"a\"\n",
            "fleet.toml:3:1",
            "missing `redis`",
        ),
        (
            "[fleet]\nredis = \"http://x:6379\"\n",
            "fleet.toml:4:9",
            "redis://",
        ),
        (
            "[fleet]\nredis = \"redis://r:6379\"\ninstance = \"a b\"\n",
            "fleet.toml:5:12",
            "letters, digits",
        ),
        (
            "max_inflight = 8\n[fleet]\nredis = \"redis://r:6379\"\nmax_inflight = 32\n",
            "fleet.toml:6:16",
            "set twice",
        ),
    ];
    for (tail, at, says) in cases {
        let text = format!("{ORIGIN}{tail}");
        let err = ::lifeboat::config::from_str(&text, "fleet.toml", std::path::Path::new("."))
            .expect_err(&text)
            .to_string();
        assert!(err.contains(says) && err.contains(at), "{at} {says}: {err}");
    }
}

/// Runs `lifeboat ctl --admin http://ADMIN ARGS` with `token` in
/// `LIFEBOAT_TOKEN`: (success, stdout, stderr).
/// Runs `lifeboat ctl` against `admin`: (success, stdout, stderr).
pub(crate) async fn ctl(
    admin: std::net::SocketAddr,
    token: &str,
    args: &[&str],
) -> (bool, String, String) {
    let out = tokio::process::Command::new(crate::support::process::bin())
        .arg("ctl")
        .arg("--admin")
        .arg(format!("http://{admin}"))
        .args(args)
        .env("LIFEBOAT_TOKEN", token)
        .env_remove("LIFEBOAT_ADMIN")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ctl_command_flips_the_whole_fleet() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t0ken\n").unwrap();
    let start = |id: &'static str| {
        lifeboat(&origin)
            .set("fleet.redis", &format!("\"{}\"", redis.url()))
            .set("fleet.instance", &format!("\"{id}\""))
            .set("fleet.heartbeat", "\"200ms\"")
            .set("admin.token_file", "\"token\"")
            .start_in(dir.path())
    };
    let a = start("edge-1").await;
    let b = start("edge-2").await;
    fleet_of(&a, 2).await;
    let admin = a.admin.unwrap();

    let (ok, out, err) = ctl(
        admin,
        "t0ken",
        &["mode", "degraded", "--ttl", "10m", "--reason", "from ctl"],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("override degraded (from ctl), 10 min left"),
        "{out}"
    );
    assert!(out.contains("scope fleet"), "{out}");
    within(Duration::from_secs(1), "edge-2 follows", || {
        b.shared
            .override_mode()
            .is_some_and(|o| o.reason == "from ctl")
    })
    .await;

    let (ok, out, _) = ctl(
        admin,
        "t0ken",
        &["message", "Back soon.", "--stage", "monitoring"],
    )
    .await;
    assert!(
        ok && out.contains("message posted (fleet): Back soon."),
        "{out}"
    );
    within(Duration::from_secs(1), "edge-2 shows it", || {
        b.shared.message() == "Back soon."
    })
    .await;

    // The fleet as one table, once both have beaten in degraded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let table = loop {
        let (ok, out, err) = ctl(admin, "", &["fleet"]).await;
        assert!(ok, "{err}");
        if out.starts_with("fleet degraded: 2 of 2 instances degraded") {
            break out;
        }
        assert!(tokio::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A table: every row as wide as its header, numbers in their columns,
    // no "-0" for nothing shed.
    let header = table.lines().nth(1).unwrap();
    assert!(header.starts_with("instance "), "{table}");
    for row in table.lines().skip(2) {
        assert_eq!(row.len(), header.len(), "{table}");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert!(cells[2].parse::<u64>().is_ok(), "{table}");
    }
    assert!(!table.contains("-0"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("edge-1 ") && l.contains("degraded")),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("edge-2 ")), "{table}");
    let (ok, out, _) = ctl(admin, "", &["status"]).await;
    assert!(ok && out.starts_with("mode degraded since "), "{out}");

    // Refusals say why, and how to fix them.
    let (ok, _, err) = ctl(admin, "wrong", &["mode", "auto"]).await;
    assert!(!ok);
    assert!(
        err.contains("401") && err.contains("LIFEBOAT_TOKEN"),
        "{err}"
    );
    assert!(b.shared.override_mode().is_some());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (ok, _, err) = ctl(closed, "t0ken", &["status"]).await;
    assert!(
        !ok && err.contains("cannot reach lifeboat's admin listener"),
        "{err}"
    );

    let (ok, out, _) = ctl(admin, "t0ken", &["mode", "auto"]).await;
    assert!(ok && out.contains("automatic (no override)"), "{out}");
    within(Duration::from_secs(1), "edge-2 back to auto", || {
        b.shared.override_mode().is_none()
    })
    .await;
}

#[tokio::test]
async fn the_story_of_several_journals_is_one_incident() {
    let dir = tempfile::tempdir().unwrap();
    let line = |at: &str, id: &str, event: &str| {
        format!("{{\"at\":\"2026-11-29T10:00:{at}Z\",\"instance\":\"{id}\",{event}}}\n")
    };
    let change = |from: &str, to: &str| {
        format!(
            "\"event\":\"mode_changed\",\"from\":\"{from}\",\"to\":\"{to}\",\"cause\":\"queue wait\",\"inflight\":9,\"ttfb_p95_ms\":40,\"failure_rate\":0.0,\"queue_wait_p95_ms\":300"
        )
    };
    std::fs::write(
        dir.path().join("a.jsonl"),
        line("01.000", "a", &change("normal", "degraded"))
            + &line("20.000", "a", &change("degraded", "normal")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.jsonl"),
        line("03.000", "b", &change("normal", "degraded"))
            + &line("41.000", "b", &change("degraded", "normal")),
    )
    .unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let story = story(&[a.as_os_str(), b.as_os_str()]).await;
    assert!(story.contains("1 episode in this journal"), "{story}");
    assert!(
        story.contains("| Started | 2026-11-29T10:00:01.000Z |"),
        "{story}"
    );
    assert!(
        story.contains("| Ended | 2026-11-29T10:00:41.000Z |"),
        "{story}"
    );
    assert!(story.contains("| Duration | 40s |"), "{story}");
    assert!(
        story.contains("| b | 2026-11-29T10:00:03.000Z | 2026-11-29T10:00:41.000Z | 0 | 0 |"),
        "{story}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_a_lost_redis_and_costs_no_request() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let origin = TestOrigin::start().await;
    let a = member(&origin, &redis, "a").await;
    fleet_of(&a, 1).await;
    // Redis stops answering for 3 s (alive, connected, silent).
    let mut blocker = redis.conn().await.unwrap();
    let sleeping = tokio::spawn(async move {
        let _: Result<String, _> = ::redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(3)
            .query_async(&mut blocker)
            .await;
    });
    let link = a.shared.fleet.clone().unwrap();
    let took = within(
        Duration::from_secs(2),
        "a gives up on the silent redis",
        || !link.connected(),
    )
    .await;
    eprintln!("a slow redis was given up after {took:?}");
    // Requests do not notice.
    for _ in 0..20 {
        let r = client().get(a.url("/delay/1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    sleeping.await.unwrap();
    fleet_of(&a, 1).await;
}

#[tokio::test]
async fn a_redis_that_never_answers_leaves_an_instance_alone_and_its_password_unshown() {
    let origin = TestOrigin::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = lifeboat(&origin)
        .set("fleet.redis", &format!("\"redis://:s3cret-pw@{closed}\""))
        .set("fleet.instance", "\"solo\"")
        .start()
        .await;
    let r = client().get(a.url("/delay/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let f = admin_get(&a, "/fleet").await;
    assert_eq!(f["connected"], false);
    assert_eq!(f["instances"][0]["id"], "solo", "{f}");
    let config = text_of(a.admin_url("/config")).await;
    assert!(!config.contains("s3cret-pw"), "{config}");
    assert!(config.contains("redis://REDACTED@"), "{config}");
    // The operator can still act on it.
    admin_post(&a, "/mode", json!({"mode": "degraded", "reason": "alone"})).await;
    assert_eq!(a.shared.override_mode().unwrap().reason, "alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_comes_back_empty_does_not_lift_the_fleets_override() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let (origin, a, b) = pair(&redis).await;
    admin_post(
        &a,
        "/mode",
        json!({"mode": "degraded", "reason": "until lifted"}),
    )
    .await;
    within(Duration::from_secs(1), "b has it", || {
        b.shared.override_mode().is_some()
    })
    .await;
    // Redis restarts with nothing in it (no persistence, or an eviction).
    redis.kill();
    redis.restart().await;
    fleet_of(&a, 2).await;
    fleet_of(&b, 2).await;
    for lb in [&a, &b] {
        assert_eq!(
            lb.shared.override_mode().map(|o| o.reason),
            Some("until lifted".to_string()),
            "an empty Redis lifted the override"
        );
    }
    // And it is put back for whoever starts next.
    let c = member(&origin, &redis, "c").await;
    within(
        Duration::from_secs(2),
        "c takes the override put back",
        || {
            c.shared
                .override_mode()
                .is_some_and(|o| o.reason == "until lifted")
        },
    )
    .await;
}
