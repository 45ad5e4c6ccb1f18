//! The fleet: several lifeboats that act as one, through the Redis the site
//! already runs. No gossip, no consensus of lifeboat's own: Redis holds the
//! shared state and every instance reads and writes it.
//!
//! | key | what |
//! |---|---|
//! | `{prefix}:override` | the operator's switch ([`OverrideDoc`]), with the override's TTL as the key's |
//! | `{prefix}:message` | the visitors' message ([`MessageDoc`]) |
//! | `{prefix}:member:{id}` | each instance's heartbeat ([`Member`]), expiring after three missed beats |
//! | `{prefix}:journal` | every instance's journal records, a stream capped at [`STREAM_MAX`] |
//!
//! The [`Link`] is what the rest of lifeboat sees: the admin API hands it
//! what the operator posted (fleet scope), the journal writer hands it
//! records, and the status page and `GET /fleet` read the members from it.
//! One task (`control::fleet_link`) does all the talking to Redis, off the request
//! path: when Redis is down, slow or partitioned, each instance carries on
//! alone with its own decisions and journal, says so once, and reconnects
//! with backoff. What the operator posted meanwhile waits in the link and
//! is written when Redis is back.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::story::Record;

/// Journal records kept in the Redis stream, about (`MAXLEN ~`).
pub const STREAM_MAX: usize = 100_000;
/// Journal records waiting for Redis, at most; older ones are dropped (and
/// counted) first: the local journal has them all.
const JOURNAL_BACKLOG: usize = 4096;

/// The operator's switch, as stored for the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideDoc {
    /// Unique per post: instances apply each one once.
    pub id: String,
    /// `degraded`, `normal`, or `auto` (the override lifted).
    pub mode: String,
    /// The operator's words.
    pub reason: String,
    /// The TTL as the operator wrote it.
    #[serde(default)]
    pub ttl: Option<String>,
    /// When it ends, ms since the epoch (`None`: until lifted).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// The instance it was posted to.
    pub by: String,
    /// When it was posted, ms since the epoch: of two posts, the later one
    /// stands, even if the earlier reaches Redis last.
    #[serde(default)]
    pub posted_at_ms: u64,
}

/// The visitors' message, as stored for the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDoc {
    /// Unique per post.
    pub id: String,
    /// The text ("" clears it).
    pub text: String,
    /// Statuspage's stage, if given.
    #[serde(default)]
    pub stage: Option<String>,
    /// Who signs it, if given.
    #[serde(default)]
    pub signed: Option<String>,
    /// The instance it was posted to.
    pub by: String,
    /// When it was posted, ms since the epoch: of two posts, the later one
    /// stands, even if the earlier reaches Redis last.
    #[serde(default)]
    pub posted_at_ms: u64,
}

/// One instance as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub id: String,
    /// normal, degraded or recovering.
    pub mode: String,
    /// When that mode began, RFC 3339.
    pub since: String,
    /// Its origin limit.
    pub limit: usize,
    /// Whether that limit is learned.
    pub learned: bool,
    /// Requests inside it.
    pub inflight: usize,
    /// Requests a second, lately.
    pub offered_per_s: f64,
    /// Apologies a second, lately.
    pub shed_per_s: f64,
    /// When it beat, ms since the epoch.
    pub at_ms: u64,
}

/// What the operator posted here for the fleet while it could not be
/// written yet (the latest of each kind wins).
#[derive(Default)]
pub(crate) struct Outbox {
    pub(crate) switch: Option<OverrideDoc>,
    pub(crate) message: Option<MessageDoc>,
}

/// This instance's end of the fleet.
pub struct Link {
    /// This instance's id.
    pub instance: String,
    pub(crate) outbox: Mutex<Outbox>,
    pub(crate) journal: Mutex<VecDeque<Record>>,
    journal_dropped: AtomicU64,
    pub(crate) members: Mutex<Vec<Member>>,
    pub(crate) connected: AtomicBool,
    ids: AtomicU64,
    pub(crate) wake: Notify,
}

impl Link {
    /// A link for instance `instance`, not yet connected.
    pub fn new(instance: &str) -> Self {
        Link {
            instance: instance.to_string(),
            outbox: Mutex::default(),
            journal: Mutex::default(),
            journal_dropped: AtomicU64::new(0),
            members: Mutex::default(),
            connected: AtomicBool::new(false),
            ids: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// A fresh id for something posted here.
    pub fn next_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let ms = crate::dashboard::unix_ms(std::time::SystemTime::now());
        format!("{}-{ms}-{n}", self.instance)
    }

    /// Hands the fleet an override posted here; written at once when Redis
    /// is there, else when it is back.
    pub fn publish_override(&self, doc: OverrideDoc) {
        if let Ok(mut o) = self.outbox.lock() {
            o.switch = Some(doc);
        }
        self.wake.notify_one();
    }

    /// Hands the fleet a message posted here.
    pub fn publish_message(&self, doc: MessageDoc) {
        if let Ok(mut o) = self.outbox.lock() {
            o.message = Some(doc);
        }
        self.wake.notify_one();
    }

    /// Queues a journal record for the fleet's stream; never waits.
    pub fn journal(&self, record: &Record) {
        if let Ok(mut q) = self.journal.lock() {
            if q.len() >= JOURNAL_BACKLOG {
                q.pop_front();
                self.journal_dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(record.clone());
        }
    }

    /// Whether Redis is reachable now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The live instances, this one included, by id (as of the last beat;
    /// empty while Redis is unreachable).
    pub fn members(&self) -> Vec<Member> {
        self.members.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Journal records dropped before reaching Redis.
    pub fn journal_dropped(&self) -> u64 {
        self.journal_dropped.load(Ordering::Relaxed)
    }
}

impl crate::story::Tee for Link {
    fn record(&self, record: &Record) {
        self.journal(record);
    }
}

/// How many instances there are, and in which mode.
pub fn count(members: &[Member]) -> crate::story::status::FleetCount {
    let n = |m: &str| members.iter().filter(|x| x.mode == m).count();
    crate::story::status::FleetCount {
        instances: members.len(),
        degraded: n("degraded"),
        recovering: n("recovering"),
    }
}

/// The fleet's mode as people read it: "2 of 3 instances degraded".
pub fn summary(members: &[Member]) -> serde_json::Value {
    let c = count(members);
    let mode = if c.degraded > 0 {
        "degraded"
    } else if c.recovering > 0 {
        "recovering"
    } else {
        "normal"
    };
    serde_json::json!({
        "mode": mode,
        "instances": c.instances,
        "degraded": c.degraded,
        "recovering": c.recovering,
        "normal": c.instances - c.degraded - c.recovering,
    })
}

/// The fleet's journal stream at `url` (`{prefix}:journal`), oldest first:
/// what `lifeboat story --redis` tells.
pub async fn read_journal(url: &str, prefix: &str) -> Result<Vec<Record>, String> {
    let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| format!("{url}: no connection within 5 s"))?
    .map_err(|e| format!("{url}: {e}"))?;
    let key = format!("{prefix}:journal");
    let mut records = Vec::new();
    let mut from = "-".to_string();
    loop {
        type Entries = Vec<(String, Vec<(String, String)>)>;
        let batch: Entries = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("reading {key}: {e}"))?;
        let Some((last, _)) = batch.last() else { break };
        from = format!("({last}");
        records.extend(batch.iter().filter_map(|(_, fields)| {
            fields
                .iter()
                .find(|(k, _)| k == "r")
                .and_then(|(_, v)| serde_json::from_str::<Record>(v).ok())
        }));
    }
    Ok(records)
}
