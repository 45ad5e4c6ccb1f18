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
use crate::fleet::{Link, MessageDoc, OverrideDoc};
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

pub(super) type Failure = String;

pub(super) async fn call<T: redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, cmd.query_async::<T>(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// An error as the link says it: `io: …` when the connection failed (try
/// again on a new one), Redis's own words when it refused the command.
pub(super) fn describe(e: &redis::RedisError) -> Failure {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        format!("io: {e}")
    } else {
        e.to_string()
    }
}

/// A pipeline under the same deadline as one call.
pub(super) async fn query<T: redis::FromRedisValue>(
    conn: &mut MultiplexedConnection,
    pipe: &redis::Pipeline,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, pipe.query_async::<T>(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// What this instance has applied of the fleet's state.
#[derive(Default)]
struct Seen {
    switch: Option<String>,
    message: Option<String>,
    /// The last override document applied here (or posted here), to put
    /// back if Redis comes back without it, and to know which local
    /// override is the fleet's (an instance-only one is not lifted by the
    /// fleet).
    applied: Option<OverrideDoc>,
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

pub(super) struct Keys {
    switch: String,
    message: String,
    pub(super) member_prefix: String,
    pub(super) members: String,
    pub(super) journal: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            switch: format!("{prefix}:override"),
            message: format!("{prefix}:message"),
            member_prefix: format!("{prefix}:member:"),
            members: format!("{prefix}:members"),
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
        if let Err(e) = read_shared(shared, link, keys, seen, conn).await {
            return e;
        }
        if last_beat.is_none_or(|t| t.elapsed() >= cfg.heartbeat) {
            last_beat = Some(Instant::now());
            if let Err(e) = super::fleet_beat::beat(shared, link, cfg, keys, conn).await {
                return e;
            }
        }
        if let Err(e) = super::fleet_beat::ship_journal(link, keys, conn).await {
            return e;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = link.wake.notified() => {}
        }
    }
}

/// Writes `json` at `key` unless what is there was posted later than
/// `posted_at_ms` (another instance's newer post wins), with a TTL of `px`
/// milliseconds if given. One script, so nothing comes between the read
/// and the write.
const WRITE_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and type(doc) == 'table' and tonumber(doc.posted_at_ms or 0) > tonumber(ARGV[2]) then
    return 0
  end
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
";

/// Whether a failed call means Redis refused the command (so sending it
/// again would fail again) rather than that the connection failed.
fn refused(e: &Failure) -> bool {
    !e.starts_with("io:") && !e.starts_with("no answer")
}

async fn write_if_newer(
    conn: &mut MultiplexedConnection,
    key: &str,
    json: &str,
    posted_at_ms: u64,
    px: Option<u64>,
) -> Result<bool, Failure> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(WRITE_IF_NEWER)
        .arg(1)
        .arg(key)
        .arg(json)
        .arg(posted_at_ms)
        .arg(px.map_or(String::new(), |ms| ms.to_string()));
    call::<i64>(conn, &cmd).await.map(|n| n == 1)
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
    let now_ms = unix_ms(SystemTime::now());
    if let Some(doc) = &switch {
        let ttl_ms = match (doc.mode.as_str(), doc.expires_at_ms) {
            // A lift is kept an hour: long enough for every instance to
            // see it, short enough not to linger.
            ("auto", _) => Some(3_600_000),
            (_, Some(at)) => Some(at.saturating_sub(now_ms)),
            (_, None) => None,
        };
        if ttl_ms == Some(0) {
            // Its TTL ran out while Redis was away: nothing to tell.
            seen.switch = Some(doc.id.clone());
        } else {
            let json = serde_json::to_string(doc).unwrap_or_default();
            match write_if_newer(conn, &keys.switch, &json, doc.posted_at_ms, ttl_ms).await {
                Ok(written) => {
                    if written {
                        seen.applied = Some(doc.clone());
                    } else {
                        tracing::warn!(
                            id = doc.id,
                            "fleet: a newer override was posted elsewhere meanwhile; it stands"
                        );
                    }
                    seen.switch = Some(doc.id.clone());
                }
                Err(e) if refused(&e) => {
                    tracing::error!(id = doc.id, error = %e, "fleet: redis refused the override; it applies here only");
                }
                Err(e) => {
                    requeue(switch, message);
                    return Err(e);
                }
            }
        }
    }
    if let Some(doc) = &message {
        let json = serde_json::to_string(doc).unwrap_or_default();
        match write_if_newer(conn, &keys.message, &json, doc.posted_at_ms, None).await {
            Ok(_) => seen.message = Some(doc.id.clone()),
            Err(e) if refused(&e) => {
                tracing::error!(id = doc.id, error = %e, "fleet: redis refused the message; it applies here only");
            }
            Err(e) => {
                requeue(None, message);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Reads the fleet's switch and message and applies what is new.
async fn read_shared(
    shared: &Shared,
    link: &Link,
    keys: &Keys,
    seen: &mut Seen,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    let mut pipe = redis::pipe();
    pipe.cmd("GET")
        .arg(&keys.switch)
        .cmd("PTTL")
        .arg(&keys.switch)
        .cmd("GET")
        .arg(&keys.message);
    let (switch, pttl, message): (Option<String>, i64, Option<String>) = query(conn, &pipe).await?;
    // A post of ours not yet written is newer than what was just read.
    let pending = link.outbox.lock().is_ok_and(|o| o.switch.is_some());
    let switch = switch.and_then(|s| serde_json::from_str::<OverrideDoc>(&s).ok());
    match switch {
        _ if pending => {}
        Some(doc) if seen.switch.as_deref() != Some(doc.id.as_str()) => {
            seen.switch = Some(doc.id.clone());
            // The end is Redis's own count-down (PTTL), the same for
            // every instance whatever its clock.
            let left = (pttl > 0).then(|| Duration::from_millis(pttl as u64));
            apply_override(shared, &doc, left, seen);
        }
        Some(_) => {}
        None => restore(shared, keys, seen, conn).await?,
    }
    if let Some(doc) = message.and_then(|s| serde_json::from_str::<MessageDoc>(&s).ok())
        && seen.message.as_deref() != Some(doc.id.as_str())
    {
        seen.message = Some(doc.id.clone());
        shared.post_update(&doc.text, doc.stage.as_deref(), doc.signed.as_deref());
    }
    Ok(())
}

/// The switch is gone from Redis. Expired: each instance's copy ends at the
/// same moment by itself. Lost (Redis restarted empty, or evicted it): the
/// override applied here still stands, and is put back for the others.
async fn restore(
    shared: &Shared,
    keys: &Keys,
    seen: &mut Seen,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    let Some(doc) = seen.applied.clone().filter(|d| d.mode != "auto") else {
        return Ok(());
    };
    let Some(local) = shared.override_mode().filter(|o| is_fleets(o, &doc)) else {
        return Ok(());
    };
    let left = match local.until {
        Some(u) => match u.checked_duration_since(Instant::now()) {
            Some(d) if d > Duration::from_millis(50) => Some(d.as_millis() as u64),
            _ => return Ok(()),
        },
        None => None,
    };
    let json = serde_json::to_string(&doc).unwrap_or_default();
    let mut cmd = redis::cmd("SET");
    cmd.arg(&keys.switch).arg(json).arg("NX");
    if let Some(ms) = left {
        cmd.arg("PX").arg(ms);
    }
    call::<Option<String>>(conn, &cmd).await?;
    tracing::warn!(id = doc.id, "fleet: redis had lost the override; put back");
    Ok(())
}

/// Whether the local override `o` is the fleet's `doc` (not one set for
/// this instance only).
fn is_fleets(o: &Override, doc: &OverrideDoc) -> bool {
    o.mode.as_str() == doc.mode && o.reason == doc.reason
}

fn apply_override(shared: &Shared, doc: &OverrideDoc, left: Option<Duration>, seen: &mut Seen) {
    let mode = match doc.mode.as_str() {
        "degraded" => Mode::Degraded,
        "normal" => Mode::Normal,
        _ => {
            // A lift lifts the fleet's override, not one set here alone.
            let fleets = seen
                .applied
                .as_ref()
                .zip(shared.override_mode())
                .is_some_and(|(d, o)| is_fleets(&o, d));
            seen.applied = Some(doc.clone());
            if fleets {
                super::set_override(shared, None, None);
            }
            return;
        }
    };
    let until = match (doc.expires_at_ms, left) {
        (Some(_), Some(left)) => Some(Instant::now() + left),
        // Expired (or about to) as it was read.
        (Some(_), None) => return,
        (None, _) => None,
    };
    tracing::warn!(
        mode = doc.mode,
        reason = doc.reason,
        by = doc.by,
        "fleet: override applied"
    );
    seen.applied = Some(doc.clone());
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
