//! Why a request got the apology: a decision of admission's, named here,
//! where it is made. The apology turns it into a response.

/// Why a request got the apology. The codes are stable: they appear in
/// `X-Lifeboat-Shed`, logs, metrics and the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// Degraded mode: the primary path first; the rest only as far as the
    /// origin has room (in `auto`), or not at all (forced).
    Degraded,
    /// Recovering: this request was outside the admitted share of the ramp.
    Ramp,
    /// The primary path is at its own limit and its queue is full or timed out.
    PrimaryBusy,
    /// The origin refused, was unreachable, or broke the exchange.
    OriginDown,
    /// The origin did not connect or answer in time.
    OriginTimeout,
    /// lifeboat's origin queue is full.
    QueueFull,
    /// The request waited in lifeboat's queue for `queue_timeout`.
    QueueTimeout,
}

impl ShedReason {
    /// Every reason, in `as usize` order.
    pub const ALL: [ShedReason; 7] = [
        ShedReason::Degraded,
        ShedReason::Ramp,
        ShedReason::PrimaryBusy,
        ShedReason::OriginDown,
        ShedReason::OriginTimeout,
        ShedReason::QueueFull,
        ShedReason::QueueTimeout,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::Degraded => "degraded",
            ShedReason::Ramp => "ramp",
            ShedReason::PrimaryBusy => "primary-busy",
            ShedReason::OriginDown => "origin-down",
            ShedReason::OriginTimeout => "origin-timeout",
            ShedReason::QueueFull => "queue-full",
            ShedReason::QueueTimeout => "queue-timeout",
        }
    }

    /// One sentence for people.
    pub fn detail(self) -> &'static str {
        match self {
            ShedReason::Degraded => {
                "The site is overloaded; downloads come first right now, and the rest only as far as the server has room."
            }
            ShedReason::Ramp => "The site is recovering and letting visitors back in gradually.",
            ShedReason::PrimaryBusy => "Downloads are busy; please retry in a few seconds.",
            ShedReason::OriginDown => "The site's server is not answering.",
            ShedReason::OriginTimeout => "The site's server is answering too slowly.",
            ShedReason::QueueFull => "Too many requests are waiting already.",
            ShedReason::QueueTimeout => "Your request waited too long for the server.",
        }
    }

    /// Whether this apology is for overload (and so charged to the
    /// client's budget): not an origin failure, and not a download.
    pub fn is_overload(self) -> bool {
        matches!(
            self,
            ShedReason::Degraded
                | ShedReason::Ramp
                | ShedReason::QueueFull
                | ShedReason::QueueTimeout
        )
    }
}
