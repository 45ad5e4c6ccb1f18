//! Property tests (hardening item 12): the config parser, path
//! canonicalisation and classification, and the apology template, fed
//! generated input. CI runs proptest's default 256 cases per property; a
//! longer run is `PROPTEST_CASES=100000 cargo test --locked props::`.

use std::path::Path;

use http::Method;
use lifeboat::apology::{Context, Pages};
use lifeboat::classify::{RouteClass, is_canonical};
use lifeboat::config::{self, ConfigError};
use proptest::prelude::*;

const REFERENCE: &str = include_str!("../../config/lifeboat.toml");

const SMALL: &str = r#"
[origin]
url = "http://127.0.0.1:8000"

[[route]]
name = "downloads"
match = "/download/*"
class = "primary"

[[route]]
name = "static"
prefix = "/static/"
class = "keep"
"#;

fn small() -> config::Config {
    config::from_str(SMALL, "small.toml", Path::new(".")).expect("the small config is valid")
}

/// A path segment an attacker would try: dot segments in every spelling
/// (plain, encoded, doubly encoded, overlong UTF-8, fullwidth, with
/// trailing spaces), path parameters, encoded separators and percent signs,
/// control characters, empty segments, and ordinary names.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("download".to_string()),
        Just("admin".to_string()),
        Just("static".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("...".to_string()),
        Just("".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just(".%2e".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("..\\".to_string()),
        Just("%64ownload".to_string()),
        Just("..;".to_string()),
        Just(".;x".to_string()),
        Just("download;v=1".to_string()),
        Just("%3b".to_string()),
        Just("%252e%252e".to_string()),
        Just("%252f".to_string()),
        Just("%25".to_string()),
        Just("%c0%ae%c0%ae".to_string()),
        Just("%c0%af".to_string()),
        Just("%e0%80%ae".to_string()),
        Just("%c1%9c".to_string()),
        Just("..%20".to_string()),
        Just("%2e%2e%20".to_string()),
        Just("%ef%bc%8e%ef%bc%8e".to_string()),
        Just("%ef%bc%8f".to_string()),
        Just("%e2%80%a5".to_string()),
        Just("%00".to_string()),
        Just("file.iso".to_string()),
        Just("release%20notes.pdf".to_string()),
        Just("%c3%a9t%c3%a9".to_string()),
        "[a-z0-9._~%;-]{0,6}",
        "(%[0-9a-fA-F]{2}){1,3}",
    ]
}

/// A path; most start inside the download tree, where an escape matters.
fn path() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.75),
        prop::collection::vec(segment(), 0..6),
    )
        .prop_map(|(download, s)| {
            let rest = s.join("/");
            if download {
                format!("/download/{rest}")
            } else {
                format!("/{rest}")
            }
        })
}

/// One percent-decoding pass (invalid escapes are kept as they are).
fn decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (s[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Reads bytes as text the way a lenient decoder does: overlong two- and
/// three-byte forms of ASCII are taken for the ASCII character; other
/// invalid bytes become U+FFFD.
fn lenient_utf8(b: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        match b[i..] {
            [c0 @ 0xc0..=0xc1, c1 @ 0x80..=0xbf, ..] => {
                out.push(char::from(((c0 & 0x1f) << 6) | (c1 & 0x3f)));
                i += 2;
            }
            [0xe0, c1 @ 0x80..=0x81, c2 @ 0x80..=0xbf, ..] => {
                out.push(char::from(((c1 & 0x3f) << 6) | (c2 & 0x3f)));
                i += 3;
            }
            _ => {
                let end = (i + 1..=b.len())
                    .rev()
                    .find(|&e| std::str::from_utf8(&b[i..e]).is_ok() && e - i <= 4)
                    .unwrap_or(i + 1);
                out.push_str(&String::from_utf8_lossy(&b[i..end]));
                i = end;
            }
        }
    }
    out
}

/// Unicode compatibility folding of the characters that matter here
/// (what NFKC and Windows "best fit" do to them).
fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{2024}' | '\u{FE52}' | '\u{FF0E}' => ".".to_string(),
            '\u{2025}' => "..".to_string(),
            '\u{2044}' | '\u{2215}' | '\u{FF0F}' | '\u{29F8}' => "/".to_string(),
            '\u{FE68}' | '\u{FF3C}' | '\u{29F5}' | '\u{29F9}' => "\\".to_string(),
            '\u{FF05}' => "%".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// RFC 3986 §5.2.4 on `/`-separated segments, empty segments merged (as
/// nginx's `merge_slashes` and most servers do); `windows` also reads a
/// segment of dots and spaces as `.` or `..`, and drops trailing dots and
/// spaces from the others.
fn resolve(path: &str, windows: bool) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        let seg = match seg.bytes().filter(|&b| b == b'.').count() {
            _ if !windows => seg,
            1 if seg.trim_end_matches(['.', ' ']).is_empty() => ".",
            n if n >= 2 && seg.trim_end_matches(['.', ' ']).is_empty() => "..",
            _ => seg.trim_end_matches(['.', ' ']),
        };
        match seg {
            "." | "" => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("/{}{trailing}", out.join("/"))
}

/// What the path means to each kind of origin, as text: the path a request
/// really reaches there.
fn readings(path: &str) -> Vec<(&'static str, String)> {
    let once = lenient_utf8(&decode(path.as_bytes()));
    let no_params: Vec<String> = path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or("").to_string())
        .collect();
    let tomcat = lenient_utf8(&decode(no_params.join("/").as_bytes()));
    let twice = lenient_utf8(&decode(&decode(path.as_bytes())));
    let windows = fold(&once).replace('\\', "/");
    let windows = fold(&lenient_utf8(&decode(windows.as_bytes())));
    vec![
        ("RFC 3986", resolve(&once, false)),
        (
            "backslash as separator",
            resolve(&once.replace('\\', "/"), false),
        ),
        ("Tomcat (parameters cut first)", resolve(&tomcat, false)),
        ("decodes twice", resolve(&twice, false)),
        ("Windows", resolve(&windows.replace('\\', "/"), true)),
    ]
}

