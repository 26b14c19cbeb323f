//! `plexus serve`, `plexus mcp` and the commands against a running node, run as a
//! user runs them: the built binary, a real node on a loopback port, the CLI in
//! other processes.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a test failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plexus_client::Client;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

mod cluster;
mod jobs;

/// How long any test waits for something before it fails.
const WAIT: Duration = Duration::from_secs(20);

const TOKEN: &str = "ci-token-0123456789abcdef";

fn plexus() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plexus"));
    command
        .env_remove("PLEXUS_URL")
        .env_remove("PLEXUS_TOKEN")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    command
}

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("plexus-serve-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `plexus serve`, its address, and its log so far.
struct Server {
    child: Child,
    url: String,
    log: watch::Receiver<String>,
}

impl Server {
    /// Starts `plexus serve --config <file> --bind 127.0.0.1:0` and waits until it
    /// answers `/livez`.
    async fn start(dir: &Path, config: &str) -> Server {
        Self::start_with(dir, config, &[]).await
    }

    /// As [`Server::start`], with more arguments to `plexus serve`.
    async fn start_with(dir: &Path, config: &str, more: &[&str]) -> Server {
        let file = dir.join("plexus.toml");
        std::fs::write(&file, config).unwrap();
        let mut child = plexus()
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&file)
            .args(more)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = collect(child.stderr.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("no listening line; log: {}", log.borrow().as_str()))
            .unwrap()
            .unwrap_or_else(|| panic!("serve exited; log: {}", log.borrow().as_str()));
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        assert!(line.contains("/mcp") && line.contains("/metrics"), "{line}");
        let server = Server { child, url, log };
        server.wait_live().await;
        server
    }

    /// Polls `/livez` with a real client until it answers, within `WAIT`.
    async fn wait_live(&self) {
        let client = Client::new(&self.url, None).unwrap();
        tokio::time::timeout(WAIT, async {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            loop {
                every.tick().await;
                if client.livez().await.is_ok() {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("/livez never answered at {}", self.url));
    }

    /// Waits until the log holds a line with every one of `needles`; returns it.
    async fn wait_log(&mut self, needles: &[&str]) -> String {
        let wait = self.log.wait_for(|log| find_line(log, needles).is_some());
        let line = match tokio::time::timeout(WAIT, wait).await {
            Ok(Ok(log)) => find_line(&log, needles),
            _ => None,
        };
        line.unwrap_or_else(|| {
            panic!(
                "no log line with {needles:?}; log:\n{}",
                self.log.borrow().as_str()
            )
        })
    }

    /// Runs the CLI against this node.
    async fn cli(&self, args: &[&str]) -> Out {
        run(plexus().args(args).env("PLEXUS_URL", &self.url)).await
    }

    /// Runs the CLI against this node with `input` on its stdin.
    async fn cli_with_stdin(&self, args: &[&str], input: &str) -> Out {
        let mut child = plexus()
            .args(args)
            .env("PLEXUS_URL", &self.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("the command did not finish")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the CLI against this node; it succeeds, and its output is JSON.
    async fn json(&self, args: &[&str]) -> Value {
        self.cli(args).await.ok().json()
    }

    /// Sends SIGTERM and waits for the exit status, within `WAIT`.
    async fn terminate(&mut self) -> i32 {
        let pid = Pid::from_raw(self.child.id().unwrap() as i32);
        kill(pid, Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("serve did not stop; log:\n{}", self.log.borrow().as_str()))
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

/// Kills a served node with SIGKILL and waits until it is gone.
async fn sigkill(server: &mut Server) {
    kill(
        Pid::from_raw(server.child.id().unwrap() as i32),
        Signal::SIGKILL,
    )
    .unwrap();
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
}

fn find_line(log: &str, needles: &[&str]) -> Option<String> {
    log.lines()
        .find(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
}

/// Gathers a child's stderr as it comes.
fn collect(stderr: tokio::process::ChildStderr) -> watch::Receiver<String> {
    let (tx, rx) = watch::channel(String::new());
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tx.send_modify(|log| {
                log.push_str(&line);
                log.push('\n');
            });
        }
    });
    rx
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }

    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

async fn run(command: &mut Command) -> Out {
    let out = tokio::time::timeout(WAIT, command.output())
        .await
        .expect("the command did not finish")
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback address nothing listens on.
async fn nothing_listening() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

const TWO_WORKERS: &str = r#"
[node]
name = "itest"
drain_ms = 2000

[[processes]]
name = "worker-a"
command = "sleep"
args = ["600"]

[[processes]]
name = "worker-b"
command = "sleep"
args = ["600"]
restart = "transient"
"#;

fn pid_in(line: &str) -> i32 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"))
}

#[tokio::test]
async fn serve_runs_processes_answers_the_cli_and_stops_in_reverse_order() {
    let dir = temp_dir("serve");
    let mut server = Server::start(&dir, TWO_WORKERS).await;

    // The supervised processes run, each with a pid.
    let a = server.wait_log(&["process started", "worker-a"]).await;
    let b = server.wait_log(&["process started", "worker-b"]).await;
    let pids = [pid_in(&a), pid_in(&b)];
    for pid in pids {
        kill(Pid::from_raw(pid), None).unwrap();
    }

    // call, with --json parsed.
    let services = server.json(&["call", "node.services", "--json"]).await;
    let mut instances: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["descriptor"]["instance"].as_str().unwrap())
        .collect();
    instances.sort_unstable();
    assert_eq!(
        instances,
        [
            "audit-1",
            "cache-1",
            "datastore-1",
            "dsl-1",
            "inference-1",
            "jobs-1",
            "lock-1",
            "node-itest",
            "plexus-itest",
            "pubsub-1",
            "ratelimit-1",
            "script-1",
            "session-1"
        ]
    );

    // The embedded cache, through the same CLI.
    let set = server
        .json(&[
            "call",
            "cache.set",
            "key=greeting",
            "value.text=hello",
            "ttl_ms=60000",
            "--json",
        ])
        .await;
    assert_eq!(set, json!({"ttl_ms": 60000}));
    let got = server
        .json(&["call", "cache.get", "key=greeting", "--json"])
        .await;
    assert_eq!(
        got,
        json!({"found": true, "value": {"text": "hello"}, "loaded": false})
    );

    // The embedded DataStore (SQLite in the data directory), with key=value params
    // nested by dots and typed as JSON.
    server
        .cli(&["call", "datastore.create_collection", "name=cases"])
        .await
        .ok();
    let put = server
        .json(&[
            "call",
            "datastore.put",
            "collection=cases",
            "id=c1",
            "doc.status=open",
            "doc.score=4",
            "--json",
        ])
        .await;
    assert_eq!(put, json!({"id": "c1", "version": 1}));
    let got = server
        .json(&[
            "call",
            "datastore.get",
            "--params",
            r#"{"collection": "cases", "id": "c1"}"#,
            "--json",
        ])
        .await;
    assert_eq!(got["doc"], json!({"status": "open", "score": 4}));
    assert!(dir.join("plexus-data/plexus.db").exists());

    // services: a table for people, the same list for scripts.
    let table = server.cli(&["services"]).await.ok();
    assert!(table.stdout.contains("node-itest"), "{}", table.stdout);
    assert!(table.stdout.contains("config_rollback"), "{}", table.stdout);
    assert!(table.stdout.contains("healthy"), "{}", table.stdout);
    assert!(!table.stdout.contains('\x1b'), "no colours off a terminal");
    let listed = server.json(&["services", "--json"]).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        instances.len(),
        "{listed}"
    );

    // health.
    let health = server.json(&["health", "--json"]).await;
    let components = health["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"datastore-1") && names.contains(&"database"),
        "{health}"
    );
    let text = server.cli(&["health"]).await.ok();
    assert!(text.stdout.starts_with("system: "), "{}", text.stdout);
    assert!(text.stdout.contains("datastore-1"), "{}", text.stdout);

    // config: set, get, history, rollback, all through the node.
    let set = server
        .json(&["config", "set", "calls.default.timeout_ms=1500", "--json"])
        .await;
    let v = set["version"].as_u64().unwrap();
    assert_eq!(set["changed"], json!(["calls.default.timeout_ms"]));
    let got = server
        .json(&["config", "get", "calls.default.timeout_ms", "--json"])
        .await;
    assert_eq!(got, json!(1500));
    let whole = server.json(&["config", "get", "--json"]).await;
    assert_eq!(whole["node"]["name"], "itest");
    assert_eq!(whole["processes"][1]["name"], "worker-b");
    // The node refuses an invalid policy, naming the field: exit 1.
    let refused = server
        .cli(&["config", "set", "calls.default.timeout_ms=0"])
        .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("calls.default.timeout_ms"),
        "{}",
        refused.stderr
    );
    // As are changes to the sections read at start.
    let refused = server.cli(&["config", "set", "gateway.max_batch=0"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("max_batch"), "{}", refused.stderr);
    let history = server.json(&["config", "history", "--json"]).await;
    let versions: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions.last(), Some(&v));
    let table = server.cli(&["config", "history"]).await.ok();
    assert!(
        table.stdout.contains("set calls.default.timeout_ms"),
        "{}",
        table.stdout
    );
    let rolled = server
        .json(&["config", "rollback", &(v - 1).to_string(), "--json"])
        .await;
    assert_eq!(rolled["rollback_of"], json!(v - 1));
    let got = server
        .json(&["config", "get", "calls.default.timeout_ms", "--json"])
        .await;
    // Rolled back to before the set: the default in force again (issue 14: the
    // effective value, defaults included, not null).
    assert_eq!(got, json!(5000));

    // The node answers a failing call with its error: exit 1, the node's message.
    let failed = server.cli(&["call", "nosuch.method"]).await;
    assert_eq!(failed.code, 1);
    assert!(failed.stderr.contains("-32601"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("plexus services"),
        "{}",
        failed.stderr
    );
    let invalid = server
        .cli(&["call", "node.config_rollback", "version=0"])
        .await;
    assert_eq!(invalid.code, 1);
    assert!(invalid.stderr.contains("-32602"), "{}", invalid.stderr);

    // SIGTERM: exit 0, children stopped in reverse start order, and gone.
    assert_eq!(
        server.terminate().await,
        0,
        "{}",
        server.log.borrow().as_str()
    );
    let stopped = server.wait_log(&["stopped", "node=itest"]).await;
    assert!(
        stopped.contains(
            "services=worker-b, worker-a, jobs-1, dsl-1, inference-1, script-1, session-1, lock-1, ratelimit-1, pubsub-1, cache-1, audit-1, datastore-1"
        ),
        "{stopped}"
    );
    let log = server.log.borrow().clone();
    let gateway = log.find("gateway stopped").unwrap();
    assert!(gateway < log.find("stopped node=itest").unwrap(), "{log}");
    for pid in pids {
        assert!(
            kill(Pid::from_raw(pid), None).is_err(),
            "process {pid} still runs"
        );
    }
}

#[tokio::test]
async fn published_events_reach_a_subscriber_that_stops_after_count() {
    let dir = temp_dir("pubsub");
    let mut server = Server::start(&dir, "").await;
    let mut subscriber = plexus()
        .args(["subscribe", "orders.>", "--count", "2", "--json"])
        .env("PLEXUS_URL", &server.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut notice = collect(subscriber.stderr.take().unwrap());
    tokio::time::timeout(
        WAIT,
        notice.wait_for(|l| l.contains("subscribed to `orders.>`")),
    )
    .await
    .unwrap()
    .unwrap();

    let published = server
        .json(&[
            "publish",
            "orders.created",
            "--payload",
            r#"{"id": 7}"#,
            "--priority",
            "high",
            "--json",
        ])
        .await;
    assert_eq!(published["matched"], 1);
    let other = server.cli(&["publish", "invoices.created"]).await.ok();
    assert!(
        other.stdout.contains("0 subscription(s) matched"),
        "{}",
        other.stdout
    );
    server
        .cli(&["publish", "orders.paid", "--payload", "done"])
        .await
        .ok();

    let out = tokio::time::timeout(WAIT, subscriber.wait_with_output())
        .await
        .expect("subscribe --count 2 did not stop")
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{stdout}");
    assert_eq!(events[0]["topic"], "orders.created");
    assert_eq!(events[0]["id"], published["id"]);
    assert_eq!(events[0]["payload"], json!({"id": 7}));
    assert_eq!(events[0]["priority"], "high");
    assert_eq!(events[1]["topic"], "orders.paid");
    assert_eq!(events[1]["payload"], "done");

    let bad = server
        .cli(&["publish", "orders.x", "--priority", "urgent"])
        .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(server.terminate().await, 0);
}

#[tokio::test]
async fn without_a_node_the_cli_exits_3_and_says_how_to_start_one() {
    let url = nothing_listening().await;
    for args in [
        vec!["services"],
        vec!["health", "--json"],
        vec!["call", "node.services"],
        vec!["config", "get"],
        vec!["subscribe", "a.>"],
        vec!["publish", "a.b"],
    ] {
        let out = run(plexus().args(&args).env("PLEXUS_URL", &url)).await;
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("plexus serve"), "{}", out.stderr);
        assert!(out.stderr.contains(&url), "{}", out.stderr);
    }
    // --url wins over PLEXUS_URL.
    let out = run(plexus()
        .args(["services", "--url", &url])
        .env("PLEXUS_URL", "http://127.0.0.1:1"))
    .await;
    assert!(out.stderr.contains(&url), "{}", out.stderr);
}

#[tokio::test]
async fn a_missing_or_wrong_token_exits_2_and_is_never_echoed() {
    let dir = temp_dir("auth");
    let config =
        format!("[[gateway.tokens]]\nname = \"ci\"\ntoken = \"{TOKEN}\"\nscopes = [\"admin\"]\n");
    let mut server = Server::start(&dir, &config).await;
    let missing = server.cli(&["services"]).await;
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("PLEXUS_TOKEN"),
        "{}",
        missing.stderr
    );

    let wrong = "wrong-token-0123456789abcdef";
    let out = run(plexus()
        .args(["call", "node.services"])
        .env("PLEXUS_URL", &server.url)
        .env("PLEXUS_TOKEN", wrong))
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong));
    let out = run(plexus()
        .args(["subscribe", "a.>", "--token", wrong])
        .env("PLEXUS_URL", &server.url))
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    let out = run(plexus()
        .args(["services", "--json"])
        .env("PLEXUS_URL", &server.url)
        .env("PLEXUS_TOKEN", TOKEN))
    .await
    .ok();
    assert!(out.json().as_array().unwrap().len() >= 2);
    // Help shows where the token comes from, never its value.
    let help = run(plexus()
        .args(["services", "--help"])
        .env("PLEXUS_TOKEN", TOKEN))
    .await
    .ok();
    assert!(help.stdout.contains("PLEXUS_TOKEN"), "{}", help.stdout);
    assert!(!help.stdout.contains(TOKEN), "{}", help.stdout);
    assert_eq!(server.terminate().await, 0);
}

