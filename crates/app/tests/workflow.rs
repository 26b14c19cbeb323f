//! The workflow that ties the ScriptEngine, the InferenceEngine, the DataStore and
//! the MCP gateway together, driven from outside by the official MCP Python SDK:
//!
//! 1. An MCP client calls the tool `script.run` with a script that reads a batch of
//!    documents from the DataStore, asks the alias `summarizer` (two fake providers
//!    on loopback, a fallback chain) to summarise them, writes the summary in a
//!    DataStore transaction and publishes `docs.summarized`.
//! 2. A stored script, the trigger of `docs.summarized`, reacts: it reads the
//!    summary, writes its own record and publishes `docs.reacted`.
//!
//! Asserted: the whole chain shares one correlation id in the audit trail (the MCP
//! call, the script's writes and publish, the trigger's write), and the metrics
//! count each step; the first provider going down trips its breaker and the alias
//! falls back to the second; a script past its operation limit fails cleanly
//! mid-workflow (after its inference call) and leaves nothing half-written.
//!
//! Needs `pip install -r crates/app/tests/clients/requirements.txt`
//! (`scripts/test` does it); without it the test fails and says so.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use plexus_bus::SubscribeOptions;
use plexus_inference::testing::{Behaviour, FakeProvider, Wire};
use serde_json::{Value, json};
use support::Served;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long any step may take (the first includes Python's start).
const WAIT: Duration = Duration::from_secs(60);

/// The workflow, as the MCP client sends it: `batch` names the documents,
/// `spin` makes it run past its operation limit after the inference call.
const WORKFLOW: &str = r#"
let found = call("datastore.query", #{collection: "docs", filter: #{field: "batch", eq: batch}});
let text = "";
for d in found.docs { text += d.doc.body + "\n"; }
let answer = call("inference.chat", #{
    model: "summarizer",
    messages: [#{role: "user", content: "Summarise:\n" + text}],
});
let id = "sum-" + batch;
let ops = [#{op: "put", collection: "summaries", id: id,
             doc: #{batch: batch, summary: answer.choices[0].message.content,
                    deployment: answer.plexus.deployment, docs: found.docs.len()}}];
if spin { let n = 0; loop { n += 1; } }
call("datastore.transaction", #{ops: ops});
publish("docs.summarized", #{summary_id: id});
#{summary_id: id, deployment: answer.plexus.deployment}
"#;

/// The stored script run for each `docs.summarized` event.
const ON_SUMMARY: &str = r#"
let id = event.payload.summary_id;
let summary = call("datastore.get", #{collection: "summaries", id: id});
call("datastore.put", #{collection: "reactions", id: id, doc: #{
    summary_id: id, seen_correlation: event.correlation_id,
    chars: summary.doc.summary.len(),
}});
publish("docs.reacted", #{summary_id: id});
"#;

/// The MCP Python SDK driven line by line (`tests/clients/mcp_driver.py`).
struct McpDriver {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl McpDriver {
    async fn start(url: &str) -> (Self, Value) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
        let mut child = Command::new("python3")
            .arg("mcp_driver.py")
            .arg(url)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut driver = Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = driver.step("ready").await;
        (driver, ready)
    }

    async fn step(&mut self, expected: &str) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line()).await;
        let Ok(Ok(Some(line))) = line else {
            let _ = self.child.start_kill();
            let mut err = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                let _ = tokio::time::timeout(WAIT, stderr.read_to_string(&mut err)).await;
            }
            panic!("the MCP client printed no `{expected}` ({line:?}); stderr:\n{err}");
        };
        let step: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_ne!(step["step"], "missing", "{}", step["error"]);
        assert_eq!(step["step"], expected, "{step}");
        step
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let ask = json!({"tool": tool, "arguments": arguments}).to_string() + "\n";
        self.stdin.write_all(ask.as_bytes()).await.expect("write");
        self.stdin.flush().await.expect("flush");
        self.step("result").await
    }

    /// Runs the workflow over `batch` through the tool `script.run`.
    async fn workflow(&mut self, batch: &str, spin: bool) -> Value {
        self.call(
            "script.run",
            json!({"source": WORKFLOW, "args": {"batch": batch, "spin": spin}}),
        )
        .await
    }
}

