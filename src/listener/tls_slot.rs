//! A handshake slot that frees itself when the server first writes: the
//! expensive part of a TLS handshake (key exchange, signature) happens
//! between reading the ClientHello and writing the server's first flight,
//! so that is exactly when the slot is held.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

/// Where the slot waits to be released.
#[derive(Default)]
pub struct Slot {
    armed: AtomicBool,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Slot {
    /// Holds `permit` until the stream's first write.
    pub fn hold(&self, permit: OwnedSemaphorePermit) {
        if let Ok(mut p) = self.permit.lock() {
            *p = Some(permit);
            self.armed.store(true, Ordering::Release);
        }
    }

    fn release(&self) {
        // One atomic load per write once released: the common path.
        if self.armed.swap(false, Ordering::AcqRel)
            && let Ok(mut p) = self.permit.lock()
        {
            p.take();
        }
    }
}

/// An I/O stream that releases its [`Slot`] on the first write.
pub struct SlotIo<IO> {
    io: IO,
    slot: Arc<Slot>,
}

impl<IO> SlotIo<IO> {
    /// Wraps `io`; the returned slot is empty until [`Slot::hold`].
    pub fn new(io: IO) -> (Self, Arc<Slot>) {
        let slot = Arc::new(Slot::default());
        (
            SlotIo {
                io,
                slot: slot.clone(),
            },
            slot,
        )
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for SlotIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for SlotIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.slot.release();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.slot.release();
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.slot.release();
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
