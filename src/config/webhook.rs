//! A `[[webhook]]` target as configured: where lifeboat POSTs its mode
//! changes and overrides (`story::webhook` sends them).

use std::time::Duration;

use http::Uri;

/// One configured target.
#[derive(Clone)]
pub struct Target {
    /// Where to POST.
    pub url: Uri,
    /// For an https:// URL: the roots it is verified against.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Time allowed per attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

/// Shown (in `GET /config`, in logs) without the URL's secrets: webhook
/// URLs carry credentials in their userinfo, and often in their path or
/// query too (Slack, Discord, Teams put the secret there), so only the
/// scheme, host and port are shown.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &format_args!("{}", redacted(&self.url)))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// `scheme://host:port/…` for a URL that may hold secrets past its host.
pub fn redacted(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url
        .authority()
        .map_or("", |a| a.as_str().rsplit('@').next().unwrap_or(""));
    let secret = url.authority().is_some_and(|a| a.as_str().contains('@'))
        || url.path() != "/"
        || url.query().is_some();
    format!(
        "{scheme}://{host}/{}",
        if secret { "<redacted>" } else { "" }
    )
}
