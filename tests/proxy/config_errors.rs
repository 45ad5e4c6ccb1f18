//! Every class of bad config gets one error naming file, line, column and
//! key, and saying what is expected.

use std::path::Path;

use lifeboat::config::{self, ConfigError, Diagnostic};

fn diagnose(text: &str) -> Diagnostic {
    match config::from_str(text, "bad.toml", Path::new("/nonexistent-dir")) {
        Err(ConfigError::Invalid(d)) => *d,
        Err(other) => panic!("expected a located diagnostic, got {other}"),
        Ok(_) => panic!("config was accepted:\n{text}"),
    }
}

const ORIGIN: &str = "[origin]\nurl = \"http://127.0.0.1:8000\"\n";

#[test]
fn syntax_error() {
    let d = diagnose("[origin\nurl = \"http://x\"\n");
    assert_eq!((d.line, d.column), (1, 8));
    assert!(d.message.contains("expected `]`"), "{}", d.message);
    assert!(d.to_string().starts_with("bad.toml:1:8: "), "{d}");
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let d = diagnose(&format!("{ORIGIN}conect_timeout = \"4s\"\n"));
    assert_eq!((d.line, d.column), (3, 1));
    assert_eq!(d.key.as_deref(), Some("origin.conect_timeout"));
    assert!(
        d.message
            .starts_with("unknown key `conect_timeout`; did you mean `connect_timeout`?"),
        "{}",
        d.message
    );
}

#[test]
fn unknown_table() {
    let d = diagnose(&format!("{ORIGIN}[limitz]\nmax_headers = 10\n"));
    assert_eq!(d.line, 3);
    assert!(
        d.message.contains("did you mean `limits`?"),
        "{}",
        d.message
    );
}

#[test]
fn wrong_type() {
    let d = diagnose(&format!("{ORIGIN}[limits]\nmax_headers = \"lots\"\n"));
    assert_eq!((d.line, d.column), (4, 15));
    assert_eq!(d.key.as_deref(), Some("limits.max_headers"));
    assert!(d.message.contains("expected an integer"), "{}", d.message);
}

#[test]
fn origin_limit_is_a_number_or_auto() {
    let d = diagnose(&format!("{ORIGIN}max_inflight = \"lots\"\n"));
    assert_eq!((d.line, d.column), (3, 16));
    assert_eq!(d.key.as_deref(), Some("origin.max_inflight"));
    assert!(
        d.message
            .contains("expected \"auto\" or a number of requests, like 64, found \"lots\""),
        "{}",
        d.message
    );
    let d = diagnose(&format!("{ORIGIN}max_inflight = 0\n"));
    assert!(d.message.contains("between 1 and 100000"), "{}", d.message);
    let d = diagnose(&format!("{ORIGIN}max_inflight = 8\nlearn_max = 100\n"));
    assert_eq!((d.line, d.key.as_deref()), (4, Some("origin.learn_max")));
    assert!(
        d.message.contains("only with max_inflight = \"auto\""),
        "{}",
        d.message
    );
    let d = diagnose(&format!("{ORIGIN}learn_min = 50\nlearn_max = 10\n"));
    assert_eq!(d.key.as_deref(), Some("origin.learn_max"));
    assert!(d.message.contains("between 50 and 100000"), "{}", d.message);
    let c = config::from_str(
        &format!("{ORIGIN}max_inflight = \"auto\"\nlearn_max = 64\n"),
        "ok.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        c.origin.max_inflight,
        config::OriginLimit::Auto {
            min: 2,
            max: 64,
            initial: 16
        }
    );
}

#[test]
fn bad_duration_and_size() {
    let d = diagnose(&format!("{ORIGIN}connect_timeout = \"4 parsecs\"\n"));
    assert_eq!((d.line, d.column), (3, 19));
    assert_eq!(d.key.as_deref(), Some("origin.connect_timeout"));
    assert!(
        d.message.contains("expected a duration like \"250ms\""),
        "{}",
        d.message
    );
    let d = diagnose(&format!(
        "{ORIGIN}[limits]\nmax_header_size = \"32 kilos\"\n"
    ));
    assert_eq!(d.key.as_deref(), Some("limits.max_header_size"));
    assert!(
        d.message.contains("expected a size like \"32KiB\""),
        "{}",
        d.message
    );
}

