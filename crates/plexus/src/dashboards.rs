//! `plexus dashboards`: the Grafana dashboards in `deploy/grafana/`, generated from
//! the metrics a node with every built-in family exports, so they cannot drift from
//! the code.
//!
//! The command starts such a node in process (embedded backends in a scratch
//! folder, the gateway built but not serving), reads its exposition, and builds
//! from its `# TYPE` and `# HELP` lines a catalogue of every metric. Each panel
//! names the metrics it needs; one whose metrics the node does not export becomes a
//! text panel that says they are absent. Two dashboards are built from the
//! catalogue alone: *Business Metrics* has a section per family (`plexus_cache_*`,
//! `plexus_locks_*`, … — a new family adds its own), and *Cost Analysis* is built
//! on `plexus_inference_*` when the inference family exists.
//!
//! | flag | what |
//! | --- | --- |
//! | (none) | write the four dashboards into `--out` (default `deploy/grafana`) |
//! | `--check` | compare them with the files instead, and check that the alert rules (`--rules`) name only exported metrics; exit 1 on a difference |
//! | `--metrics` | print the catalogue (name, type, help); `--json` for JSON |
//! | `--exposition` | print the exposition itself (for `promtool check metrics`) |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use plexus_app::App;
use serde::Serialize;
use serde_json::{Value, json};

/// Arguments of `plexus dashboards`.
#[derive(Debug, Args)]
pub(crate) struct DashboardsArgs {
    /// The folder of the dashboards.
    #[arg(long, value_name = "DIR", default_value = "deploy/grafana")]
    out: PathBuf,
    /// Compare with the files in --out instead of writing them, and check the alert
    /// rules' metric names; exit 1 when something differs.
    #[arg(long)]
    check: bool,
    /// The Prometheus alert rules whose metric names --check verifies.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "deploy/prometheus/alerts.yml"
    )]
    rules: PathBuf,
    /// Print the catalogue of metrics instead.
    #[arg(long, conflicts_with_all = ["check", "exposition"])]
    metrics: bool,
    /// Print the node's exposition (Prometheus text) instead.
    #[arg(long, conflicts_with = "check")]
    exposition: bool,
    /// With --metrics: JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One metric as the node declares it.
#[derive(Clone, Debug, Serialize)]
struct Metric {
    /// Its name without `_total` (counters) — the family name.
    name: String,
    /// `counter`, `gauge`, `histogram`, …
    kind: String,
    /// Its help text.
    help: String,
}

/// Every metric of the exposition, by family name, and every family `declared`
/// without samples yet: those have no type in the exposition, so theirs is read
/// from the Prometheus naming conventions (`_seconds`/`_bytes`: a histogram;
/// otherwise a counter, which is what every labelled family of the node without
/// samples at rest is).
fn catalogue(exposition: &str, declared: &[(String, String)]) -> BTreeMap<String, Metric> {
    let mut out = BTreeMap::new();
    let mut helps = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                helps.insert(name.to_owned(), help.trim_end_matches('.').to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            let base = if kind == "counter" {
                name.strip_suffix("_total").unwrap_or(name)
            } else {
                name
            };
            let help = helps.get(name).cloned().unwrap_or_default();
            out.insert(
                base.to_owned(),
                Metric {
                    name: base.to_owned(),
                    kind: kind.to_owned(),
                    help,
                },
            );
        }
    }
    for (name, help) in declared {
        let kind = if name.ends_with("_seconds") || name.ends_with("_bytes") {
            "histogram"
        } else {
            "counter"
        };
        out.entry(name.clone()).or_insert_with(|| Metric {
            name: name.clone(),
            kind: kind.to_owned(),
            help: help.clone(),
        });
    }
    out
}

