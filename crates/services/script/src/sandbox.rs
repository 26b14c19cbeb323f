//! [`Sandbox`]: what a script runs in. One compiler for every source, and for each
//! run a fresh rhai engine and scope: nothing a run leaves (variables, functions,
//! output) is seen by the next.
//!
//! The sandbox:
//! - rhai's standard package only: arithmetic, strings, arrays, maps, logic, time
//!   reading. rhai itself has no file system, network or process access, and none
//!   is registered; the only ways out are the host functions `call`, `publish` and
//!   `log`, which go through the node with the caller's rights.
//! - `eval` and `import` are disabled keywords (a script using them does not
//!   compile), and the engine has no module resolver.
//! - limits from `[script]`: operations, call levels, expression depths, string,
//!   array and map sizes, variables, functions; the wall-clock budget is checked
//!   by the progress callback every [`CHECK_EVERY`] operations, inside the VM, so a
//!   tight loop stops at it; captured output is bounded in lines and bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rhai::packages::{Package, StandardPackage};
use rhai::{
    AST, Dynamic, Engine, EvalAltResult, ImmutableString, Map as RhaiMap, NativeCallContext,
    Position,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::ScriptConfig;
use crate::error::{At, Limit, ScriptError};
use crate::host::{Cancelled, Host, HostError};

/// How many operations pass between two looks at the clock and the caller.
pub const CHECK_EVERY: u64 = 64;

/// The compiler and the per-run engines, configured once from `[script]`.
pub(crate) struct Sandbox {
    config: Arc<ScriptConfig>,
    std: rhai::Shared<rhai::Module>,
    compiler: Engine,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

/// What a run captured of `print` and `debug`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Output {
    /// The lines kept, in order.
    pub lines: Vec<String>,
    /// Whether some were dropped for `max_output_lines` or `max_output_bytes`.
    pub truncated: bool,
    #[serde(skip)]
    bytes: usize,
}

impl Output {
    fn push(&mut self, line: &str, config: &ScriptConfig) {
        if self.lines.len() >= config.max_output_lines
            || self.bytes + line.len() > config.max_output_bytes
        {
            self.truncated = true;
            return;
        }
        self.bytes += line.len();
        self.lines.push(line.to_owned());
    }
}

/// How far a run got, whether it ended well or not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Operations used.
    pub operations: u64,
    /// How long it ran (not counting time waiting for a pool thread).
    pub duration: Duration,
    /// What it printed.
    pub output: Output,
}

/// A run's mutable state, shared with the engine's callbacks.
struct RunState {
    operations: AtomicU64,
    output: Mutex<Output>,
    /// Why a callback stopped the run (the limit, or the caller going away).
    stop: Mutex<Option<ScriptError>>,
}

impl RunState {
    fn stop(&self, why: ScriptError) -> Box<EvalAltResult> {
        let message = why.to_string();
        *self.stop.lock() = Some(why);
        Box::new(EvalAltResult::ErrorTerminated(
            message.into(),
            Position::NONE,
        ))
    }
}

/// What one run is given besides its script.
pub(crate) struct RunInput<'a> {
    pub args: &'a Map<String, Value>,
    pub host: Option<Arc<Host>>,
    pub deadline: Instant,
    pub cancelled: Cancelled,
}

impl Sandbox {
    pub(crate) fn new(config: Arc<ScriptConfig>) -> Self {
        let std = StandardPackage::new().as_shared_module();
        let mut compiler = Engine::new_raw();
        compiler.register_global_module(std.clone());
        limit(&mut compiler, &config);
        // Parsed by the compiler; run by each run's engine, which binds it to its host.
        compiler.register_custom_syntax_with_state_raw("call", call_syntax, false, |_, _, _| {
            Ok(Dynamic::UNIT)
        });
        Self {
            config,
            std,
            compiler,
        }
    }

