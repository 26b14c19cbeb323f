//! [`ScriptService`]: the script engine as a Plexus service (`script.*` methods), so
//! every front end (JSON-RPC, WebSocket, MCP, the CLI) reaches it through the call
//! path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `run` | `source` or `name`, `args`? | `{value, operations, duration_us, output, truncated_output}` |
//! | `save` | `name`, `source` | `{name, version}` |
//! | `get` | `name` | `{name, version, source}` |
//! | `list` | `limit`?, `cursor`? | `{scripts: [{name, version}], next_cursor}` |
//! | `delete` | `name` | `{deleted}` |
//!
//! Errors: see [`crate::ScriptError`]; bad params name the field (`/source`,
//! `/name`, `/args`), a compile error with its line:column.

use std::sync::LazyLock;

use plexus_core::methods::{Effect, MethodTable, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use plexus_node::Node;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::{Listed, Ran, Script, ScriptEngine, Stored};

/// The engine behind the `script` service.
#[derive(Clone, Debug)]
pub struct ScriptService {
    engine: ScriptEngine,
    descriptor: ServiceDescriptor,
}

impl ScriptService {
    /// The service over `engine`, instance `script-1`.
    pub fn new(engine: ScriptEngine) -> Self {
        Self {
            engine,
            descriptor: METHODS.describe(
                ServiceDescriptor::new("script", "script")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "Sandboxed rhai scripts that call services with the caller's rights; stored scripts",
                    ),
            ),
        }
    }

    /// Lets scripts call through `node` and store scripts in its DataStore.
    pub fn attach(&self, node: &Node) {
        self.engine.attach(node);
    }

    /// The engine underneath.
    pub fn engine(&self) -> &ScriptEngine {
        &self.engine
    }
}

/// The `script.*` methods, built once.
static METHODS: LazyLock<MethodTable<ScriptEngine>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<RunParams, Ran, _>(
            "run",
            "Run a script (its source, or a stored one by name) in a fresh sandbox with `args`; it calls services as the caller",
            Effect::Mutating,
            run,
        )
        .method::<SaveParams, Saved, _>(
            "save",
            "Store a script under a name (compiled first); answers its new version",
            Effect::Mutating,
            save,
        )
        .method::<NameParams, Stored, _>("get", "A stored script", Effect::Idempotent, get)
        .method::<ListParams, Page, _>(
            "list",
            "Stored scripts' names and versions, one page at a time",
            Effect::Idempotent,
            list,
        )
        .method::<NameParams, Deleted, _>(
            "delete",
            "Remove a stored script",
            Effect::Mutating,
            delete,
        )
});

/// A stored script's name
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Name(#[schemars(regex(pattern = r"^[A-Za-z0-9_.-]+$"), length(min = 1, max = 128))] String);

/// Params of `script.run`: `source` or `name`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunParams {
    /// The script's source (rhai).
    #[serde(default)]
    source: Option<String>,
    /// The stored script to run instead.
    #[serde(default)]
    name: Option<Name>,
    /// Given to the script as the map `args`, and each key that can name a variable
    /// as that variable.
    #[serde(default)]
    args: Option<Map<String, Value>>,
}

/// Params of `script.save`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SaveParams {
    name: Name,
    /// The script's source (rhai).
    source: String,
}

/// What `script.save` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Saved {
    /// The name.
    name: String,
    /// The version now stored.
    version: u64,
}

/// Params naming one stored script.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameParams {
    name: Name,
}

/// Params of `script.list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// At most this many (the DataStore's default page when absent).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<u32>,
    /// Where the previous page ended (its `next_cursor`).
    #[serde(default)]
    cursor: Option<String>,
}

/// One page of `script.list`.
#[derive(Debug, Serialize, JsonSchema)]
struct Page {
    /// Names and versions, by name.
    scripts: Vec<Listed>,
    /// Pass it back as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

/// What `script.delete` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Deleted {
    /// Whether there was such a script.
    deleted: bool,
}

async fn run(e: &ScriptEngine, ctx: CallContext, p: RunParams) -> Result<Ran, ServiceError> {
    let script = match (p.source, p.name) {
        (Some(source), None) => Script::Source(source),
        (None, Some(name)) => Script::Stored(name.0),
        (Some(_), Some(_)) => {
            return Err(ServiceError::invalid_params(
                "/name",
                "give `source` or `name`, not both",
            ));
        }
        (None, None) => {
            return Err(ServiceError::invalid_params(
                "/source",
                "is required unless `name` is given",
            ));
        }
    };
    Ok(e.run(script, p.args.unwrap_or_default(), ctx).await?)
}

async fn save(e: &ScriptEngine, ctx: CallContext, p: SaveParams) -> Result<Saved, ServiceError> {
    let version = e.save(&p.name.0, p.source, &ctx).await?;
    Ok(Saved {
        name: p.name.0,
        version,
    })
}

async fn get(e: &ScriptEngine, ctx: CallContext, p: NameParams) -> Result<Stored, ServiceError> {
    Ok(e.get(&p.name.0, &ctx).await?)
}

async fn list(e: &ScriptEngine, ctx: CallContext, p: ListParams) -> Result<Page, ServiceError> {
    let (scripts, next_cursor) = e.list(p.limit, p.cursor, &ctx).await?;
    Ok(Page {
        scripts,
        next_cursor,
    })
}

async fn delete(
    e: &ScriptEngine,
    ctx: CallContext,
    p: NameParams,
) -> Result<Deleted, ServiceError> {
    let deleted = e.delete(&p.name.0, &ctx).await?;
    Ok(Deleted { deleted })
}

impl TableService for ScriptService {
    type State = ScriptEngine;

    fn parts(&self) -> TableParts<'_, ScriptEngine> {
        (&METHODS, &self.engine, &self.descriptor)
    }
}
