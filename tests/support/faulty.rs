//! An origin that breaks HTTP on purpose, written on raw TCP so that it can
//! do what no well-behaved server library would: answer with garbage, reset
//! mid-body, stall after the head, close a keep-alive connection the moment
//! it has answered.
//!
//! | path | behaviour |
//! |---|---|
//! | `/ok` | `200`, 3 bytes, keeps the connection |
//! | `/garbage` | a line that is not HTTP, then close |
//! | `/reset` | head promising 1 MiB, 16 KiB of it, then a TCP reset |
//! | `/stall` | head promising 1000 bytes, 10 of them, then silence |
//! | `/close-early` | a complete keep-alive response, then close at once |
//! | `/http10` | an HTTP/1.0 response, 3 bytes, then close |

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running faulty origin; stops (and closes every connection) when dropped.
pub struct FaultyOrigin {
    /// Its address.
    pub addr: SocketAddr,
    /// Connections accepted.
    pub accepted: Arc<AtomicU64>,
    /// Connections currently open (accepted and not yet closed by either side).
    pub open: Arc<AtomicI64>,
    /// Request heads read.
    pub requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for FaultyOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultyOrigin {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicI64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (a, o, r) = (accepted.clone(), open.clone(), requests.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let (o, r) = (o.clone(), r.clone());
                // Owned by the JoinSet: aborting the accept task closes them all.
                conns.spawn(async move {
                    serve(stream, &r).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
                while conns.try_join_next().is_some() {}
            }
        });
        FaultyOrigin {
            addr,
            accepted,
            open,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections open right now.
    pub fn open(&self) -> i64 {
        self.open.load(Ordering::SeqCst)
    }
}

/// Reads one request head; its path, or `None` at EOF or error.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    let line = String::from_utf8_lossy(&head).into_owned();
    line.split(' ').nth(1).map(str::to_string)
}

async fn serve(mut stream: TcpStream, requests: &AtomicU64) {
    while let Some(path) = read_head(&mut stream).await {
        requests.fetch_add(1, Ordering::SeqCst);
        match path.as_str() {
            "/ok" => {
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                    .await
                    .is_err()
                {
                    return;
                }
            }
            "/garbage" => {
                let _ = stream
                    .write_all(b"SSH-2.0-OpenSSH_9.2 \x00\xff\r\n\r\n")
                    .await;
                return;
            }
            "/reset" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n")
                    .await;
                let _ = stream.write_all(&[b'r'; 16 * 1024]).await;
                let _ = stream.set_zero_linger();
                return; // dropped with zero linger: RST, not FIN
            }
            "/stall" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
                    .await;
                // Silence until the proxy gives up and closes its side.
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            "/http10" => {
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                    .await;
                return;
            }
            "/close-early" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                    .await;
                return;
            }
            _ => {
                let _ = stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    }
}