    /// Compiles `source` (given as the param `field`), checking its size first.
    pub(crate) fn compile(&self, source: &str, field: &'static str) -> Result<AST, ScriptError> {
        if source.len() > self.config.max_source_bytes {
            return Err(ScriptError::Limit {
                limit: Limit::SourceSize,
                at: At::default(),
                message: format!(
                    "the source is {} bytes, over {}",
                    source.len(),
                    self.config.max_source_bytes
                ),
            });
        }
        self.compiler.compile(source).map_err(|e| {
            let at = At::of(e.position());
            match e.err_type() {
                rhai::ParseErrorType::ExprTooDeep => ScriptError::Limit {
                    limit: Limit::ExprDepth,
                    at,
                    message: e.err_type().to_string(),
                },
                rhai::ParseErrorType::TooManyFunctions => ScriptError::Limit {
                    limit: Limit::Functions,
                    at,
                    message: e.err_type().to_string(),
                },
                other => ScriptError::Compile {
                    field,
                    at,
                    message: other.to_string(),
                },
            }
        })
    }

    /// Runs `ast` in a fresh engine and scope. Blocks: call it on a pool thread.
    pub(crate) fn run(
        &self,
        ast: &AST,
        input: RunInput<'_>,
    ) -> (Result<Value, ScriptError>, Report) {
        let started = Instant::now();
        let state = Arc::new(RunState {
            operations: AtomicU64::new(0),
            output: Mutex::new(Output::default()),
            stop: Mutex::new(None),
        });
        let engine = self.engine(&state, &input);
        let result = scope_of(input.args).and_then(|mut scope| {
            engine
                .eval_ast_with_scope::<Dynamic>(&mut scope, ast)
                .map_err(|e| classify(*e, &state, input.host.as_deref()))
        });
        let result = result.and_then(|value| self.to_json(value));
        drop(engine);
        let report = Report {
            operations: state.operations.load(Ordering::Relaxed),
            duration: started.elapsed(),
            output: std::mem::take(&mut *state.output.lock()),
        };
        (result, report)
    }

    /// A fresh engine for one run: the standard package, the limits, the progress
    /// check, captured output and the host functions.
    fn engine(&self, state: &Arc<RunState>, input: &RunInput<'_>) -> Engine {
        let mut engine = Engine::new_raw();
        engine.register_global_module(self.std.clone());
        limit(&mut engine, &self.config);

        let (progress, deadline, cancelled) =
            (state.clone(), input.deadline, input.cancelled.clone());
        engine.on_progress(move |ops| {
            progress.operations.store(ops, Ordering::Relaxed);
            if ops % CHECK_EVERY != 1 {
                return None;
            }
            if cancelled.is_set() {
                return Some(progress.stop(ScriptError::Cancelled).to_string().into());
            }
            if Instant::now() >= deadline {
                let why = over_time(At::default());
                return Some(progress.stop(why).to_string().into());
            }
            None
        });
        let (printed, config) = (state.clone(), self.config.clone());
        engine.on_print(move |line| printed.output.lock().push(line, &config));
        let (debugged, config) = (state.clone(), self.config.clone());
        engine.on_debug(move |line, _, _| debugged.output.lock().push(line, &config));

        register_host(&mut engine, state, input.host.clone());
        engine
    }

    /// The script's value as JSON, within `max_result_bytes`.
    fn to_json(&self, value: Dynamic) -> Result<Value, ScriptError> {
        let json = rhai::serde::from_dynamic::<Value>(&value)
            .unwrap_or_else(|_| Value::String(value.to_string()));
        let bytes = serde_json::to_vec(&json).map_or(usize::MAX, |b| b.len());
        if bytes > self.config.max_result_bytes {
            return Err(ScriptError::Limit {
                limit: Limit::ResultSize,
                at: At::default(),
                message: format!(
                    "the result is {bytes} bytes as JSON, over {}",
                    self.config.max_result_bytes
                ),
            });
        }
        Ok(json)
    }
}

