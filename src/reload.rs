//! Live reload: SIGHUP, a change to the config file, or `POST /reload`.
//!
//! The file is read, parsed and validated off to the side (templates
//! rendered, certificates loaded); only a valid config is swapped in, whole.
//! A rejected file is logged with file:line:column, counted and journaled,
//! and the running configuration stays. Settings that need a restart
//! (`config::startup`, compared as one part) are named in the log and in
//! `POST /reload`'s answer, not silently ignored.
//!
//! The watcher watches the file's **directory**: editors replace files by
//! rename, and Kubernetes updates a mounted ConfigMap by swapping a symlink
//! (`..data`) in that directory, so a watch on the file itself would go
//! stale after the first change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config;
use crate::runtime::Shared;
use crate::story::Event;

/// The result of one reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Swapped in as this generation; some settings may need a restart.
    Accepted {
        /// The new generation.
        generation: u64,
        /// Settings that only a restart applies.
        needs_restart: Vec<String>,
    },
    /// Rejected: the running configuration stays.
    Rejected(String),
    /// There is no file to reload from.
    NoFile,
}

/// Reads and applies the config file; `trigger` says who asked.
pub fn reload(shared: &Shared, trigger: &str) -> Outcome {
    let Some(path) = shared.config_path.clone() else {
        return Outcome::NoFile;
    };
    match config::load(&path) {
        Ok(new) => {
            let restart = shared.swap(new).0;
            let generation = shared.generation();
            metrics::counter!("lifeboat_config_reloads_total", "result" => "accepted").increment(1);
            shared.events.emit(Event::ReloadAccepted {
                generation,
                trigger: trigger.into(),
            });
            if restart.is_empty() {
                tracing::info!(generation, trigger, "configuration reloaded");
            } else {
                tracing::warn!(generation, trigger, needs_restart = ?restart, "configuration reloaded; these settings keep their old values until a restart");
            }
            Outcome::Accepted {
                generation,
                needs_restart: restart,
            }
        }
        Err(e) => {
            metrics::counter!("lifeboat_config_reloads_total", "result" => "rejected").increment(1);
            tracing::error!(trigger, error = %e, "configuration rejected; still serving the previous one");
            shared.events.emit(Event::ReloadRejected {
                error: e.to_string(),
                trigger: trigger.into(),
            });
            Outcome::Rejected(e.to_string())
        }
    }
}

/// Reloads on every SIGHUP, until the process ends.
pub async fn on_sighup(shared: Arc<Shared>, hup: Hangup) {
    #[cfg(unix)]
    if let Some(mut hup) = hup.0 {
        while hup.recv().await.is_some() {
            reload(&shared, "sighup");
        }
    }
    #[cfg(not(unix))]
    let _ = (shared, hup);
}

/// SIGHUP, registered as soon as the listeners are bound: until a handler
/// exists, the signal's default action is to kill the process, so a reload
/// sent right after start must already find one.
pub struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    /// Registers the handler now (must run inside the runtime).
    pub fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Hangup(signal(SignalKind::hangup()).ok())
        }
        #[cfg(not(unix))]
        Hangup()
    }
}

/// Watches the config file's directory and reloads after changes settle.
pub async fn watch(shared: Arc<Shared>) {
    let Some(path) = shared.config_path.clone() else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let watched = watched_names(&path);
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && ev.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| watched.iter().any(|w| w == n))
            })
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload");
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory; reload with SIGHUP or POST /reload");
        return;
    }
    // Compare with the text the running config was made from: an edit made
    // before the watch was armed produced no event, but must not be missed.
    let on_disk = || std::fs::read(&path).ok().map(|b| config::digest(&b));
    let mut last = Some(shared.runtime().config.digest);
    let now = on_disk();
    if shared.runtime().config.reload.watch && now.is_some() && now != last {
        reload(&shared, "file");
    }
    last = now.or(last);
    while rx.recv().await.is_some() {
        // Let a burst of events (write, rename, symlink swap) settle.
        let debounce = shared.runtime().config.reload.debounce;
        tokio::time::sleep(debounce).await;
        while rx.try_recv().is_ok() {}
        if !shared.runtime().config.reload.watch {
            continue;
        }
        let now = on_disk();
        if now.is_some() && now != last {
            last = now;
            reload(&shared, "file");
        }
    }
    drop(watcher);
}

/// File names whose change means the config may have changed: the file,
/// and Kubernetes' `..data` symlink in a ConfigMap mount.
fn watched_names(path: &Path) -> Vec<std::ffi::OsString> {
    let mut names = vec![std::ffi::OsString::from("..data")];
    names.extend(path.file_name().map(|n| n.to_os_string()));
    names
}
