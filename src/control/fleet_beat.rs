//! The fleet's heartbeat (say this instance is alive, list the live ones,
//! divide a fleet limit) and the shipping of journal records to the
//! stream: the periodic half of the fleet's link (`fleet_link`).

use std::time::{Duration, SystemTime};

use redis::aio::MultiplexedConnection;

use super::fleet_link::{Failure, Keys, call, query};
use crate::config::Fleet;
use crate::dashboard::unix_ms;
use crate::fleet::{Link, Member, STREAM_MAX};
use crate::runtime::Shared;

/// Journal records shipped per batch, at most.
const JOURNAL_BATCH: usize = 256;
/// Batches per round, at most.
const JOURNAL_ROUNDS: usize = 4;

/// Says this instance is alive, reads who else is, and divides a fleet
/// limit among them.
pub(super) async fn beat(
    shared: &Shared,
    link: &Link,
    cfg: &Fleet,
    keys: &Keys,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    let me = member(shared, &cfg.instance);
    // Three missed beats, and a second more for a slow round: a member
    // lapses only when it has really stopped.
    let ttl = (cfg.heartbeat * 3 + Duration::from_secs(1)).as_millis() as u64;
    let now_ms = unix_ms(SystemTime::now());
    // Members are found through one sorted set (by last beat), never by
    // scanning the keyspace of a Redis the site shares with others.
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(format!("{}{}", keys.member_prefix, cfg.instance))
        .arg(serde_json::to_string(&me).unwrap_or_default())
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("ZADD")
        .arg(&keys.members)
        .arg(now_ms)
        .arg(&cfg.instance)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&keys.members)
        .arg("-inf")
        .arg(now_ms.saturating_sub(ttl))
        .ignore()
        .cmd("ZRANGE")
        .arg(&keys.members)
        .arg(0)
        .arg(-1);
    let (ids,): (Vec<String>,) = query(conn, &pipe).await?;
    let names: Vec<String> = ids
        .iter()
        .filter(|id| crate::config::valid_instance(id))
        .map(|id| format!("{}{id}", keys.member_prefix))
        .collect();
    let docs: Vec<Option<String>> = if names.is_empty() {
        Vec::new()
    } else {
        call(conn, redis::cmd("MGET").arg(&names)).await?
    };
    // What another instance wrote is checked before it is shown anywhere.
    let mut members: Vec<Member> = docs
        .into_iter()
        .flatten()
        .filter_map(|d| serde_json::from_str::<Member>(&d).ok())
        .filter(|m| {
            crate::config::valid_instance(&m.id)
                && matches!(m.mode.as_str(), "normal" | "degraded" | "recovering")
        })
        .collect();
    if !members.iter().any(|m| m.id == me.id) {
        members.push(me);
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    metrics::gauge!("lifeboat_fleet_instances").set(members.len() as f64);
    if let Some(total) = cfg.max_inflight {
        // The limit divided exactly: the first `total % live` instances
        // (by id) take one slot more, so the shares add up to it.
        let live = members.len().max(1);
        let mine = members
            .iter()
            .position(|m| m.id == cfg.instance)
            .unwrap_or(0);
        let share = (total / live + usize::from(mine < total % live)).max(1);
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
        // Summed from +0.0: an empty sum of floats is -0.0, shown "-0".
        shed_per_s: last.map_or(0.0, |p| p.shed.values().fold(0.0, |a, b| a + b)),
        at_ms: unix_ms(SystemTime::now()),
    }
}

/// Ships queued journal records to the fleet's stream.
pub(super) async fn ship_journal(
    link: &Link,
    keys: &Keys,
    conn: &mut MultiplexedConnection,
) -> Result<(), Failure> {
    // A few batches a round: a long backlog must not delay the next beat.
    for _ in 0..JOURNAL_ROUNDS {
        let batch: Vec<_> = match link.journal.lock() {
            Ok(mut q) => {
                let n = q.len().min(JOURNAL_BATCH);
                q.drain(..n).collect()
            }
            Err(_) => return Ok(()),
        };
        if batch.is_empty() {
            break;
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
        if let Err(e) = query::<()>(conn, &pipe).await {
            // Put them back in front, in order: the next connection
            // sends them.
            if let Ok(mut q) = link.journal.lock() {
                for r in batch.into_iter().rev() {
                    q.push_front(r);
                }
            }
            return Err(e);
        }
    }
    Ok(())
}
