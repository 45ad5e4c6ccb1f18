//! Config errors that an operator can act on: every rejected file is reported
//! as `file:line:column: key: what was expected`, followed by the offending
//! line with a caret, the way compilers do. Spans come from toml's parser;
//! the dotted key is recovered by walking the parsed document.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

/// One problem in a config file, located precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// File name as given by the operator.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Dotted key such as `origin.connect_timeout`, when one applies.
    pub key: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
    /// The offending source line and a caret under the span.
    pub snippet: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

/// The text of a config file and its name, for locating spans.
pub struct Source<'a> {
    /// File name shown in errors.
    pub name: &'a str,
    /// Whole file contents.
    pub text: &'a str,
}

impl Source<'_> {
    /// A diagnostic for `span`, with the key found in `doc` when one is given.
    pub fn diagnostic(
        &self,
        span: Option<Range<usize>>,
        doc: Option<&DeTable<'_>>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let span = span.unwrap_or(0..0);
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line = self.text[..start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let key = key.or_else(|| doc.and_then(|d| key_at(d, start)));
        let text = &self.text[line_start..line_end];
        let width = self.text[start..span.end.clamp(start, line_end)]
            .chars()
            .count()
            .max(1);
        let gutter = " ".repeat(line.to_string().len());
        let snippet = format!(
            "{gutter} |\n{line} | {text}\n{gutter} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(width)
        );
        ConfigError::Invalid(Box::new(Diagnostic {
            file: self.name.to_string(),
            line,
            column,
            key,
            message: message.into(),
            snippet,
        }))
    }
}

/// The dotted path of the innermost key whose name or value covers `pos`.
pub fn key_at(doc: &DeTable<'_>, pos: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk_table(doc, "", pos, &mut best);
    best.map(|(_, path)| path)
}

fn walk_table(table: &DeTable<'_>, prefix: &str, pos: usize, best: &mut Option<(usize, String)>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        consider(key.span(), &path, pos, best);
        consider(value.span(), &path, pos, best);
        walk_value(value, &path, pos, best);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    pos: usize,
    best: &mut Option<(usize, String)>,
) {
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, path, pos, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                consider(item.span(), &path, pos, best);
                walk_value(item, &path, pos, best);
            }
        }
        _ => {}
    }
}

/// Keeps the narrowest span containing `pos`: the innermost key wins.
fn consider(span: Range<usize>, path: &str, pos: usize, best: &mut Option<(usize, String)>) {
    if span.contains(&pos) || (span.is_empty() && span.start == pos) {
        let width = span.len();
        if best.as_ref().is_none_or(|(w, _)| width <= *w) {
            *best = Some((width, path.to_string()));
        }
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into a
/// message that suggests the nearest valid key.
pub fn explain_unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let valid: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let nearest = valid
        .iter()
        .map(|v| (edit_distance(unknown, v), *v))
        .filter(|(d, v)| *d <= (v.len() / 3).max(2))
        .min();
    let list = valid.join(", ");
    Some(match nearest {
        Some((_, v)) => {
            format!("unknown key `{unknown}`; did you mean `{v}`? (valid keys here: {list})")
        }
        None if valid.is_empty() => format!("unknown key `{unknown}`; this table takes no keys"),
        None => format!("unknown key `{unknown}` (valid keys here: {list})"),
    })
}

/// Levenshtein distance, for "did you mean" suggestions on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_nearest_key() {
        let msg = "unknown field `conect_timeout`, expected one of `url`, `connect_timeout`, `ttfb_timeout`";
        let out = explain_unknown_key(msg).unwrap();
        assert!(out.contains("did you mean `connect_timeout`?"), "{out}");
        let far = "unknown field `zzzzzz`, expected `url` or `http2`";
        let out = explain_unknown_key(far).unwrap();
        assert!(!out.contains("did you mean"), "{out}");
        assert!(out.contains("url, http2"), "{out}");
    }

    #[test]
    fn locates_line_column_and_key() {
        let text = "[origin]\nurl = \"http://x\"\nconnect_timeout = \"soon\"\n";
        let doc = DeTable::parse(text).unwrap();
        let src = Source {
            name: "t.toml",
            text,
        };
        let start = text.find("\"soon\"").unwrap();
        let ConfigError::Invalid(d) =
            src.diagnostic(Some(start..start + 6), Some(doc.get_ref()), None, "bad")
        else {
            panic!("expected a diagnostic")
        };
        assert_eq!((d.line, d.column), (3, 19));
        assert_eq!(d.key.as_deref(), Some("origin.connect_timeout"));
        assert!(d.snippet.contains("^^^^^^"), "{}", d.snippet);
    }
}
