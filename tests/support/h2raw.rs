//! A deliberately rude HTTP/2 client on raw frames (RFC 9113), for what a
//! polite library refuses to do: open streams past the advertised limit,
//! and open-then-cancel streams as fast as the socket takes them (rapid
//! reset, CVE-2023-44487). HPACK is the minimum: static-table indices and
//! literals without indexing or Huffman coding.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Frame types used here.
pub const HEADERS: u8 = 0x1;
/// RST_STREAM.
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS.
pub const SETTINGS: u8 = 0x4;
/// GOAWAY.
pub const GOAWAY: u8 = 0x7;
/// Error code REFUSED_STREAM.
pub const REFUSED_STREAM: u32 = 0x7;
/// Error code CANCEL.
pub const CANCEL: u32 = 0x8;

/// One frame as read from the server.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier.
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Appends one frame to `out`.
pub fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends a GET request for `path` on stream `id` (HEADERS with
/// END_HEADERS | END_STREAM).
pub fn get(out: &mut Vec<u8>, id: u32, authority: &str, path: &str) {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    literal(&mut block, 4, path); // :path
    literal(&mut block, 1, authority); // :authority
    frame(out, HEADERS, 0x4 | 0x1, id, &block);
}

/// Appends RST_STREAM(CANCEL) for stream `id`.
pub fn cancel(out: &mut Vec<u8>, id: u32) {
    frame(out, RST_STREAM, 0, id, &CANCEL.to_be_bytes());
}

/// A literal header field without indexing, name from the static table.
fn literal(block: &mut Vec<u8>, name_index: u8, value: &str) {
    assert!(
        name_index < 16 && value.len() < 127,
        "kept to one-byte prefixes"
    );
    block.push(name_index);
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// A raw h2c connection past its handshake.
pub struct Conn {
    /// Reads frames.
    pub reader: FrameReader,
    /// Writes bytes.
    pub writer: OwnedWriteHalf,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, if it sent one.
    pub max_streams: Option<u32>,
}

impl Conn {
    /// Connects with prior knowledge, exchanges SETTINGS and acknowledges the
    /// server's, so its limits are in force for everything sent after.
    pub async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (read, mut writer) = stream.into_split();
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        frame(&mut hello, SETTINGS, 0, 0, &[]);
        writer.write_all(&hello).await.expect("preface");
        let mut reader = FrameReader {
            read,
            buf: Vec::new(),
        };
        let settings = loop {
            let f = reader
                .next(Duration::from_secs(5))
                .await
                .expect("server SETTINGS");
            if f.kind == SETTINGS && f.flags & 0x1 == 0 {
                break f;
            }
        };
        let max_streams = settings
            .payload
            .chunks_exact(6)
            .find(|s| u16::from_be_bytes([s[0], s[1]]) == 0x3)
            .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
        let mut ack = Vec::new();
        frame(&mut ack, SETTINGS, 0x1, 0, &[]);
        writer.write_all(&ack).await.expect("SETTINGS ack");
        Conn {
            reader,
            writer,
            max_streams,
        }
    }
}

/// Reads frames from the server.
pub struct FrameReader {
    read: OwnedReadHalf,
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frame, or `None` at EOF, on error, or after `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5] & 0x7f,
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]),
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Some(f);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.read.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }
}
