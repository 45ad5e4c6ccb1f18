//! Request → route class. Pure: no I/O, no locks, no allocation.
//!
//! Routes are matched in file order; the first match wins; no match means
//! [`RouteClass::Normal`]. Only the method, the host and the **path** are
//! looked at: no client header can make a request primary.
//!
//! A path must be in canonical form to be matched at all: a form that every
//! common origin reads the same way lifeboat does. Origins disagree on
//! much: Tomcat and Jetty cut `;parameters` from each segment before they
//! resolve dot segments (`/download/..;/admin` is `/admin` there); some
//! frameworks decode twice (`%252e%252e` is `..`); lenient UTF-8 decoders
//! read overlong forms (`%c0%ae` is `.`); Windows servers drop trailing dots
//! and spaces from a segment (`.. ` is `..`) and fold fullwidth and other
//! compatibility characters (`．．` is `..`). So a path is classed `Normal`,
//! whatever the routes say, if it has any of: empty segments; segments
//! that end in a dot or a space (`.`, `..`, `.. `, `x.`; plain or encoded);
//! a `;` (plain or encoded); a `\`; an encoded `%`, `/` or unreserved
//! character; an encoded control character; percent-decoded bytes that are
//! not valid (shortest-form) UTF-8; a compatibility form of `.`, `/`, `\`
//! or `%`. Legitimate download links take none of those forms.

mod pattern;

pub use pattern::Pattern;

use http::Method;

/// How a request is treated under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteClass {
    /// The path everybody came for: proxied in every mode, with reserved capacity.
    Primary,
    /// Always proxied (assets the download page needs, health checks).
    Keep,
    /// Everything else: the first to be shed.
    Normal,
}

impl RouteClass {
    /// All classes, highest priority first.
    pub const ALL: [RouteClass; 3] = [RouteClass::Primary, RouteClass::Keep, RouteClass::Normal];

    /// Lower-case name, as in the config file and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Primary => "primary",
            RouteClass::Keep => "keep",
            RouteClass::Normal => "normal",
        }
    }

    /// Index into per-class arrays (0 = primary).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One `[[route]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// Operator's name for the route (logs, metrics).
    pub name: String,
    /// Path pattern.
    pub pattern: Pattern,
    /// Methods it applies to; empty means any.
    pub methods: Vec<Method>,
    /// Host it applies to (without port, case-insensitive); `None` means any.
    pub host: Option<String>,
    /// The class it assigns.
    pub class: RouteClass,
}

impl Route {
    fn matches(&self, method: &Method, host: Option<&str>, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self
                .host
                .as_deref()
                .is_none_or(|h| host.is_some_and(|x| strip_port(x).eq_ignore_ascii_case(h)))
            && self.pattern.matches(path)
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || host.starts_with('[') => {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }
        _ => host,
    }
}

/// The route table.
#[derive(Debug, Clone, Default)]
pub struct Routes(pub Vec<Route>);

impl Routes {
    /// The class of a request, and the name of the route that decided it.
    pub fn classify(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> (RouteClass, Option<&str>) {
        if !is_canonical(path) {
            return (RouteClass::Normal, None);
        }
        self.0
            .iter()
            .find(|r| r.matches(method, host, path))
            .map_or((RouteClass::Normal, None), |r| {
                (r.class, Some(r.name.as_str()))
            })
    }

    /// Primary patterns, for links on the apology page.
    pub fn primary_patterns(&self) -> impl Iterator<Item = &Route> {
        self.0.iter().filter(|r| r.class == RouteClass::Primary)
    }
}

/// Whether a path is in the one form every server agrees on (see the
/// module documentation): starts with `/`, and no reading of it by a common
/// origin differs from lifeboat's.
pub fn is_canonical(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut utf8 = Utf8::default();
    let mut segment = Segment::default();
    let mut i = 1;
    loop {
        if i == b.len() || b[i] == b'/' {
            // Dot-like segments are refused; empty ones too, except a
            // trailing one ("/a/").
            if !utf8.at_boundary() || segment.dot_like() || (segment.len == 0 && i < b.len()) {
                return false;
            }
            if i == b.len() {
                return true;
            }
            segment = Segment::default();
            i += 1;
            continue;
        }
        let (byte, escaped) = if b[i] == b'%' {
            let Some(byte) = b.get(i + 1..i + 3).and_then(hex_pair) else {
                return false;
            };
            i += 3;
            (byte, true)
        } else {
            i += 1;
            (b[i - 1], false)
        };
        if !allowed(byte, escaped) {
            return false;
        }
        match utf8.feed(byte) {
            Err(()) => return false,
            Ok(Some(c)) if CONFUSABLE.contains(&c) => return false,
            Ok(_) => {}
        }
        segment.push(byte);
    }
}

/// Whether `byte`, written plainly or percent-encoded, may appear in a
/// canonical path.
fn allowed(byte: u8, escaped: bool) -> bool {
    let separator = matches!(byte, b'\\' | b';');
    let control = byte < 0x20 || byte == 0x7f;
    let must_not_be_encoded =
        byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/' | b'%');
    !(separator || control || escaped && must_not_be_encoded)
}

fn hex_pair(h: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(h[0])? * 16 + digit(h[1])?) as u8)
}

