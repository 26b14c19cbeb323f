//! What every test shares: a node with the `script` service, an `echo` service and
//! a `probe` service that tells when it is entered and holds callers until
//! released; helpers that read the typed errors.

use std::sync::{Arc, LazyLock};

use plexus_core::methods::{Effect, MethodTable, NoParams};
use plexus_core::{CallContext, CallResult, Service, ServiceDescriptor, ServiceError, async_trait};
use plexus_node::{CallError, Node};
use plexus_script::{ScriptConfig, ScriptEngine, ScriptMetrics, ScriptService};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// `echo.say {text}` answers `{text, correlation_id, remaining_ms}`.
pub(crate) struct Echo;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SayParams {
    text: String,
}

async fn say(_: &Echo, ctx: CallContext, p: SayParams) -> Result<Value, ServiceError> {
    Ok(json!({
        "text": p.text,
        "correlation_id": ctx.correlation_id.to_string(),
        "remaining_ms": ctx.remaining().map(|d| d.as_millis() as u64),
    }))
}

static ECHO: LazyLock<MethodTable<Echo>> = LazyLock::new(|| {
    MethodTable::new().method::<SayParams, Value, _>("say", "Echo", Effect::Idempotent, say)
});

#[async_trait]
impl Service for Echo {
    fn descriptor(&self) -> ServiceDescriptor {
        ECHO.describe(ServiceDescriptor::new("echo", "test"))
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        ECHO.call(self, method, params, ctx).await
    }
}

/// `probe.enter` tells the test it was entered; `probe.hold` does too, then waits
/// until the test opens the gate.
pub(crate) struct Probe {
    entered: mpsc::UnboundedSender<()>,
    gate: watch::Receiver<bool>,
}

async fn enter(p: &Probe, _: CallContext, _: NoParams) -> Result<Value, ServiceError> {
    let _ = p.entered.send(());
    Ok(Value::Null)
}

async fn hold(p: &Probe, _: CallContext, _: NoParams) -> Result<Value, ServiceError> {
    let _ = p.entered.send(());
    let mut gate = p.gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    Ok(json!("released"))
}

static PROBE: LazyLock<MethodTable<Probe>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<NoParams, Value, _>("enter", "Say entered", Effect::Mutating, enter)
        .method::<NoParams, Value, _>("hold", "Say entered, wait", Effect::Mutating, hold)
});

#[async_trait]
impl Service for Probe {
    fn descriptor(&self) -> ServiceDescriptor {
        PROBE.describe(ServiceDescriptor::new("probe", "test"))
    }

    async fn call(&self, method: &str, params: Value, ctx: CallContext) -> CallResult {
        PROBE.call(self, method, params, ctx).await
    }
}

/// The test's side of the probe.
pub(crate) struct ProbeHandle {
    /// One message each time the probe is entered.
    pub(crate) entered: mpsc::UnboundedReceiver<()>,
    gate: watch::Sender<bool>,
}

impl ProbeHandle {
    /// Lets every holder go.
    pub(crate) fn release(&self) {
        self.gate.send_replace(true);
    }
}

/// A node with `script` (on `config`), `echo`, `probe` and `extra` services.
pub(crate) async fn node_with(
    config: ScriptConfig,
    extra: Vec<Arc<dyn Service>>,
) -> (Node, ScriptEngine, ProbeHandle) {
    let engine = ScriptEngine::new(config, ScriptMetrics::new()).unwrap();
    let service = ScriptService::new(engine.clone());
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(false);
    let mut builder = Node::builder("script-test")
        .service(Arc::new(service.clone()))
        .service(Arc::new(Echo))
        .service(Arc::new(Probe {
            entered: entered_tx,
            gate: gate_rx,
        }));
    for s in extra {
        builder = builder.service(s);
    }
    let node = builder.start().await.unwrap();
    let metrics = engine.metrics().clone();
    node.metrics().with_registry(|r| metrics.register(r));
    service.attach(&node);
    (node, engine, ProbeHandle { entered, gate })
}

/// The defaults with the operations and collection sizes cut tenfold, so the
/// limits are reached in well under the call timeout by a debug build on a busy
/// machine.
pub(crate) fn config() -> ScriptConfig {
    ScriptConfig {
        max_operations: 100_000,
        max_array_items: 1_000,
        max_map_entries: 1_000,
        ..ScriptConfig::default()
    }
}

/// A node with [`config`].
pub(crate) async fn node() -> (Node, ScriptEngine, ProbeHandle) {
    node_with(config(), Vec::new()).await
}

/// `script.run` of `source` with no args, unrestricted.
pub(crate) async fn run(node: &Node, source: &str) -> Result<Value, CallError> {
    run_as(node, source, CallContext::new()).await
}

/// `script.run` of `source` as `ctx`.
pub(crate) async fn run_as(
    node: &Node,
    source: &str,
    ctx: CallContext,
) -> Result<Value, CallError> {
    node.call("script.run", json!({"source": source}), ctx)
        .await
}

/// The `data` of a failed script (`kind`, `limit`, `line`, …).
pub(crate) fn detail(err: &CallError) -> Value {
    match err {
        CallError::Failed {
            detail: Some(d), ..
        } => d.clone(),
        other => panic!("expected a failed script, got {other:?}"),
    }
}

/// Which limit ended the script.
pub(crate) fn limit_of(err: &CallError) -> String {
    let d = detail(err);
    assert_eq!(d["kind"], "limit", "{err}");
    d["limit"].as_str().unwrap().to_owned()
}

/// The field and reason of invalid params.
pub(crate) fn invalid(err: &CallError) -> (String, String) {
    match err {
        CallError::InvalidParams { field, reason, .. } => (field.clone(), reason.clone()),
        other => panic!("expected invalid params, got {other:?}"),
    }
}

/// The node still answers: a script and a plain call, right away.
pub(crate) async fn still_serving(node: &Node) {
    let ran = run(node, "40 + 2").await.unwrap();
    assert_eq!(ran["value"], 42);
    let echoed = node
        .call("echo.say", json!({"text": "hi"}), CallContext::new())
        .await
        .unwrap();
    assert_eq!(echoed["text"], "hi");
}
