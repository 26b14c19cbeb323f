//! [`Dsl`]: reads, checks and runs programs on the node it is attached to.
//!
//! A program is read and checked whole ([`Dsl::check`]) before its first form runs;
//! if anything is wrong nothing runs ([`DslError::Rejected`] with every problem).
//! Then its forms run in order, each call through the node's call path with the
//! caller's context: its identity and scopes (the node checks `call:` scopes again
//! on every call), one correlation id for the whole program (the caller's), and the
//! program's deadline (the earlier of `dsl.max_duration_ms` and the caller's). A
//! `(transaction ...)` runs as one `datastore.transaction` call: all of its
//! operations or none. The first failing call ends the program
//! ([`DslError::Call`], naming the form's line and column and how many top-level
//! forms had completed); the forms before it have taken effect, so what must be
//! all-or-nothing belongs in one transaction.
//!
//! A top-level `let` without a body, `(let [c (case.get :case-id "C-1")])`, binds
//! its names for the rest of the program; its value is a map of them, and [`Ran`]
//! gives them back as `bound`, so whoever runs the next program can pass them in
//! ([`Dsl::run_with`]): the REPL keeps a session's names that way.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use plexus_core::{CallContext, ServiceError};
use plexus_node::{CallError, Node, WeakNode};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::catalog::{Catalog, SchemaCache};
use crate::check::{Checker, Form, TRANSACTION_METHOD, check_with, form, lasting_let};
use crate::config::DslConfig;
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::syntax::{Expr, Kind, Lines, Program, Span};
use crate::value::number_json;

/// A call's error, naming its verb once (most of the call path's errors do).
fn named(method: &str, error: &CallError) -> String {
    let said = error.to_string();
    if said.contains(&format!("`{method}`")) {
        said
    } else {
        format!("`{method}`: {said}")
    }
}

/// Why a program did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum DslError {
    /// It was refused before anything ran: every problem, with line and column.
    #[error("the program was refused, nothing ran: {0}")]
    Rejected(Diagnostics),
    /// A call failed; the forms before it ran.
    #[error("{name}:{line}:{column}: {}", named(.method, .error))]
    Call {
        /// The program's name.
        name: String,
        /// The verb.
        method: String,
        /// Where the form is.
        line: usize,
        /// Where the form is.
        column: usize,
        /// How many top-level forms had completed.
        completed: usize,
        /// The call path's error.
        error: Box<CallError>,
    },
    /// The program's deadline passed.
    #[error("{name}:{line}:{column}: the program ran out of time ({budget_ms} ms)")]
    Timeout {
        /// The program's name.
        name: String,
        /// Where the form that was running is.
        line: usize,
        /// Where the form that was running is.
        column: usize,
        /// How many top-level forms had completed.
        completed: usize,
        /// The program's time, in milliseconds.
        budget_ms: u64,
    },
    /// The `dsl` service is not attached to a running node.
    #[error("the dsl service is not attached to a running node")]
    Detached,
    /// A `dsl.ask` request longer than `dsl.ask_max_request_bytes`.
    #[error("the request is {bytes} bytes; dsl.ask_max_request_bytes allows {max}")]
    RequestTooLarge {
        /// Its length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Asking the model failed (`inference.chat`, through the call path).
    #[error("asking `{model}` failed: {error}")]
    Inference {
        /// The model asked.
        model: String,
        /// The call path's error.
        error: Box<CallError>,
    },
    /// The model answered without any text.
    #[error("`{model}` answered without a program")]
    NoAnswer {
        /// The model asked.
        model: String,
    },
}

impl DslError {
    /// Its kind, as in `data.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::Call { .. } => "call_failed",
            Self::Timeout { .. } => "timeout",
            Self::Detached => "detached",
            Self::RequestTooLarge { .. } => "request_too_large",
            Self::Inference { .. } => "inference_failed",
            Self::NoAnswer { .. } => "no_answer",
        }
    }
}