/// The node: two OpenAI-compatible fakes behind the alias `summarizer` (a fallback
/// chain, no retries, a breaker that opens after two failures of two), the
/// trigger, and a script limit of 50,000 operations.
fn configuration(primary: &FakeProvider, secondary: &FakeProvider) -> String {
    format!(
        r#"
[inference]
retries = 0
[inference.cache]
enabled = false
[inference.breaker]
window = 4
minimum_calls = 2
failure_rate = 50.0
wait_in_open_ms = 600000
[inference.providers.primary]
kind = "openai"
base_url = "{}"
[inference.providers.secondary]
kind = "openai"
base_url = "{}"
[[inference.models.summarizer]]
provider = "primary"
model = "small"
[[inference.models.summarizer]]
provider = "secondary"
model = "small"
[script]
max_operations = 50000
[[script.triggers]]
topic = "docs.summarized"
script = "on_summary"
as = "summary-reactor"
scopes = ["call:datastore.*", "call:plexus.publish", "publish:docs.reacted"]
"#,
        primary.base_url(),
        secondary.base_url()
    )
}

async fn audit(node: &Served, correlation_id: &str) -> Vec<(String, Option<String>, bool)> {
    let page = node
        .client()
        .call(
            "audit.query",
            json!({"correlation_id": correlation_id, "limit": 100}),
        )
        .await
        .expect("audit.query");
    page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap_or_default().to_owned(),
                e["who"].as_str().map(str::to_owned),
                e["outcome"]["status"] == "ok",
            )
        })
        .collect()
}

/// Creates `collection`, saves the stored script `name` and subscribes to
/// `pattern` on the node's bus: what each test sets up before it acts.
async fn prepare(
    node: &Served,
    collection: &str,
    name: &str,
    source: &str,
    pattern: &str,
) -> plexus_bus::Subscription {
    let rpc = node.client();
    rpc.call("datastore.create_collection", json!({"name": collection}))
        .await
        .expect("collection");
    rpc.call("script.save", json!({"name": name, "source": source}))
        .await
        .expect("the script saves");
    node.node
        .bus()
        .subscribe(pattern, SubscribeOptions::new())
        .expect("subscribe")
}