/// Characters that Unicode compatibility folding (NFKC, Windows "best fit")
/// turns into `.`, `..`, `/`, `\` or `%`: a lenient origin would read them
/// as path syntax.
const CONFUSABLE: [u32; 13] = [
    0x2024, 0x2025, 0xFE52,
    0xFF0E, // one-dot leader, two-dot leader, small and fullwidth full stop
    0x2044, 0x2215, 0xFF0F,
    0x29F8, // fraction slash, division slash, fullwidth solidus, big solidus
    0xFE68, 0xFF3C, 0x29F5, 0x29F9, // small, fullwidth, set-minus-like reverse solidus
    0xFF05, // fullwidth percent sign
];

/// One path segment as decoded so far.
#[derive(Default)]
struct Segment {
    len: usize,
    /// The last byte is a `.` or a space: Windows drops those, so `.. ` and
    /// `...` can mean `..`, and `x.` means `x`.
    trailing_dot_or_space: bool,
}

impl Segment {
    fn push(&mut self, byte: u8) {
        self.trailing_dot_or_space = matches!(byte, b'.' | b' ');
        self.len += 1;
    }

    /// `.`, `..`, and any segment Windows would read differently.
    fn dot_like(&self) -> bool {
        self.trailing_dot_or_space
    }
}

/// A streaming UTF-8 validator (RFC 3629 §4): shortest forms only, no
/// surrogates, nothing above U+10FFFF.
#[derive(Default)]
struct Utf8 {
    /// Continuation bytes still expected.
    need: u8,
    /// Allowed range of the next continuation byte.
    lo: u8,
    hi: u8,
    /// The code point so far.
    cp: u32,
}

impl Utf8 {
    /// Takes one byte: `Ok(Some(c))` when it completes a multi-byte
    /// character `c`, `Err` when the sequence is invalid.
    fn feed(&mut self, b: u8) -> Result<Option<u32>, ()> {
        if self.need > 0 {
            if !(self.lo..=self.hi).contains(&b) {
                return Err(());
            }
            self.cp = self.cp << 6 | u32::from(b & 0x3f);
            self.need -= 1;
            (self.lo, self.hi) = (0x80, 0xbf);
            return Ok((self.need == 0).then_some(self.cp));
        }
        let (need, lo, hi, bits) = match b {
            0x00..=0x7f => return Ok(None),
            0xc2..=0xdf => (1, 0x80, 0xbf, b & 0x1f),
            0xe0 => (2, 0xa0, 0xbf, b & 0x0f),
            0xed => (2, 0x80, 0x9f, b & 0x0f),
            0xe1..=0xef => (2, 0x80, 0xbf, b & 0x0f),
            0xf0 => (3, 0x90, 0xbf, b & 0x07),
            0xf1..=0xf3 => (3, 0x80, 0xbf, b & 0x07),
            0xf4 => (3, 0x80, 0x8f, b & 0x07),
            _ => return Err(()),
        };
        (self.need, self.lo, self.hi, self.cp) = (need, lo, hi, u32::from(bits));
        Ok(None)
    }