/// The exposition of a node with every family this binary has (embedded
/// backends), and the families it declares.
fn exposition() -> anyhow::Result<(String, Vec<(String, String)>)> {
    let scratch = std::env::temp_dir().join(format!("plexus-dashboards-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let text = runtime.block_on(async {
        let app = App::builder()
            .data_dir(&scratch)
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .start()
            .await
            .context("starting a node to read its metrics")?;
        // The gateway and MCP register their metrics when built.
        let listening = app.listen().await;
        let metrics = app.node().metrics();
        let text = metrics.render(plexus_node::metrics::Format::Prometheus);
        let declared = metrics.declared();
        drop(listening);
        app.stop().await;
        anyhow::Ok((text, declared))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    text
}

// ----- panels -----

/// What one panel shows.
enum Show {
    /// A single number.
    Stat,
    /// Lines over time.
    Series,
}

/// A panel: its title, what it shows, its queries `(expr, legend)`, its unit, and
/// the metric families it needs.
struct PanelSpec {
    title: String,
    show: Show,
    queries: Vec<(String, String)>,
    unit: &'static str,
    needs: Vec<String>,
}

fn panel(
    title: &str,
    show: Show,
    unit: &'static str,
    needs: &[&str],
    queries: &[(&str, &str)],
) -> PanelSpec {
    PanelSpec {
        title: title.to_owned(),
        show,
        queries: queries
            .iter()
            .map(|(e, l)| ((*e).to_owned(), (*l).to_owned()))
            .collect(),
        unit,
        needs: needs.iter().map(|n| (*n).to_owned()).collect(),
    }
}

/// A row of panels under a title.
struct Section {
    title: String,
    panels: Vec<PanelSpec>,
    /// What to say when it has no panels.
    empty: Option<String>,
}

fn section(title: &str, panels: Vec<PanelSpec>) -> Section {
    Section {
        title: title.to_owned(),
        panels,
        empty: None,
    }
}

const RATE: &str = "$__rate_interval";

/// The panels the catalogue gives for every metric of one family prefix: a rate
/// per counter, the value of each gauge, the p99 of each histogram.
fn generated(catalogue: &BTreeMap<String, Metric>, prefix: &str) -> Vec<PanelSpec> {
    catalogue
        .values()
        .filter(|m| m.name.starts_with(prefix))
        .filter_map(|m| {
            let (title, expr, unit) = match m.kind.as_str() {
                "counter" => (
                    format!("{} (per second)", m.help),
                    format!("sum(rate({}_total[{RATE}]))", m.name),
                    "ops",
                ),
                "gauge" => (m.help.clone(), format!("sum({})", m.name), "short"),
                "histogram" => (
                    format!("{}: p99", m.help),
                    format!(
                        "histogram_quantile(0.99, sum by (le) (rate({}_bucket[{RATE}])))",
                        m.name
                    ),
                    if m.name.ends_with("_seconds") {
                        "s"
                    } else {
                        "short"
                    },
                ),
                _ => return None,
            };
            Some(PanelSpec {
                title,
                show: Show::Series,
                queries: vec![(expr, m.name.clone())],
                unit,
                needs: vec![m.name.clone()],
            })
        })
        .collect()
}

/// The family prefixes of the call path, the bus and the node itself: the
/// Business Metrics dashboard shows every other family.
const CORE_FAMILIES: [&str; 9] = [
    "calls",
    "call",
    "bus",
    "registry",
    "health",
    "breaker",
    "gateway",
    "mcp",
    "inference",
];

fn agent_overview() -> Vec<Section> {
    vec![
        section(
            "Calls",
            vec![
                panel(
                    "Calls per second",
                    Show::Stat,
                    "ops",
                    &["plexus_calls"],
                    &[("sum(rate(plexus_calls_total[$__rate_interval]))", "calls/s")],
                ),
                panel(
                    "Failed calls",
                    Show::Stat,
                    "percentunit",
                    &["plexus_calls"],
                    &[(
                        "sum(rate(plexus_calls_total{outcome!=\"ok\"}[$__rate_interval])) / sum(rate(plexus_calls_total[$__rate_interval]))",
                        "failed",
                    )],
                ),
                panel(
                    "Call p99",
                    Show::Stat,
                    "s",
                    &["plexus_call_duration_seconds"],
                    &[(
                        "histogram_quantile(0.99, sum by (le) (rate(plexus_call_duration_seconds_bucket[$__rate_interval])))",
                        "p99",
                    )],
                ),
                panel(
                    "Healthy instances",
                    Show::Stat,
                    "short",
                    &["plexus_registry_instances"],
                    &[(
                        "sum(plexus_registry_instances{status=\"healthy\"})",
                        "healthy",
                    )],
                ),
                panel(
                    "Calls per second by service",
                    Show::Series,
                    "ops",
                    &["plexus_calls"],
                    &[(
                        "sum by (service) (rate(plexus_calls_total[$__rate_interval]))",
                        "{{service}}",
                    )],
                ),
                panel(
                    "Errors per second by outcome",
                    Show::Series,
                    "ops",
                    &["plexus_calls"],
                    &[(
                        "sum by (outcome) (rate(plexus_calls_total{outcome!=\"ok\"}[$__rate_interval]))",
                        "{{outcome}}",
                    )],
                ),
                panel(
                    "p99 by service",
                    Show::Series,
                    "s",
                    &["plexus_call_duration_seconds"],
                    &[(
                        "histogram_quantile(0.99, sum by (service, le) (rate(plexus_call_duration_seconds_bucket[$__rate_interval])))",
                        "{{service}}",
                    )],
                ),
                panel(
                    "Hedged calls per second",
                    Show::Series,
                    "ops",
                    &["plexus_calls_hedged"],
                    &[(
                        "sum by (service) (rate(plexus_calls_hedged_total[$__rate_interval]))",
                        "{{service}}",
                    )],
                ),
            ],
        ),
        section(
            "Gateway",
            vec![
                panel(
                    "Requests per second",
                    Show::Series,
                    "ops",
                    &["plexus_gateway_requests"],
                    &[(
                        "sum by (endpoint, outcome) (rate(plexus_gateway_requests_total[$__rate_interval]))",
                        "{{endpoint}} {{outcome}}",
                    )],
                ),
                panel(
                    "/rpc p99",
                    Show::Series,
                    "s",
                    &["plexus_gateway_request_duration_seconds"],
                    &[(
                        "histogram_quantile(0.99, sum by (le) (rate(plexus_gateway_request_duration_seconds_bucket{endpoint=\"rpc\"}[$__rate_interval])))",
                        "p99",
                    )],
                ),
                panel(
                    "WebSocket connections",
                    Show::Series,
                    "short",
                    &["plexus_gateway_ws_connections"],
                    &[("sum(plexus_gateway_ws_connections)", "open")],
                ),
                panel(
                    "Instances by status",
                    Show::Series,
                    "short",
                    &["plexus_registry_instances"],
                    &[("sum by (status) (plexus_registry_instances)", "{{status}}")],
                ),
            ],
        ),
    ]
}

fn system_health() -> Vec<Section> {
    vec![
        section(
            "Health",
            vec![
                panel(
                    "Components not healthy",
                    Show::Series,
                    "short",
                    &["plexus_health_status"],
                    &[(
                        "sum by (component, status) (plexus_health_status{status!=\"healthy\"} == 1)",
                        "{{component}} {{status}}",
                    )],
                ),
                panel(
                    "Check failures per second",
                    Show::Series,
                    "ops",
                    &["plexus_health_check_failures"],
                    &[(
                        "sum by (component) (rate(plexus_health_check_failures_total[$__rate_interval]))",
                        "{{component}}",
                    )],
                ),
                panel(
                    "Heal attempts per second",
                    Show::Series,
                    "ops",
                    &["plexus_health_heal_attempts"],
                    &[(
                        "sum by (component) (rate(plexus_health_heal_attempts_total[$__rate_interval]))",
                        "{{component}}",
                    )],
                ),
                panel(
                    "Recoveries",
                    Show::Series,
                    "short",
                    &["plexus_health_recoveries"],
                    &[(
                        "sum by (component, cause) (increase(plexus_health_recoveries_total[$__rate_interval]))",
                        "{{component}} {{cause}}",
                    )],
                ),
            ],
        ),
        section(
            "Breakers",
            vec![
                panel(
                    "Breakers open",
                    Show::Series,
                    "short",
                    &["plexus_breaker_state"],
                    &[(
                        "sum by (service, instance) (plexus_breaker_state{state=~\"open|forced_open|half_open\"} == 1)",
                        "{{service}}/{{instance}}",
                    )],
                ),
                panel(
                    "Calls refused by breakers",
                    Show::Series,
                    "ops",
                    &["plexus_breaker_rejected"],
                    &[(
                        "sum by (service) (rate(plexus_breaker_rejected_total[$__rate_interval]))",
                        "{{service}}",
                    )],
                ),
                panel(
                    "Breaker failures per second",
                    Show::Series,
                    "ops",
                    &["plexus_breaker_calls"],
                    &[(
                        "sum by (service) (rate(plexus_breaker_calls_total{outcome=\"failure\"}[$__rate_interval]))",
                        "{{service}}",
                    )],
                ),
            ],
        ),
        section(
            "Bus",
            vec![
                panel(
                    "Published per second",
                    Show::Series,
                    "ops",
                    &["plexus_bus_published", "plexus_bus_unmatched"],
                    &[
                        (
                            "sum(rate(plexus_bus_published_total[$__rate_interval]))",
                            "published",
                        ),
                        (
                            "sum(rate(plexus_bus_unmatched_total[$__rate_interval]))",
                            "unmatched",
                        ),
                    ],
                ),
                panel(
                    "Lag by subscription",
                    Show::Series,
                    "short",
                    &["plexus_bus_lag"],
                    &[("max by (subscription) (plexus_bus_lag)", "{{subscription}}")],
                ),
                panel(
                    "Dropped and rejected per second",
                    Show::Series,
                    "ops",
                    &["plexus_bus_dropped", "plexus_bus_rejected"],
                    &[
                        (
                            "sum by (subscription) (rate(plexus_bus_dropped_total[$__rate_interval]))",
                            "dropped {{subscription}}",
                        ),
                        (
                            "sum by (subscription) (rate(plexus_bus_rejected_total[$__rate_interval]))",
                            "rejected {{subscription}}",
                        ),
                    ],
                ),
                panel(
                    "Dead letters",
                    Show::Series,
                    "short",
                    &["plexus_bus_dead_lettered", "plexus_bus_dead_letter_lost"],
                    &[
                        (
                            "sum(increase(plexus_bus_dead_lettered_total[$__rate_interval]))",
                            "dead-lettered",
                        ),
                        (
                            "sum(increase(plexus_bus_dead_letter_lost_total[$__rate_interval]))",
                            "lost",
                        ),
                    ],
                ),
            ],
        ),
        section(
            "Gateway protection",
            vec![
                panel(
                    "Auth failures per second",
                    Show::Series,
                    "ops",
                    &["plexus_gateway_auth_failures"],
                    &[(
                        "sum by (reason) (rate(plexus_gateway_auth_failures_total[$__rate_interval]))",
                        "{{reason}}",
                    )],
                ),
                panel(
                    "Connections refused per second",
                    Show::Series,
                    "ops",
                    &["plexus_gateway_connections_refused"],
                    &[(
                        "sum by (reason) (rate(plexus_gateway_connections_refused_total[$__rate_interval]))",
                        "{{reason}}",
                    )],
                ),
            ],
        ),
    ]
}

fn business(catalogue: &BTreeMap<String, Metric>) -> Vec<Section> {
    let mut families: Vec<&str> = catalogue
        .keys()
        .filter_map(|n| n.strip_prefix("plexus_")?.split('_').next())
        .filter(|f| !CORE_FAMILIES.contains(f))
        .collect();
    families.dedup();
    families
        .into_iter()
        .map(|family| {
            let prefix = format!("plexus_{family}_");
            section(
                &format!("{family} ({prefix}*)"),
                generated(catalogue, &prefix),
            )
        })
        .collect()
}

fn cost(catalogue: &BTreeMap<String, Metric>) -> Vec<Section> {
    let inference = generated(catalogue, "plexus_inference_");
    let absent = inference.is_empty().then(|| {
        "absent: this build has no inference family, so no plexus_inference_* metrics. \
         Regenerating with `plexus dashboards` once it exists fills this section with its \
         token and cost metrics."
            .to_owned()
    });
    vec![
        Section {
            title: "Inference: tokens and cost per model".to_owned(),
            panels: inference,
            empty: absent,
        },
        section(
            "Compute spent by the node",
            vec![
                panel(
                    "Call time spent per second, by service",
                    Show::Series,
                    "s",
                    &["plexus_call_duration_seconds"],
                    &[(
                        "sum by (service) (rate(plexus_call_duration_seconds_sum[$__rate_interval]))",
                        "{{service}}",
                    )],
                ),
                panel(
                    "Script operations per second",
                    Show::Series,
                    "ops",
                    &["plexus_script_operations"],
                    &[(
                        "sum(rate(plexus_script_operations_total[$__rate_interval]))",
                        "operations",
                    )],
                ),
                panel(
                    "Script runs ended by a limit",
                    Show::Series,
                    "ops",
                    &["plexus_script_limits"],
                    &[(
                        "sum by (limit) (rate(plexus_script_limits_total[$__rate_interval]))",
                        "{{limit}}",
                    )],
                ),
            ],
        ),
    ]
}

/// The Grafana JSON of one dashboard.
fn dashboard(
    uid: &str,
    title: &str,
    sections: Vec<Section>,
    catalogue: &BTreeMap<String, Metric>,
) -> Value {
    let mut panels = Vec::new();
    let mut id = 0;
    let mut y = 0;
    let mut next_id = || {
        id += 1;
        id
    };
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    for s in sections {
        panels.push(json!({
            "id": next_id(), "type": "row", "title": s.title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [],
        }));
        y += 1;
        if s.panels.is_empty() {
            let text = s
                .empty
                .unwrap_or_else(|| format!("absent: no {} metrics in this build", s.title));
            panels.push(json!({
                "id": next_id(), "type": "text", "title": format!("{}: absent", s.title),
                "gridPos": {"h": 3, "w": 24, "x": 0, "y": y},
                "options": {"mode": "markdown", "content": text},
            }));
            y += 3;
            continue;
        }
        let mut x = 0;
        let mut row_height = 0;
        for p in s.panels {
            let (w, h) = match p.show {
                Show::Stat => (6, 4),
                Show::Series => (12, 8),
            };
            if x + w > 24 {
                x = 0;
                y += row_height;
                row_height = 0;
            }
            let missing: Vec<&String> = p
                .needs
                .iter()
                .filter(|n| !catalogue.contains_key(*n))
                .collect();
            let grid = json!({"h": h, "w": w, "x": x, "y": y});
            let body = if missing.is_empty() {
                let targets: Vec<Value> = p
                    .queries
                    .iter()
                    .enumerate()
                    .map(|(i, (expr, legend))| {
                        json!({
                            "refId": char::from(b'A' + u8::try_from(i).unwrap_or(0)).to_string(),
                            "datasource": datasource, "expr": expr, "legendFormat": legend,
                        })
                    })
                    .collect();
                let kind = match p.show {
                    Show::Stat => "stat",
                    Show::Series => "timeseries",
                };
                json!({
                    "id": next_id(), "type": kind, "title": p.title, "gridPos": grid,
                    "datasource": datasource, "targets": targets,
                    "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                })
            } else {
                let names: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
                json!({
                    "id": next_id(), "type": "text", "title": p.title, "gridPos": grid,
                    "options": {"mode": "markdown", "content": format!("absent: this build exports no {}", names.join(", "))},
                })
            };
            panels.push(body);
            x += w;
            row_height = row_height.max(h);
        }
        y += row_height;
    }
    json!({
        "uid": uid,
        "title": title,
        "tags": ["plexus"],
        "description": "Generated by `plexus dashboards` from the metrics the node exports; do not edit by hand.",
        "editable": true,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        }]},
        "annotations": {"list": []},
        "panels": panels,
    })
}

/// The four dashboards by file name.
fn dashboards(catalogue: &BTreeMap<String, Metric>) -> Vec<(&'static str, String)> {
    let all = [
        (
            "agent-overview.json",
            "plexus-agent-overview",
            "Plexus: Agent Overview",
            agent_overview(),
        ),
        (
            "system-health.json",
            "plexus-system-health",
            "Plexus: System Health",
            system_health(),
        ),
        (
            "business-metrics.json",
            "plexus-business-metrics",
            "Plexus: Business Metrics",
            business(catalogue),
        ),
        (
            "cost-analysis.json",
            "plexus-cost-analysis",
            "Plexus: Cost Analysis",
            cost(catalogue),
        ),
    ];
    all.into_iter()
        .map(|(file, uid, title, sections)| {
            let value = dashboard(uid, title, sections, catalogue);
            // Pretty JSON with a final newline: what is committed.
            let text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
            (file, text)
        })
        .collect()
}

/// Every `plexus_…` metric name the rules file mentions that the catalogue lacks
/// (a sample name's `_total`, `_bucket`, `_sum`, `_count` taken off).
fn unknown_in_rules(rules: &str, catalogue: &BTreeMap<String, Metric>) -> Vec<String> {
    let mut unknown: Vec<String> = Vec::new();
    let bytes = rules.as_bytes();
    let mut i = 0;
    while let Some(at) = rules[i..].find("plexus_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = rules[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rules.len(), |n| start + n);
        let name = &rules[start..end];
        i = end;
        if preceded {
            continue;
        }
        let known = [name]
            .into_iter()
            .chain(
                ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .filter_map(|s| name.strip_suffix(s)),
            )
            .any(|n| catalogue.contains_key(n));
        if !known && !unknown.iter().any(|u| u == name) {
            unknown.push(name.to_owned());
        }
    }
    unknown
}

fn check(args: &DashboardsArgs, catalogue: &BTreeMap<String, Metric>) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (file, text) in dashboards(catalogue) {
        let path = args.out.join(file);
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == text => {}
            Ok(_) => problems.push(format!(
                "{} differs from what the metrics give",
                path.display()
            )),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    let rules = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("reading {}", args.rules.display()))?;
    for name in unknown_in_rules(&rules, catalogue) {
        problems.push(format!(
            "{} names {name}, which the node does not export",
            args.rules.display()
        ));
    }
    if !problems.is_empty() {
        bail!(
            "{}\n(run `plexus dashboards` to regenerate the dashboards)",
            problems.join("\n")
        );
    }
    out!(
        "dashboards and alert rules match the node's metrics ({} metrics)",
        catalogue.len()
    );
    Ok(())
}

