//! The ticker: every `[shedding] tick`, summarise the signals, advance the
//! mode machine (or apply the forced mode), publish the result, and log,
//! count and re-render the apology page on a change. The window slides by
//! one slot each second. One task; the hot path never waits for it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Mode, Transition, View};
use crate::config::ModeSetting;
use crate::runtime::Shared;

/// Runs until the process ends.
pub async fn run(shared: Arc<Shared>) {
    let mut last_rotation = Instant::now();
    loop {
        let tick = shared.runtime().config.shedding.tick;
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        while now - last_rotation >= Duration::from_secs(1) {
            shared.admission.window.rotate();
            last_rotation += Duration::from_secs(1);
        }
        step(&shared, now);
    }
}

/// One evaluation at `now`. Public for tests that drive time themselves.
pub fn step(shared: &Shared, now: Instant) -> Option<Transition> {
    let rt = shared.runtime();
    let cfg = &rt.config.shedding;
    let admission = &shared.admission;
    let signals = admission.signals(cfg.min_samples);
    let (transition, view) = {
        let Ok(mut machine) = admission.machine.lock() else {
            return None;
        };
        let t = match cfg.mode {
            ModeSetting::Auto => machine.tick(now, &signals, cfg),
            ModeSetting::Degraded => {
                machine.force(Mode::Degraded, now, "forced by config", signals)
            }
            ModeSetting::Normal => machine.force(Mode::Normal, now, "forced by config", signals),
        };
        (
            t,
            View {
                mode: machine.mode(),
                admit_fraction: machine.admit_fraction(now, cfg),
            },
        )
    };
    admission.publish(view);
    if let Some(t) = &transition {
        if let Ok(mut since) = admission.since.lock() {
            *since = SystemTime::now();
        }
        admission
            .changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shared.rerender_pages();
        tracing::warn!(
            from = t.from.as_str(),
            to = t.to.as_str(),
            cause = %t.cause,
            inflight = t.signals.inflight,
            ttfb_p95_ms = t.signals.ttfb_p95.map(|d| d.as_millis() as u64),
            failure_rate = t.signals.failure_rate,
            queue_wait_p95_ms = t.signals.queue_wait_p95.map(|d| d.as_millis() as u64),
            samples = t.signals.samples,
            "mode changed"
        );
    }
    transition
}