impl From<DslError> for ServiceError {
    fn from(e: DslError) -> Self {
        let message = e.to_string();
        let data = match &e {
            DslError::Rejected(d) => json!({"kind": e.kind(), "errors": d.to_json()}),
            DslError::Call {
                method,
                line,
                column,
                completed,
                error,
                ..
            } => json!({
                "kind": e.kind(), "method": method, "line": line, "column": column,
                "completed_forms": completed, "code": error.code(), "error": error.outcome(),
                "message": error.to_string(), "data": error.data(),
            }),
            DslError::Timeout {
                line,
                column,
                completed,
                budget_ms,
                ..
            } => json!({"kind": e.kind(), "line": line, "column": column,
                        "completed_forms": completed, "budget_ms": budget_ms}),
            DslError::Detached => {
                return ServiceError::Unavailable { reason: message };
            }
            DslError::RequestTooLarge { bytes, max } => {
                return ServiceError::InvalidParams {
                    field: "/request".to_owned(),
                    reason: format!("is {bytes} bytes; dsl.ask_max_request_bytes allows {max}"),
                };
            }
            DslError::Inference { model, error } => json!({
                "kind": e.kind(), "model": model, "code": error.code(), "error": error.outcome(),
                "message": error.to_string(), "data": error.data(),
            }),
            DslError::NoAnswer { model } => json!({"kind": e.kind(), "model": model}),
        };
        ServiceError::Failed {
            message,
            data: Some(data),
            retryable: false,
        }
    }
}

/// What a program that ran to its end gave.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Ran {
    /// The value of its last top-level form.
    pub value: Value,
    /// How many calls it made (a transaction is one).
    pub calls: u64,
    /// The correlation id every call carried.
    pub correlation_id: String,
    /// How long it ran, in microseconds, checks included.
    pub duration_us: u64,
    /// What its top-level `let`s without a body bound, by name (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub bound: BTreeMap<String, Value>,
}

/// A program read and checked.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The program.
    pub program: Program,
    /// How many calls it makes at most.
    pub forms: usize,
}

/// The command language's engine.
#[derive(Clone, Debug)]
pub struct Dsl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: DslConfig,
    cache: SchemaCache,
    node: OnceLock<WeakNode>,
    /// The last catalog built, with the registry generation it was built at.
    catalog: parking_lot::Mutex<Option<(u64, Arc<Catalog>)>>,
}

impl Dsl {
    /// An engine with `config`, not yet attached.
    pub fn new(config: DslConfig) -> Self {
        let cache = SchemaCache::new(config.schema_cache_entries);
        Self {
            inner: Arc::new(Inner {
                config,
                cache,
                node: OnceLock::new(),
                catalog: parking_lot::Mutex::new(None),
            }),
        }
    }

    /// Checks and runs programs against `node`; the first node attached stays.
    pub fn attach(&self, node: &Node) {
        let _ = self.inner.node.set(node.downgrade());
    }

    /// Its configuration.
    pub fn config(&self) -> &DslConfig {
        &self.inner.config
    }

    pub(crate) fn node(&self) -> Result<Node, DslError> {
        self.inner
            .node
            .get()
            .and_then(WeakNode::upgrade)
            .ok_or(DslError::Detached)
    }

    /// The verbs the node offers now: built again only when the registry changed
    /// since the last time ([`plexus_registry::Registry::generation`]).
    pub fn catalog(&self) -> Result<Arc<Catalog>, DslError> {
        let node = self.node()?;
        let registry = node.registry();
        let generation = registry.generation();
        if let Some((built_at, catalog)) = &*self.inner.catalog.lock()
            && *built_at == generation
        {
            return Ok(Arc::clone(catalog));
        }
        let catalog = Arc::new(Catalog::of(registry, &self.inner.cache));
        *self.inner.catalog.lock() = Some((generation, Arc::clone(&catalog)));
        Ok(catalog)
    }

    /// Reads and checks `source` (named `name` in diagnostics) for the caller of
    /// `ctx`: every problem, or the program ready to run.
    pub fn check(&self, name: &str, source: &str, ctx: &CallContext) -> Result<Checked, DslError> {
        self.check_in(&*self.catalog()?, name, source, &[], ctx)
    }