    /// No character is cut in the middle.
    fn at_boundary(&self) -> bool {
        self.need == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let r = |name: &str, pat: &str, class| Route {
            name: name.into(),
            pattern: Pattern::glob(pat).unwrap(),
            methods: vec![],
            host: None,
            class,
        };
        Routes(vec![
            r("downloads", "/download/*", RouteClass::Primary),
            r("assets", "/static/*.css", RouteClass::Keep),
            r("health", "/healthz", RouteClass::Keep),
        ])
    }

    fn class(path: &str) -> RouteClass {
        routes().classify(&Method::GET, Some("example.org"), path).0
    }

    #[test]
    fn matches_by_pattern() {
        assert_eq!(class("/download/os.iso"), RouteClass::Primary);
        assert_eq!(class("/download/3.0/os.iso"), RouteClass::Primary);
        assert_eq!(class("/download/"), RouteClass::Primary);
        assert_eq!(class("/download"), RouteClass::Normal);
        assert_eq!(class("/downloads/x"), RouteClass::Normal);
        assert_eq!(class("/static/site.css"), RouteClass::Keep);
        assert_eq!(
            class("/static/img/site.css"),
            RouteClass::Normal,
            "* does not cross /"
        );
        assert_eq!(class("/healthz"), RouteClass::Keep);
        assert_eq!(class("/"), RouteClass::Normal);
    }

    #[test]
    fn tricks_never_pass_as_primary() {
        for path in [
            "/download/../admin",
            "/download/./x",
            "//download/x",
            "/download//x",
            "/%64ownload/x",
            "/download%2Fx",
            "/download/%2e%2e/admin",
            "/download/%2E%2E/admin",
            "/download/%zz",
            "/download/x%",
            "/download\\..\\admin",
            "download/x",
            "",
            // Path parameters: Tomcat and Jetty cut them before resolving.
            "/download/..;/admin/secret.txt",
            "/download/.;x/../../admin",
            "/download/x;jsessionid=1",
            "/download/%3b/x",
            // Double encoding.
            "/download/%252e%252e/admin",
            "/download/%25",
            // Overlong UTF-8 for `.`, `/` and `\`.
            "/download/%c0%ae%c0%ae/admin",
            "/download/..%c0%afadmin",
            "/download/%e0%80%ae%e0%80%ae/admin",
            "/download/..%c1%9cadmin",
            // Windows: trailing dots and spaces, fullwidth forms.
            "/download/..%20/admin",
            "/download/.../admin",
            "/download/%ef%bc%8e%ef%bc%8e/admin",
            "/download/..%ef%bc%8fadmin",
            "/download/%e2%80%a5/admin",
            "/download/%ef%bc%852e%ef%bc%852e/admin",
            // Control characters, invalid and cut UTF-8.
            "/download/x%00.iso",
            "/download/%ff",
            "/download/%c3",
            "/download/%ed%a0%80",
        ] {
            assert_eq!(
                class(path),
                RouteClass::Normal,
                "{path:?} passed as primary"
            );
        }
        for fine in [
            "/download/release%20notes.pdf",
            "/download/%c3%a9t%c3%a9.pdf",
            "/download/x%2b1.iso",
            "/download/v1.2/x..y.iso",
            "/download/",
        ] {
            assert_eq!(class(fine), RouteClass::Primary, "{fine} should be primary");
        }
    }

    #[test]
    fn methods_and_hosts() {
        let mut r = routes();
        r.0[0].methods = vec![Method::GET, Method::HEAD];
        r.0[0].host = Some("dl.example.org".into());
        let c = |m: &Method, h: &str| r.classify(m, Some(h), "/download/x").0;
        assert_eq!(c(&Method::GET, "dl.example.org"), RouteClass::Primary);
        assert_eq!(c(&Method::HEAD, "DL.example.org:443"), RouteClass::Primary);
        assert_eq!(c(&Method::POST, "dl.example.org"), RouteClass::Normal);
        assert_eq!(c(&Method::GET, "www.example.org"), RouteClass::Normal);
        assert_eq!(
            r.classify(&Method::GET, None, "/download/x").0,
            RouteClass::Normal
        );
    }
}
