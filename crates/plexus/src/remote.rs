//! The commands against a running node, through `plexus-client`: `call`, `publish`,
//! `subscribe`, `services`, `health` and `config`.
//!
//! Each prints text and tables for people, or JSON for scripts with `--json`. The
//! node's address comes from `--url` or `PLEXUS_URL`, the token from `--token` or
//! `PLEXUS_TOKEN` (never printed).

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Cell, Color, Table, presets::UTF8_FULL_CONDENSED};
use futures::StreamExt;
use plexus_client::{Client, DEFAULT_URL, Event, Priority};
use serde_json::{Map, Value};

/// A mistake in the command's arguments, found before anything was sent (exit
/// status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub(crate) String);

/// Where the node is and how to talk to it; on every command against a node.
#[derive(Clone, Debug, Args)]
pub(crate) struct Remote {
    /// The node's address.
    #[arg(long, env = "PLEXUS_URL", default_value = DEFAULT_URL, global = true)]
    url: String,
    /// A bearer token for a node with auth on (never printed).
    #[arg(long, env = "PLEXUS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON for scripts instead of text and tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

impl Remote {
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.url, self.token.clone())?)
    }
}

/// Arguments of `plexus call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The method, as `service.method`.
    method: String,
    /// Params as `key=value`: a value is JSON when it parses as JSON (`n=3`,
    /// `ok=true`, `tags=["a"]`), else a string; `a.b=1` nests (`{"a": {"b": 1}}`).
    #[arg(value_name = "KEY=VALUE")]
    pairs: Vec<String>,
    /// Params as one JSON value; `key=value` pairs are set on top of it.
    #[arg(long, value_name = "JSON")]
    params: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Arguments of `plexus publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The topic (`orders.created`).
    topic: String,
    /// The payload: JSON when it parses as JSON, else a string (default null).
    #[arg(long, value_name = "JSON")]
    payload: Option<String>,
    /// low, normal, high or critical.
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    priority: Priority,
    #[command(flatten)]
    remote: Remote,
}

/// Arguments of `plexus subscribe`.
#[derive(Debug, Args)]
pub(crate) struct SubscribeArgs {
    /// The pattern: `orders.*` (one token), `orders.>` (the rest).
    pattern: String,
    /// Stop after this many events (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

/// Arguments of `plexus services` and `plexus health`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    remote: Remote,
}

/// Arguments of `plexus config`.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
    #[command(flatten)]
    remote: Remote,
}

/// What `plexus config` does.
#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the value at a dotted path, or the whole configuration.
    Get {
        /// The dotted path (`calls.default.timeout_ms`).
        path: Option<String>,
    },
    /// Set the value at a dotted path: validated by the node, then a new version.
    Set {
        /// `path=value`; the value is a TOML value (`0.3`, `true`, `"text"`,
        /// `[1, 2]`, `{ a = 1 }`), else JSON, else the text as a string.
        #[arg(value_name = "PATH=VALUE")]
        assignment: String,
    },
    /// List the versions kept, oldest first.
    History,
    /// Make a past version's content current again, as a new version.
    Rollback {
        /// The version to go back to.
        #[arg(value_name = "VERSION")]
        target: u64,
    },
}

fn parse_priority(text: &str) -> Result<Priority, String> {
    text.parse::<Priority>().map_err(|e| e.to_string())
}

/// A runtime for one command.
pub(crate) fn block_on<F: Future<Output = anyhow::Result<()>>>(work: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

/// A value from the command line: JSON when it parses as JSON, else the text.
fn json_or_string(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The params of `plexus call`: `--params` (default `{}`), then each `key=value`.
pub(crate) fn build_params(params: Option<&str>, pairs: &[String]) -> Result<Value, Usage> {
    let mut value = match params {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Usage(format!("--params is not valid JSON: {e}")))?,
        None => Value::Object(Map::new()),
    };
    for pair in pairs {
        let Some((key, raw)) = pair.split_once('=') else {
            return Err(Usage(format!(
                "`{pair}` is not KEY=VALUE (use --params for a JSON value)"
            )));
        };
        let keys: Vec<&str> = key.split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(Usage(format!("`{key}` has an empty key")));
        }
        let mut at = &mut value;
        for (depth, k) in keys.iter().enumerate() {
            let Value::Object(map) = at else {
                let parent = if depth == 0 {
                    "the params".to_owned()
                } else {
                    format!("`{}`", keys[..depth].join("."))
                };
                return Err(Usage(format!(
                    "`{key}` sets a key inside {parent}, which is not an object"
                )));
            };
            at = if depth + 1 == keys.len() {
                map.insert((*k).to_owned(), json_or_string(raw));
                break;
            } else {
                map.entry((*k).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()))
            };
        }
    }
    Ok(value)
}

/// `plexus call`.
pub(crate) fn call(args: &CallArgs) -> anyhow::Result<()> {
    let params = build_params(args.params.as_deref(), &args.pairs)?;
    let client = args.remote.client()?;
    block_on(async {
        let result = client.call(&args.method, params).await?;
        print_value(&result, args.remote.json);
        Ok(())
    })
}

/// `plexus publish`.
pub(crate) fn publish(args: &PublishArgs) -> anyhow::Result<()> {
    let payload = args.payload.as_deref().map_or(Value::Null, json_or_string);
    let client = args.remote.client()?;
    block_on(async {
        let published = client.publish(&args.topic, payload, args.priority).await?;
        if args.remote.json {
            out!("{}", serde_json::to_string(&published)?);
        } else {
            out!(
                "published {} on {}: {} subscription(s) matched, {} queued it",
                published.id,
                args.topic,
                published.matched,
                published.enqueued
            );
        }
        Ok(())
    })
}

/// `plexus subscribe`: prints events until Ctrl-C, or `--count` of them.
pub(crate) fn subscribe(args: &SubscribeArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    block_on(async {
        // Installed before the notice below, so a Ctrl-C right after it is ours.
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("installing the Ctrl-C handler")?;
        let mut events = client.subscribe(&args.pattern).await?;
        eprintln!(
            "subscribed to `{}` as {}; Ctrl-C to stop",
            events.pattern(),
            events.id()
        );
        let mut seen = 0u64;
        while args.count.is_none_or(|n| seen < n) {
            let event = tokio::select! {
                event = events.next() => event,
                _ = interrupt.recv() => break,
            };
            match event {
                Some(event) => print_event(&event?, args.remote.json)?,
                None => break,
            }
            seen += 1;
        }
        Ok(())
    })
}

fn print_event(event: &Event, json: bool) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string(event)?);
    } else {
        let payload = match event.payload_encoding.as_str() {
            "base64" => format!("(bytes, base64) {}", event.payload),
            _ => event.payload.to_string(),
        };
        out!("{} [{:?}] {payload}", event.topic, event.priority);
    }
    Ok(())
}

pub(crate) fn print_value(value: &Value, json: bool) {
    if json {
        out!("{value}");
    } else {
        out!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    }
}

/// `plexus services`.
pub(crate) fn services(args: &ListArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    block_on(async {
        let services = client.services().await?;
        if args.remote.json {
            out!("{services}");
            return Ok(());
        }
        let mut table = table(&[
            "SERVICE", "INSTANCE", "TYPE", "VERSION", "STATUS", "METHODS", "REASON",
        ]);
        for r in services.as_array().map(Vec::as_slice).unwrap_or_default() {
            let d = &r["descriptor"];
            let methods: Vec<&str> = d["methods"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m["name"].as_str())
                .collect();
            let status = text(&r["status"]);
            table.add_row(vec![
                Cell::new(text(&d["name"])),
                Cell::new(text(&d["instance"])),
                Cell::new(text(&d["service_type"])),
                Cell::new(text(&d["version"])),
                status_cell(&status),
                Cell::new(methods.join(", ")),
                Cell::new(text(&r["reason"])),
            ]);
        }
        out!("{table}");
        Ok(())
    })
}

/// `plexus health`.
pub(crate) fn health(args: &ListArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    block_on(async {
        let health = client.node_health().await?;
        if args.remote.json {
            out!("{health}");
            return Ok(());
        }
        let system = &health["system"];
        let verdicts = system["components"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let status = text(&system["status"]);
        out!("system: {}", paint(&status, colours()));
        let mut table = table(&[
            "COMPONENT",
            "KIND",
            "STATUS",
            "VERDICT",
            "CHECKS",
            "FAILED",
            "LATENCY",
            "REASON",
        ]);
        for c in health["components"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = text(&c["component"]);
            let verdict = verdicts
                .iter()
                .find(|v| v["component"].as_str() == Some(name.as_str()));
            let latency = c["latency_us"]
                .as_f64()
                .map(|us| format!("{:.1} ms", us / 1000.0))
                .unwrap_or_default();
            let reason = verdict
                .map(|v| text(&v["reason"]))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| text(&c["detail"]));
            table.add_row(vec![
                Cell::new(&name),
                Cell::new(text(&c["kind"])),
                status_cell(&text(&c["status"])),
                status_cell(&verdict.map(|v| text(&v["verdict"])).unwrap_or_default()),
                Cell::new(text(&c["checks"])),
                Cell::new(text(&c["check_failures"])),
                Cell::new(latency),
                Cell::new(reason),
            ]);
        }
        out!("{table}");
        Ok(())
    })
}

/// `plexus config`.
pub(crate) fn config(args: &ConfigArgs) -> anyhow::Result<()> {
    let json = args.remote.json;
    let assignment = match &args.action {
        ConfigAction::Set { assignment } => {
            let Some((path, raw)) = assignment.split_once('=') else {
                return Err(Usage(format!("`{assignment}` is not PATH=VALUE")).into());
            };
            if path.is_empty() {
                return Err(Usage(format!("`{assignment}` has an empty path")).into());
            }
            Some((path.to_owned(), plexus_config::parse_value(raw)))
        }
        _ => None,
    };
    let client = args.remote.client()?;
    block_on(async {
        match (&args.action, assignment) {
            (ConfigAction::Get { path }, _) => {
                let value = client.config_get(path.as_deref()).await?;
                print_value(&value, json);
            }
            (ConfigAction::Set { .. }, Some((path, value))) => {
                let version = client.config_set(&path, value).await?;
                if json {
                    out!("{version}");
                } else {
                    out!(
                        "version {}: set {path} (changed: {})",
                        text(&version["version"]),
                        changed(&version)
                    );
                }
            }
            (ConfigAction::History, _) => {
                let history = client.config_history().await?;
                if json {
                    out!("{history}");
                    return Ok(());
                }
                let mut table = table(&["VERSION", "AT", "AUTHOR", "REASON", "CHANGED"]);
                for v in history.as_array().map(Vec::as_slice).unwrap_or_default() {
                    table.add_row(vec![
                        text(&v["version"]),
                        v["at"].as_u64().map_or_else(|| text(&v["at"]), utc),
                        text(&v["author"]),
                        text(&v["reason"]),
                        changed(v),
                    ]);
                }
                out!("{table}");
            }
            (ConfigAction::Rollback { target }, _) => {
                let new = client.config_rollback(*target).await?;
                if json {
                    out!("{new}");
                } else {
                    out!(
                        "version {}: the content of version {target} (changed: {})",
                        text(&new["version"]),
                        changed(&new)
                    );
                }
            }
            (ConfigAction::Set { .. }, None) => {}
        }
        Ok(())
    })
}

fn changed(version: &Value) -> String {
    let paths: Vec<String> = version["changed"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(text)
        .collect();
    if paths.is_empty() {
        "nothing".to_owned()
    } else {
        paths.join(", ")
    }
}

/// Microseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` UTC.
fn utc(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// A JSON value as table text: strings without quotes, null as nothing.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether to colour output: never with `NO_COLOR`, always with `CLICOLOR_FORCE`,
/// else when stdout is a terminal.
fn colours() -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    std::io::stdout().is_terminal()
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    if colours() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header(header.to_vec());
    table
}

