//! The task that reads an origin's body into its [`Spool`] as fast as the
//! origin sends it, while there is room, and lets go of the origin (what it
//! was given to hold) at the body's end, its failure, or its visitor's
//! departure: whichever comes first.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http_body::Body;

use super::{End, Spool};
use crate::conn::BodyError;

/// Reads `body` into `spool` until its end; `release` is dropped on return.
pub(super) async fn fill<B, R>(mut body: B, release: R, spool: Arc<Spool>)
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin,
{
    let _release = release;
    loop {
        if !poll_fn(|cx| spool.poll_room(cx)).await {
            return;
        }
        // The next frame, unless the visitor goes away meanwhile: a slow
        // origin must not keep a slot for a visitor who has left.
        let frame = poll_fn(|cx| {
            if spool.gone(cx) {
                return Poll::Ready(None);
            }
            Pin::new(&mut body).poll_frame(cx).map(Some)
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
