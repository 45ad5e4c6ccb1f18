//! External tools (slowhttptest, testssl.sh) used by the hardening tests.
//! `.ci/run` installs them and sets `LIFEBOAT_REQUIRE_TOOLS=1`, so in CI a
//! missing tool fails the test; on a developer's machine without them the
//! test says it was skipped and why, loudly, instead of passing quietly.

use std::path::PathBuf;

/// The tool's path, or `None` (after saying so) when it is not installed
/// and not required.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("LIFEBOAT_REQUIRE_TOOLS").is_none(),
            "{name} is required (LIFEBOAT_REQUIRE_TOOLS is set) but not installed: \
             apt-get install {package}"
        );
        eprintln!(
            "SKIPPED: {name} is not installed (apt-get install {package}); .ci/run installs it"
        );
    }
    found
}
