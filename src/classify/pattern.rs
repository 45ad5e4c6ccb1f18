//! Route path patterns, compiled once when the config is loaded.
//!
//! The language: `*` matches within one segment (not across `/`), `**`
//! matches anything (across segments, or nothing), a single trailing `*`
//! (as in `/download/*`) matches the rest of the path, every other byte is
//! itself.
//!
//! A pattern compiles to one of three matchers. Most route patterns are a
//! literal prefix followed by "anything" (`/download/*`) or a literal path
//! (`/healthz`): a `starts_with` or an `==`. Everything else runs a
//! bit-parallel automaton (Shift-And): one bit per pattern token, one
//! table lookup and a few shifts per path byte, so the time is linear in
//! the path whatever the pattern. The backtracking matcher it replaces was
//! polynomial in the path's length, to the power of the number of `**`.

/// Tokens a pattern may have at most, beyond the literal cases: one bit
/// each in a `u64`.
const MAX_TOKENS: usize = 64;

/// A path pattern.
#[derive(Clone)]
pub struct Pattern {
    /// As written, with a trailing `*` already widened to `**`.
    source: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    /// A literal path.
    Exact(String),
    /// A literal prefix, then anything.
    Prefix(String),
    /// The general case.
    Automaton(Box<Automaton>),
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

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
        Self::compile(p)
    }

    /// A literal prefix: `"/download/"` matches everything below it.
    pub fn prefix(prefix: &str) -> Result<Self, String> {
        if !prefix.starts_with('/') || prefix.contains('*') {
            return Err(format!(
                "a prefix starts with \"/\" and has no \"*\", found \"{prefix}\""
            ));
        }
        Self::compile(format!("{prefix}**"))
    }

    fn compile(source: String) -> Result<Self, String> {
        let stars = source.matches('*').count();
        let matcher = match source.strip_suffix("**") {
            _ if stars == 0 => Matcher::Exact(source.clone()),
            Some(head) if !head.contains('*') => Matcher::Prefix(head.to_string()),
            _ => Matcher::Automaton(Box::new(Automaton::new(&source)?)),
        };
        Ok(Pattern { source, matcher })
    }

    /// Whether `path` (canonical) matches.
    pub fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(p) => path == p,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Automaton(a) => a.matches(path.as_bytes()),
        }
    }

    /// The pattern (a trailing `*` shown as the `**` it means).
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Shift-And over the pattern's tokens. Bit `i` set in the state means
/// "the first `i` tokens have matched the path so far"; bit `len` set at
/// the end means the whole pattern has.
#[derive(Clone)]
struct Automaton {
    /// For each byte, the tokens it can advance past: literals equal to it.
    advance: [u64; 256],
    /// Tokens that are `*` (stay on any byte but `/`, or be skipped).
    star: u64,
    /// Tokens that are `**` (stay on any byte, or be skipped).
    any: u64,
    /// The bit of the accepting state.
    accept: u64,
}

impl Automaton {
    fn new(pattern: &str) -> Result<Self, String> {
        let bytes = pattern.as_bytes();
        let mut advance = [0u64; 256];
        let (mut star, mut any) = (0u64, 0u64);
        let mut i = 0;
        let mut token = 0;
        while i < bytes.len() {
            if token >= MAX_TOKENS - 1 {
                return Err(format!(
                    "a path pattern has at most {} characters and wildcards, found \"{pattern}\"",
                    MAX_TOKENS - 1
                ));
            }
            let bit = 1u64 << token;
            match (bytes[i], bytes.get(i + 1)) {
                (b'*', Some(b'*')) => {
                    any |= bit;
                    i += 2;
                }
                (b'*', _) => {
                    star |= bit;
                    i += 1;
                }
                (c, _) => {
                    advance[c as usize] |= bit;
                    i += 1;
                }
            }
            token += 1;
        }
        Ok(Automaton {
            advance,
            star,
            any,
            accept: 1u64 << token,
        })
    }

    /// Adds the states reachable by skipping wildcards (they match nothing).
    fn close(&self, mut state: u64) -> u64 {
        loop {
            let next = state | ((state & (self.star | self.any)) << 1);
            if next == state {
                return state;
            }
            state = next;
        }
    }

    fn matches(&self, path: &[u8]) -> bool {
        let mut state = self.close(1);
        for &b in path {
            // A literal token moves on when it equals the byte; a wildcard
            // stays where it is (`*` only within a segment).
            let wild = if b == b'/' {
                self.any
            } else {
                self.star | self.any
            };
            state = ((state & self.advance[b as usize]) << 1) | (state & wild);
            if state == 0 {
                return false;
            }
            state = self.close(state);
        }
        state & self.accept != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The backtracking matcher this one replaced: the reference for the
    /// meaning of a pattern.
    fn reference(pat: &[u8], s: &[u8]) -> bool {
        match pat {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            [b'*', rest @ ..] => {
                let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
                (0..=seg).any(|i| reference(rest, &s[i..]))
            }
            [c, rest @ ..] => s.first() == Some(c) && reference(rest, &s[1..]),
        }
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
        let p = Pattern::glob("/static/*.css").unwrap();
        assert!(p.matches("/static/site.css"));
        assert!(!p.matches("/static/a/site.css"));
        let p = Pattern::glob("/download/*").unwrap();
        assert_eq!(p.as_str(), "/download/**");
        assert!(p.matches("/download/3.0/os.iso"));
        assert!(p.matches("/download/"));
        assert!(!p.matches("/downloads"));
        assert!(Pattern::glob("/healthz").unwrap().matches("/healthz"));
        assert!(!Pattern::glob("/healthz").unwrap().matches("/healthz/"));
    }

    #[test]
    fn the_kinds_of_matcher() {
        let kind = |p: &str| match Pattern::glob(p).unwrap().matcher {
            Matcher::Exact(_) => "exact",
            Matcher::Prefix(_) => "prefix",
            Matcher::Automaton(_) => "automaton",
        };
        assert_eq!(kind("/healthz"), "exact");
        assert_eq!(kind("/download/*"), "prefix");
        assert_eq!(kind("/download/**"), "prefix");
        assert_eq!(kind("/a/*/b"), "automaton");
        assert_eq!(kind("/*.iso"), "automaton");
    }

    #[test]
    fn a_pathological_pattern_takes_time_linear_in_the_path() {
        // Backtracking tries about n^4 splits here before saying no.
        let p = Pattern::glob("/**a**a**a**a**b").unwrap();
        let path = format!("/{}", "a".repeat(4000));
        assert!(!p.matches(&path));
        assert!(p.matches(&format!("{path}b")));
    }

    #[test]
    fn a_pattern_too_long_for_the_automaton_is_refused() {
        let long = format!("/*{}", "x".repeat(70));
        assert!(Pattern::glob(&long).unwrap_err().contains("at most 63"));
        // A literal one of any length needs no automaton.
        assert!(Pattern::glob(&format!("/{}", "x".repeat(200))).is_ok());
    }

    proptest! {
        #[test]
        fn means_what_the_backtracking_matcher_meant(
            pat in "/[ab/*]{0,10}",
            path in "/[ab/]{0,14}",
        ) {
            prop_assume!(!pat.contains("***"));
            let p = Pattern::glob(&pat).unwrap();
            prop_assert_eq!(
                p.matches(&path),
                reference(p.as_str().as_bytes(), path.as_bytes()),
                "pattern {} path {}", p.as_str(), path
            );
        }
    }
}
