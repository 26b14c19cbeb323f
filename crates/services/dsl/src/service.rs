//! [`DslService`]: the command language as a Plexus service (`dsl.*` methods), so
//! JSON-RPC, WebSocket, MCP and the CLI reach it through the call path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `check` | `source`, `name`?, `bindings`? | `{ok, errors: [{code, message, line, column, end_line, end_column, help, rendered}], forms}` |
//! | `run` | `source`, `name`?, `bindings`? | `{value, calls, correlation_id, duration_us, bound?}` |
//! | `verbs` | none | `{verbs: [{method, description, keys, required}]}` (what the caller may call) |
//! | `ask` | `request`, `model`?, `repair`?, `run`? | `{program, ok, errors, repaired_errors, attempts, model, verbs_offered, verbs_left_out, ran}` |
//!
//! `bindings` (`{name: value}`, at most 1,024 names) are bound before the
//! program starts; `bound` gives back what its top-level `let`s without a body bound,
//! so a session (the REPL) passes them to its next program.
//!
//! `run` refuses a program that fails its check with `data.kind = "rejected"` and
//! the same `errors`; a failing call ends it with `data.kind = "call_failed"`
//! (`method`, `line`, `column`, `completed_forms`, the call's `code`, `error`,
//! `message`, `data`); running out of time with `data.kind = "timeout"`.
//!
//! `ask` has a model write the program (`inference.chat`, as the caller: it needs
//! `call:inference.chat`) and answers with it and its check; a program that fails
//! its check is never run (`ok: false`, its `errors`). With `run: true` a program
//! that passes is run and `ran` is what `run` would give. The model failing is
//! `data.kind = "inference_failed"`; answering with no text, `"no_answer"`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use plexus_core::methods::{Effect, MethodTable, NoParams, TableParts, TableService};
use plexus_core::scope::Caller;
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use plexus_node::Node;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ask::{Ask, Asked};
use crate::run::{Dsl, DslError, Ran};

/// The engine behind the `dsl` service.
#[derive(Clone, Debug)]
pub struct DslService {
    dsl: Dsl,
    descriptor: ServiceDescriptor,
}

impl DslService {
    /// The service over `dsl`, instance `dsl-1`.
    pub fn new(dsl: Dsl) -> Self {
        Self {
            dsl,
            descriptor: METHODS.describe(
                ServiceDescriptor::new("dsl", "dsl")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "The command language: programs of (service.method :key value) checked against the registry before they run as the caller",
                    ),
            ),
        }
    }

    /// Lets programs run on `node`.
    pub fn attach(&self, node: &Node) {
        self.dsl.attach(node);
    }

    /// The engine underneath.
    pub fn dsl(&self) -> &Dsl {
        &self.dsl
    }
}

/// The `dsl.*` methods, built once.
static METHODS: LazyLock<MethodTable<Dsl>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<ProgramParams, CheckReport, _>(
            "check",
            "Read and check a program (verbs, params against their schemas, the caller's scopes) without running it",
            Effect::Idempotent,
            check,
        )
        .method::<ProgramParams, Ran, _>(
            "run",
            "Check a program, then run it as the caller: one correlation id, one deadline; nothing runs if the check fails",
            Effect::Mutating,
            run,
        )
        .method::<NoParams, VerbList, _>(
            "verbs",
            "The verbs the caller may use, with their keys",
            Effect::Idempotent,
            verbs,
        )
        .method::<AskParams, Asked, _>(
            "ask",
            "Have a model of the InferenceEngine write a program from plain language, offered only the verbs the caller may use; the program is checked like any other, never run if it fails, and run only when `run` is true",
            Effect::Mutating,
            ask,
        )
});

/// Params of `dsl.ask`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AskParams {
    /// What to do, in plain language ("open a KYC case for ACME").
    #[schemars(length(min = 1))]
    request: String,
    /// The model or alias to ask (`dsl.ask_model` without it).
    #[serde(default)]
    #[schemars(length(min = 1, max = 256))]
    model: Option<String>,
    /// Send a refused program back once with its errors (`dsl.ask_repair` without it).
    #[serde(default)]
    repair: Option<bool>,
    /// Run the program when it passes its check (default false: only propose it).
    #[serde(default)]
    run: bool,
}