/// The limits of `[script]` and the disabled keywords, on `engine`.
fn limit(engine: &mut Engine, config: &ScriptConfig) {
    engine
        .set_max_operations(config.max_operations)
        .set_max_call_levels(config.max_call_levels)
        .set_max_expr_depths(config.max_expr_depth, config.max_function_expr_depth)
        .set_max_string_size(config.max_string_bytes)
        .set_max_array_size(config.max_array_items)
        .set_max_map_size(config.max_map_entries)
        .set_max_variables(config.max_variables)
        .set_max_functions(config.max_functions)
        .disable_symbol("eval")
        .disable_symbol("import")
        .disable_symbol("export");
}

/// The over-time stop.
fn over_time(at: At) -> ScriptError {
    ScriptError::Limit {
        limit: Limit::Duration,
        at,
        message: "out of time (max_duration_ms or the caller's deadline)".to_owned(),
    }
}

/// Whether `name` can name a rhai variable.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A fresh scope holding `args` as the map `args`, and each key that can name a
/// variable as a variable too.
fn scope_of(args: &Map<String, Value>) -> Result<rhai::Scope<'static>, ScriptError> {
    let mut scope = rhai::Scope::new();
    let bad = |e: Box<EvalAltResult>| ScriptError::Runtime {
        at: At::default(),
        message: format!("`args` cannot be given to the script: {e}"),
    };
    for (key, value) in args {
        if is_identifier(key) && key != "args" {
            scope.push_dynamic(key.clone(), rhai::serde::to_dynamic(value).map_err(bad)?);
        }
    }
    let all = rhai::serde::to_dynamic(Value::Object(args.clone())).map_err(bad)?;
    scope.push_dynamic("args", all);
    Ok(scope)
}

/// The typed error of a run that ended in `error`.
fn classify(error: EvalAltResult, state: &RunState, host: Option<&Host>) -> ScriptError {
    let outer = error.position();
    let inner = error.unwrap_inner();
    let at = At::of(if inner.position().is_none() {
        outer
    } else {
        inner.position()
    });
    let over = |limit: Limit| ScriptError::Limit {
        limit,
        at,
        message: inner.to_string(),
    };
    match inner {
        EvalAltResult::ErrorTerminated(..) => match state.stop.lock().take() {
            Some(ScriptError::Limit {
                limit,
                at: here,
                message,
            }) => ScriptError::Limit {
                limit,
                at: if here == At::default() { at } else { here },
                message,
            },
            Some(other) => other,
            None => ScriptError::Runtime {
                at,
                message: inner.to_string(),
            },
        },
        EvalAltResult::ErrorTooManyOperations(_) => over(Limit::Operations),
        EvalAltResult::ErrorStackOverflow(_) => over(Limit::CallLevels),
        EvalAltResult::ErrorTooManyVariables(_) => over(Limit::Variables),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let what = what.to_ascii_lowercase();
            over(if what.contains("string") {
                Limit::StringSize
            } else if what.contains("array") {
                Limit::ArraySize
            } else {
                Limit::MapSize
            })
        }
        EvalAltResult::ErrorRuntime(value, _) => {
            host.and_then(|h| h.failure_of(value)).map_or_else(
                || ScriptError::Runtime {
                    at,
                    message: inner.to_string(),
                },
                |(method, error)| ScriptError::Call {
                    method,
                    at,
                    error: Box::new(error),
                },
            )
        }
        _ => ScriptError::Runtime {
            at,
            message: inner.to_string(),
        },
    }
}

/// A host error as rhai raises it: a stop ends the run (no `catch` sees it); a
/// failed call is thrown, so the script may catch it.
fn raise(state: &RunState, pos: Position, error: HostError) -> Box<EvalAltResult> {
    let at = At::of(pos);
    match error {
        HostError::Stop(ScriptError::Limit { limit, message, .. }) => {
            state.stop(ScriptError::Limit { limit, at, message })
        }
        HostError::Stop(other) => state.stop(other),
        HostError::Thrown(value) => Box::new(EvalAltResult::ErrorRuntime(
            rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT),
            pos,
        )),
    }
}

