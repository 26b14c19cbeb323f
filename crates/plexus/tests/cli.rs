//! The `plexus` command, run as a user runs it.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

use std::process::Command;

use serde_json::Value;

fn plexus(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_pipeline_json_counts_are_measured() {
    let (code, stdout, stderr) = plexus(&[
        "demo",
        "pipeline",
        "--events",
        "2001",
        "--publishers",
        "4",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["captured"], 2001);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert!(report["events_per_s"].as_f64().unwrap() > 0.0);
    let stages = report["stages"].as_object().unwrap();
    // Stages are printed in flow order (serde_json's map would sort them, so look at
    // the text).
    let flow = [
        "DataCapture",
        "Storage",
        "AnalysisEngine",
        "Gamification",
        "AI",
        "CuteFigurine",
    ];
    let at: Vec<usize> = flow
        .iter()
        .map(|s| stdout.find(&format!("\"{s}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert_eq!(stages.len(), 6);
    assert!(stages.values().all(|v| v == 2001));
    let modules = report["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 8);
    assert!(
        modules.iter().all(|m| m["status"] == "healthy"),
        "{modules:?}"
    );
    assert_eq!(report["system_health"], "healthy");
}

#[test]
fn demo_pipeline_prints_tables_for_people() {
    let (code, stdout, stderr) = plexus(&["demo", "pipeline", "--events", "500"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("CuteFigurine"), "{stdout}");
    assert!(stdout.contains("events/s"), "{stdout}");
}

#[test]
fn bench_bus_quick_json_follows_the_convention() {
    let (code, stdout, stderr) = plexus(&["bench", "bus", "--quick", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["bench"], "bus");
    assert!(report["cores"].as_u64().unwrap() >= 1);
    let results = report["results"].as_array().unwrap();
    let get = |name: &str| {
        results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    for name in ["delivered_1to1", "delivered_4to4", "fanout_1to8"] {
        let r = get(name);
        assert_eq!(r["unit"], "events/s");
        let (value, ceiling) = (
            r["value"].as_f64().unwrap(),
            r["ceiling_value"].as_f64().unwrap(),
        );
        assert!(value > 0.0 && ceiling > 0.0, "{name}");
        let ratio = r["ratio"].as_f64().unwrap();
        assert!(
            (ratio - value / ceiling).abs() < 0.001,
            "{name}: ratio is value/ceiling"
        );
        assert_eq!(r["higher_is_better"], true);
    }
    for name in ["critical_p50", "critical_p99", "critical_p999"] {
        let r = get(name);
        assert_eq!(r["unit"], "us");
        assert!(r["value"].as_f64().unwrap() > 0.0);
        assert_eq!(r["higher_is_better"], false);
    }
}

#[test]
fn bench_resilience_quick_json_has_the_named_results() {
    let (code, stdout, stderr) = plexus(&["bench", "resilience", "--quick", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["bench"], "resilience");
    let results = report["results"].as_array().unwrap();
    for name in [
        "breaker_overhead_ns",
        "retry_overhead_ns",
        "stack_overhead_ns",
        "stack_overhead_p99_ns",
        "stack_overhead_contended_ns",
        "tower_resilience_breaker_overhead_ns",
        "tower_timeout_overhead_ns",
    ] {
        let r = results
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(r["unit"], "ns", "{name}");
        assert!(r["value"].as_f64().unwrap().is_finite(), "{name}");
    }
}

#[test]
fn bad_arguments_exit_2_and_bad_values_exit_1_with_a_hint() {
    let (code, _, stderr) = plexus(&["bench", "nonsense"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = plexus(&["demo", "pipeline", "--publishers", "0"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--publishers must be at least 1"),
        "{stderr}"
    );
}

/// A scenario file in a fresh folder of the system's temp; the folder.
fn scenario_dir(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("plexus-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("scenario.toml"), text).unwrap();
    dir
}

#[test]
fn validate_exits_1_when_an_assertion_fails_and_writes_the_report() {
    // A healthy service asserted to fail half its calls: the assertion must fail.
    let dir = scenario_dir(
        "failing",
        r#"
name = "must-fail"
duration_s = 1.2
[[services]]
kind = "test"
name = "flaky"
[[loads]]
name = "calls"
target = { call = "flaky.work" }
model = "open"
rate = 50
[[assertions]]
kind = "error_rate"
load = "calls"
min = 0.5
[[assertions]]
kind = "error_rate"
load = "calls"
max = 0.0
"#,
    );
    let file = dir.join("scenario.toml");
    let out = dir.join("report");
    let (code, stdout, stderr) = plexus(&[
        "validate",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("1 of 2 assertions failed"), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["assertions"][0]["status"], "fail");
    assert_eq!(report["assertions"][1]["status"], "pass");
    assert!(out.join("report.html").exists() && out.join("report.md").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_refuses_an_invalid_scenario_with_status_2_naming_the_field() {
    let dir = scenario_dir("invalid", "name = \"x\"\nduration_s = -1\n");
    let file = dir.join("scenario.toml");
    let (code, _, stderr) = plexus(&["validate", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("duration_s"), "{stderr}");
    let (code, _, stderr) = plexus(&["validate", "seed-999"]);
    assert_eq!(code, 2, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_repeat_writes_each_run_and_the_median_and_range() {
    let dir = scenario_dir(
        "repeat",
        r#"
name = "repeat-twice"
duration_s = 1.2
[[services]]
kind = "test"
name = "svc"
[[loads]]
name = "calls"
target = { call = "svc.read" }
model = "open"
rate = 50
[[assertions]]
kind = "error_rate"
load = "calls"
max = 0.0
"#,
    );
    let file = dir.join("scenario.toml");
    let out = dir.join("report");
    let (code, stdout, stderr) = plexus(&[
        "validate",
        file.to_str().unwrap(),
        "--repeat",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("run 2 of 2: PASSED"), "{stdout}");
    assert!(stdout.contains("in 2 of 2 runs"), "{stdout}");
    for run in ["run-1", "run-2"] {
        assert!(out.join(run).join("report.json").exists(), "{run}");
    }
    let repeated: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("repeat.json")).unwrap()).unwrap();
    assert_eq!(repeated["runs"], 2);
    assert_eq!(repeated["passed"], true);
    assert_eq!(
        repeated["loads"][0]["p50_ms"]["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(out.join("repeat.md").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_reads_every_acknowledged_write_back() {
    // Writes with distinct ids into the DataStore (SQLite in the run's folder), each
    // read back after the run; read back from a collection they never went to, every
    // one is missing, and that assertion must fail.
    let dir = scenario_dir(
        "writes",
        r#"
name = "writes"
duration_s = 1.5
setup = [
  { call = "datastore.create_collection", params = { name = "w" } },
  { call = "datastore.create_collection", params = { name = "elsewhere" } },
]
[[services]]
kind = "built_in"
name = "datastore"
[[loads]]
name = "puts"
target = { call = "datastore.put", params = { collection = "w", id = "${run}-${seq}", doc = { n = "${seq}" } } }
model = "open"
rate = 100
[[assertions]]
kind = "no_lost_writes"
load = "puts"
read = { call = "datastore.get", params = { collection = "w", id = "${run}-${seq}" } }
[[assertions]]
kind = "no_lost_writes"
load = "puts"
read = { call = "datastore.get", params = { collection = "elsewhere", id = "${run}-${seq}" } }
"#,
    );
    let file = dir.join("scenario.toml");
    let out = dir.join("report");
    let (code, stdout, stderr) = plexus(&[
        "validate",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let ok = report["loads"][0]["totals"]["ok"].as_u64().unwrap();
    assert!(ok >= 100, "{stdout}");
    let kept = &report["assertions"][0];
    assert_eq!(kept["status"], "pass", "{stdout}");
    assert_eq!(kept["value"], 0.0, "{stdout}");
    assert!(
        kept["measured"]
            .as_str()
            .unwrap()
            .starts_with(&format!("0 lost of {ok} acknowledged ({ok} read back")),
        "{stdout}"
    );
    let elsewhere = &report["assertions"][1];
    assert_eq!(elsewhere["status"], "fail", "{stdout}");
    assert_eq!(elsewhere["value"], ok as f64, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
