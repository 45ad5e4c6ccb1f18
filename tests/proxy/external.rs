//! Hardening checks with real external tools (hardening items 1 and 10):
//! testssl.sh against the TLS listener, slowhttptest against the binary.
//! See support::external for how a missing tool is handled.

use std::time::Duration;

use crate::support::external::tool;
use crate::support::tls::make_pki;
use crate::support::{TestOrigin, lifeboat};

#[tokio::test]
async fn testssl_finds_only_tls12_and_tls13_with_modern_ciphers() {
    let Some(testssl) = tool("testssl", "testssl.sh") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin)
        .set("listen.https", "\"127.0.0.1:0\"")
        .set("listen.tls.cert", &format!("{:?}", pki.cert))
        .set("listen.tls.key", &format!("{:?}", pki.key))
        .start()
        .await;
    let json = dir.path().join("testssl.json");
    let run = tokio::process::Command::new(testssl)
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--protocols",
            "--std",
            "--fs",
        ])
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("127.0.0.1:{}", lb.https.unwrap().port()))
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("testssl.sh finished within 5 minutes")
        .expect("testssl.sh ran");
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_else(|e| {
            panic!(
                "no JSON from testssl.sh ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        }))
        .expect("testssl.sh JSON");
    // testssl.sh 3.0 says AVERAGE and PFS where 3.2 says OBSOLETED and FS.
    let finding = |ids: &str| -> String {
        findings
            .iter()
            .find(|f| ids.split('|').any(|id| f["id"] == id))
            .and_then(|f| f["finding"].as_str())
            .unwrap_or_else(|| {
                let ids_seen: Vec<_> = findings.iter().map(|f| &f["id"]).collect();
                panic!("testssl.sh reported nothing for {ids}; it reported {ids_seen:?}")
            })
            .to_string()
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(
            finding(old).starts_with("not offered"),
            "{old}: {}",
            finding(old)
        );
    }
    for modern in ["TLS1_2", "TLS1_3"] {
        assert!(
            finding(modern).starts_with("offered"),
            "{modern}: {}",
            finding(modern)
        );
    }
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_OBSOLETED|cipherlist_AVERAGE",
    ] {
        assert!(
            finding(weak).starts_with("not offered"),
            "{weak}: {}",
            finding(weak)
        );
    }
    assert!(
        finding("cipherlist_STRONG").starts_with("offered"),
        "{}",
        finding("cipherlist_STRONG")
    );
    assert!(
        finding("FS|PFS").starts_with("offered"),
        "forward secrecy: {}",
        finding("FS|PFS")
    );
    let severe: Vec<_> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .collect();
    assert!(severe.is_empty(), "testssl.sh found: {severe:#?}");
}