#[tokio::test]
async fn bad_arguments_and_configurations_exit_2_naming_the_problem() {
    let out = run(plexus().args(["call", "a.b", "--params", "{nope"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--params is not valid JSON"),
        "{}",
        out.stderr
    );
    let out = run(plexus().args(["call", "a.b", "novalue"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(plexus().args(["config", "set", "novalue"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(plexus().args(["services", "--url", "ftp://x"])).await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    let dir = temp_dir("badconfig");
    let file = dir.join("plexus.toml");
    for (text, needle) in [
        ("[gateway]\nmax_bach = 5\n", "gateway.max_bach"),
        ("[gatway]\n", "gatway"),
        ("[[processes]]\nname = \"a\"\n", "command"),
        ("[node\n", "plexus.toml:1:6"),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = run(plexus()
            .args(["serve", "--bind", "127.0.0.1:0", "--config"])
            .arg(&file))
        .await;
        assert_eq!(out.code, 2, "{text}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{text}: {}", out.stderr);
    }
    // An environment override is configuration too, checked the same way.
    std::fs::write(&file, "").unwrap();
    let out = run(plexus()
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env("PLEXUS_NODE__DRAIN_MS", "0"))
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("node.drain_ms"), "{}", out.stderr);
}

#[tokio::test]
async fn a_changed_file_reloads_the_call_policies() {
    let dir = temp_dir("reload");
    let mut server = Server::start(&dir, "[calls.default]\ntimeout_ms = 1000\n").await;
    let got = server
        .json(&["config", "get", "calls.default.timeout_ms", "--json"])
        .await;
    assert_eq!(got, json!(1000));
    // Replace the file as deployment tools do: write aside, rename over.
    let aside = dir.join("plexus.toml.new");
    std::fs::write(&aside, "[calls.default]\ntimeout_ms = 2500\n").unwrap();
    std::fs::rename(&aside, dir.join("plexus.toml")).unwrap();
    server
        .wait_log(&["configuration changed", "calls.default.timeout_ms"])
        .await;
    let got = server
        .json(&["config", "get", "calls.default.timeout_ms", "--json"])
        .await;
    assert_eq!(got, json!(2500));
    let history = server.json(&["config", "history", "--json"]).await;
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert!(
        last["author"].as_str().unwrap().starts_with("file:"),
        "{last}"
    );
    assert_eq!(server.terminate().await, 0);
}

#[tokio::test]
async fn tables_are_coloured_only_when_asked_and_not_with_no_color() {
    let dir = temp_dir("colour");
    let mut server = Server::start(&dir, "").await;
    let run_with = |vars: &'static [(&'static str, &'static str)]| {
        let url = server.url.clone();
        async move {
            let mut command = plexus();
            command.args(["services"]).env("PLEXUS_URL", url);
            for (k, v) in vars {
                command.env(k, v);
            }
            run(&mut command).await.ok().stdout
        }
    };
    let forced = run_with(&[("CLICOLOR_FORCE", "1")]).await;
    assert!(forced.contains('\x1b'), "{forced}");
    let off = run_with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).await;
    assert!(!off.contains('\x1b'), "{off}");
    assert!(off.contains("healthy"), "{off}");
    assert_eq!(server.terminate().await, 0);
}

/// `plexus mcp ARGS` run in `dir`, spoken to as an MCP client over its stdin and
/// stdout, one JSON message a line.
struct McpPipe {
    child: Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    log: watch::Receiver<String>,
}

impl McpPipe {
    fn spawn(dir: &Path, args: &[&str]) -> Self {
        let mut child = plexus()
            .arg("mcp")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self {
            log: collect(child.stderr.take().unwrap()),
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
        }
    }

    async fn send(&mut self, message: Value) {
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next message the server writes.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|| panic!("mcp ended; log: {}", self.log.borrow().as_str()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Closes stdin, which ends the session; the process exits 0. Its log.
    async fn finish(self) -> String {
        let Self {
            mut child,
            stdin,
            log,
            ..
        } = self;
        drop(stdin);
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .unwrap()
            .unwrap();
        let log = log.borrow().clone();
        assert_eq!(status.code(), Some(0), "{log}");
        log
    }
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

#[tokio::test]
async fn mcp_serves_the_nodes_methods_as_tools_over_stdio() {
    let dir = temp_dir("mcp");
    let file = dir.join("plexus.toml");
    std::fs::write(&file, "[node]\nname = \"mcptest\"\n").unwrap();
    let mut mcp = McpPipe::spawn(&dir, &["--config", file.to_str().unwrap()]);
    mcp.send(initialize()).await;
    let init = mcp.next().await;
    assert_eq!(init["id"], 1, "{init}");
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    mcp.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let list = mcp.next().await;
    let tools: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"node.services"), "{tools:?}");
    mcp.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "node.config_get", "arguments": {"path": "node.name"}}}))
        .await;
    let called = mcp.next().await;
    assert_eq!(called["id"], 3, "{called}");
    assert!(called.to_string().contains("mcptest"), "{called}");

    // Closing stdin ends the session and the process, cleanly.
    let log = mcp.finish().await;
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn ctrl_c_stops_a_subscriber_and_the_server_cleanly() {
    let dir = temp_dir("interrupt");
    let mut server = Server::start(&dir, "").await;
    let mut subscriber = plexus()
        .args(["subscribe", "a.>"])
        .env("PLEXUS_URL", &server.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut notice = collect(subscriber.stderr.take().unwrap());
    tokio::time::timeout(WAIT, notice.wait_for(|l| l.contains("Ctrl-C to stop")))
        .await
        .unwrap()
        .unwrap();
    let pid = Pid::from_raw(subscriber.id().unwrap() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(WAIT, subscriber.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let pid = Pid::from_raw(server.child.id().unwrap() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let line = server.wait_log(&["SIGINT: stopping"]).await;
    assert!(!line.is_empty());
    server
        .wait_log(&[
            "stopped",
            "services=jobs-1, dsl-1, inference-1, script-1, session-1, lock-1, ratelimit-1, pubsub-1, cache-1, audit-1, datastore-1",
        ])
        .await;
}

#[tokio::test]
async fn mutating_calls_are_audited_and_configuration_history_survives_a_restart() {
    let dir = temp_dir("audit");
    let config = "[node]\nname = \"audited\"\n";
    let mut server = Server::start(&dir, config).await;
    let client = Client::new(&server.url, None).unwrap();
    client
        .call("datastore.create_collection", json!({"name": "cases"}))
        .await
        .unwrap();
    client
        .call(
            "datastore.put",
            json!({"collection": "cases", "id": "c1", "doc": {"status": "open"}}),
        )
        .await
        .unwrap();
    // An idempotent read is not audited; a refused write is, with its outcome.
    client
        .call("datastore.get", json!({"collection": "cases", "id": "c1"}))
        .await
        .unwrap();
    client
        .call(
            "datastore.put",
            json!({"collection": "nope", "id": "x", "doc": {"a": 1}}),
        )
        .await
        .unwrap_err();
    let trail = client.call("audit.query", json!({})).await.unwrap();
    let methods: Vec<String> = trail["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{trail}"))
        .iter()
        .map(|e| e["method"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        methods,
        [
            "datastore.create_collection",
            "datastore.put",
            "datastore.put"
        ],
        "{trail}"
    );
    let version = client
        .config_set("calls.default.timeout_ms", json!(1234))
        .await
        .unwrap();
    assert_eq!(server.terminate().await, 0);

    // The same data directory: the configuration history is still there.
    let mut again = Server::start(&dir, config).await;
    let client = Client::new(&again.url, None).unwrap();
    let history = client.config_history().await.unwrap();
    let versions: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert!(
        versions.contains(&version["version"].as_u64().unwrap()),
        "{history}"
    );
    assert_eq!(again.terminate().await, 0);
}

#[tokio::test]
async fn data_dir_on_the_command_line_moves_the_embedded_database() {
    let dir = temp_dir("datadir");
    let elsewhere = dir.join("elsewhere");
    let mut server =
        Server::start_with(&dir, "", &["--data-dir", elsewhere.to_str().unwrap()]).await;
    server
        .cli(&["call", "datastore.create_collection", "name=notes"])
        .await
        .ok();
    assert!(
        elsewhere.join("plexus.db").exists(),
        "no database in {elsewhere:?}"
    );
    assert!(
        !dir.join("plexus-data").exists(),
        "the default folder was used"
    );
    let got = server.json(&["config", "get", "store.url", "--json"]).await;
    assert!(
        got.as_str().is_some_and(|u| u.contains("elsewhere")),
        "{got}"
    );
    assert_eq!(server.terminate().await, 0);
}

#[tokio::test]
async fn a_closed_output_pipe_ends_the_command_quietly() {
    let dir = temp_dir("pipe");
    let mut server = Server::start(&dir, "").await;
    for args in [
        &["services", "--json"][..],
        &["health"][..],
        &["config", "get", "--json"][..],
    ] {
        // The reader goes away before the command writes (`| head -c0`).
        let mut child = plexus()
            .args(args)
            .env("PLEXUS_URL", &server.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert_eq!(server.terminate().await, 0);
}

#[tokio::test]
async fn mcp_relays_stdio_to_a_running_node() {
    let dir = temp_dir("mcprelay");
    let mut server = Server::start(&dir, "[node]\nname = \"relayed\"\n").await;
    let mut mcp = McpPipe::spawn(&dir, &["--url", &server.url]);
    for message in [
        initialize(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "datastore.create_collection", "arguments": {"name": "relayed_notes"}}}),
    ] {
        mcp.send(message).await;
    }
    let init = mcp.next().await;
    assert_eq!(init["id"], 1, "{init}");
    let created = mcp.next().await;
    assert_eq!(created["id"], 2, "{created}");
    assert_ne!(created["result"]["isError"], json!(true), "{created}");
    let log = mcp.finish().await;
    assert!(log.contains("relaying MCP"), "{log}");
    // The collection is in the running node's store (counting a collection that
    // does not exist fails): the relay started no node of its own.
    let count = server
        .json(&[
            "call",
            "datastore.count",
            "collection=relayed_notes",
            "--json",
        ])
        .await;
    assert!(count.is_object() || count.is_number(), "{count}");
    assert_eq!(server.terminate().await, 0);
}

/// One external echo instance: `examples/python-echo/echo.py` against `server`.
fn python_echo(server: &Server, instance: &str) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-echo/echo.py");
    let ws = format!("{}/ws", server.url.replacen("http://", "ws://", 1));
    Command::new("python3")
        .arg(script)
        .env("PLEXUS_URL", ws)
        .env("ECHO_INSTANCE", instance)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs examples/python-echo/echo.py (pip install -r examples/python-echo/requirements.txt)")
}

/// The breaker state `node.services` shows for `instance`.
async fn breaker_state(client: &Client, instance: &str) -> String {
    let services = client.services().await.unwrap();
    services
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["descriptor"]["instance"] == instance)
        .map(|r| r["breaker"]["state"].as_str().unwrap_or("none").to_owned())
        .unwrap_or_else(|| "absent".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_external_instance_fails_no_idempotent_call_and_returns_through_half_open() {
    let dir = temp_dir("sigstop");
    let server = Server::start(&dir, "[node]\nname = \"itest\"\n").await;
    let client = Arc::new(Client::new(&server.url, None).unwrap());
    let _a = python_echo(&server, "echo-a");
    let b = python_echo(&server, "echo-b");
    let b_pid = Pid::from_raw(b.id().unwrap() as i32);
    // Both registered and healthy (a registration is Starting for a moment).
    tokio::time::timeout(WAIT, async {
        loop {
            let services = client.services().await.unwrap();
            let healthy = services
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["descriptor"]["name"] == "echo" && r["status"] == "healthy")
                .count();
            if healthy == 2 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both echo instances registered and healthy");

    // Eight clients make 25 idempotent calls each; echo-b is stopped (SIGSTOP, its
    // socket open) once 40 calls have been answered.
    let (done, mut answered) = watch::channel(0usize);
    let done = Arc::new(done);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (client, done) = (client.clone(), done.clone());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for n in 0..25 {
                    let text = format!("{c}-{n}");
                    match client.call("echo.say", json!({ "text": text })).await {
                        Ok(answer) => assert_eq!(answer["text"], text),
                        Err(e) => failed.push(format!("{e:?}")),
                    }
                    done.send_modify(|d| *d += 1);
                }
                failed
            })
        })
        .collect();
    tokio::time::timeout(WAIT, answered.wait_for(|n| *n >= 40))
        .await
        .unwrap()
        .unwrap();
    kill(b_pid, Signal::SIGSTOP).unwrap();
    let stopped = std::time::Instant::now();
    let mut failed = Vec::new();
    for c in clients {
        failed.extend(c.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} calls failed: {failed:?}\nthe node's log about echo:\n{}",
        failed.len(),
        server
            .log
            .borrow()
            .lines()
            .filter(|l| l.contains("echo"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(breaker_state(&client, "echo-b").await, "open");
    let health = client.node_health().await.unwrap();
    assert!(health.to_string().contains("echo-b"), "{health}");
    eprintln!(
        "200 calls, echo-b stopped after 40: {:?} from the stop",
        stopped.elapsed()
    );

    // SIGCONT: after the breaker's wait (10 s) trial calls go through half-open,
    // echo-b answers again and its breaker closes.
    kill(b_pid, Signal::SIGCONT).unwrap();
    let mut seen = Vec::new();
    let mut b_answered = false;
    let mut every = tokio::time::interval(Duration::from_millis(10));
    let back = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            every.tick().await;
            let answer = client.call("echo.say", json!({"text": "back"})).await;
            b_answered |= answer.is_ok_and(|a| a["instance"] == "echo-b");
            let state = breaker_state(&client, "echo-b").await;
            if seen.last() != Some(&state) {
                seen.push(state.clone());
            }
            if b_answered && state == "closed" {
                return;
            }
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "echo-b did not come back; breaker states: {seen:?}"
    );
    assert!(seen.contains(&"half_open".to_owned()), "{seen:?}");
}

#[tokio::test]
async fn top_once_shows_services_rates_errors_and_p99_and_needs_ops() {
    let dir = temp_dir("top");
    let ops = "ops-token-0123456789abcdef";
    let config = format!(
        "[[gateway.tokens]]\nname = \"ci\"\ntoken = \"{TOKEN}\"\nscopes = [\"admin\"]\n\
         [[gateway.tokens]]\nname = \"watch\"\ntoken = \"{ops}\"\nscopes = [\"ops\"]\n"
    );
    let mut server = Server::start(&dir, &config).await;
    let admin = Client::new(&server.url, Some(TOKEN.to_owned())).unwrap();
    for _ in 0..3 {
        admin.call("node.health", json!({})).await.unwrap();
    }
    let bad = admin
        .call("node.config_rollback", json!({"version": 99}))
        .await;
    assert!(bad.is_err());

    let top = |args: &'static [&'static str], token: &'static str| {
        let url = server.url.clone();
        async move {
            run(plexus()
                .arg("top")
                .args(args)
                .env("PLEXUS_URL", url)
                .env("PLEXUS_TOKEN", token))
            .await
        }
    };
    let picture = top(&["--once", "--json", "--interval-ms", "100"], ops)
        .await
        .ok()
        .json();
    assert!(picture["interval_ms"].as_u64().unwrap() >= 100, "{picture}");
    let node = picture["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "node")
        .unwrap_or_else(|| panic!("{picture}"));
    assert_eq!(
        (&node["instances"], &node["healthy"]),
        (&json!(1), &json!(1))
    );
    assert!(node["calls"].as_u64().unwrap() >= 4, "{node}");
    assert_eq!(node["errors"], 1, "{node}");
    assert!(node["p99_ms"].as_f64().unwrap() > 0.0, "{node}");
    let health = picture["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "node.health")
        .unwrap();
    assert_eq!(
        (&health["calls"], &health["errors"]),
        (&json!(3), &json!(0))
    );

    let table = top(&["--once", "--interval-ms", "50"], ops).await.ok();
    assert!(table.stdout.contains("node.health"), "{}", table.stdout);
    assert!(table.stdout.contains("p99 ms"), "{}", table.stdout);

    // The dashboard's audit and DataStore pages over this node's real trail and store.
    let http = reqwest::Client::new();
    let read = |path: &'static str| {
        let request = http.get(format!("{}{path}", server.url)).bearer_auth(ops);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let audit = read("/ui/api/audit?method=node.config_rollback").await;
    let entries = audit["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        (&entries[0]["who"], &entries[0]["outcome"]["status"]),
        (&json!("ci"), &json!("error")),
        "{audit}"
    );
    let slow = read("/ui/api/datastore").await;
    assert!(slow["queries"].is_array(), "{slow}");
    // The exposition with samples (calls, errors, histograms) passes promtool too.
    let exposition = http
        .get(format!("{}/metrics", server.url))
        .bearer_auth(ops)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        exposition.contains("plexus_call_duration_seconds_bucket"),
        "{exposition}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    let mut input = promtool.stdin.take().unwrap();
    input.write_all(exposition.as_bytes()).await.unwrap();
    drop(input);
    let checked = promtool.wait_with_output().await.unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let families = read("/ui/api/families").await;
    assert_eq!(
        (&families["datastore"], &families["audit"]),
        (&json!(true), &json!(true))
    );

    let anonymous = run(plexus()
        .args(["top", "--once"])
        .env("PLEXUS_URL", &server.url))
    .await;
    assert_eq!(anonymous.code, 2, "{}", anonymous.stderr);
    assert_eq!(server.terminate().await, 0);
}

#[tokio::test]
async fn plexus_run_checks_a_program_file_then_runs_it() {
    let dir = temp_dir("run");
    let mut server = Server::start(&dir, "").await;
    let good = dir.join("cases.plx");
    std::fs::write(
        &good,
        "; a case\n(datastore.create_collection :name \"cases\")\n(let [w (datastore.put :collection \"cases\" :id \"C-1\" :doc {:state \"open\"})]\n  (datastore.get :collection \"cases\" :id \"C-1\"))\n",
    )
    .unwrap();
    let ran = server.json(&["run", good.to_str().unwrap()]).await;
    assert_eq!(ran["doc"]["state"], "open", "{ran}");
    let checked = server
        .json(&["run", "--check", "--json", good.to_str().unwrap()])
        .await;
    assert_eq!(checked["ok"], true);

    let bad = dir.join("bad.plx");
    std::fs::write(&bad, "(datastore.put :collection \"cases\" :id \"C-2\" :doc {:a 1})\n(datastore.pot :id \"x\")\n").unwrap();
    let out = server.cli(&["run", bad.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("bad.plx:2:2"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `datastore.put`?"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing ran"), "{}", out.stderr);
    let missing = server
        .json(&[
            "call",
            "datastore.get",
            "collection=cases",
            "id=C-2",
            "--json",
        ])
        .await;
    assert_eq!(missing, Value::Null);
    assert_eq!(server.terminate().await, 0);
}

#[tokio::test]
async fn plexus_ask_shows_the_program_and_runs_it_only_when_confirmed() {
    use plexus_inference::testing::{FakeProvider, Wire};
    let fake = FakeProvider::start(Wire::OpenAi).await.unwrap();
    let dir = temp_dir("ask");
    let config = format!(
        "[inference.providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [[inference.models.default]]\nprovider = \"fake\"\nmodel = \"tiny\"\n",
        fake.base_url()
    );
    let mut server = Server::start(&dir, &config).await;
    server
        .cli(&["call", "datastore.create_collection", "name=cases"])
        .await
        .ok();
    let put = |id: &str| {
        format!(
            "(datastore.put :collection \"cases\" :id \"{id}\" :doc {{:client \"ACME\" :case_type \"kyc\"}})"
        )
    };
    let url = server.url.clone();
    let case = |id: &str| {
        let (url, id) = (url.clone(), format!("id={id}"));
        async move {
            server_json(
                &url,
                &["call", "datastore.get", "collection=cases", &id, "--json"],
            )
            .await
        }
    };

    // Declined: shown, not run.
    fake.then_reply(format!("```lisp\n{}\n```", put("K-1")));
    let out = server
        .cli_with_stdin(&["ask", "open a KYC case for ACME"], "n\n")
        .await
        .ok();
    assert!(out.stdout.contains(&put("K-1")), "{}", out.stdout);
    assert!(
        out.stderr.contains("Run it?") && out.stderr.contains("not run"),
        "{}",
        out.stderr
    );
    assert_eq!(case("K-1").await, Value::Null);

    // Confirmed: run.
    fake.then_reply(put("K-2"));
    let out = server
        .cli_with_stdin(&["ask", "open", "another", "KYC", "case"], "y\n")
        .await
        .ok();
    assert!(out.stdout.contains(&put("K-2")), "{}", out.stdout);
    assert_eq!(case("K-2").await["doc"]["client"], "ACME");

    // Refused, even with --yes: its errors, status 1, nothing ran.
    let bad = put("K-3").replace("datastore.put", "datastore.pot");
    fake.then_reply(bad.clone()).then_reply(bad);
    let out = server.cli(&["ask", "--yes", "open a third case"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("asked:1:2"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `datastore.put`?"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing ran"), "{}", out.stderr);
    assert_eq!(case("K-3").await, Value::Null);

    // --yes runs it without asking; --json prints what was asked and what ran.
    fake.then_reply(put("K-4"));
    let out = server
        .cli(&["ask", "--yes", "--json", "open a fourth case"])
        .await
        .ok()
        .json();
    assert_eq!(out["asked"]["program"], put("K-4"), "{out}");
    assert_eq!(out["ran"]["calls"], 1, "{out}");
    assert_eq!(case("K-4").await["doc"]["case_type"], "kyc");
    assert_eq!(server.terminate().await, 0);
}

/// `plexus ARGS` against `url`; it succeeds and prints JSON.
async fn server_json(url: &str, args: &[&str]) -> Value {
    run(plexus().args(args).env("PLEXUS_URL", url))
        .await
        .ok()
        .json()
}

#[tokio::test]
async fn plexus_repl_runs_programs_line_by_line_and_keeps_its_history() {
    let dir = temp_dir("repl");
    let mut server = Server::start(&dir, "").await;
    let history = dir.join("history");
    let input = ":verbs\n\
        (datastore.create_collection :name \"notes\")\n\
        (datastore.put :collection \"notes\"\n  :id \"n-1\" :doc {:text \"hi\"})\n\
        (datastore.pott :collection \"notes\" :id \"n-2\" :doc {:text \"no\"})\n\
        (datastore.get :collection \"notes\" :id \"n-1\")\n\
        (let [n1 (datastore.get :collection \"notes\" :id \"n-1\")])\n\
        (datastore.put :collection \"notes\" :id \"n-4\" :doc {:copy n1})\n\
        :forget n1\n\
        (datastore.put :collection \"notes\" :id \"n-5\" :doc {:copy n1})\n\
        :quit\n(datastore.put :collection \"notes\" :id \"n-3\" :doc {})\n";
    let args = ["repl", "--history", history.to_str().unwrap()];
    let out = server.cli_with_stdin(&args, input).await.ok();
    let listed = out
        .stdout
        .lines()
        .find(|l| l.starts_with("datastore.put "))
        .unwrap_or_default();
    assert!(
        listed.contains(":collection") && listed.contains(":doc"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\"text\": \"hi\""), "{}", out.stdout);
    assert!(out.stderr.contains("repl:1:2"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `datastore.put`?"),
        "{}",
        out.stderr
    );
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(
        saved.contains("(datastore.get :collection \"notes\" :id \"n-1\")"),
        "{saved}"
    );
    // Nothing after :quit ran.
    let n3 = server_json(
        &server.url,
        &[
            "call",
            "datastore.get",
            "collection=notes",
            "id=n-3",
            "--json",
        ],
    )
    .await;
    assert_eq!(n3, Value::Null);
    // A `let` without a body kept `n1` for the entries after it, until forgotten.
    let get = |id: &'static str| {
        let url = server.url.clone();
        async move {
            let args = ["call", "datastore.get", "collection=notes", id, "--json"];
            server_json(&url, &args).await
        }
    };
    let n4 = get("id=n-4").await;
    assert_eq!(n4["doc"]["copy"]["doc"]["text"], "hi", "{n4}");
    assert!(out.stderr.contains("`n1` is not bound"), "{}", out.stderr);
    assert_eq!(get("id=n-5").await, Value::Null);
    assert_eq!(server.terminate().await, 0);
}

/// `plexus repl` in a terminal (a pseudo-terminal driven by
/// `tests/clients/pty_driver.py`): Tab completes verbs and keys from the node's
/// registry, and the completed programs run and are kept in the history.
#[tokio::test]
async fn plexus_repl_completes_verbs_and_keys_in_a_terminal() {
    let dir = temp_dir("repl-pty");
    let mut server = Server::start(&dir, "").await;
    let history = dir.join("history");
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pty_driver.py");
    let steps = json!([
        ["(datastore.create_collection :name \"notes\")", "created"],
        [
            "(datastore.put :coll\t \"notes\" :id \"n-1\" :d\t {:text \"hi\"})",
            "version"
        ],
        ["(datastore.g\t :collection \"notes\" :id \"n-1\")", "hi"],
        [":quit", ""],
    ]);
    let out = run(Command::new("python3")
        .arg(&driver)
        .arg(steps.to_string())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_plexus"))
        .args(["repl", "--history", history.to_str().unwrap()])
        .env("PLEXUS_URL", &server.url)
        .env("TERM", "xterm")
        .kill_on_drop(true))
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("\"text\": \"hi\""), "{}", out.stdout);
    let saved = std::fs::read_to_string(&history).unwrap();
    for completed in [
        "(datastore.put :collection \"notes\" :id \"n-1\" :doc {:text \"hi\"})",
        "(datastore.get :collection \"notes\" :id \"n-1\")",
    ] {
        assert!(saved.contains(completed), "{completed} not in {saved}");
    }
    assert_eq!(server.terminate().await, 0);
}