/// The document `id` of `collection` (null when absent), read over JSON-RPC.
async fn get_doc(rpc: &plexus_client::Client, collection: &str, id: &str) -> Value {
    rpc.call("datastore.get", json!({"collection": collection, "id": id}))
        .await
        .expect("datastore.get")
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_script_inference_datastore_and_a_trigger_share_one_correlation_id() {
    let primary = FakeProvider::start(Wire::OpenAi).await.expect("fake");
    let secondary = FakeProvider::start(Wire::OpenAi).await.expect("fake");
    let node = Served::start("workflow", "", &configuration(&primary, &secondary)).await;
    let rpc = node.client();
    for collection in ["docs", "summaries", "reactions"] {
        rpc.call("datastore.create_collection", json!({"name": collection}))
            .await
            .expect("collection");
    }
    for (id, batch, body) in [
        ("d1", "a", "Plexus is a service backbone."),
        ("d2", "a", "It runs scripts and asks models."),
        ("d3", "b", "Breakers trip when providers fail."),
        ("d4", "d", "Limits stop runaway scripts."),
    ] {
        rpc.call(
            "datastore.put",
            json!({"collection": "docs", "id": id, "doc": {"batch": batch, "body": body}}),
        )
        .await
        .expect("seed");
    }
    rpc.call(
        "script.save",
        json!({"name": "on_summary", "source": ON_SUMMARY}),
    )
    .await
    .expect("the trigger's script saves");
    let mut reacted = node
        .node
        .bus()
        .subscribe("docs.reacted", SubscribeOptions::new())
        .expect("subscribe");

    let url = format!("http://{}/mcp", node.addr);
    let (mut mcp, ready) = McpDriver::start(&url).await;
    assert!(
        ready["tools"]
            .as_array()
            .expect("tools")
            .contains(&json!("script.run")),
        "{ready}"
    );

    // 1. The whole chain, on the primary deployment.
    let ran = mcp.workflow("a", false).await;
    assert_eq!(ran["is_error"], false, "{ran}");
    let value = &ran["structured"]["value"];
    assert_eq!(value["deployment"], "primary/small", "{ran}");
    assert_eq!(value["summary_id"], "sum-a");
    let event = tokio::time::timeout(WAIT, reacted.recv())
        .await
        .expect("the trigger reacts")
        .expect("an event");
    let correlation = event.correlation_id().to_string();
    let reaction = get_doc(&rpc, "reactions", "sum-a").await;
    assert_eq!(reaction["doc"]["seen_correlation"], json!(correlation));
    assert_eq!(
        reaction["doc"]["chars"],
        json!(plexus_inference::testing::REPLY.len())
    );
    let summary = get_doc(&rpc, "summaries", "sum-a").await;
    assert_eq!(summary["doc"]["docs"], 2, "{summary}");
    let prompt = primary.last_request().expect("the primary was asked").1;
    let asked = prompt
        .pointer("/messages/0/content")
        .and_then(Value::as_str);
    assert!(
        asked.is_some_and(|t| t.contains("service backbone") && t.contains("asks models")),
        "{prompt}"
    );
    // One correlation id from the MCP call to the trigger's write: the run, its
    // transaction and publish, and the trigger's put, as the trigger's caller.
    let trail = audit(&node, &correlation).await;
    let methods: Vec<&str> = trail.iter().map(|(m, _, _)| m.as_str()).collect();
    assert!(trail.iter().all(|(_, _, ok)| *ok), "{trail:?}");
    for step in [
        "script.run",
        "inference.chat",
        "datastore.transaction",
        "plexus.publish",
        "datastore.put",
    ] {
        assert!(methods.contains(&step), "{step} missing from {trail:?}");
    }
    assert!(
        trail
            .iter()
            .any(|(m, who, _)| m == "datastore.put" && who.as_deref() == Some("summary-reactor")),
        "{trail:?}"
    );

    // 2. The primary goes down: its breaker opens and the alias falls back.
    primary.always(Behaviour::ServerError);
    for batch in ["b", "c"] {
        let ran = mcp.workflow(batch, false).await;
        assert_eq!(ran["is_error"], false, "{ran}");
        assert_eq!(
            ran["structured"]["value"]["deployment"], "secondary/small",
            "{ran}"
        );
        tokio::time::timeout(WAIT, reacted.recv())
            .await
            .expect("the trigger reacts")
            .expect("an event");
    }
    let models = rpc
        .call("inference.models", json!({}))
        .await
        .expect("models");
    let breakers = models.to_string();
    assert!(
        breakers.contains(r#""breaker":"open","deployment":"primary/small""#)
            || breakers
                .contains(r#""deployment":"primary/small","provider":"openai","breaker":"open""#)
            || models
                .pointer("/data")
                .into_iter()
                .chain(models.pointer("/models"))
                .flat_map(|v| v.as_array().into_iter().flatten())
                .flat_map(|m| m["deployments"].as_array().into_iter().flatten())
                .any(|d| d["deployment"] == "primary/small" && d["breaker"] == "open"),
        "the primary's breaker is open: {models}"
    );
    let primary_asked = primary.requests();
    let ran = mcp.workflow("a", false).await;
    assert_eq!(ran["structured"]["value"]["deployment"], "secondary/small");
    assert_eq!(
        primary.requests(),
        primary_asked,
        "an open breaker sends nothing to the primary"
    );
    tokio::time::timeout(WAIT, reacted.recv())
        .await
        .expect("the trigger reacts")
        .expect("an event");

    // 3. Past its operation limit after the inference call: a typed error, and the
    // transaction it had not reached left nothing behind.
    let asked_before = secondary.requests();
    let ran = mcp.workflow("d", true).await;
    assert_eq!(ran["is_error"], true, "{ran}");
    let text = ran["text"].as_str().unwrap_or_default();
    assert!(text.contains("operations"), "{ran}");
    assert_eq!(
        secondary.requests(),
        asked_before + 1,
        "it failed mid-workflow, after its inference call"
    );
    let sums = rpc
        .call("datastore.query", json!({"collection": "summaries"}))
        .await
        .expect("query");
    let ids: Vec<&str> = sums["docs"]
        .as_array()
        .expect("docs")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, ["sum-a", "sum-b", "sum-c"], "no sum-d: {sums}");

    // A trigger counts a run once it ended, before it takes the next event: one
    // more reaction makes sure the four before it are counted.
    rpc.call(
        "plexus.publish",
        json!({"topic": "docs.summarized", "payload": {"summary_id": "sum-a"}}),
    )
    .await
    .expect("publish");
    tokio::time::timeout(WAIT, reacted.recv())
        .await
        .expect("the trigger reacts")
        .expect("an event");

    // The metrics count each step.
    let metrics = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metric(&metrics, "plexus_script_runs_total{outcome=\"ok\"}") >= 8.0,
        "four workflows and at least four trigger runs: {metrics}"
    );
    assert_eq!(
        metric(&metrics, "plexus_script_runs_total{outcome=\"limit\"}"),
        1.0
    );
    assert!(
        metric(
            &metrics,
            "plexus_script_trigger_runs_total{trigger=\"on_summary\",outcome=\"ok\"}"
        ) >= 4.0
    );
    assert!(
        metrics.contains("plexus_inference_tokens_total{model=\"small\",kind=\"completion\"}"),
        "{metrics}"
    );
    drop(mcp);
    node.stop().await;
}

/// A trigger does what its entry's scopes allow and nothing more: without
/// `call:datastore.*` its write is refused, counted, and the next event still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_acts_only_within_its_configured_scopes() {
    let extra = r#"
[[script.triggers]]
topic = "notes.>"
script = "keep"
scopes = ["call:plexus.publish", "publish:notes.kept"]
"#;
    let node = Served::start("trigger-scopes", "", extra).await;
    let rpc = node.client();
    let keep = r#"
if event.topic == "notes.write" {
    call("datastore.put", #{collection: "kept", id: "n1", doc: #{x: 1}});
}
if event.topic == "notes.ping" { publish("notes.kept", #{from: event.id}); }
"#;
    let mut kept = prepare(&node, "kept", "keep", keep, "notes.kept").await;
    // A trigger counts a run once it ended, before it takes the next event: after
    // the second ping's answer, the write's and the first ping's runs are counted.
    for topic in ["notes.write", "notes.ping", "notes.ping"] {
        rpc.call("plexus.publish", json!({"topic": topic, "payload": {}}))
            .await
            .expect("publish");
    }
    // Events run in order: once the ping's answer is here, the write was tried.
    let answer = tokio::time::timeout(WAIT, kept.recv())
        .await
        .expect("the second event still runs")
        .expect("an event");
    assert_eq!(answer.topic().as_str(), "notes.kept");
    tokio::time::timeout(WAIT, kept.recv())
        .await
        .expect("the third event runs")
        .expect("an event");
    let missing = get_doc(&rpc, "kept", "n1").await;
    assert_eq!(missing, Value::Null, "the refused write left nothing");
    let metrics = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metric(
            &metrics,
            "plexus_script_trigger_runs_total{trigger=\"keep\",outcome=\"ok\"}"
        ) >= 1.0,
        "{metrics}"
    );
    let refused: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("plexus_script_trigger_runs_total{trigger=\"keep\"")
                && !l.contains("outcome=\"ok\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(refused, 1.0, "{metrics}");
    node.stop().await;
}

/// A stored script is the target of a job like any method: the queue runs
/// `script.run` with its name through the call path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_script_is_the_target_of_a_job() {
    let node = Served::start("script-job", "", "").await;
    let rpc = node.client();
    let tally =
        r#"call("datastore.put", #{collection: "tallies", id: "t", doc: #{n: n * 2}}); n * 2"#;
    let mut completed = prepare(&node, "tallies", "tally", tally, "jobs.*.completed").await;
    let job = rpc
        .call(
            "jobs.enqueue",
            json!({"target": "script.run", "params": {"name": "tally", "args": {"n": 21}}}),
        )
        .await
        .expect("a job whose target is a stored script");
    tokio::time::timeout(WAIT, completed.recv())
        .await
        .expect("the job completes")
        .expect("an event");
    let done = rpc
        .call("jobs.get", json!({"id": job["id"]}))
        .await
        .expect("jobs.get");
    assert_eq!(done["state"], "completed", "{done}");
    let written = get_doc(&rpc, "tallies", "t").await;
    assert_eq!(written["doc"]["n"], 42, "{written}");
    node.stop().await;
}
