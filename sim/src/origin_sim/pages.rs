//! The simulated site's pages: a release announcement, its download page,
//! and a few pages nobody needs during the stampede.

/// The 404 page.
pub const NOT_FOUND: &str = "<!doctype html><title>Not found</title><h1>Not found</h1>\n";

const HOME: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example OS 3.0 is out</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body><h1>Example OS 3.0 is out today</h1>
<p>Three years in the making. <a href="/download/example-os-3.0.iso">Download it now</a>.</p>
<ul><li><a href="/news">Release notes</a></li><li><a href="/docs">Documentation</a></li>
<li><a href="/about">About the project</a></li></ul></body></html>
"#;

const NEWS: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Release notes</title>
<link rel="stylesheet" href="/static/style.css"></head><body><h1>Release notes for 3.0</h1>
<p>A new installer, a faster file system and a thousand small fixes.</p></body></html>
"#;

const DOCS: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Documentation</title>
<link rel="stylesheet" href="/static/style.css"></head><body><h1>Documentation</h1>
<p>Install, upgrade, and everything after.</p></body></html>
"#;

const ABOUT: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>About</title>
<link rel="stylesheet" href="/static/style.css"></head><body><h1>About the project</h1>
<p>Built by volunteers since 2003.</p></body></html>
"#;

const CSS: &str =
    "body{font:17px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}\n";

/// The content type and body for a known path.
pub fn lookup(path: &str) -> Option<(&'static str, &'static str)> {
    let html = "text/html; charset=utf-8";
    Some(match path {
        "/" => (html, HOME),
        "/news" => (html, NEWS),
        "/docs" => (html, DOCS),
        "/about" => (html, ABOUT),
        "/static/style.css" => ("text/css", CSS),
        _ => return None,
    })
}
