//! `plexus top`: the dashboard's live picture in the terminal — each service's
//! instances, health, open breakers, calls and errors per second and p99 — redrawn
//! every `--interval-ms` until Ctrl-C. `--once` prints one picture (two readings
//! `--interval-ms` apart, for the rates) and exits; with `--json`, as one JSON
//! object for scripts.
//!
//! It reads `GET /ui/api/services` (the `ops` scope): per-method totals from the
//! node's own `plexus_calls_total` and `plexus_call_duration_seconds`. A service's
//! p99 is its slowest method's.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use plexus_client::Client;
use serde::Serialize;
use serde_json::Value;

use crate::remote::{Remote, table};

/// Arguments of `plexus top`.
#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// Print one picture and exit.
    #[arg(long)]
    once: bool,
    /// Time between readings, in milliseconds (rates are over it).
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    interval_ms: u64,
    #[command(flatten)]
    remote: Remote,
}

/// One service in the picture.
#[derive(Debug, Default, Serialize)]
struct ServiceRow {
    service: String,
    instances: u64,
    healthy: u64,
    breakers_open: u64,
    calls: u64,
    errors: u64,
    calls_per_s: f64,
    errors_per_s: f64,
    p99_ms: Option<f64>,
}

/// One method in the picture.
#[derive(Debug, Serialize)]
struct MethodRow {
    method: String,
    calls: u64,
    errors: u64,
    calls_per_s: f64,
    errors_per_s: f64,
    p99_ms: Option<f64>,
}

/// The picture between two readings.
#[derive(Debug, Serialize)]
struct Picture {
    at_ms: u64,
    interval_ms: u64,
    services: Vec<ServiceRow>,
    methods: Vec<MethodRow>,
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The rates between `before` and `after` (two `/ui/api/services` readings).
fn picture(before: &Value, after: &Value) -> Picture {
    let secs = (u(&after["at_ms"]).saturating_sub(u(&before["at_ms"]))) as f64 / 1000.0;
    let per_s = |now: u64, then: u64| {
        if secs > 0.0 {
            now.saturating_sub(then) as f64 / secs
        } else {
            0.0
        }
    };
    let key = |m: &Value| {
        format!(
            "{}.{}",
            m["service"].as_str().unwrap_or(""),
            m["method"].as_str().unwrap_or("")
        )
    };
    let empty = Vec::new();
    let then: BTreeMap<String, &Value> = before["methods"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|m| (key(m), m))
        .collect();
    let mut services: BTreeMap<String, ServiceRow> = BTreeMap::new();
    for i in after["instances"].as_array().unwrap_or(&empty) {
        let name = i["service"].as_str().unwrap_or("").to_owned();
        let row = services.entry(name.clone()).or_default();
        row.service = name;
        row.instances += 1;
        row.healthy += u64::from(i["status"] == "healthy");
        row.breakers_open += u64::from(matches!(
            i["breaker"]["state"].as_str(),
            Some("open" | "forced_open")
        ));
    }
    let mut methods = Vec::new();
    for m in after["methods"].as_array().unwrap_or(&empty) {
        let name = key(m);
        let (calls, errors) = (u(&m["calls"]), u(&m["errors"]));
        let (calls_then, errors_then) = then
            .get(&name)
            .map_or((0, 0), |p| (u(&p["calls"]), u(&p["errors"])));
        let p99_ms = m["p99_ms"].as_f64();
        let row = MethodRow {
            method: name,
            calls,
            errors,
            calls_per_s: per_s(calls, calls_then),
            errors_per_s: per_s(errors, errors_then),
            p99_ms,
        };
        let service = m["service"].as_str().unwrap_or("").to_owned();
        let s = services.entry(service.clone()).or_default();
        s.service = service;
        s.calls += row.calls;
        s.errors += row.errors;
        s.calls_per_s += row.calls_per_s;
        s.errors_per_s += row.errors_per_s;
        s.p99_ms = match (s.p99_ms, p99_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        methods.push(row);
    }
    // The busiest first.
    methods.sort_by(|a, b| {
        b.calls_per_s
            .total_cmp(&a.calls_per_s)
            .then(b.calls.cmp(&a.calls))
    });
    Picture {
        at_ms: u(&after["at_ms"]),
        interval_ms: (secs * 1000.0) as u64,
        services: services.into_values().collect(),
        methods,
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.3}"))
}

fn print(p: &Picture) {
    let mut services = table(&[
        "service",
        "instances",
        "healthy",
        "open breakers",
        "calls/s",
        "errors/s",
        "calls",
        "errors",
        "p99 ms",
    ]);
    for s in &p.services {
        services.add_row(vec![
            s.service.clone(),
            s.instances.to_string(),
            s.healthy.to_string(),
            s.breakers_open.to_string(),
            format!("{:.1}", s.calls_per_s),
            format!("{:.1}", s.errors_per_s),
            s.calls.to_string(),
            s.errors.to_string(),
            ms(s.p99_ms),
        ]);
    }
    out!("{services}");
    let mut methods = table(&["method", "calls/s", "errors/s", "calls", "errors", "p99 ms"]);
    for m in &p.methods {
        methods.add_row(vec![
            m.method.clone(),
            format!("{:.1}", m.calls_per_s),
            format!("{:.1}", m.errors_per_s),
            m.calls.to_string(),
            m.errors.to_string(),
            ms(m.p99_ms),
        ]);
    }
    out!("{methods}");
}

async fn reading(client: &Client) -> anyhow::Result<Value> {
    Ok(client.service_stats().await?)
}

/// `plexus top`.
pub(crate) fn run(args: &TopArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let interval = Duration::from_millis(args.interval_ms);
    crate::remote::block_on(async move {
        let mut before = reading(&client).await?;
        loop {
            tokio::time::sleep(interval).await;
            let after = reading(&client).await?;
            let p = picture(&before, &after);
            if args.remote.json {
                out!("{}", serde_json::to_string(&p)?);
            } else {
                if !args.once {
                    // Clear the screen and go home, as top does.
                    out!(
                        "\x1b[2J\x1b[H{} — every {} ms, Ctrl-C to stop",
                        client.url(),
                        args.interval_ms
                    );
                }
                print(&p);
            }
            if args.once {
                return Ok(());
            }
            before = after;
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rates_come_from_two_readings_and_services_sum_their_methods() {
        let before = json!({"at_ms": 1000, "instances": [], "methods": [
            {"service": "a", "method": "x", "calls": 10, "errors": 1, "p99_ms": 2.0}]});
        let after = json!({"at_ms": 3000,
            "instances": [
                {"service": "a", "status": "healthy", "breaker": {"state": "closed"}},
                {"service": "a", "status": "unhealthy", "breaker": {"state": "open"}}],
            "methods": [
                {"service": "a", "method": "x", "calls": 30, "errors": 5, "p99_ms": 2.0},
                {"service": "a", "method": "y", "calls": 4, "errors": 0, "p99_ms": 9.5}]});
        let p = picture(&before, &after);
        assert_eq!(p.interval_ms, 2000);
        let a = &p.services[0];
        assert_eq!((a.instances, a.healthy, a.breakers_open), (2, 1, 1));
        assert_eq!((a.calls, a.errors), (34, 5));
        // x: 20 calls in 2 s; y: 4 calls since nothing.
        assert!((a.calls_per_s - 12.0).abs() < 1e-9, "{a:?}");
        assert!((a.errors_per_s - 2.0).abs() < 1e-9, "{a:?}");
        assert_eq!(a.p99_ms, Some(9.5));
        assert_eq!(p.methods[0].method, "a.x");
    }
}
