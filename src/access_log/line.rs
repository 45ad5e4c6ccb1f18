//! One access line, written straight into the writer's buffer: no
//! `tracing` event, no intermediate `String`, no float. The layout is the
//! one `tracing-subscriber` gives every other line of the process, so the
//! text and JSON formats read (and parse) as they did when access lines
//! were `tracing` events:
//!
//! ```text
//! 2026-11-29T16:23:31.845610Z  INFO lifeboat::access: method=GET path="/x" version=HTTP/1.1 status=503 bytes=3037 duration_us=45 peer=127.0.0.1:57988 class="normal" shed="degraded" end="complete"
//! {"timestamp":"2026-11-29T16:23:31.845610Z","level":"INFO","method":"GET","path":"/x",…,"end":"complete","target":"lifeboat::access"}
//! ```
//!
//! Durations are whole microseconds (`duration_us`). Strings are quoted
//! and escaped (JSON escapes in JSON, Rust's `Debug` escapes in text, as
//! `tracing-subscriber` writes them), so no value can end a line early.

use std::fmt::{self, Display, Write as _};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Method, Version};

use crate::admission::ShedReason;
use crate::classify::RouteClass;
use crate::config::LogFormat;
use crate::conn::BodyError;

/// The target every access line names, as its `tracing` events did.
pub const TARGET: &str = "lifeboat::access";

/// How a request's response ended.
#[derive(Debug, Clone, Copy)]
pub enum End<'a> {
    /// The body was sent to its end.
    Complete,
    /// The client went away before the end.
    Aborted,
    /// The body failed (idle, too slow, broken stream).
    Failed(&'a BodyError),
}

/// What one access line says.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The client's HTTP version.
    pub version: Version,
    /// The response status.
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
    /// From the head's arrival to the end of the response, µs.
    pub duration_us: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The route class, once classified.
    pub class: Option<RouteClass>,
    /// Why the request got the apology, if it did.
    pub shed: Option<ShedReason>,
    /// How the response ended.
    pub end: End<'a>,
}

/// One second's shed requests for one reason, when only a sample of them
/// get their own line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShedSummary {
    /// The reason.
    pub reason: ShedReason,
    /// Shed requests by class, in [`RouteClass::ALL`] order.
    pub classes: [u64; 3],
    /// How many of them got their own line.
    pub logged: u64,
}

impl ShedSummary {
    /// Shed requests, all classes.
    pub fn count(&self) -> u64 {
        self.classes.iter().sum()
    }
}

/// Appends the access line for `r`, stamped `ts` (the end of its
/// response, from [`Clock::stamp`]), newline included.
pub fn request(out: &mut Vec<u8>, format: LogFormat, ts: &Stamp, r: &Request<'_>) {
    let mut w = Line::open(out, format, ts);
    w.token("method", r.method.as_str());
    w.string("path", r.path);
    w.token("version", version(r.version));
    w.number("status", r.status.into());
    w.number("bytes", r.bytes);
    w.number("duration_us", r.duration_us);
    w.key("peer");
    match w.format {
        LogFormat::Text => put(w.out, format_args!("{}", r.peer)),
        LogFormat::Json => quoted(w.out, LogFormat::Json, r.peer),
    }
    if let Some(class) = r.class {
        w.string("class", class.as_str());
    }
    if let Some(shed) = r.shed {
        w.string("shed", shed.as_str());
    }
    match r.end {
        End::Complete => w.string("end", "complete"),
        End::Aborted => w.string("end", "aborted by client"),
        End::Failed(e) => {
            w.key("end");
            quoted(w.out, w.format, e);
        }
    }
    w.close();
}

/// Appends the summary line for `s`, newline included:
/// `shed summary reason="degraded" count=40213 logged=402
/// classes=primary:0,keep:1213,normal:39000` (in JSON, `classes` is an
/// object).
pub fn summary(out: &mut Vec<u8>, format: LogFormat, at: SystemTime, s: &ShedSummary) {
    let ts = Clock::default().stamp(at);
    let mut w = Line::open(out, format, &ts);
    w.message("shed summary");
    w.string("reason", s.reason.as_str());
    w.number("count", s.count());
    w.number("logged", s.logged);
    w.classes(&s.classes);
    w.close();
}

/// A timestamp as tracing-subscriber writes it: RFC 3339, UTC, in
/// microseconds (`2026-11-29T16:23:31.845610Z`).
pub type Stamp = [u8; 27];

/// Renders [`Stamp`]s, the date and time of day once a second: what is
/// left per line is six digits.
#[derive(Debug, Default)]
pub struct Clock {
    second: Option<u64>,
    /// `2026-11-29T16:23:31`.
    prefix: [u8; 19],
}

impl Clock {
    /// The stamp for `at`.
    pub fn stamp(&mut self, at: SystemTime) -> Stamp {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(since.as_secs()) {
            let text = humantime::format_rfc3339_seconds(at).to_string();
            if let Some(prefix) = text.as_bytes().get(..19) {
                self.prefix.copy_from_slice(prefix);
            }
            self.second = Some(since.as_secs());
        }
        let mut ts = [0u8; 27];
        ts[..19].copy_from_slice(&self.prefix);
        ts[19] = b'.';
        let mut micros = since.subsec_micros();
        for digit in ts[20..26].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        ts[26] = b'Z';
        ts
    }
}

