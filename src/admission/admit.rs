//! Admission's part of a request, for whoever drives it (the proxy's
//! pipeline, or [`crate::layer::ShedLayer`] around another service):
//! taking the slots, and the bookkeeping once the request is answered,
//! refused or failed. One place, so both count the same way.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use super::{Admission, Held, Refused, ShedReason, Wait};
use crate::classify::RouteClass;
use crate::config::Config;

/// What the origin (or the inner service) answered.
pub struct Answered {
    /// The request's class.
    pub class: RouteClass,
    /// Time from sending it to the answer's head.
    pub ttfb: Duration,
    /// The answer's status.
    pub status: StatusCode,
    /// When it began to be admitted (its wait in the queue included).
    pub admitted_at: Instant,
}

impl Admission {
    /// The mode's decision for a request of `class`, without waiting: how
    /// long it may wait for the origin, or why it is shed. In a dry run a
    /// shed is counted as "would have shed" and the request waits as any
    /// admitted one.
    pub fn gate(&self, config: &Config, class: RouteClass) -> Result<Wait, ShedReason> {
        match super::decide(class, self.view(), fastrand::f64()) {
            super::Decision::Admit(wait) => Ok(wait),
            super::Decision::Shed(reason) if config.shedding.dry_run => {
                self.would_shed(reason);
                Ok(Wait::Queue)
            }
            super::Decision::Shed(reason) => Err(reason),
        }
    }

    /// Takes the slots of a request `gate` let through. A request whose
    /// body is still to come (`has_body`) is admitted no higher than keep:
    /// it may trickle its body into the origin for as long as the body rate
    /// allows, and must not do it in a slot reserved for the downloads (nor
    /// take the primary class's own slots). In a dry run a refusal is
    /// counted and the request goes on with what it holds.
    pub async fn enter(
        &self,
        config: &Config,
        class: RouteClass,
        has_body: bool,
        wait: Wait,
    ) -> Result<Held, ShedReason> {
        let admit_as = if has_body {
            class.max(RouteClass::Keep)
        } else {
            class
        };
        match self.admit(config, admit_as, wait).await {
            Ok(held) => Ok(held),
            Err((reason, held)) if config.shedding.dry_run => {
                self.would_shed(reason);
                Ok(held)
            }
            Err((reason, _)) => Err(reason),
        }
    }

    /// Counts the request in and takes its slots, waiting in lifeboat's
    /// queue as long as `wait` allows. A refusal comes with what was held
    /// so far (a dry run goes on with it).
    async fn admit(
        &self,
        config: &Config,
        class: RouteClass,
        wait: Wait,
    ) -> Result<Held, (ShedReason, Held)> {
        let timeout = config.origin.queue_timeout;
        let mut held = Held {
            inflight: Some(self.inflight.enter(class)),
            ..Held::default()
        };
        if class == RouteClass::Primary && config.shedding.primary_max_inflight.is_some() {
            match self.primary.acquire(0, timeout).await {
                Ok(permit) => held.primary = Some(permit),
                Err(_) => return Err((ShedReason::PrimaryBusy, held)),
            }
        }
        let (max_wait, no_room) = match wait {
            Wait::Queue => (timeout, None),
            Wait::Fill(reason) => (config.shedding.fill_wait.min(timeout), Some(reason)),
        };
        let waiting = Instant::now();
        let permit = self.origin.acquire(class.index(), max_wait).await;
        let waited = waiting.elapsed();
        self.window.record_queue_wait(waited);
        crate::telemetry::QUEUE_WAIT.record(waited);
        match permit {
            Ok(permit) => {
                held.origin = Some(permit);
                Ok(held)
            }
            Err(refused) => {
                let reason = no_room.unwrap_or(match refused {
                    Refused::Full => ShedReason::QueueFull,
                    Refused::Timeout => ShedReason::QueueTimeout,
                });
                Err((reason, held))
            }
        }
    }

    /// An answer came back: signals, tallies, metrics. (What the server's
    /// learner takes from it is `ServerSlot::learn_from`.)
    pub fn answered(&self, a: Answered) {
        let failed = a.status.is_server_error();
        self.window.record_origin(Some(a.ttfb), failed);
        crate::telemetry::ORIGIN_TTFB.record(a.ttfb);
        self.tally.proxied[a.class.index()].fetch_add(1, Relaxed);
        if a.class == RouteClass::Primary {
            self.tally.primary_ttfb.record(a.admitted_at.elapsed());
        }
        if failed {
            metrics::counter!("lifeboat_origin_failures_total", "kind" => "5xx").increment(1);
        } else {
            self.tally.served[a.class.index()].fetch_add(1, Relaxed);
        }
        metrics::counter!("lifeboat_requests_total", "class" => a.class.as_str(), "outcome" => "proxied").increment(1);
    }

    /// The origin could not answer (`reason`: down or too slow).
    pub fn origin_failed(&self, reason: ShedReason) {
        self.window.record_origin(None, true);
        metrics::counter!("lifeboat_origin_failures_total", "kind" => reason.as_str()).increment(1);
    }

    /// A request gets the apology for `reason`.
    pub fn refused(&self, class: RouteClass, reason: ShedReason) {
        self.tally.shed[reason as usize].fetch_add(1, Relaxed);
        self.tally.refused[class.index()].fetch_add(1, Relaxed);
        metrics::counter!("lifeboat_requests_total", "class" => class.as_str(), "outcome" => "shed").increment(1);
        metrics::counter!("lifeboat_shed_total", "reason" => reason.as_str()).increment(1);
    }

    /// Dry run: what would have been shed is counted.
    pub fn would_shed(&self, reason: ShedReason) {
        self.tally.would_shed[reason as usize].fetch_add(1, Relaxed);
        metrics::counter!("lifeboat_would_shed_total", "reason" => reason.as_str()).increment(1);
    }
}
