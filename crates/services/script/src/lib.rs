//! The ScriptEngine family: sandboxed [rhai](https://rhai.rs) scripts run by the
//! node as the `script` service, calling other services through the call path with
//! their caller's rights.
//!
//! - `config`: the `[script]` section ([`ScriptConfig`]): the limits of every run,
//!   the pool's size and queue, the stored scripts' collection.
//! - [`ScriptEngine`]: runs a script (a source, or a stored one by name) on its
//!   pool, never on the node's async workers; stored scripts live in the DataStore
//!   and are compiled once per name and version.
//! - The sandbox: a fresh engine and scope per run; rhai's standard package only
//!   (no file system, network or process access: rhai has none unless the host
//!   registers it, and Plexus registers none); `eval` and `import` disabled; limits
//!   on operations, call levels, expression depths, string, array and map sizes,
//!   variables, functions, wall-clock time (checked inside the VM), output, host
//!   calls and the result's size.
//! - Host functions: `call("service.method", #{...})`, `publish(topic, payload)`,
//!   `log(level, text)`: through the node, as the caller (its identity, scopes,
//!   correlation id and the run's deadline).
//! - [`ScriptService`]: the `script.*` methods (run, save, get, list, delete).
//! - Triggers ([`TriggerConfig`], `[[script.triggers]]`): a stored script run for
//!   every event on a topic pattern, as a caller with the scopes configured.
//! - [`ScriptFamily`]: the [`Family`](plexus_node::family::Family) door: `[script]`
//!   builds the engine, the service and its metrics.
//! - [`ScriptMetrics`]: its metrics, named `plexus_script_*`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use plexus_core::CallContext;
//! use plexus_script::{Script, ScriptConfig, ScriptEngine, ScriptMetrics};
//! use serde_json::json;
//!
//! let engine = ScriptEngine::new(ScriptConfig::default(), ScriptMetrics::new())?;
//! let args = json!({"n": 40}).as_object().cloned().unwrap_or_default();
//! let source = Script::Source(r#"print("adding"); n + 2"#.into());
//! let ran = engine.run(source, args, CallContext::new()).await.map_err(|f| f.error)?;
//! assert_eq!(ran.value, json!(42));
//! assert_eq!(ran.output, ["adding"]);
//! # Ok(()) }
//! ```

pub mod config;
mod engine;
mod error;
mod family;
mod host;
mod metrics;
mod pool;
mod sandbox;
mod service;
mod trigger;

pub use config::ScriptConfig;
pub use engine::{Failure, Listed, Ran, Script, ScriptEngine, Stored};
pub use error::{At, Limit, ScriptError};
pub use family::ScriptFamily;
pub use metrics::ScriptMetrics;
pub use sandbox::{CHECK_EVERY, Output, Report};
pub use service::ScriptService;
pub use trigger::TriggerConfig;