proptest! {
    /// Whatever a request path says, it is primary only if it is canonical
    /// and means the same download on every kind of origin that might
    /// read it: none of them resolves it anywhere else.
    #[test]
    fn only_canonical_download_paths_are_primary(p in path()) {
        let cfg = small();
        let (class, _) = cfg.routes.classify(&Method::GET, Some("example.com"), &p);
        if class == RouteClass::Primary {
            prop_assert!(is_canonical(&p), "{p} is primary but not canonical");
            for (origin, reading) in readings(&p) {
                prop_assert!(
                    reading.starts_with("/download/"),
                    "{p} is primary but {origin} reads {reading}"
                );
            }
        }
    }

    /// A canonical path means one thing: every kind of origin reads it as
    /// its plain percent-decoding, nothing to reinterpret.
    #[test]
    fn canonical_paths_read_the_same_everywhere(p in path()) {
        if is_canonical(&p) {
            let plain = String::from_utf8(decode(p.as_bytes()));
            prop_assert!(plain.is_ok(), "{p} is canonical but not UTF-8 once decoded");
            let plain = plain.unwrap_or_default();
            for (origin, reading) in readings(&p) {
                prop_assert_eq!(&reading, &plain, "{} reads {} differently", origin, p);
            }
        }
    }

    /// No input makes the config parser panic, and every rejection points
    /// inside the file.
    #[test]
    fn config_parser_never_panics(text in "\\PC{0,400}") {
        check_parse(&text)?;
    }

    /// The reference config with one byte range replaced by noise: the
    /// mutations an editor's typo makes.
    #[test]
    fn mutated_reference_config_is_rejected_with_a_location(
        at in 0..REFERENCE.len(),
        len in 0usize..12,
        noise in "[ -~\n\\[\\]\"=]{0,12}",
    ) {
        let mut text = REFERENCE.to_string();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (at..=(at + len).min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(at);
        text.replace_range(at..end, &noise);
        check_parse(&text)?;
    }

    /// Title, message and signature are text, never markup: whatever the
    /// operator (or an attacker who reached the admin API) writes, the page
    /// gains no tag, attribute or entity from it.
    #[test]
    fn apology_template_escapes_every_value(
        title in "\\PC{0,40}",
        message in "\\PC{0,80}",
        signed in "\\PC{0,40}",
    ) {
        let cfg = small();
        let plain = render(&cfg, "", "t", "s");
        let page = render(&cfg, &message, &title, &signed);
        for c in ['<', '>', '"', '\''] {
            prop_assert_eq!(
                plain.matches(c).count(),
                page.matches(c).count(),
                "{:?} from the input reached the page", c
            );
        }
        prop_assert!(page.contains(&lifeboat::apology::escape_html(&message)));
    }
}

fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match config::from_str(text, "fuzz.toml", Path::new("/nonexistent")) {
        Ok(_) => Ok(()),
        Err(ConfigError::Invalid(d)) => {
            let lines = text.split('\n').count().max(1);
            prop_assert!(
                (1..=lines).contains(&d.line),
                "line {} outside 1..={lines}: {}",
                d.line,
                d.message
            );
            prop_assert!(d.column >= 1, "column 0: {}", d.message);
            prop_assert!(!d.message.is_empty());
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("unexpected error kind: {e}"))),
    }
}

fn render(cfg: &config::Config, message: &str, title: &str, signed: &str) -> String {
    let mut apology = cfg.apology.clone();
    apology.title = title.to_string();
    apology.signed = signed.to_string();
    let pages = Pages::render(&Context {
        apology: &apology,
        routes: &cfg.routes,
        since: std::time::SystemTime::UNIX_EPOCH,
        message,
    });
    String::from_utf8(pages.html.to_vec()).expect("the page is UTF-8")
}

/// The classic escapes, spelled out: none of them is primary.
#[test]
fn dot_segment_escapes_from_the_download_tree_are_not_primary() {
    let cfg = small();
    for p in [
        "/download/../admin",
        "/download/./../admin",
        "/download/%2e%2e/admin",
        "/download/%2E%2E/admin",
        "/download/.%2e/admin",
        "/download/..%2fadmin",
        "/download/..%5cadmin",
        "/download/..\\admin",
        "/download//../admin",
        "//download/x",
        "/%64ownload/x",
        "/download/x/..",
        "download/x",
        "/download/..;/admin/secret.txt",
        "/download/%252e%252e/admin",
        "/download/%c0%ae%c0%ae/admin",
        "/download/..%c0%afadmin",
        "/download/..%20/admin",
        "/download/%ef%bc%8e%ef%bc%8e/admin",
    ] {
        let (class, _) = cfg.routes.classify(&Method::GET, None, p);
        assert_ne!(class, RouteClass::Primary, "{p} was classed as primary");
    }
    let (class, route) = cfg.routes.classify(&Method::GET, None, "/download/x.iso");
    assert_eq!(
        (class, route),
        (RouteClass::Primary, Some("downloads")),
        "the real thing still is"
    );
}