    /// [`Self::check`] with the names of `bound` already bound.
    pub fn check_with(
        &self,
        name: &str,
        source: &str,
        bound: &[&str],
        ctx: &CallContext,
    ) -> Result<Checked, DslError> {
        self.check_in(&*self.catalog()?, name, source, bound, ctx)
    }

    /// [`Self::check_with`] against `catalog`.
    pub(crate) fn check_in(
        &self,
        catalog: &Catalog,
        name: &str,
        source: &str,
        bound: &[&str],
        ctx: &CallContext,
    ) -> Result<Checked, DslError> {
        let rejected =
            |items: Vec<Diagnostic>| DslError::Rejected(Diagnostics::new(name, source, items));
        let program =
            crate::parse(source, self.inner.config.limits()).map_err(|d| rejected(vec![d]))?;
        let checker = Checker {
            catalog,
            scopes: ctx.scopes.as_ref(),
            max_calls: self.inner.config.max_calls,
        };
        let problems = check_with(&program, checker, bound);
        if !problems.is_empty() {
            return Err(rejected(problems));
        }
        Ok(Checked {
            forms: program.forms.len(),
            program,
        })
    }

    /// Checks `source`, then runs it as the caller of `ctx`.
    pub async fn run(&self, name: &str, source: &str, ctx: CallContext) -> Result<Ran, DslError> {
        self.run_with(name, source, BTreeMap::new(), ctx).await
    }

    /// [`Self::run`] with `bound`'s names bound to their values (what an earlier
    /// program's [`Ran::bound`] gave).
    pub async fn run_with(
        &self,
        name: &str,
        source: &str,
        bound: BTreeMap<String, Value>,
        ctx: CallContext,
    ) -> Result<Ran, DslError> {
        let started = Instant::now();
        let names: Vec<&str> = bound.keys().map(String::as_str).collect();
        let checked = self.check_with(name, source, &names, &ctx)?;
        let node = self.node()?;
        let ours = tokio::time::Instant::now() + self.inner.config.max_duration();
        let deadline = ctx.deadline.map_or(ours, |theirs| theirs.min(ours));
        let mut run = Run {
            node,
            ctx,
            deadline,
            lines: Lines::new(source),
            source,
            name,
            env: bound.into_iter().collect(),
            calls: 0,
            completed: 0,
            budget_ms: self.inner.config.max_duration_ms,
        };
        let mut value = Value::Null;
        let mut kept = BTreeMap::new();
        for form in &checked.program.forms {
            value = match lasting_let(form) {
                Some(bindings) => {
                    let mut these = Map::new();
                    for (name, _, expr) in bindings {
                        let v = run.eval(expr).await?;
                        these.insert(name.to_owned(), v.clone());
                        kept.insert(name.to_owned(), v.clone());
                        run.env.push((name.to_owned(), v));
                    }
                    Value::Object(these)
                }
                None => run.eval(form).await?,
            };
            run.completed += 1;
        }
        Ok(Ran {
            value,
            calls: run.calls,
            correlation_id: run.ctx.correlation_id.to_string(),
            duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            bound: kept,
        })
    }
}

/// One program running.
struct Run<'a> {
    node: Node,
    ctx: CallContext,
    deadline: tokio::time::Instant,
    lines: Lines,
    source: &'a str,
    name: &'a str,
    /// Names bound by `let`, innermost last.
    env: Vec<(String, Value)>,
    calls: u64,
    completed: usize,
    budget_ms: u64,
}

type Eval<'f> = Pin<Box<dyn Future<Output = Result<Value, DslError>> + Send + 'f>>;

