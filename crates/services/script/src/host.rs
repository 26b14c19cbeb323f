//! [`Host`]: what a running script may ask of the node, always as its caller.
//!
//! - `call("service.method", #{...})` (or `call("service.method")`) goes through
//!   the node's call path with the caller's context: its identity and scopes (the
//!   node refuses what its `call:` scopes do not allow, so a script never does more
//!   than its caller could), its correlation id, and the run's deadline (the
//!   earlier of `max_duration_ms` and the caller's; the called method's own
//!   timeout may end it sooner). The script's thread waits on the call (the pool
//!   threads are not async workers); the wait spends the run's time, and each call
//!   one of its `max_calls`. A failed call is thrown as a map `{error, code,
//!   message, data, method}` the script may `catch`; uncaught, it ends the run as
//!   [`ScriptError::Call`].
//! - `publish(topic, payload)` is `plexus.publish` through the same path, which
//!   checks the caller's `publish:<topic>` scope; it counts as a call.
//! - `log(level, text)` writes a `tracing` event (target `plexus_script`) at
//!   `error`, `warn`, `info`, `debug` or `trace`, at most `max_log_lines` per run,
//!   each cut to `max_log_bytes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use plexus_core::CallContext;
use plexus_node::{CallError, Node};
use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::config::ScriptConfig;
use crate::error::{At, Limit, ScriptError};

/// Why a host function did not answer.
#[derive(Debug)]
pub(crate) enum HostError {
    /// The run must end (a limit, the caller gone); no `catch` sees it.
    Stop(ScriptError),
    /// Thrown into the script as this value.
    Thrown(Value),
}

/// Held by the caller's side of a run; dropping it (the caller went away, or the
/// run ended) stops the run at its next check and wakes a host call waiting.
#[derive(Debug)]
pub(crate) struct Cancel {
    flag: Arc<AtomicBool>,
    _closed: watch::Sender<()>,
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Release);
    }
}

/// The run's side of a [`Cancel`].
#[derive(Clone, Debug)]
pub(crate) struct Cancelled {
    flag: Arc<AtomicBool>,
    closed: watch::Receiver<()>,
}

impl Cancelled {
    /// Whether the caller went away.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Waits until the caller goes away.
    async fn wait(mut self) {
        while self.closed.changed().await.is_ok() {}
    }
}

/// A linked pair.
pub(crate) fn cancellation() -> (Cancel, Cancelled) {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = watch::channel(());
    (
        Cancel {
            flag: flag.clone(),
            _closed: tx,
        },
        Cancelled { flag, closed: rx },
    )
}

/// The node as one run sees it.
pub(crate) struct Host {
    node: Node,
    handle: Handle,
    ctx: CallContext,
    deadline: Instant,
    cancelled: Cancelled,
    config: Arc<ScriptConfig>,
    script: String,
    calls: AtomicU32,
    logs: AtomicU32,
    /// The calls that failed, by the `call_failure` index thrown with them.
    failures: Mutex<Vec<(String, CallError)>>,
}

/// What a run is given to build its [`Host`] with.
pub(crate) struct HostParts {
    pub node: Node,
    pub handle: Handle,
    pub ctx: CallContext,
    pub config: Arc<ScriptConfig>,
    pub script: String,
}

