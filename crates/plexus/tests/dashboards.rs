//! `plexus dashboards`: the committed Grafana dashboards and Prometheus alert rules
//! match the metrics the node exports, a drift is caught, and the exposition passes
//! `promtool check metrics` (promtool from Debian's `prometheus`, which scripts/test
//! installs).

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn plexus(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch folder of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "plexus-dashboards-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_committed_dashboards_and_alert_rules_match_the_node_metrics() {
    let (code, stdout, stderr) = plexus(&["dashboards", "--check"]);
    assert_eq!(
        code, 0,
        "run `plexus dashboards` and commit deploy/grafana:\n{stderr}"
    );
    assert!(stdout.contains("match the node's metrics"), "{stdout}");
    for file in [
        "agent-overview",
        "system-health",
        "business-metrics",
        "cost-analysis",
    ] {
        let text =
            std::fs::read_to_string(repo().join(format!("deploy/grafana/{file}.json"))).unwrap();
        let d: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(d["uid"], format!("plexus-{file}"));
        assert!(!d["panels"].as_array().unwrap().is_empty(), "{file}");
    }
}

#[test]
fn a_drifted_dashboard_or_an_unknown_metric_in_a_rule_fails_the_check() {
    let dir = scratch("drift");
    let (code, _, stderr) = plexus(&["dashboards", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let overview = dir.join("agent-overview.json");
    let text = std::fs::read_to_string(&overview).unwrap();
    std::fs::write(
        &overview,
        text.replace("plexus_calls_total", "plexus_call_total"),
    )
    .unwrap();
    let rules = dir.join("alerts.yml");
    std::fs::write(
        &rules,
        "expr: rate(plexus_calls_total[5m]) > 0 and plexus_no_such_metric_total > 0\n",
    )
    .unwrap();
    let (code, _, stderr) = plexus(&[
        "dashboards",
        "--check",
        "--out",
        dir.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("agent-overview.json differs"), "{stderr}");
    assert!(
        stderr.contains("names plexus_no_such_metric_total"),
        "{stderr}"
    );
    assert!(!stderr.contains("system-health.json"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_catalogue_holds_families_without_samples_too() {
    let (code, stdout, stderr) = plexus(&["dashboards", "--metrics", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let list: Vec<Value> = serde_json::from_str(stdout.trim()).unwrap();
    let kind = |name: &str| {
        list.iter()
            .find(|m| m["name"] == name)
            .map(|m| m["kind"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{name} missing from the catalogue"))
    };
    assert_eq!(kind("plexus_calls"), "counter");
    assert_eq!(kind("plexus_call_duration_seconds"), "histogram");
    assert_eq!(kind("plexus_bus_lag"), "gauge");
    // Labelled families that hold no sample at rest.
    assert_eq!(kind("plexus_gateway_auth_failures"), "counter");
    assert_eq!(kind("plexus_store_statement_duration_seconds"), "histogram");
}

#[test]
fn the_exposition_passes_promtool_check_metrics() {
    let (code, exposition, stderr) = plexus(&["dashboards", "--exposition"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        exposition.contains("# TYPE plexus_bus_lag gauge"),
        "{exposition}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is needed (Debian package prometheus; scripts/test installs it): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
