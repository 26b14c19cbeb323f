//! [`ScriptEngine`]: runs scripts (a source, or a stored script by name) on the
//! pool, each in a fresh sandbox, with the caller's rights for what it calls; and
//! keeps stored scripts in the DataStore, compiled once per name and version.
//!
//! Stored scripts are documents `{name, source}` of the collection
//! `script.collection` (created on first use), reached through the node's call path
//! (`datastore.*`) with the node's rights, the caller's correlation id and
//! deadline: saving or reading a script needs only the caller's `call:script.*`
//! scope, and gives no access to other collections. A document's version is the
//! script's version. A compiled script is kept under its name and version (at most
//! `cache_entries` of them, least used evicted) and used while the stored source is
//! the same; a source given to `script.run` is kept compiled by its text the same
//! way. Only the compiled form is shared: every run still gets a fresh engine and
//! scope.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use plexus_core::{CallContext, ServiceError};
use plexus_node::{CallError, Node, WeakNode};
use rhai::AST;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::runtime::Handle;

use crate::config::ScriptConfig;
use crate::error::ScriptError;
use crate::host::{Host, HostParts, cancellation};
use crate::metrics::ScriptMetrics;
use crate::pool::Pool;
use crate::sandbox::{Report, RunInput, Sandbox};

/// Which script to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    /// This source.
    Source(String),
    /// The stored script of this name, at its current version.
    Stored(String),
}

/// What a run that ended well answers (`script.run`'s result).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Ran {
    /// The value of the script's last expression (or of `return`), as JSON.
    pub value: Value,
    /// The operations it used.
    pub operations: u64,
    /// How long it ran, in microseconds.
    pub duration_us: u64,
    /// The lines it printed (`print`, `debug`), within the output limits.
    pub output: Vec<String>,
    /// Whether output was dropped for the limits.
    pub truncated_output: bool,
}

/// A run that did not end well: why, and how far it got when it ran at all.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Why.
    pub error: ScriptError,
    /// The operations, duration and output, when it ran.
    pub report: Option<Report>,
}

impl From<ScriptError> for Failure {
    fn from(error: ScriptError) -> Self {
        Self {
            error,
            report: None,
        }
    }
}

impl From<Failure> for ServiceError {
    fn from(f: Failure) -> Self {
        let mut extra = Map::new();
        if let Some(report) = f.report {
            extra.insert("operations".into(), report.operations.into());
            extra.insert("output".into(), json!(report.output.lines));
            extra.insert("truncated_output".into(), report.output.truncated.into());
        }
        f.error.to_service_error_with(extra)
    }
}

/// A stored script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Stored {
    /// Its name.
    pub name: String,
    /// Its version: 1 when first saved, one more at each save.
    pub version: u64,
    /// Its source.
    pub source: String,
}

/// One entry of `script.list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u64,
}

/// A compiled stored script, with the source it was compiled from.
struct Compiled {
    source: String,
    ast: Arc<AST>,
}

/// The script engine. Cheap to clone; clones share the pool and the cache.
#[derive(Clone)]
pub struct ScriptEngine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<ScriptConfig>,
    sandbox: Arc<Sandbox>,
    pool: Pool,
    metrics: ScriptMetrics,
    node: OnceLock<WeakNode>,
    caches: Caches,
    collection_ready: AtomicBool,
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("config", &self.inner.config)
            .field("pool", &self.inner.pool)
            .finish_non_exhaustive()
    }
}

/// What a job on the pool answers.
type Answer = (Result<Value, ScriptError>, Option<Report>);

impl ScriptEngine {
    /// An engine with `config`, counting into `metrics`; starts the pool's threads.
    pub fn new(config: ScriptConfig, metrics: ScriptMetrics) -> Result<Self, ScriptError> {
        let pool = Pool::new(config.max_concurrent, config.max_queued, config.stack_bytes)
            .map_err(|e| ScriptError::Unavailable {
                reason: format!("cannot start the script threads: {e}"),
            })?;
        let caches = Caches {
            stored: moka::sync::Cache::new(config.cache_entries),
            inline: moka::sync::Cache::new(config.cache_entries),
        };
        let config = Arc::new(config);
        Ok(Self {
            inner: Arc::new(Inner {
                sandbox: Arc::new(Sandbox::new(config.clone())),
                config,
                pool,
                metrics,
                node: OnceLock::new(),
                caches,
                collection_ready: AtomicBool::new(false),
            }),
        })
    }

    /// Lets scripts call through `node` (kept without keeping it alive), and
    /// stored scripts live in its DataStore. The first node attached stays.
    pub fn attach(&self, node: &Node) {
        let _ = self.inner.node.set(node.downgrade());
    }

    /// The settings in force.
    pub fn config(&self) -> &ScriptConfig {
        &self.inner.config
    }

