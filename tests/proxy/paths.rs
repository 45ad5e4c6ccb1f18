//! Classification by the path the origin will see (issue #13, item 3):
//! through a real lifeboat in degraded mode, every spelling of an escape
//! from the download tree that some origin would resolve elsewhere gets
//! the apology and never reaches the origin.

use std::time::Duration;

use crate::support::{TestOrigin, lifeboat, raw_exchange};

#[tokio::test]
async fn no_spelling_of_an_escape_passes_as_primary_in_degraded_mode() {
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("shedding.mode", "\"degraded\"")
        .route("downloads", "match", "/bytes/*", "primary")
        .start()
        .await;
    for path in [
        // Tomcat and Jetty cut path parameters, then resolve `..`.
        "/bytes/..;/status/200",
        "/bytes/.;x/../status/200",
        "/bytes/10;jsessionid=1",
        "/bytes/%3b/../status/200",
        // Decoded twice.
        "/bytes/%252e%252e/status/200",
        "/bytes/%252e%252e%252fstatus/200",
        // Overlong UTF-8 for `.` and `/`.
        "/bytes/%c0%ae%c0%ae/status/200",
        "/bytes/..%c0%afstatus/200",
        "/bytes/%e0%80%ae%e0%80%ae/status/200",
        // Windows: trailing dots and spaces, fullwidth forms.
        "/bytes/..%20/status/200",
        "/bytes/.../status/200",
        "/bytes/%ef%bc%8e%ef%bc%8e/status/200",
        "/bytes/..%ef%bc%8fstatus/200",
        // Control characters and broken UTF-8.
        "/bytes/10%00/../../status/200",
        "/bytes/%ff",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (text, _) = raw_exchange(lb.addr(), req.as_bytes(), Duration::from_secs(10)).await;
        assert!(
            text.starts_with("HTTP/1.1 503") && text.contains("x-lifeboat-shed: degraded"),
            "{path} was not shed: {}",
            &text[..text.len().min(120)]
        );
    }
    assert_eq!(origin.requests(), 0, "an escape reached the origin");

    // The real thing still passes.
    let req = "GET /bytes/10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let (text, _) = raw_exchange(lb.addr(), req.as_bytes(), Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(origin.requests(), 1);
}