type HostResult = Result<Dynamic, Box<EvalAltResult>>;

/// Registers `call`, `publish` and `log` on `engine`, bound to this run.
fn register_host(engine: &mut Engine, state: &Arc<RunState>, host: Option<Arc<Host>>) {
    let bind = move |state: &Arc<RunState>| (state.clone(), host.clone());

    let (s, h) = bind(state);
    engine.register_custom_syntax_with_state_raw(
        "call",
        call_syntax,
        false,
        move |ctx, inputs, _| -> HostResult {
            let at = inputs.first().map_or(Position::NONE, |e| e.position());
            let method = match inputs.first() {
                Some(e) => ctx.eval_expression_tree(e)?,
                None => Dynamic::UNIT,
            };
            let params = match inputs.get(1) {
                Some(e) => ctx.eval_expression_tree(e)?,
                None => Dynamic::from_map(RhaiMap::new()),
            };
            let method = method.into_immutable_string().map_err(|t| {
                Box::new(EvalAltResult::ErrorMismatchDataType(
                    "string".into(),
                    t.into(),
                    at,
                ))
            })?;
            let result =
                to_json(params).and_then(|p| Host::or_detached(h.as_deref())?.call(&method, p));
            result
                .map(|v| rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT))
                .map_err(|e| raise(&s, at, e))
        },
    );

    let (s, h) = bind(state);
    engine.register_fn(
        "publish",
        move |ctx: NativeCallContext<'_>, topic: &str, payload: Dynamic| -> HostResult {
            let result =
                to_json(payload).and_then(|p| Host::or_detached(h.as_deref())?.publish(topic, p));
            result
                .map(|v| rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT))
                .map_err(|e| raise(&s, ctx.call_position(), e))
        },
    );

    let (s, h) = bind(state);
    engine.register_fn(
        "log",
        move |ctx: NativeCallContext<'_>,
              level: &str,
              text: &str|
              -> Result<(), Box<EvalAltResult>> {
            Host::or_detached(h.as_deref())
                .and_then(|host| host.log(level, text))
                .map_err(|e| raise(&s, ctx.call_position(), e))
        },
    );
}

/// How `call("service.method")` and `call("service.method", #{...})` parse. rhai's
/// own `call` is its function-pointer call, which a function cannot overload, so
/// the host's `call` is custom syntax of the same shape (a function pointer is
/// called with `f.call(...)`).
fn call_syntax(
    symbols: &[ImmutableString],
    look_ahead: &str,
    _: &mut Dynamic,
) -> Result<Option<ImmutableString>, rhai::ParseError> {
    let next = match symbols.len() {
        _ if symbols.len() > 1 && symbols.last().is_some_and(|s| s == ")") => return Ok(None),
        1 => "(",
        2 | 4 => "$expr$",
        3 if look_ahead == "," => ",",
        3 | 5 => ")",
        _ => return Ok(None),
    };
    Ok(Some(next.into()))
}

/// A script's value as JSON for a host function.
fn to_json(value: Dynamic) -> Result<Value, HostError> {
    rhai::serde::from_dynamic::<Value>(&value).map_err(|e| {
        HostError::Thrown(serde_json::json!({
            "error": "invalid_params",
            "message": format!("not JSON: {e}"),
        }))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn identifiers_are_told_apart() {
        assert!(is_identifier("a_1") && is_identifier("_x"));
        assert!(!is_identifier("1a") && !is_identifier("a-b") && !is_identifier(""));
    }

    #[test]
    fn output_is_bounded_in_lines_and_bytes() {
        let config = ScriptConfig {
            max_output_lines: 2,
            max_output_bytes: 5,
            ..ScriptConfig::default()
        };
        let mut out = Output::default();
        out.push("abc", &config);
        out.push("def", &config);
        assert_eq!((out.lines.len(), out.truncated), (1, true));
        out.push("d", &config);
        out.push("e", &config);
        assert_eq!(out.lines, ["abc", "d"]);
    }
}