/// The version as `http::Version`'s `Debug` writes it, without `fmt`.
fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    }
}

/// A line being written, in either format.
struct Line<'a> {
    out: &'a mut Vec<u8>,
    format: LogFormat,
}

impl<'a> Line<'a> {
    fn open(out: &'a mut Vec<u8>, format: LogFormat, ts: &Stamp) -> Self {
        match format {
            LogFormat::Text => {
                out.extend_from_slice(ts);
                out.extend_from_slice(b"  INFO ");
                out.extend_from_slice(TARGET.as_bytes());
                out.push(b':');
            }
            LogFormat::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                out.extend_from_slice(ts);
                out.extend_from_slice(b"\",\"level\":\"INFO\"");
            }
        }
        Line { out, format }
    }

    fn key(&mut self, key: &str) {
        match self.format {
            LogFormat::Text => {
                self.out.push(b' ');
                self.out.extend_from_slice(key.as_bytes());
                self.out.push(b'=');
            }
            LogFormat::Json => {
                self.out.extend_from_slice(b",\"");
                self.out.extend_from_slice(key.as_bytes());
                self.out.extend_from_slice(b"\":");
            }
        }
    }

    /// The event's message: bare in text, `"message"` in JSON.
    fn message(&mut self, text: &str) {
        match self.format {
            LogFormat::Text => {
                self.out.push(b' ');
                self.out.extend_from_slice(text.as_bytes());
            }
            LogFormat::Json => {
                self.out.extend_from_slice(b",\"message\":");
                quoted_str(self.out, LogFormat::Json, text);
            }
        }
    }

    fn number(&mut self, key: &str, n: u64) {
        self.key(key);
        decimal(self.out, n);
    }

    /// A value that needs no quotes in text (a method, a version: tokens,
    /// no spaces, no quotes) and is a string in JSON.
    fn token(&mut self, key: &str, value: &str) {
        self.key(key);
        match self.format {
            LogFormat::Text => self.out.extend_from_slice(value.as_bytes()),
            LogFormat::Json => quoted_str(self.out, LogFormat::Json, value),
        }
    }

    /// A value quoted and escaped in both formats.
    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        quoted_str(self.out, self.format, value);
    }

    fn classes(&mut self, counts: &[u64; 3]) {
        self.key("classes");
        let json = self.format == LogFormat::Json;
        if json {
            self.out.push(b'{');
        }
        for (i, (class, n)) in RouteClass::ALL.iter().zip(counts).enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let name = class.as_str();
            if json {
                put(self.out, format_args!("{sep}\"{name}\":{n}"));
            } else {
                put(self.out, format_args!("{sep}{name}:{n}"));
            }
        }
        if json {
            self.out.push(b'}');
        }
    }

    fn close(self) {
        match self.format {
            LogFormat::Text => self.out.push(b'\n'),
            LogFormat::Json => {
                put(self.out, format_args!(",\"target\":\"{TARGET}\"}}\n"));
            }
        }
    }
}

/// Appends formatted text (writing to a `Vec` cannot fail).
fn put(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    let _ = Bytes(out).write_fmt(args);
}

/// Appends `n` in decimal, without `fmt`.
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `value` in double quotes, escaped for `format`.
fn quoted_str(out: &mut Vec<u8>, format: LogFormat, value: &str) {
    out.push(b'"');
    let _ = Escaped { out, format }.write_str(value);
    out.push(b'"');
}

/// [`quoted_str`] for anything `Display`.
fn quoted(out: &mut Vec<u8>, format: LogFormat, value: impl Display) {
    out.push(b'"');
    let _ = write!(Escaped { out, format }, "{value}");
    out.push(b'"');
}

/// `fmt::Write` into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `fmt::Write` that escapes what it is given: `"`, `\` and control
/// characters, as JSON or as Rust's `Debug` for `str` does.
struct Escaped<'a> {
    out: &'a mut Vec<u8>,
    format: LogFormat,
}

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c.is_control()) {
            self.out.extend_from_slice(&rest.as_bytes()[..i]);
            let c = rest[i..].chars().next().unwrap_or('\0');
            match (c, self.format) {
                ('"', _) => self.out.extend_from_slice(b"\\\""),
                ('\\', _) => self.out.extend_from_slice(b"\\\\"),
                ('\n', _) => self.out.extend_from_slice(b"\\n"),
                ('\r', _) => self.out.extend_from_slice(b"\\r"),
                ('\t', _) => self.out.extend_from_slice(b"\\t"),
                (c, LogFormat::Json) => put(self.out, format_args!("\\u{:04x}", c as u32)),
                (c, LogFormat::Text) => put(self.out, format_args!("\\u{{{:x}}}", c as u32)),
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.out.extend_from_slice(rest.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