#[test]
fn out_of_range() {
    let d = diagnose(&format!("{ORIGIN}[limits]\nmax_headers = 5\n"));
    assert_eq!((d.line, d.column), (4, 15));
    assert_eq!(d.message, "must be between 8 and 1000, found 5");
    let d = diagnose(&format!("{ORIGIN}[limits]\nmax_header_size = \"4KiB\"\n"));
    assert_eq!(d.message, "must be between 8KiB and 1MiB, found 4KiB");
    let d = diagnose(&format!("{ORIGIN}ttfb_timeout = \"0s\"\n"));
    assert_eq!(d.key.as_deref(), Some("origin.ttfb_timeout"));
    assert!(
        d.message.starts_with("must be between 1ms and 1h"),
        "{}",
        d.message
    );
}

#[test]
fn log_keys_point_at_the_value() {
    let d = diagnose(&format!("{ORIGIN}[log]\nshed_sample = 1.5\n"));
    assert_eq!((d.line, d.column), (4, 15));
    assert_eq!(d.key.as_deref(), Some("log.shed_sample"));
    assert!(
        d.message.starts_with("must be a fraction between 0 and 1"),
        "{}",
        d.message
    );
    let d = diagnose(&format!("{ORIGIN}[log]\nshed_sample = \"1%\"\n"));
    assert_eq!(d.key.as_deref(), Some("log.shed_sample"));
    let d = diagnose(&format!("{ORIGIN}[log]\naccess_path = \"\"\n"));
    assert_eq!(
        (d.line, d.column, d.key.as_deref()),
        (4, 15, Some("log.access_path"))
    );
    assert!(
        d.message.contains("leave `access_path` out"),
        "{}",
        d.message
    );
    let d = diagnose(&format!(
        "{ORIGIN}[log]\naccess_path = \"/nonexistent-dir/access.log\"\n"
    ));
    assert_eq!(d.message, "directory /nonexistent-dir does not exist");
    let dir = tempfile::tempdir().unwrap();
    let d = diagnose(&format!("{ORIGIN}[log]\naccess_path = {:?}\n", dir.path()));
    assert!(
        d.message.ends_with("is a directory; expected a file"),
        "{}",
        d.message
    );
    // Whole numbers are fractions too, and a relative path is the
    // config directory's.
    for sample in ["0", "1", "0.01"] {
        let text = format!("{ORIGIN}[log]\nshed_sample = {sample}\naccess_path = \"a.log\"\n");
        let c = config::from_str(&text, "ok.toml", dir.path()).unwrap();
        assert_eq!(c.log.shed_sample, sample.parse::<f64>().unwrap());
        assert_eq!(c.log.access_path, Some(dir.path().join("a.log")));
    }
}

#[test]
fn missing_cert_file() {
    let d = diagnose(&format!(
        "[listen]\nhttps = \"127.0.0.1:8443\"\n[listen.tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n{ORIGIN}"
    ));
    assert_eq!((d.line, d.column), (4, 8));
    assert_eq!(d.key.as_deref(), Some("listen.tls.cert"));
    assert!(
        d.message
            .starts_with("cannot read certificate file /nonexistent-dir/missing.pem"),
        "{}",
        d.message
    );
}

#[test]
fn cross_field_conflicts() {
    let d = diagnose(&format!("[listen]\nhttps = \"127.0.0.1:8443\"\n{ORIGIN}"));
    assert_eq!((d.line, d.key.as_deref()), (2, Some("listen.https")));
    assert!(
        d.message.contains("needs a [listen.tls] table"),
        "{}",
        d.message
    );

    let d = diagnose(&format!(
        "[listen.tls]\ncert = \"c\"\nkey = \"k\"\n{ORIGIN}"
    ));
    assert_eq!(d.key.as_deref(), Some("listen.tls"));
    assert!(d.message.contains("no `https` address"), "{}", d.message);

    let d = diagnose(&format!("[listen]\nhttp = \"\"\n{ORIGIN}"));
    assert!(d.message.contains("expected an address"), "{}", d.message);
}

#[test]
fn missing_origin() {
    let d = diagnose("[listen]\nhttp = \"127.0.0.1:8080\"\n");
    assert_eq!(d.key.as_deref(), Some("origin"));
    assert!(
        d.message.contains("missing table [origin]"),
        "{}",
        d.message
    );
    let d = diagnose("[origin]\nhost = \"origin\"\n");
    assert_eq!(d.key.as_deref(), Some("origin.url"));
}

