//! For Prometheus users: the shipped Grafana dashboard and alert rules
//! (`deploy/grafana/lifeboat.json`, `deploy/prometheus/alerts.yml`) name
//! only metrics lifeboat really exports, from its first scrape. (`.ci/run`
//! also runs `promtool check rules` on the rules.)

use std::collections::BTreeSet;

use crate::support::{TestOrigin, client, lifeboat};

/// Every `lifeboat_…` metric a text names; histogram series by their family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("lifeboat_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(family.to_string());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_rules_use_is_exported() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard =
        std::fs::read_to_string(format!("{root}/deploy/grafana/lifeboat.json")).unwrap();
    let rules = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(
        parsed["panels"].as_array().is_some_and(|p| p.len() >= 8),
        "panels"
    );
    let wanted: BTreeSet<String> = metric_names(&dashboard)
        .into_iter()
        .chain(metric_names(&rules))
        .collect();
    assert!(wanted.len() >= 12, "{wanted:?}");
    assert!(
        wanted.contains("lifeboat_origin_ttfb_seconds"),
        "histograms by family: {wanted:?}"
    );

    // A fresh lifeboat that has answered one request: the first scrape.
    let origin = TestOrigin::start().await;
    let lb = lifeboat(&origin).start().await;
    assert_eq!(
        client()
            .get(lb.url("/status/200"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let scrape = lb.metrics().await;
    let exported = metric_names(&scrape);
    let missing: Vec<&String> = wanted.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "used but not exported: {missing:?}\n{scrape}"
    );
    // The alerts' counters exist before their first event (other tests in
    // this process may have counted some: the recorder is global).
    for series in [
        "lifeboat_journal_errors_total ",
        "lifeboat_config_reloads_total{result=\"rejected\"} ",
    ] {
        assert!(
            scrape.lines().any(|l| l.starts_with(series)),
            "{series} missing:\n{scrape}"
        );
    }
}
