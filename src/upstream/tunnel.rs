//! Upgraded connections (WebSocket): once both the client and the origin
//! have switched protocols, bytes are copied both ways until either side
//! closes. The tunnel holds whatever guard the caller gives it (connection
//! activity, shutdown drain), so it is counted like a request in flight.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Both halves of an accepted upgrade, waiting to be joined.
pub struct Pending {
    client: OnUpgrade,
    origin: OnUpgrade,
}

impl Pending {
    pub(crate) fn new(client: OnUpgrade, origin: OnUpgrade) -> Self {
        Pending { client, origin }
    }

    /// Joins the halves in a background task that owns `guard` until the
    /// tunnel closes.
    pub fn spawn<G: Send + 'static>(self, guard: G) {
        tokio::spawn(async move {
            let _guard = guard;
            let (client, origin) = match tokio::try_join!(self.client, self.origin) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let (mut client, mut origin) = (TokioIo::new(client), TokioIo::new(origin));
            match tokio::io::copy_bidirectional(&mut client, &mut origin).await {
                Ok((up, down)) => tracing::debug!(up, down, "tunnel closed"),
                Err(e) => tracing::debug!(error = %e, "tunnel closed with error"),
            }
        });
    }
}
