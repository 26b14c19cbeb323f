//! The official SDKs against the live server: Python (`mcp` from PyPI, both
//! protocols) and TypeScript (`@modelcontextprotocol/sdk` from npm, 2025-11-25).
//!
//! The scripts live in `tests/clients/`. They need `pip install mcp==2.3.0` and
//! `npm ci --prefix crates/mcp/tests/clients`; without them these tests fail and
//! say which package is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use plexus_mcp::{McpConfig, McpEvent};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::{Harness, WAIT};

/// The first line includes the interpreter's start and the SDK's import.
const FIRST_LINE: Duration = Duration::from_secs(60);

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

struct Script {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    name: &'static str,
}

impl Script {
    fn spawn(name: &'static str, program: &str, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(clients_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{name}: cannot run `{program}`: {e}; it must be installed")
            });
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
            name,
        }
    }

    /// The next step the script printed; fails with its stderr if it printed none.
    async fn step(&mut self, expected: &str, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.next_line()).await;
        let line = match line {
            Ok(Ok(Some(line))) => line,
            other => {
                let _ = self.child.start_kill();
                let mut err = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    let _ = tokio::time::timeout(WAIT, stderr.read_to_string(&mut err)).await;
                }
                panic!(
                    "{}: no `{expected}` step ({other:?}); stderr:\n{err}",
                    self.name
                );
            }
        };
        let step: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not a step: {line}: {e}", self.name));
        assert_ne!(step["step"], "missing", "{}: {}", self.name, step["error"]);
        assert_eq!(step["step"], expected, "{}: {step}", self.name);
        step
    }

    async fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn finish(mut self) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

fn python() -> String {
    std::env::var("PLEXUS_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn assert_listed(step: &Value, client: &str) {
    let tools = strings(&step["tools"]);
    assert!(tools.contains(&"echo.say".to_owned()), "{client}: {step}");
    assert!(
        !tools.contains(&"weather.say".to_owned()),
        "{client}: {step}"
    );
    assert_eq!(
        step["structured"]["text"],
        format!("from {client}"),
        "{step}"
    );
    assert_eq!(step["is_error"], false, "{step}");
    assert_eq!(step["bad_is_error"], true, "{step}");
    assert!(
        step["bad_text"].as_str().unwrap().contains("-32602"),
        "{step}"
    );
}

async fn wait_event(
    events: &mut tokio::sync::broadcast::Receiver<McpEvent>,
    want: fn(&McpEvent) -> bool,
) {
    Harness::wait_for(events, |e| want(e).then_some(())).await;
}

/// A 2025-11-25 session: list, call, list_changed, then idle expiry → the SDK's error.
async fn session_scenario(
    name: &'static str,
    program: &str,
    args: impl Fn(&str) -> Vec<String>,
    client: &str,
    expired: &[&str],
) {
    let config = McpConfig {
        session_ttl_ms: 1500,
        ..McpConfig::default()
    };
    let h = Harness::with_config(config).await;
    let mut events = h.server.events();
    let args = args(&h.url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut script = Script::spawn(name, program, &args);
    let listed = script.step("listed", FIRST_LINE).await;
    assert_listed(&listed, client);
    assert_eq!(listed["protocol"], "2025-11-25", "{listed}");
    script.step("ready", WAIT).await;
    // Its standalone stream is open: a change now reaches it.
    wait_event(&mut events, |e| matches!(e, McpEvent::StreamOpened { .. })).await;
    h.add_service("weather").await;
    let changed = script.step("changed", WAIT).await;
    assert!(
        strings(&changed["tools"]).contains(&"weather.say".to_owned()),
        "{changed}"
    );
    script.step("idle", WAIT).await;
    wait_event(&mut events, |e| matches!(e, McpEvent::SessionClosed { .. })).await;
    script.go().await;
    let step = script.step("expired", WAIT).await;
    let error = step["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no error after expiry: {step}"));
    assert!(
        expired.iter().any(|e| error.to_lowercase().contains(e)),
        "{name}: {error}"
    );
    script.finish().await;
}

#[tokio::test]
async fn python_sdk_in_a_2025_11_25_session() {
    session_scenario(
        "python (mcp, legacy)",
        &python(),
        |url| vec!["python_client.py".into(), url.into(), "legacy".into()],
        "python",
        &["session not found", "session terminated"],
    )
    .await;
}

#[tokio::test]
async fn typescript_sdk_in_a_2025_11_25_session() {
    session_scenario(
        "typescript (@modelcontextprotocol/sdk)",
        "node",
        |url| vec!["ts_client.mjs".into(), url.into()],
        "typescript",
        &["404", "session not found"],
    )
    .await;
}

#[tokio::test]
async fn python_sdk_stateless_2026_07_28() {
    let h = Harness::start().await;
    let mut events = h.server.events();
    let mut script = Script::spawn(
        "python (mcp, 2026-07-28)",
        &python(),
        &["python_client.py", &h.url, "2026-07-28"],
    );
    let listed = script.step("listed", FIRST_LINE).await;
    assert_listed(&listed, "python");
    assert_eq!(listed["protocol"], "2026-07-28", "{listed}");
    let ready = script.step("ready", WAIT).await;
    assert_eq!(ready["honored"], true, "{ready}");
    wait_event(&mut events, |e| matches!(e, McpEvent::ListenStarted)).await;
    h.add_service("weather").await;
    let changed = script.step("changed", WAIT).await;
    assert!(
        strings(&changed["tools"]).contains(&"weather.say".to_owned()),
        "{changed}"
    );
    script.finish().await;
}