    /// Its metrics.
    pub fn metrics(&self) -> &ScriptMetrics {
        &self.inner.metrics
    }

    fn node(&self) -> Option<Node> {
        self.inner.node.get().and_then(WeakNode::upgrade)
    }

    /// Runs `script` with `args` as `ctx`'s caller, off the async workers. Without a
    /// node attached, `call`, `publish` and `log` throw.
    pub async fn run(
        &self,
        script: Script,
        args: Map<String, Value>,
        ctx: CallContext,
    ) -> Result<Ran, Failure> {
        let result = self.run_inner(script, args, ctx).await;
        let metrics = &self.inner.metrics;
        match &result {
            Ok(ran) => metrics.run(
                "ok",
                Some((
                    std::time::Duration::from_micros(ran.duration_us),
                    ran.operations,
                )),
            ),
            Err(f) => {
                let ran = f.report.as_ref().map(|r| (r.duration, r.operations));
                metrics.run(f.error.outcome(), ran);
                if let Some(limit) = f.error.limit() {
                    metrics.limit(limit);
                }
            }
        }
        result
    }

    async fn run_inner(
        &self,
        script: Script,
        args: Map<String, Value>,
        ctx: CallContext,
    ) -> Result<Ran, Failure> {
        let (unit, label) = match script {
            Script::Source(source) => {
                let hit = self.inner.caches.inline.get(&source);
                self.inner.metrics.compiled(hit.is_some());
                let unit = hit.map_or(Unit::Source(source), Unit::Compiled);
                (unit, "inline".to_owned())
            }
            Script::Stored(name) => {
                let stored = self.get(&name, &ctx).await?;
                (self.unit_of(stored), name)
            }
        };
        // Outside a tokio runtime there is no way to wait on a call: run detached.
        let handle = Handle::try_current().ok();
        let node = self.node().filter(|_| handle.is_some());
        let caller_deadline = ctx.remaining().map(|left| Instant::now() + left);
        let (cancel, cancelled) = cancellation();
        let (sandbox, caches) = (self.inner.sandbox.clone(), self.inner.caches.clone());
        let config = self.inner.config.clone();
        let answer = self
            .on_pool(move || -> Answer {
                let ast = match unit.compile(&sandbox, &caches) {
                    Ok(ast) => ast,
                    Err(e) => return (Err(e), None),
                };
                let started = Instant::now();
                let mut deadline = started + config.max_duration();
                if let Some(theirs) = caller_deadline {
                    deadline = deadline.min(theirs);
                }
                let host = node.zip(handle).map(|(node, handle)| {
                    let parts = HostParts {
                        node,
                        handle,
                        ctx,
                        config,
                        script: label,
                    };
                    Arc::new(Host::new(parts, deadline, cancelled.clone()))
                });
                let input = RunInput {
                    args: &args,
                    host,
                    deadline,
                    cancelled,
                };
                let (result, report) = sandbox.run(&ast, input);
                (result, Some(report))
            })
            .await?;
        drop(cancel);
        match answer {
            (Ok(value), Some(report)) => Ok(Ran {
                value,
                operations: report.operations,
                duration_us: u64::try_from(report.duration.as_micros()).unwrap_or(u64::MAX),
                output: report.output.lines,
                truncated_output: report.output.truncated,
            }),
            (Ok(_), None) => Err(ScriptError::Internal {
                message: "a run answered without a report".to_owned(),
            }
            .into()),
            (Err(error), report) => Err(Failure { error, report }),
        }
    }

    /// What to run for `stored`: its compiled form when the cache has it for this
    /// version and source.
    fn unit_of(&self, stored: Stored) -> Unit {
        let key = (stored.name, stored.version);
        let hit = self
            .inner
            .caches
            .stored
            .get(&key)
            .filter(|c| c.source == stored.source);
        self.inner.metrics.compiled(hit.is_some());
        match hit {
            Some(c) => Unit::Compiled(c.ast.clone()),
            None => Unit::Stored {
                key,
                source: stored.source,
            },
        }
    }

