//! The task beside a spooled response: it watches the visitor read the
//! origin's body itself, and once the visitor is the slower of the two it
//! takes the body over and reads it into the [`Spool`] as fast as the
//! origin sends it, while there is room, and lets go of the origin (what
//! the request holds there) at the body's end, its failure, or its
//! visitor's departure: whichever comes first.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use super::{End, OriginBody, STALL, Spool};

/// Watches a visitor reading the origin's body itself; once it has not
/// waited for the origin for a whole [`STALL`], takes the body over and
/// reads it ahead. Ends when there is nothing left to watch (the body
/// ended inline, or the visitor left).
pub(super) async fn watch(spool: Arc<Spool>) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(STALL).await;
        match spool.take_if_stalled(&mut seen) {
            Err(()) => return,
            Ok(None) => {}
            Ok(Some(body)) => return fill(body, &spool).await,
        }
    }
}

/// Lets go of the origin however [`fill`] returns.
struct LetGo<'a>(&'a Spool);

impl Drop for LetGo<'_> {
    fn drop(&mut self) {
        self.0.let_go();
    }
}

/// Reads `body` into `spool` until its end, then lets go of the origin.
async fn fill(mut body: OriginBody, spool: &Spool) {
    let _let_go = LetGo(spool);
    loop {
        if !poll_fn(|cx| spool.poll_room(cx)).await {
            return;
        }
        // The next frame, unless the visitor goes away meanwhile: a slow
        // origin must not keep a slot for a visitor who has left.
        let frame = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending if spool.idle(cx) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await;
        let Some(frame) = frame else { return };
        match frame {
            None => return spool.finish(End::Done(None)),
            Some(Err(e)) => return spool.finish(End::Failed(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => spool.put(data),
                Err(frame) => return spool.finish(End::Done(frame.into_trailers().ok())),
            },
        }
    }
}