/// The colour of a status, service or system.
fn status_colour(status: &str) -> Option<Color> {
    match status {
        "healthy" => Some(Color::Green),
        "degraded" | "transitioning" | "starting" => Some(Color::Yellow),
        "unhealthy" | "critical" => Some(Color::Red),
        "shutting_down" | "stopped" | "unknown" => Some(Color::DarkGrey),
        _ => None,
    }
}

fn status_cell(status: &str) -> Cell {
    let cell = Cell::new(status);
    match status_colour(status) {
        Some(colour) => cell.fg(colour),
        None => cell,
    }
}

/// `status` with its colour as ANSI codes, when colours are on.
fn paint(status: &str, on: bool) -> String {
    let code = match status_colour(status) {
        Some(Color::Green) => "32",
        Some(Color::Yellow) => "33",
        Some(Color::Red) => "31",
        Some(_) => "90",
        None => return status.to_owned(),
    };
    if on {
        format!("\x1b[{code}m{status}\x1b[0m")
    } else {
        status.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn pairs_are_json_when_they_parse_and_dots_nest() {
        let params = build_params(
            None,
            &pairs(&[
                "n=3",
                "ok=true",
                "name=ada",
                "a.b=1",
                "a.c=[1,2]",
                "zip=007",
            ]),
        )
        .unwrap();
        assert_eq!(
            params,
            json!({"n": 3, "ok": true, "name": "ada", "a": {"b": 1, "c": [1, 2]}, "zip": "007"})
        );
    }

    #[test]
    fn pairs_go_on_top_of_params() {
        let params = build_params(Some(r#"{"a": {"x": 1}, "b": 2}"#), &pairs(&["a.y=z"])).unwrap();
        assert_eq!(params, json!({"a": {"x": 1, "y": "z"}, "b": 2}));
        assert_eq!(build_params(None, &[]).unwrap(), json!({}));
        assert_eq!(build_params(Some("[1]"), &[]).unwrap(), json!([1]));
    }

    #[test]
    fn bad_params_are_usage_errors_that_say_why() {
        for (params, items, needle) in [
            (Some("{nope"), vec!["a=1"], "--params is not valid JSON"),
            (None, vec!["novalue"], "is not KEY=VALUE"),
            (None, vec!["a..b=1"], "empty key"),
            (
                None,
                vec!["a=1", "a.b=2"],
                "inside `a`, which is not an object",
            ),
            (Some("[1]"), vec!["a=1"], "inside the params"),
        ] {
            let err = build_params(params, &pairs(&items))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{items:?}: {err}");
        }
    }

    #[test]
    fn timestamps_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_573_456_910_527), "2026-11-25 02:24:16");
    }

    #[test]
    fn statuses_are_painted_only_when_colours_are_on() {
        assert_eq!(paint("healthy", true), "\x1b[32mhealthy\x1b[0m");
        assert_eq!(paint("critical", true), "\x1b[31mcritical\x1b[0m");
        assert_eq!(paint("healthy", false), "healthy");
    }
}
