//! The incident journal: append-only JSON lines, one [`Record`] per line,
//! written by one background task. A full disk or an unwritable file is
//! logged (at most once a minute) and counted; lifeboat keeps serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::Record;
use super::webhook::Webhooks;

/// Write failures are logged at most this often.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

/// Runs the writer until every sender is gone: journal first, then
/// webhooks, then the fleet's stream (when there is a fleet).
pub async fn run(
    path: Option<PathBuf>,
    webhooks: Webhooks,
    mut rx: mpsc::Receiver<Record>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tee: Option<std::sync::Arc<dyn super::Tee>>,
) {
    let mut last_error: Option<Instant> = None;
    while let Some(record) = rx.recv().await {
        if let Some(path) = &path
            && let Err(e) = append(path, &record).await
        {
            metrics::counter!("lifeboat_journal_errors_total").increment(1);
            if last_error.is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY) {
                tracing::error!(path = %path.display(), error = %e, "cannot write the incident journal; still serving");
                last_error = Some(Instant::now());
            }
        }
        webhooks.offer(&record);
        if let Some(tee) = &tee {
            tee.record(&record);
        }
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    f.write_all(&line).await?;
    f.flush().await
}

/// The most of a journal read back at start, from its end: a day of a busy
/// incident (counters every 10 s) is well under a megabyte.
pub const RECENT_BYTES: u64 = 4 << 20;

/// The last records of a journal, for the status page at start: only a
/// regular file (never `/dev/full` or a FIFO), at most its last
/// [`RECENT_BYTES`], lines that do not parse skipped. Never fails: no
/// journal is an empty story.
pub fn read_recent(path: &Path) -> Vec<Record> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(meta) = f.metadata() else {
        return Vec::new();
    };
    if !meta.is_file() {
        return Vec::new();
    }
    let from = meta.len().saturating_sub(RECENT_BYTES);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err()
        || f.take(RECENT_BYTES).read_to_end(&mut bytes).is_err()
    {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    // A read that starts mid-file starts mid-line: skip that line.
    let whole = if from > 0 {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        &text
    };
    whole
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Reads a journal file; unreadable lines are reported with their number.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