    /// Runs `job` on a pool thread and waits for its answer.
    async fn on_pool<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ScriptError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.pool.submit(move |permit| {
            let answer = job();
            drop(permit);
            let _ = tx.send(answer);
        })?;
        rx.await.map_err(|_| ScriptError::Internal {
            message: "the script's thread failed inside (a panic in the VM)".to_owned(),
        })
    }

    /// Saves `source` as the script `name` (compiled first: a script that does not
    /// compile is not saved); answers its new version.
    pub async fn save(
        &self,
        name: &str,
        source: String,
        ctx: &CallContext,
    ) -> Result<u64, ScriptError> {
        let sandbox = self.inner.sandbox.clone();
        let (ast, source) = self
            .on_pool(move || sandbox.compile(&source, "/source").map(|a| (a, source)))
            .await??;
        let written = self
            .datastore(
                "put",
                json!({
                    "collection": self.inner.config.collection,
                    "id": name,
                    "doc": {"name": name, "source": source},
                    "mode": "upsert",
                }),
                ctx,
            )
            .await?;
        let version = written["version"].as_u64().unwrap_or_default();
        let compiled = Compiled {
            source,
            ast: Arc::new(ast),
        };
        self.inner
            .caches
            .stored
            .insert((name.to_owned(), version), Arc::new(compiled));
        Ok(version)
    }

    /// The stored script `name`.
    pub async fn get(&self, name: &str, ctx: &CallContext) -> Result<Stored, ScriptError> {
        let params = json!({"collection": self.inner.config.collection, "id": name});
        let found = self.datastore("get", params, ctx).await?;
        if found.is_null() {
            return Err(ScriptError::NotFound {
                name: name.to_owned(),
            });
        }
        Ok(Stored {
            name: name.to_owned(),
            version: found["version"].as_u64().unwrap_or_default(),
            source: found["doc"]["source"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// One page of stored scripts (names and versions), by name, with the cursor of
    /// the next page.
    pub async fn list(
        &self,
        limit: Option<u32>,
        cursor: Option<String>,
        ctx: &CallContext,
    ) -> Result<(Vec<Listed>, Option<String>), ScriptError> {
        let mut params = json!({
            "collection": self.inner.config.collection,
            "projection": ["name"],
            "cursor": cursor,
        });
        if let Some(limit) = limit {
            params["limit"] = limit.into();
        }
        let page = self.datastore("query", params, ctx).await?;
        let scripts = page["docs"]
            .as_array()
            .map(|docs| {
                docs.iter()
                    .map(|d| Listed {
                        name: d["id"].as_str().unwrap_or_default().to_owned(),
                        version: d["version"].as_u64().unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let next = page["next_cursor"].as_str().map(str::to_owned);
        Ok((scripts, next))
    }

    /// Deletes the stored script `name`; `true` when there was one.
    pub async fn delete(&self, name: &str, ctx: &CallContext) -> Result<bool, ScriptError> {
        let params = json!({"collection": self.inner.config.collection, "id": name});
        let deleted = self.datastore("delete", params, ctx).await?;
        Ok(deleted["deleted"].as_bool().unwrap_or(false))
    }

    /// Calls `datastore.<method>` with the node's rights, the caller's correlation
    /// id and deadline; creates the collection on first use.
    async fn datastore(
        &self,
        method: &str,
        params: Value,
        caller: &CallContext,
    ) -> Result<Value, ScriptError> {
        let node = self.node().ok_or_else(|| ScriptError::Unavailable {
            reason: "stored scripts need the script service attached to a running node".to_owned(),
        })?;
        let mut ctx = CallContext::new().with_correlation_id(caller.correlation_id);
        ctx.causation_id = caller.causation_id;
        ctx.deadline = caller.deadline;
        if !self.inner.collection_ready.load(Ordering::Acquire) {
            let create = json!({"name": self.inner.config.collection});
            node.call("datastore.create_collection", create, ctx.clone())
                .await
                .map_err(store_error)?;
            self.inner.collection_ready.store(true, Ordering::Release);
        }
        node.call(&format!("datastore.{method}"), params, ctx)
            .await
            .map_err(store_error)
    }
}

/// A DataStore failure as the caller of a `script.*` method sees it.
fn store_error(error: CallError) -> ScriptError {
    ScriptError::Store(match error {
        CallError::MethodNotFound { .. } => {
            ServiceError::unavailable("stored scripts need the datastore service on this node")
        }
        other => other.to_service_error(),
    })
}

/// Compiled scripts: stored ones by name and version (with their source), and
/// sources given to `script.run` by their text. Each holds `cache_entries`, the
/// least used evicted.
#[derive(Clone)]
struct Caches {
    stored: moka::sync::Cache<(String, u64), Arc<Compiled>>,
    inline: moka::sync::Cache<String, Arc<AST>>,
}

/// What a job compiles, or has compiled already.
enum Unit {
    Source(String),
    Stored { key: (String, u64), source: String },
    Compiled(Arc<AST>),
}

impl Unit {
    /// The compiled script, kept in `caches`.
    fn compile(self, sandbox: &Sandbox, caches: &Caches) -> Result<Arc<AST>, ScriptError> {
        match self {
            Self::Source(source) => {
                let ast = Arc::new(sandbox.compile(&source, "/source")?);
                caches.inline.insert(source, ast.clone());
                Ok(ast)
            }
            Self::Compiled(ast) => Ok(ast),
            Self::Stored { key, source } => {
                let ast = Arc::new(sandbox.compile(&source, "/name")?);
                let compiled = Compiled {
                    source,
                    ast: ast.clone(),
                };
                caches.stored.insert(key, Arc::new(compiled));
                Ok(ast)
            }
        }
    }
}
