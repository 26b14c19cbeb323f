//! Triggers: stored scripts as the handlers of topic patterns.
//!
//! `[[script.triggers]]` names a bus pattern and a stored script; once the node runs,
//! every event matching the pattern runs the script, one event at a time per
//! trigger (so a trigger sees its events in the order they were published), with
//! the event as its arguments:
//!
//! ```text
//! event = #{ topic: "docs.summarized", id: "…", correlation_id: "…", payload: … }
//! ```
//!
//! A run acts as the trigger's own caller: the name `as` (default
//! `script:<script>`) and exactly the `scopes` configured, none by default, so a
//! trigger does what its configuration allows and nothing more. It keeps the
//! event's correlation id and names the event as its cause, so the calls it makes
//! are tied to the request that published the event in the audit trail and the
//! live tail. A run that fails is logged and counted
//! (`plexus_script_trigger_runs_total{trigger, outcome}`); the next event still runs.

use std::sync::Arc;

use plexus_core::scope::Scope;
use plexus_core::{CallContext, Envelope};
use plexus_node::Node;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Script, ScriptEngine};

/// One `[[script.triggers]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// The bus pattern whose events run the script (`docs.*`, `orders.>`).
    pub topic: String,
    /// The stored script to run (saved with `script.save`).
    pub script: String,
    /// The caller the runs act as (default `script:<script>`).
    #[serde(default, rename = "as")]
    pub caller: Option<String>,
    /// What the runs may do, as token scopes (`call:datastore.*`,
    /// `publish:audit.>`); none by default.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Events waiting for the trigger, per priority lane (default 1,024); past it
    /// the bus's overflow policy applies and the drop is counted on the bus.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

fn default_capacity() -> usize {
    1024
}

impl TriggerConfig {
    /// The caller's name the runs act as.
    pub fn caller_name(&self) -> String {
        self.caller
            .clone()
            .unwrap_or_else(|| format!("script:{}", self.script))
    }

    /// The scopes, read; the first that does not read is the error, with its index.
    pub fn parsed_scopes(&self) -> Result<Vec<Scope>, (usize, String)> {
        self.scopes
            .iter()
            .enumerate()
            .map(|(i, s)| s.parse::<Scope>().map_err(|e| (i, format!("`{s}` {e}"))))
            .collect()
    }
}

/// Subscribes every trigger on `node`'s bus and runs its script per event until the
/// bus closes. Triggers whose subscription the bus refuses are logged and skipped.
pub(crate) fn start(engine: &ScriptEngine, node: &Node, triggers: &[TriggerConfig]) {
    for trigger in triggers {
        let scopes: Arc<[Scope]> = match trigger.parsed_scopes() {
            Ok(scopes) => scopes.into(),
            // Validation refused these at start; nothing to run.
            Err(_) => continue,
        };
        let options = plexus_bus::SubscribeOptions::new()
            .capacity(trigger.capacity)
            .name(format!("script-trigger:{}", trigger.script));
        let mut subscription = match node.bus().subscribe(&trigger.topic, options) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(topic = %trigger.topic, script = %trigger.script, error = %e, "script trigger not started");
                continue;
            }
        };
        let (engine, trigger) = (engine.clone(), trigger.clone());
        let caller = trigger.caller_name();
        tokio::spawn(async move {
            while let Some(event) = subscription.recv().await {
                let ctx = context(&event, &caller, &scopes);
                let args = arguments(&event);
                let outcome = match engine
                    .run(Script::Stored(trigger.script.clone()), args, ctx)
                    .await
                {
                    Ok(_) => "ok",
                    Err(failure) => {
                        tracing::warn!(
                            script = %trigger.script,
                            topic = %event.topic(),
                            correlation_id = %event.correlation_id(),
                            error = %failure.error,
                            "script trigger failed"
                        );
                        failure.error.outcome()
                    }
                };
                engine.metrics().trigger_run(&trigger.script, outcome);
            }
        });
    }
}

/// The run's context: the trigger's caller and scopes, the event's correlation id,
/// the event as its cause.
fn context(event: &Envelope, caller: &str, scopes: &Arc<[Scope]>) -> CallContext {
    let mut ctx = CallContext::new()
        .with_correlation_id(event.correlation_id())
        .with_caller(caller);
    ctx.causation_id = Some(event.id());
    ctx.scopes = Some(scopes.clone());
    ctx
}

/// The script's arguments: `event`, with the payload as JSON (bytes that are not
/// JSON arrive as `null`).
fn arguments(event: &Envelope) -> Map<String, Value> {
    let payload = event
        .payload()
        .encode()
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or(Value::Null);
    let mut args = Map::new();
    args.insert(
        "event".to_owned(),
        json!({
            "topic": event.topic().as_str(),
            "id": event.id().to_string(),
            "correlation_id": event.correlation_id().to_string(),
            "payload": payload,
        }),
    );
    args
}