/// The most names `bindings` may hold.
const MAX_BINDINGS: usize = 1_024;

/// Params of `dsl.check` and `dsl.run`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProgramParams {
    /// The program's text.
    source: String,
    /// Its name in diagnostics (a file's path); `program` without it.
    #[serde(default)]
    #[schemars(length(max = 256))]
    name: Option<String>,
    /// Names bound before the program starts, each to a JSON value (what an earlier
    /// program's `bound` gave); each a plain name, at most 1,024.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 1024))]
    bindings: BTreeMap<String, Value>,
}

impl ProgramParams {
    /// The names of `bindings`, or the one that cannot be bound.
    fn bound(&self) -> Result<Vec<&str>, ServiceError> {
        if self.bindings.len() > MAX_BINDINGS {
            return Err(ServiceError::invalid_params(
                "/bindings",
                format!(
                    "holds {} names; at most {MAX_BINDINGS}",
                    self.bindings.len()
                ),
            ));
        }
        self.bindings
            .keys()
            .map(|name| match crate::check::bindable(name) {
                true => Ok(name.as_str()),
                false => Err(ServiceError::invalid_params(
                    format!("/bindings/{name}"),
                    "a bound name is a plain name: a letter or `_`, then letters, digits or any of `_-?!*/+<>=` (no `.`, not `let`, `do` or `transaction`)",
                )),
            })
            .collect()
    }
}

/// What `dsl.check` found.
#[derive(Debug, Serialize, JsonSchema)]
struct CheckReport {
    /// Whether the program may run.
    ok: bool,
    /// Every problem, in the order of the source.
    errors: Vec<Value>,
    /// Its top-level forms (0 when it could not be read).
    forms: usize,
}

/// The verbs a caller may use.
#[derive(Debug, Serialize, JsonSchema)]
struct VerbList {
    /// By name.
    verbs: Vec<VerbInfo>,
}

/// One verb.
#[derive(Debug, Serialize, JsonSchema)]
struct VerbInfo {
    /// `service.method`.
    method: String,
    /// What it does.
    description: String,
    /// The keys its schema documents.
    keys: Vec<String>,
    /// The keys it requires.
    required: Vec<String>,
}

fn name_of(p: &ProgramParams) -> &str {
    p.name.as_deref().unwrap_or("program")
}

async fn check(d: &Dsl, ctx: CallContext, p: ProgramParams) -> Result<CheckReport, ServiceError> {
    match d.check_with(name_of(&p), &p.source, &p.bound()?, &ctx) {
        Ok(checked) => Ok(CheckReport {
            ok: true,
            errors: Vec::new(),
            forms: checked.forms,
        }),
        Err(DslError::Rejected(diags)) => Ok(CheckReport {
            ok: false,
            errors: diags.to_json().as_array().cloned().unwrap_or_default(),
            forms: 0,
        }),
        Err(e) => Err(e.into()),
    }
}

async fn run(d: &Dsl, ctx: CallContext, p: ProgramParams) -> Result<Ran, ServiceError> {
    p.bound()?;
    let name = name_of(&p).to_owned();
    Ok(d.run_with(&name, &p.source, p.bindings, ctx).await?)
}

async fn verbs(d: &Dsl, ctx: CallContext, _: NoParams) -> Result<VerbList, ServiceError> {
    let catalog = d.catalog()?;
    let caller = ctx.scopes.map(|s| Caller::new("program", s));
    let verbs = catalog
        .verbs()
        .filter(|v| caller.as_ref().is_none_or(|c| c.may_call(&v.method)))
        .map(|v| VerbInfo {
            method: v.method.clone(),
            description: v.description.clone(),
            keys: v.keys.clone(),
            required: v.required.clone(),
        })
        .collect();
    Ok(VerbList { verbs })
}

async fn ask(d: &Dsl, ctx: CallContext, p: AskParams) -> Result<Asked, ServiceError> {
    let ask = Ask {
        request: p.request,
        model: p.model,
        repair: p.repair,
        run: p.run,
    };
    Ok(d.ask(ask, ctx).await?)
}

impl TableService for DslService {
    type State = Dsl;

    fn parts(&self) -> TableParts<'_, Dsl> {
        (&METHODS, &self.dsl, &self.descriptor)
    }
}