#[test]
fn bad_origin_urls() {
    for (url, want) in [
        ("ftp://example.org", "an http:// or https:// URL"),
        ("http://example.org/prefix", "cannot have a path"),
        ("example.org", "with a scheme"),
        ("http://exa mple", "expected a URL"),
    ] {
        let d = diagnose(&format!("[origin]\nurl = \"{url}\"\n"));
        assert_eq!(d.key.as_deref(), Some("origin.url"));
        assert!(d.message.contains(want), "{url}: {}", d.message);
    }
}

#[test]
fn the_reference_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lifeboat.toml");
    let c = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.limits.max_header_size, 32 * 1024);
    assert_eq!(c.limits.max_connections, 10_000);
    assert_eq!(
        c.origin.max_inflight,
        config::OriginLimit::Auto {
            min: 2,
            max: 4096,
            initial: 16
        },
        "the reference file states the defaults"
    );
    assert_eq!(c.shedding.client_budget, Some(50));
    assert_eq!(c.shedding.exit.after, std::time::Duration::from_secs(5));
}

#[test]
fn unreadable_file() {
    let err = config::load(Path::new("/nonexistent/lifeboat.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/lifeboat.toml: cannot read config file"),
        "{err}"
    );
}

#[test]
fn shedding_routes_and_apology_errors() {
    let d = diagnose(&format!("{ORIGIN}[shedding]\nmode = \"panic\"\n"));
    assert_eq!((d.line, d.key.as_deref()), (4, Some("shedding.mode")));
    assert!(
        d.message
            .contains("expected \"auto\", \"degraded\" or \"normal\""),
        "{}",
        d.message
    );

    let d = diagnose(&format!("{ORIGIN}[shedding.exit]\nfraction = 1.5\n"));
    assert_eq!(d.key.as_deref(), Some("shedding.exit.fraction"));
    assert!(d.message.contains("fraction between"), "{}", d.message);

    let d = diagnose(&format!(
        "{ORIGIN}[shedding.enter]\ninflight = 0\nttfb_p95 = \"0s\"\nfailure_rate = 0.0\nqueue_wait_p95 = \"0s\"\n"
    ));
    assert_eq!(d.key.as_deref(), Some("shedding.enter"));
    assert!(
        d.message.contains("needs at least one enter condition"),
        "{}",
        d.message
    );

    let d = diagnose(&format!(
        "{ORIGIN}[[route]]\nname = \"dl\"\nmatch = \"/download/*\"\n"
    ));
    assert_eq!(d.key.as_deref(), Some("route[0].class"));
    assert!(d.message.contains("missing `class`"), "{}", d.message);

    let d = diagnose(&format!(
        "{ORIGIN}[[route]]\nmatch = \"download/*\"\nclass = \"primary\"\n"
    ));
    assert_eq!((d.line, d.key.as_deref()), (4, Some("route[0].match")));
    assert!(d.message.contains("starts with \"/\""), "{}", d.message);

    let d = diagnose(&format!(
        "{ORIGIN}[[route]]\nmatch = \"/a/*\"\nclass = \"vip\"\n"
    ));
    assert_eq!(d.key.as_deref(), Some("route[0].class"));

    let d = diagnose(&format!(
        "{ORIGIN}[[route]]\nmatch = \"/a/*\"\nclass = \"keep\"\nmethods = [\"GET\", \"G T\"]\n"
    ));
    assert_eq!(d.key.as_deref(), Some("route[0].methods[1]"));

    let d = diagnose(&format!(
        "{ORIGIN}[[route]]\nmatch = \"/a/*\"\nclass = \"keep\"\nclas = \"x\"\n"
    ));
    assert!(d.message.contains("did you mean `class`?"), "{}", d.message);

    let d = diagnose(&format!("{ORIGIN}[apology]\ntemplate = \"missing.html\"\n"));
    assert_eq!(d.key.as_deref(), Some("apology.template"));
    assert!(
        d.message
            .starts_with("cannot read template /nonexistent-dir/missing.html"),
        "{}",
        d.message
    );

    let d = diagnose(&format!("{ORIGIN}[apology]\nretry_after = \"0s\"\n"));
    assert_eq!(d.key.as_deref(), Some("apology.retry_after"));
}