impl Run<'_> {
    fn at(&self, span: Span) -> (usize, usize) {
        self.lines.position(self.source, span.start)
    }

    /// A problem the checker rules out, should it ever reach the runner.
    fn refused(&self, d: Diagnostic) -> DslError {
        DslError::Rejected(Diagnostics::new(self.name, self.source, vec![d]))
    }

    fn eval<'f>(&'f mut self, expr: &'f Expr) -> Eval<'f> {
        Box::pin(async move {
            Ok(match &expr.kind {
                Kind::Nil => Value::Null,
                Kind::Bool(b) => Value::Bool(*b),
                Kind::Number(n) => number_json(n).map_err(|m| {
                    self.refused(Diagnostic::new(Code::InvalidParams, expr.span, m))
                })?,
                Kind::Str(s) | Kind::Keyword(s) => Value::String(s.clone()),
                Kind::Symbol(name) => match self.env.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v.clone(),
                    None => {
                        return Err(self.refused(Diagnostic::new(
                            Code::Unbound,
                            expr.span,
                            format!("`{name}` is not bound"),
                        )));
                    }
                },
                Kind::Vector(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.eval(item).await?);
                    }
                    Value::Array(out)
                }
                Kind::Map(pairs) => {
                    let mut out = Map::new();
                    for (key, value) in pairs {
                        let v = self.eval(value).await?;
                        out.insert(key.name.clone(), v);
                    }
                    Value::Object(out)
                }
                Kind::List(items) => {
                    let parsed = form(items, expr.span).map_err(|d| self.refused(d))?;
                    self.form(parsed, expr.span).await?
                }
            })
        })
    }

    async fn form(&mut self, parsed: Form<'_>, span: Span) -> Result<Value, DslError> {
        match parsed {
            Form::Let { bindings, body } => {
                let depth = self.env.len();
                for (name, _, value) in bindings {
                    let v = self.eval(value).await?;
                    self.env.push((name.to_owned(), v));
                }
                let value = self.body(body).await;
                self.env.truncate(depth);
                value
            }
            Form::Do(body) => self.body(body).await,
            Form::Transaction(ops) => {
                let mut list = Vec::with_capacity(ops.len());
                for op in ops {
                    let Kind::List(items) = &op.kind else {
                        return Err(self.refused(Diagnostic::new(
                            Code::Form,
                            op.span,
                            "not an operation",
                        )));
                    };
                    let Form::Call { method, args, .. } =
                        form(items, op.span).map_err(|d| self.refused(d))?
                    else {
                        return Err(self.refused(Diagnostic::new(
                            Code::Form,
                            op.span,
                            "not an operation",
                        )));
                    };
                    let mut params = self.params(&args).await?;
                    let verb = method.rsplit('.').next().unwrap_or(method);
                    params.insert("op".to_owned(), Value::String(verb.to_owned()));
                    list.push(Value::Object(params));
                }
                self.call(TRANSACTION_METHOD, json!({"ops": list}), span)
                    .await
            }
            Form::Call { method, args, .. } => {
                let params = self.params(&args).await?;
                self.call(method, Value::Object(params), span).await
            }
        }
    }

    async fn body(&mut self, body: &[Expr]) -> Result<Value, DslError> {
        let mut value = Value::Null;
        for e in body {
            value = self.eval(e).await?;
        }
        Ok(value)
    }

    async fn params(
        &mut self,
        args: &[crate::check::Arg<'_>],
    ) -> Result<Map<String, Value>, DslError> {
        let mut params = Map::new();
        for a in args {
            let v = self.eval(a.value).await?;
            params.insert(a.key.to_owned(), v);
        }
        Ok(params)
    }

    /// One call through the node, as the caller, within the program's deadline.
    async fn call(&mut self, method: &str, params: Value, span: Span) -> Result<Value, DslError> {
        self.calls += 1;
        let mut ctx = self.ctx.clone();
        ctx.attempt = 1;
        ctx.deadline = Some(self.deadline);
        let (line, column) = self.at(span);
        match tokio::time::timeout_at(self.deadline, self.node.call(method, params, ctx)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(DslError::Call {
                name: self.name.to_owned(),
                method: method.to_owned(),
                line,
                column,
                completed: self.completed,
                error: Box::new(error),
            }),
            Err(_) => Err(DslError::Timeout {
                name: self.name.to_owned(),
                line,
                column,
                completed: self.completed,
                budget_ms: self.budget_ms,
            }),
        }
    }
}