fn write(dir: &Path, catalogue: &BTreeMap<String, Metric>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (file, text) in dashboards(catalogue) {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        out!("wrote {}", path.display());
    }
    Ok(())
}

/// `plexus dashboards`.
pub(crate) fn run(args: &DashboardsArgs) -> anyhow::Result<()> {
    let (text, declared) = exposition()?;
    if args.exposition {
        print!("{text}");
        return Ok(());
    }
    let catalogue = catalogue(&text, &declared);
    if args.metrics {
        if args.json {
            let list: Vec<&Metric> = catalogue.values().collect();
            out!("{}", serde_json::to_string(&list)?);
        } else {
            let mut table = crate::remote::table(&["metric", "type", "help"]);
            for m in catalogue.values() {
                table.add_row([m.name.as_str(), m.kind.as_str(), m.help.as_str()]);
            }
            out!("{table}");
        }
        return Ok(());
    }
    if args.check {
        return check(args, &catalogue);
    }
    write(&args.out, &catalogue)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP plexus_calls_total Calls through the call path.
# TYPE plexus_calls_total counter
# HELP plexus_bus_lag Events queued.
# TYPE plexus_bus_lag gauge
# HELP plexus_call_duration_seconds Call time.
# TYPE plexus_call_duration_seconds histogram
";

    #[test]
    fn the_catalogue_reads_type_and_help() {
        let declared = [
            (
                "plexus_calls".to_owned(),
                "ignored: the exposition says".to_owned(),
            ),
            ("plexus_x_refused".to_owned(), "Refused".to_owned()),
            ("plexus_x_wait_seconds".to_owned(), "Waits".to_owned()),
        ];
        let c = catalogue(TEXT, &declared);
        assert_eq!(c["plexus_calls"].kind, "counter");
        assert_eq!(c["plexus_calls"].help, "Calls through the call path");
        assert_eq!(c["plexus_call_duration_seconds"].kind, "histogram");
        assert_eq!(c["plexus_x_refused"].kind, "counter");
        assert_eq!(c["plexus_x_wait_seconds"].kind, "histogram");
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn rules_may_name_only_known_metrics() {
        let c = catalogue(TEXT, &[]);
        let rules = "expr: rate(plexus_calls_total[5m]) + plexus_bus_lag \
                     + histogram_quantile(0.9, plexus_call_duration_seconds_bucket) \
                     + plexus_nope_total + x_plexus_ignored";
        assert_eq!(unknown_in_rules(rules, &c), ["plexus_nope_total"]);
    }

    #[test]
    fn a_panel_on_missing_metrics_says_absent() {
        let c = catalogue(TEXT, &[]);
        let d = dashboard("u", "t", cost(&c), &c);
        let text = d.to_string();
        assert!(
            text.contains("absent: this build has no inference family"),
            "{text}"
        );
        assert!(
            text.contains("absent: this build exports no plexus_script_operations"),
            "{text}"
        );
    }
}