#[test]
fn the_demo_config_is_valid() {
    let text = include_str!("../../config/demo.toml")
        .replace("{origin}", "http://127.0.0.1:1")
        .replace("{listen}", "127.0.0.1:0");
    let c = config::from_str(&text, "demo.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.routes.0.len(), 2);
}

/// The config and page embedded in `deploy/kubernetes/configmap.yaml`,
/// extracted and checked by the real binary.
#[test]
fn the_kubernetes_configmap_is_valid() {
    let yaml = include_str!("../../deploy/kubernetes/configmap.yaml");
    let block = |key: &str| -> String {
        let start = yaml
            .find(&format!("  {key}: |\n"))
            .unwrap_or_else(|| panic!("{key} missing"))
            + key.len()
            + 6;
        yaml[start..]
            .lines()
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .map(|l| l.get(4..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lifeboat.toml"), block("lifeboat.toml")).unwrap();
    std::fs::write(dir.path().join("apology.html"), block("apology.html")).unwrap();
    let out = std::process::Command::new(crate::support::process::bin())
        .arg("check")
        .arg(dir.path().join("lifeboat.toml"))
        .env("LIFEBOAT_ADMIN_TOKEN", "test-token")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let without_token = std::process::Command::new(crate::support::process::bin())
        .arg("check")
        .arg(dir.path().join("lifeboat.toml"))
        .env_remove("LIFEBOAT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        without_token.status.code(),
        Some(1),
        "a public admin listener without a token must be refused"
    );
}

#[test]
fn origin_servers_are_a_url_or_a_list_not_both() {
    let d = diagnose(&format!(
        "{ORIGIN}servers = [{{ url = \"http://127.0.0.1:8001\" }}]\n"
    ));
    assert_eq!((d.line, d.column), (3, 11));
    assert!(d.message.contains("not both"), "{}", d.message);
}

#[test]
fn origin_server_mistakes_are_located() {
    let cases = [
        ("servers = []", (2, 11), "at least one server"),
        ("servers = [{ weight = 2 }]", (2, 12), "missing `url`"),
        (
            "servers = [{ url = \"http://a:1\", weight = 0 }]",
            (2, 43),
            "between 1 and 1000",
        ),
        (
            "servers = [{ url = \"http://a:1\" }, { url = \"http://a:1\" }]",
            (2, 44),
            "listed twice",
        ),
        (
            "url = \"http://a:1\"\neject_after = 0",
            (3, 15),
            "between 1 and 1000",
        ),
        (
            "url = \"http://a:1\"\n[origin.health]\npath = \"healthz\"",
            (4, 8),
            "expected a path",
        ),
        (
            "url = \"http://a:1\"\n[origin.health]\ninterval = \"1s\"\ntimeout = \"2s\"",
            (5, 11),
            "between",
        ),
    ];
    for (body, at, says) in cases {
        let d = diagnose(&format!("[origin]\n{body}\n"));
        assert_eq!((d.line, d.column), at, "{body}: {d}");
        assert!(d.message.contains(says), "{body}: {}", d.message);
    }
}

#[test]
fn origin_tls_keys_need_an_https_server_and_readable_files() {
    let d = diagnose(&format!("{ORIGIN}ca_file = \"ca.pem\"\n"));
    assert_eq!((d.line, d.key.as_deref()), (3, Some("origin.ca_file")));
    assert!(
        d.message.contains("only to https:// servers"),
        "{}",
        d.message
    );

    let d = diagnose("[origin]\nurl = \"https://127.0.0.1:8443\"\nca_file = \"missing.pem\"\n");
    assert_eq!((d.line, d.key.as_deref()), (3, Some("origin.ca_file")));
    assert!(d.message.contains("missing.pem"), "{}", d.message);

    let d = diagnose("[origin]\nurl = \"https://127.0.0.1:8443\"\nclient_cert = \"c.pem\"\n");
    assert!(d.message.contains("go together"), "{}", d.message);
}

#[test]
fn webhook_ca_file_needs_https() {
    let d = diagnose(&format!(
        "{ORIGIN}[[webhook]]\nurl = \"http://127.0.0.1:9000/x\"\nca_file = \"ca.pem\"\n"
    ));
    assert_eq!(d.line, 5);
    assert!(
        d.message.contains("only to an https:// webhook"),
        "{}",
        d.message
    );
    let d = diagnose(&format!(
        "{ORIGIN}[[webhook]]\nurl = \"ftp://127.0.0.1/x\"\n"
    ));
    assert!(d.message.contains("http:// or https://"), "{}", d.message);
}
