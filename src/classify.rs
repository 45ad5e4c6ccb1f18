//! Request → route class. Pure: no I/O, no locks, no allocation.
//!
//! Routes are matched in file order; the first match wins; no match means
//! [`RouteClass::Normal`]. Only the method, the host and the **path** are
//! looked at: no client header can make a request primary.
//!
//! A path must be in canonical form to be matched at all. The origin may
//! resolve `/download/../admin`, `//download/x` or `/%64ownload/x` to
//! something other than what lifeboat would match, so a path with empty
//! segments, dot segments (plain or percent-encoded), an encoded `/`, or a
//! percent-encoded unreserved character is classed `Normal`, whatever the
//! routes say. Legitimate links never take those forms.

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

/// A path pattern: `*` matches within one segment, `**` across segments, and
/// a trailing `*` (as in `/download/*`) matches the rest of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// A glob pattern; it must start with `/`.
    pub fn glob(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!(
                "a path pattern starts with \"/\", found \"{pattern}\""
            ));
        }
        if pattern.contains("***") {
            return Err(format!(
                "\"***\" is not a pattern; use \"*\" or \"**\", found \"{pattern}\""
            ));
        }
        // A single trailing `*` takes the rest of the path: `/download/*`
        // covers `/download/3.0/os.iso` too.
        let mut p = pattern.to_string();
        if p.ends_with('*') && !p.ends_with("**") {
            p.push('*');
        }
        Ok(Pattern(p))
    }

    /// A literal prefix: `"/download/"` matches everything below it.
    pub fn prefix(prefix: &str) -> Result<Self, String> {
        if !prefix.starts_with('/') || prefix.contains('*') {
            return Err(format!(
                "a prefix starts with \"/\" and has no \"*\", found \"{prefix}\""
            ));
        }
        Ok(Pattern(format!("{prefix}**")))
    }

    /// Whether `path` (canonical) matches.
    pub fn matches(&self, path: &str) -> bool {
        glob(self.0.as_bytes(), path.as_bytes())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Glob matching with `*` (not across `/`) and `**` (anything).
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match pat {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=seg).any(|i| glob(rest, &s[i..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
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

/// Whether a path is in the one form every server agrees on: starts with
/// `/`, no empty or dot segments, and no percent-encoding of `/`, `.` or any
/// other unreserved character (RFC 3986 §2.3).
pub fn is_canonical(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let decoded = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match decoded {
                Some(c)
                    if c.is_ascii_alphanumeric()
                        || matches!(c, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\') =>
                {
                    return false;
                }
                Some(_) => i += 3,
                None => return false,
            }
        } else {
            if b[i] == b'\\' {
                return false;
            }
            i += 1;
        }
    }
    // No dot segments, and no empty segment except a trailing one ("/a/").
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        if seg == "." || seg == ".." || (seg.is_empty() && segments.peek().is_some()) {
            return false;
        }
    }
    true
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
        ] {
            assert_eq!(
                class(path),
                RouteClass::Normal,
                "{path:?} passed as primary"
            );
        }
        assert_eq!(
            class("/download/release%20notes.pdf"),
            RouteClass::Primary,
            "reserved escapes are fine"
        );
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

    #[test]
    fn globs() {
        let p = Pattern::glob("/a/**/z").unwrap();
        assert!(p.matches("/a/b/c/z"));
        assert!(!p.matches("/a/b/c/y"));
        let p = Pattern::prefix("/files/").unwrap();
        assert!(p.matches("/files/a/b"));
        assert!(!p.matches("/file"));
        assert!(Pattern::glob("download").is_err());
        assert!(Pattern::prefix("/x/*").is_err());
    }
}
