//! The TLS handshake under a slot. The ClientHello is read without one (a
//! silent client costs a socket, never a slot, and is cut at the
//! deadline); then one of the process's `max_handshakes` slots is taken for
//! the cryptography (key exchange and signature) and given back as soon as
//! the server's first flight is written, before waiting on the client
//! again. A stampede of new clients queues for the cores instead of taking
//! them all, and a client that stalls mid-handshake holds nothing.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;

/// Runs the handshake on `io` with `config`, under one of `slots`.
pub async fn handshake<IO>(
    io: IO,
    config: Arc<rustls::ServerConfig>,
    slots: &Arc<Semaphore>,
) -> io::Result<TlsStream<SlotIo<IO>>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let slot = Arc::new(Slot::default());
    let io = SlotIo {
        io,
        slot: Some(slot.clone()),
    };
    let hello =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
    let permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| io::Error::other("handshake slots closed"))?;
    slot.hold(permit);
    hello.into_stream(config).await
}

/// Where the permit waits for the server's first write.
#[derive(Default)]
struct Slot(Mutex<Option<OwnedSemaphorePermit>>);

impl Slot {
    fn hold(&self, permit: OwnedSemaphorePermit) {
        if let Ok(mut p) = self.0.lock() {
            *p = Some(permit);
        }
    }

    fn release(&self) {
        if let Ok(mut p) = self.0.lock() {
            p.take();
        }
    }
}

/// The connection's I/O, which gives its [`Slot`] back on the first write
/// and forgets it: every later write costs one `Option` check.
pub struct SlotIo<IO> {
    io: IO,
    slot: Option<Arc<Slot>>,
}

impl<IO> SlotIo<IO> {
    /// The wrapped I/O.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The wrapped I/O, mutably.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    fn first_write(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.release();
        }
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
        self.first_write();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.first_write();
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.first_write();
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
