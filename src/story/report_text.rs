//! The report's text: Markdown for people, JSON for tools, from the
//! episodes `report` finds.

use std::fmt::Write;
use std::time::Duration;

use super::Episode;

fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// 1234567 → "1,234,567".
pub(in crate::story) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report in Markdown.
pub fn markdown(episodes: &[Episode]) -> String {
    let mut s = String::from("# Incident report\n\n");
    if episodes.is_empty() {
        s.push_str("No episodes: lifeboat stayed in normal mode for the whole journal.\n");
        return s;
    }
    let _ = writeln!(
        s,
        "{} episode{} in this journal.\n",
        episodes.len(),
        if episodes.len() == 1 { "" } else { "s" }
    );
    for (i, ep) in episodes.iter().enumerate() {
        let shed_total: u64 = ep.shed.values().sum();
        let _ = writeln!(s, "## Episode {}: {}\n", i + 1, ep.start);
        let how_long = ep
            .duration_s
            .map_or("Until the end of the journal".to_string(), |d| {
                format!("For {}", human(Duration::from_secs_f64(d)))
            });
        let would: u64 = ep.would_shed.values().sum();
        if would > 0 {
            let _ = writeln!(
                s,
                "{how_long}, lifeboat ran in dry run: it would have answered {} requests with the apology, and proxied every one of them.\n",
                thousands(would)
            );
        } else {
            let _ = writeln!(
                s,
                "{how_long}, lifeboat kept the downloads running ({} served), kept the origin busy with {} other requests, and answered {} with the apology.\n",
                thousands(ep.primary_served),
                thousands(ep.others_served),
                thousands(shed_total)
            );
        }
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| Started | {} |", ep.start);
        let _ = writeln!(
            s,
            "| Ended | {} |",
            ep.end
                .as_deref()
                .unwrap_or("still degraded at the end of the journal")
        );
        if let Some(d) = ep.duration_s {
            let _ = writeln!(s, "| Duration | {} |", human(Duration::from_secs_f64(d)));
        }
        let _ = writeln!(s, "| Trigger | {} |", ep.trigger);
        if let Some(m) = &ep.message {
            let _ = writeln!(s, "| Message to visitors | \"{}\" |", m.replace('|', "\\|"));
        }
        let _ = writeln!(s, "| Peak in-flight | {} |", ep.peak_inflight);
        let _ = writeln!(
            s,
            "| Peak origin TTFB p95 | {} |",
            ep.peak_ttfb_p95_ms
                .map_or("n/a".into(), |ms| format!("{ms} ms"))
        );
        if let Some((lo, hi)) = ep.origin_limit {
            let range = if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo} to {hi}")
            };
            let _ = writeln!(s, "| Origin limit (requests at once) | {range} |");
        }
        let _ = writeln!(s, "| Downloads served | {} |", thousands(ep.primary_served));
        let _ = writeln!(
            s,
            "| Other requests served | {} |",
            thousands(ep.others_served)
        );
        let _ = writeln!(s, "| Requests shed | {} |", thousands(shed_total));
        if !ep.shed.is_empty() {
            let by: Vec<String> = ep
                .shed
                .iter()
                .map(|(r, n)| format!("{r}: {}", thousands(*n)))
                .collect();
            let _ = writeln!(s, "| Shed by reason | {} |", by.join(", "));
        }
        if would > 0 {
            let by: Vec<String> = ep
                .would_shed
                .iter()
                .map(|(r, n)| format!("{r}: {}", thousands(*n)))
                .collect();
            let _ = writeln!(s, "| Would have shed (dry run) | {} |", by.join(", "));
        }
        s.push('\n');
        if !ep.instances.is_empty() {
            let _ = writeln!(
                s,
                "### Instances\n\n| Instance | Cleared the boards | Back to normal | Downloads served | Apologies |\n|---|---|---|---|---|"
            );
            for (id, row) in &ep.instances {
                let _ = writeln!(
                    s,
                    "| {id} | {} | {} | {} | {} |",
                    row.cleared.as_deref().unwrap_or("stayed normal"),
                    row.back.as_deref().unwrap_or("-"),
                    thousands(row.primary_served),
                    thousands(row.shed)
                );
            }
            s.push('\n');
        }
        if !ep.operator_actions.is_empty() {
            s.push_str("### Operator actions\n\n");
            for a in &ep.operator_actions {
                let _ = writeln!(s, "- {a}");
            }
            s.push('\n');
        }
        s.push_str("### Timeline\n\n");
        for t in &ep.timeline {
            let _ = writeln!(s, "- {t}");
        }
        s.push('\n');
    }
    s
}

/// The report as JSON.
pub fn json(episodes: &[Episode]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "episodes": episodes })).unwrap_or_default()
}
