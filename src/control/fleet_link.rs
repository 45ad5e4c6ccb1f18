//! The one task that talks to Redis: connect (with backoff), write what the
//! operator posted here, read what was posted elsewhere and apply it, beat,
//! list the live instances, divide a fleet limit, ship journal records.
//! Every Redis call has a deadline; any failure drops the connection and
//! starts again, and the instance carries on alone meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::admission::Mode;
use crate::config::Fleet;
use crate::dashboard::unix_ms;
use crate::fleet::{Link, Member, MessageDoc, OverrideDoc, STREAM_MAX};
use crate::runtime::{Override, Shared};

/// A Redis call that takes longer than this counts as a failure: a slow
/// Redis is a lost Redis, as far as lifeboat is concerned.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the shared switch and message are read: well within the
/// second the fleet promises.
const POLL: Duration = Duration::from_millis(200);
/// Reconnection backoff, doubling between these.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Journal records shipped per round, at most.
const JOURNAL_BATCH: usize = 256;

type Failure = String;

async fn call<T: redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// What this instance has applied of the fleet's state.
#[derive(Default)]
struct Seen {
    switch: Option<String>,
    message: Option<String>,
}

/// Runs until the process ends.
pub async fn run(shared: Arc<Shared>, link: Arc<Link>, cfg: Fleet) {
    let keys = Keys::new(&cfg.prefix);
    let mut seen = Seen::default();
    let mut backoff = BACKOFF_MIN;
    let mut alone_since: Option<Instant> = None;
    let client = match redis::Client::open(cfg.redis.as_str()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "fleet: bad redis URL; this instance stays alone");
            return;
        }
    };
    loop {
        let conn = tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await;
        let failure = match conn {
            Ok(Ok(mut conn)) => {
                backoff = BACKOFF_MIN;
                link.connected.store(true, Ordering::Relaxed);
                metrics::gauge!("lifeboat_fleet_connected").set(1.0);
                match alone_since.take() {
                    Some(t) => tracing::warn!(
                        instance = %cfg.instance,
                        alone_for_s = t.elapsed().as_secs(),
                        "fleet: redis is back; acting with the fleet again"
                    ),
                    None => tracing::info!(instance = %cfg.instance, "fleet: joined"),
                }
                connected(&shared, &link, &cfg, &keys, &mut seen, &mut conn).await
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no connection within 2s".to_string(),
        };
        link.connected.store(false, Ordering::Relaxed);
        metrics::gauge!("lifeboat_fleet_connected").set(0.0);
        if let Ok(mut m) = link.members.lock() {
            m.clear();
        }
        if alone_since.is_none() {
            // Said once per outage, not once per attempt.
            tracing::error!(
                instance = %cfg.instance,
                error = %failure,
                "fleet: redis unreachable; carrying on alone (own decisions, local journal) and reconnecting"
            );
            metrics::counter!("lifeboat_fleet_disconnects_total").increment(1);
            alone_since = Some(Instant::now());
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

struct Keys {
    switch: String,
    message: String,
    member_prefix: String,
    journal: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            switch: format!("{prefix}:override"),
            message: format!("{prefix}:message"),
            member_prefix: format!("{prefix}:member:"),
            journal: format!("{prefix}:journal"),
        }
    }
}

/// The connected rounds; returns why the connection was given up.
async fn connected(
    shared: &Shared,
    link: &Link,
    cfg: &Fleet,
    keys: &Keys,
    seen: &mut Seen,
    conn: &mut MultiplexedConnection,
) -> Failure {
    let mut last_beat: Option<Instant> = None;
    loop {
        // What was posted here first (also what was posted while Redis was
        // away): it is newer than what Redis holds.
        if let Err(e) = flush_outbox(link, keys, seen, conn).await {
            return e;
        }
        if let Err(e) = read_shared(shared, keys, seen, conn).await {
            return e;
        }
        if last_beat.is_none_or(|t| t.elapsed() >= cfg.heartbeat) {
            last_beat = Some(Instant::now());
            if let Err(e) = beat(shared, link, cfg, keys, conn).await {
                return e;
            }
        }
        if let Err(e) = ship_journal(link, keys, conn).await {
            return e;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = link.wake.notified() => {}
        }
    }
}

async fn flush_outbox(
    link: &Link,
    keys: &Keys,
    seen: &mut Seen,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    let (switch, message) = match link.outbox.lock() {
        Ok(mut o) => (o.switch.take(), o.message.take()),
        Err(_) => return Ok(()),
    };
    let requeue = |switch: Option<OverrideDoc>, message: Option<MessageDoc>| {
        if let Ok(mut o) = link.outbox.lock() {
            o.switch = o.switch.take().or(switch);
            o.message = o.message.take().or(message);
        }
    };
    if let Some(doc) = &switch {
        let json = serde_json::to_string(doc).unwrap_or_default();
        let mut cmd = redis::cmd("SET");
        cmd.arg(&keys.switch).arg(json);
        let ttl_ms = match (doc.mode.as_str(), doc.expires_at_ms) {
            // A lift is kept an hour: long enough for every instance to
            // see it, short enough not to linger.
            ("auto", _) => Some(3_600_000),
            (_, Some(at)) => Some(at.saturating_sub(unix_ms(SystemTime::now())).max(1)),
            (_, None) => None,
        };
        if let Some(ms) = ttl_ms {
            cmd.arg("PX").arg(ms);
        }
        if let Err(e) = call::<()>(conn, &cmd).await {
            requeue(switch, message);
            return Err(e);
        }
        seen.switch = Some(doc.id.clone());
    }
    if let Some(doc) = &message {
        let json = serde_json::to_string(doc).unwrap_or_default();
        if let Err(e) = call::<()>(conn, redis::cmd("SET").arg(&keys.message).arg(json)).await {
            requeue(None, message);
            return Err(e);
        }
        seen.message = Some(doc.id.clone());
    }
    Ok(())
}

/// Reads the fleet's switch and message and applies what is new.
async fn read_shared(
    shared: &Shared,
    keys: &Keys,
    seen: &mut Seen,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    let (switch, message): (Option<String>, Option<String>) = call(
        conn,
        redis::cmd("MGET").arg(&keys.switch).arg(&keys.message),
    )
    .await?;
    let switch = switch.and_then(|s| serde_json::from_str::<OverrideDoc>(&s).ok());
    match switch {
        Some(doc) if seen.switch.as_deref() != Some(doc.id.as_str()) => {
            seen.switch = Some(doc.id.clone());
            apply_override(shared, &doc);
        }
        Some(_) => {}
        None => {
            // Gone: expired (each instance's own copy expires at the same
            // moment) or deleted by hand (lift it here too).
            if seen.switch.take().is_some()
                && let Some(o) = shared.override_mode()
                && o.until
                    .is_none_or(|u| u > Instant::now() + Duration::from_secs(1))
            {
                super::set_override(shared, None, None);
            }
        }
    }
    if let Some(doc) = message.and_then(|s| serde_json::from_str::<MessageDoc>(&s).ok())
        && seen.message.as_deref() != Some(doc.id.as_str())
    {
        seen.message = Some(doc.id.clone());
        if doc.text != shared.message() {
            shared.post_update(&doc.text, doc.stage.as_deref(), doc.signed.as_deref());
        }
    }
    Ok(())
}

fn apply_override(shared: &Shared, doc: &OverrideDoc) {
    let mode = match doc.mode.as_str() {
        "degraded" => Mode::Degraded,
        "normal" => Mode::Normal,
        _ => {
            if shared.override_mode().is_some() {
                super::set_override(shared, None, None);
            }
            return;
        }
    };
    let now_ms = unix_ms(SystemTime::now());
    let until = match doc.expires_at_ms {
        Some(at) if at <= now_ms => return,
        Some(at) => Some(Instant::now() + Duration::from_millis(at - now_ms)),
        None => None,
    };
    tracing::warn!(
        mode = doc.mode,
        reason = doc.reason,
        by = doc.by,
        "fleet: override applied"
    );
    super::set_override(
        shared,
        Some(Override {
            mode,
            until,
            reason: doc.reason.clone(),
        }),
        doc.ttl.clone(),
    );
}

/// Says this instance is alive, reads who else is, and divides a fleet
/// limit among them.
async fn beat(
    shared: &Shared,
    link: &Link,
    cfg: &Fleet,
    keys: &Keys,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    let me = member(shared, &cfg.instance);
    let ttl = (cfg.heartbeat * 3).as_millis() as u64;
    call::<()>(
        conn,
        redis::cmd("SET")
            .arg(format!("{}{}", keys.member_prefix, cfg.instance))
            .arg(serde_json::to_string(&me).unwrap_or_default())
            .arg("PX")
            .arg(ttl),
    )
    .await?;
    let mut names: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = call(
            conn,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", keys.member_prefix))
                .arg("COUNT")
                .arg(100),
        )
        .await?;
        names.extend(batch);
        cursor = next;
        if cursor == 0 || names.len() > 10_000 {
            break;
        }
    }
    names.sort();
    names.dedup();
    let docs: Vec<Option<String>> = if names.is_empty() {
        Vec::new()
    } else {
        call(conn, redis::cmd("MGET").arg(&names)).await?
    };
    let mut members: Vec<Member> = docs
        .into_iter()
        .flatten()
        .filter_map(|d| serde_json::from_str(&d).ok())
        .collect();
    if !members.iter().any(|m| m.id == me.id) {
        members.push(me);
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    metrics::gauge!("lifeboat_fleet_instances").set(members.len() as f64);
    if let Some(total) = cfg.max_inflight {
        let share = total.div_ceil(members.len().max(1)).max(1);
        shared.admission.set_fleet_share(Some(share));
    }
    if let Ok(mut m) = link.members.lock() {
        *m = members;
    }
    Ok(())
}

/// This instance as its heartbeat describes it.
pub fn member(shared: &Shared, id: &str) -> Member {
    let a = &shared.admission;
    let capacity = a.capacity();
    let last = shared.live.latest();
    Member {
        id: id.to_string(),
        mode: a.view().mode.as_str().to_string(),
        since: humantime::format_rfc3339_seconds(a.since()).to_string(),
        limit: capacity.limit,
        learned: capacity.learned,
        inflight: a.inflight.total(),
        offered_per_s: last.as_ref().map_or(0.0, |p| p.offered),
        shed_per_s: last.map_or(0.0, |p| p.shed.values().sum()),
        at_ms: unix_ms(SystemTime::now()),
    }
}

/// Ships queued journal records to the fleet's stream.
async fn ship_journal(
    link: &Link,
    keys: &Keys,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    loop {
        let batch: Vec<_> = match link.journal.lock() {
            Ok(mut q) => {
                let n = q.len().min(JOURNAL_BATCH);
                q.drain(..n).collect()
            }
            Err(_) => return Ok(()),
        };
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for r in &batch {
            pipe.cmd("XADD")
                .arg(&keys.journal)
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX)
                .arg("*")
                .arg("r")
                .arg(serde_json::to_string(r).unwrap_or_default())
                .ignore();
        }
        let sent = tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<()>(conn)).await;
        match sent {
            Ok(Ok(())) => {}
            failed => {
                // Put them back in front, in order: the next connection
                // sends them.
                if let Ok(mut q) = link.journal.lock() {
                    for r in batch.into_iter().rev() {
                        q.push_front(r);
                    }
                }
                return Err(match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {CALL_TIMEOUT:?}"),
                });
            }
        }
    }
}