impl Host {
    pub(crate) fn new(parts: HostParts, deadline: Instant, cancelled: Cancelled) -> Self {
        Self {
            node: parts.node,
            handle: parts.handle,
            ctx: parts.ctx,
            deadline,
            cancelled,
            config: parts.config,
            script: parts.script,
            calls: AtomicU32::new(0),
            logs: AtomicU32::new(0),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// The host, or the error a script run outside a node gets.
    pub(crate) fn or_detached(host: Option<&Self>) -> Result<&Self, HostError> {
        host.ok_or_else(|| {
            HostError::Thrown(json!({
                "error": "unavailable",
                "message": "this script runs outside a node: no call, publish or log",
            }))
        })
    }

    /// Calls `method` through the node as the caller, within the run's deadline.
    pub(crate) fn call(&self, method: &str, params: Value) -> Result<Value, HostError> {
        let spent = self.calls.fetch_add(1, Ordering::Relaxed);
        if spent >= self.config.max_calls {
            return Err(HostError::Stop(ScriptError::Limit {
                limit: Limit::Calls,
                at: At::default(),
                message: format!("more than {} calls", self.config.max_calls),
            }));
        }
        let mut ctx = self.ctx.clone();
        ctx.attempt = 1;
        let ours = tokio::time::Instant::from_std(self.deadline);
        ctx.deadline = Some(ctx.deadline.map_or(ours, |theirs| theirs.min(ours)));
        let cancelled = self.cancelled.clone();
        // A pool thread, never an async worker: blocking on the call is allowed here.
        let answer = self.handle.block_on(async {
            tokio::select! {
                answer = self.node.call(method, params, ctx) => Some(answer),
                () = cancelled.wait() => None,
            }
        });
        let Some(answer) = answer else {
            return Err(HostError::Stop(ScriptError::Cancelled));
        };
        if Instant::now() >= self.deadline {
            return Err(HostError::Stop(ScriptError::Limit {
                limit: Limit::Duration,
                at: At::default(),
                message: format!("out of time while calling `{method}`"),
            }));
        }
        answer.map_err(|e| self.failed(method, e))
    }

    /// Publishes through `plexus.publish`, as the caller.
    pub(crate) fn publish(&self, topic: &str, payload: Value) -> Result<Value, HostError> {
        self.call(
            "plexus.publish",
            json!({"topic": topic, "payload": payload}),
        )
    }

    /// Writes one log line through `tracing`.
    pub(crate) fn log(&self, level: &str, text: &str) -> Result<(), HostError> {
        let level = match level.to_ascii_lowercase().as_str() {
            "error" => tracing::Level::ERROR,
            "warn" => tracing::Level::WARN,
            "info" => tracing::Level::INFO,
            "debug" => tracing::Level::DEBUG,
            "trace" => tracing::Level::TRACE,
            other => {
                return Err(HostError::Thrown(json!({
                    "error": "invalid_params",
                    "message": format!("log level `{other}` is not error, warn, info, debug or trace"),
                })));
            }
        };
        if self.logs.fetch_add(1, Ordering::Relaxed) >= self.config.max_log_lines {
            return Ok(());
        }
        let mut end = text.len().min(self.config.max_log_bytes);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let (text, script, id) = (&text[..end], &self.script, &self.ctx.correlation_id);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "plexus_script", $level, script = %script, correlation_id = %id, "{text}")
            };
        }
        match level {
            tracing::Level::ERROR => emit!(tracing::Level::ERROR),
            tracing::Level::WARN => emit!(tracing::Level::WARN),
            tracing::Level::INFO => emit!(tracing::Level::INFO),
            tracing::Level::DEBUG => emit!(tracing::Level::DEBUG),
            _ => emit!(tracing::Level::TRACE),
        }
        Ok(())
    }

    /// A failed call, remembered and thrown into the script.
    fn failed(&self, method: &str, error: CallError) -> HostError {
        let mut failures = self.failures.lock();
        let thrown = json!({
            "error": error.outcome(),
            "code": error.code(),
            "message": error.to_string(),
            "data": error.data(),
            "method": method,
            "call_failure": failures.len(),
        });
        failures.push((method.to_owned(), error));
        HostError::Thrown(thrown)
    }

    /// The failed call `value` (a thrown map) stands for, if it is one.
    pub(crate) fn failure_of(&self, value: &rhai::Dynamic) -> Option<(String, CallError)> {
        let map = value.read_lock::<rhai::Map>()?;
        let index = map.get("call_failure")?.as_int().ok()?;
        self.failures
            .lock()
            .get(usize::try_from(index).ok()?)
            .cloned()
    }
}
