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

/// A path segment an attacker would try: dot segments in every spelling,
/// encoded slashes and backslashes, empty segments, and ordinary names.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("download".to_string()),
        Just("admin".to_string()),
        Just("static".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just(".%2e".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("..\\".to_string()),
        Just("%64ownload".to_string()),
        Just("file.iso".to_string()),
        "[a-z0-9._~%-]{0,6}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/")))
}

/// Resolves dot segments the way a lenient origin would (RFC 3986 §5.2.4),
/// after percent-decoding: what the path could mean once it gets there.
fn resolved(path: &str) -> String {
    let decoded = path
        .replace("%2e", ".")
        .replace("%2E", ".")
        .replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%5c", "/")
        .replace("%5C", "/")
        .replace('\\', "/")
        .replace("%64", "d");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = if decoded.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("/{}{trailing}", out.join("/"))
}

proptest! {
    /// Whatever a request path says, it is primary only if it is canonical
    /// and means a download on every server that might interpret it.
    #[test]
    fn only_canonical_download_paths_are_primary(p in path()) {
        let cfg = small();
        let (class, _) = cfg.routes.classify(&Method::GET, Some("example.com"), &p);
        if class == RouteClass::Primary {
            prop_assert!(is_canonical(&p), "{p} is primary but not canonical");
            prop_assert!(resolved(&p).starts_with("/download/"), "{p} is primary but resolves to {}", resolved(&p));
            prop_assert_eq!(resolved(&p), p.clone());
        }
    }

    /// A canonical path resolves to itself: nothing for an origin to reinterpret.
    #[test]
    fn canonical_paths_are_fixed_points(p in path()) {
        if is_canonical(&p) {
            prop_assert_eq!(resolved(&p), p);
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
