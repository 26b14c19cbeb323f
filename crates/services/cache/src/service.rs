//! [`CacheService`]: the cache as a Plexus service (`cache.*` methods), so every
//! front end (JSON-RPC, WebSocket, MCP, the CLI) reaches it through the call path.
//!
//! | method | params | result |
//! | --- | --- | --- |
//! | `get` | `key`, `namespace`?, `load`?, `params`?, `ttl_ms`? | `{found, value, loaded}` |
//! | `set` | `key`, `value`, `namespace`?, `ttl_ms`? | `{ttl_ms}` |
//! | `delete` | `key`, `namespace`? | `{deleted}` |
//! | `get_many` | `keys`, `namespace`? | `{values: {key: value}, missing: [key]}` |
//! | `invalidate` | `key` or `prefix`, `namespace`? | `{invalidated}` |
//! | `stats` | | counters by namespace, evictions, the local tier |
//!
//! `get` with `load: "service.method"` calls that method through the node (with the
//! caller's correlation id and deadline, and `params`) when the key is missing,
//! once for every caller waiting on the same key, and caches its result. Only the
//! methods `cache.load_methods` lists may load.
//!
//! Errors: bad input is [`ServiceError::InvalidParams`] naming the field (`/key`,
//! `/value`, `/ttl_ms`, `/namespace`, `/keys/3`, `/load`; a loader's own bad params
//! under `/params`); Redis out of reach is [`ServiceError::Unavailable`]; a loader's
//! failure is passed on.

use std::future::Future;
use std::sync::{Arc, LazyLock, OnceLock};

use plexus_core::methods::{Effect, MethodTable, NoParams, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError};
use plexus_node::{CallError, Node, WeakNode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{Cache, Stats};

/// The cache behind the `cache` service.
#[derive(Clone, Debug)]
pub struct CacheService {
    state: Arc<State>,
    descriptor: ServiceDescriptor,
}

/// What the handlers receive: the cache, and the node once it is known (public only
/// as [`TableService::State`]; not nameable outside the crate).
#[derive(Debug)]
pub struct State {
    cache: Cache,
    node: OnceLock<WeakNode>,
}

impl CacheService {
    /// The service over `cache`, instance `cache-1`.
    pub fn new(cache: Cache) -> Self {
        Self {
            state: Arc::new(State {
                cache,
                node: OnceLock::new(),
            }),
            descriptor: METHODS.describe(
                ServiceDescriptor::new("cache", "cache")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_description(
                        "Key-value entries with TTLs in namespaces, loaded once on a miss",
                    ),
            ),
        }
    }

    /// Lets `cache.get` load through `node`'s call path (kept without keeping the
    /// node alive). The first node attached stays.
    pub fn attach(&self, node: &Node) {
        let _ = self.state.node.set(node.downgrade());
    }

    /// The cache underneath.
    pub fn cache(&self) -> &Cache {
        &self.state.cache
    }
}

/// The `cache.*` methods, built once.
static METHODS: LazyLock<MethodTable<State>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<GetParams, GetResult, _>(
            "get",
            "Read a key; with `load`, call that method on a miss (once for all waiting callers) and cache its result",
            Effect::Idempotent,
            get,
        )
        .method::<SetParams, SetResult, _>(
            "set",
            "Write a key with a TTL (the namespace's when none is given)",
            Effect::Idempotent,
            set,
        )
        .method::<KeyParams, Deleted, _>("delete", "Remove a key", Effect::Idempotent, delete)
        .method::<GetManyParams, Many, _>(
            "get_many",
            "Read several keys of one namespace in one round trip",
            Effect::Idempotent,
            get_many,
        )
        .method::<InvalidateParams, Invalidated, _>(
            "invalidate",
            "Remove a key, or every key of a namespace that starts with a prefix",
            Effect::Idempotent,
            invalidate,
        )
        .method::<NoParams, Stats, _>(
            "stats",
            "Hits, misses, loads and stampede loads avoided by namespace; evictions; the local tier",
            Effect::Idempotent,
            stats,
        )
});

/// The namespace (`default` when absent)
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Namespace(#[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 32))] String);

/// The key: any non-empty text within `cache.max_key_bytes`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Key(#[schemars(length(min = 1))] String);

/// Params of `cache.get`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetParams {
    #[serde(default)]
    namespace: Option<Namespace>,
    key: Key,
    /// On a miss, call this method (`service.method`) and cache its result.
    #[serde(default)]
    #[schemars(length(min = 3, max = 257))]
    load: Option<String>,
    /// The loader's params (`{}` when absent).
    #[serde(default)]
    params: Option<Value>,
    /// How long a loaded value is kept, in milliseconds (the namespace's TTL when
    /// absent).
    #[serde(default)]
    #[schemars(range(min = 1))]
    ttl_ms: Option<u64>,
}

/// What `cache.get` found.
#[derive(Debug, Serialize, JsonSchema)]
struct GetResult {
    /// Whether there is a value (found or loaded).
    found: bool,
    /// The value; null when there is none.
    value: Value,
    /// Whether it was loaded because the key was missing.
    loaded: bool,
}

/// Params of `cache.set`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetParams {
    #[serde(default)]
    namespace: Option<Namespace>,
    key: Key,
    /// Any JSON value within `cache.max_value_bytes`.
    value: Value,
    /// How long it is kept, in milliseconds (the namespace's TTL when absent).
    #[serde(default)]
    #[schemars(range(min = 1))]
    ttl_ms: Option<u64>,
}

/// What `cache.set` did.
#[derive(Debug, Serialize, JsonSchema)]
struct SetResult {
    /// The TTL it was written with, in milliseconds.
    ttl_ms: u64,
}

/// Params of `cache.delete`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyParams {
    #[serde(default)]
    namespace: Option<Namespace>,
    key: Key,
}

/// What `cache.delete` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Deleted {
    /// Whether the key was there.
    deleted: bool,
}

/// Params of `cache.get_many`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetManyParams {
    #[serde(default)]
    namespace: Option<Namespace>,
    /// The keys, at most `cache.max_batch` of them.
    keys: Vec<Key>,
}

/// What `cache.get_many` found.
#[derive(Debug, Serialize, JsonSchema)]
struct Many {
    /// The keys found, with their values.
    values: Map<String, Value>,
    /// The keys not found, in the order asked.
    missing: Vec<String>,
}

/// Params of `cache.invalidate`: a key, or a prefix.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct InvalidateParams {
    #[serde(default)]
    namespace: Option<Namespace>,
    /// The one key to remove.
    #[serde(default)]
    key: Option<Key>,
    /// Remove every key of the namespace that starts with this (all for `""`).
    #[serde(default)]
    prefix: Option<String>,
}

/// What `cache.invalidate` did.
#[derive(Debug, Serialize, JsonSchema)]
struct Invalidated {
    /// How many keys were removed.
    invalidated: u64,
}

fn namespace(ns: &Option<Namespace>) -> Option<&str> {
    ns.as_ref().map(|n| n.0.as_str())
}

/// A loader's failure as the caller of `cache.get` sees it.
fn load_error(method: &str, error: CallError) -> ServiceError {
    match error {
        CallError::MethodNotFound { .. } => {
            ServiceError::invalid_params("/load", error.to_string())
        }
        CallError::InvalidParams { field, reason, .. } => {
            ServiceError::invalid_params(format!("/params{field}"), reason)
        }
        CallError::Failed {
            message,
            retryable,
            detail,
            ..
        } => ServiceError::Failed {
            message: format!("loader `{method}` failed: {message}"),
            data: detail,
            retryable,
        },
        CallError::Timeout { .. } => ServiceError::Timeout,
        CallError::Unavailable { .. }
        | CallError::CircuitOpen { .. }
        | CallError::RateLimited { .. }
        | CallError::Overloaded { .. } => ServiceError::unavailable(error.to_string()),
        other => ServiceError::failed(other.to_string()),
    }
}

impl State {
    /// A loader calling `method` with `params` through the node, or why it may not.
    fn loader(
        &self,
        method: String,
        params: Value,
        ctx: &CallContext,
    ) -> Result<impl FnOnce() -> LoadFuture + Send + 'static, ServiceError> {
        let shaped = method
            .split_once('.')
            .is_some_and(|(s, m)| !s.is_empty() && !m.is_empty());
        if !shaped {
            return Err(ServiceError::invalid_params(
                "/load",
                "must be `service.method`",
            ));
        }
        if method.starts_with("cache.") {
            return Err(ServiceError::invalid_params(
                "/load",
                "cannot load from the cache itself",
            ));
        }
        if !self.cache.config().may_load(&method) {
            return Err(ServiceError::invalid_params(
                "/load",
                format!("`{method}` may not load: it is not in cache.load_methods"),
            ));
        }
        let node = self.node.get().and_then(WeakNode::upgrade).ok_or_else(|| {
            ServiceError::unavailable("the cache is not attached to a running node")
        })?;
        let mut ctx = ctx.clone();
        ctx.attempt = 1;
        Ok(move || -> LoadFuture {
            Box::pin(async move {
                node.call(&method, params, ctx)
                    .await
                    .map_err(|e| load_error(&method, e))
            })
        })
    }
}

type LoadFuture = std::pin::Pin<Box<dyn Future<Output = Result<Value, ServiceError>> + Send>>;

async fn get(s: &State, ctx: CallContext, p: GetParams) -> Result<GetResult, ServiceError> {
    let ns = namespace(&p.namespace);
    let got = match p.load {
        Some(method) => {
            let params = p.params.unwrap_or_else(|| json!({}));
            let loader = s.loader(method, params, &ctx)?;
            s.cache.get_or_load(ns, &p.key.0, p.ttl_ms, loader).await?
        }
        None => {
            if p.params.is_some() {
                return Err(ServiceError::invalid_params(
                    "/params",
                    "applies only with `load`",
                ));
            }
            if p.ttl_ms.is_some() {
                return Err(ServiceError::invalid_params(
                    "/ttl_ms",
                    "applies only with `load`",
                ));
            }
            let value = s.cache.get(ns, &p.key.0).await?;
            crate::Got {
                hit: value.is_some(),
                value,
            }
        }
    };
    Ok(GetResult {
        found: got.value.is_some(),
        loaded: !got.hit && got.value.is_some(),
        value: got.value.unwrap_or(Value::Null),
    })
}

async fn set(s: &State, _: CallContext, p: SetParams) -> Result<SetResult, ServiceError> {
    let ttl = s
        .cache
        .set(namespace(&p.namespace), &p.key.0, p.value, p.ttl_ms)
        .await?;
    Ok(SetResult {
        ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
    })
}

async fn delete(s: &State, _: CallContext, p: KeyParams) -> Result<Deleted, ServiceError> {
    let deleted = s.cache.delete(namespace(&p.namespace), &p.key.0).await?;
    Ok(Deleted { deleted })
}

async fn get_many(s: &State, _: CallContext, p: GetManyParams) -> Result<Many, ServiceError> {
    let keys: Vec<String> = p.keys.into_iter().map(|k| k.0).collect();
    let found = s.cache.get_many(namespace(&p.namespace), &keys).await?;
    let mut values = Map::new();
    let mut missing = Vec::new();
    for (key, value) in keys.into_iter().zip(found) {
        match value {
            Some(v) => {
                values.insert(key, v);
            }
            None => missing.push(key),
        }
    }
    Ok(Many { values, missing })
}

async fn invalidate(
    s: &State,
    _: CallContext,
    p: InvalidateParams,
) -> Result<Invalidated, ServiceError> {
    let ns = namespace(&p.namespace);
    let invalidated = match (p.key, p.prefix) {
        (Some(key), None) => u64::from(s.cache.delete(ns, &key.0).await?),
        (None, Some(prefix)) => s.cache.invalidate_prefix(ns, &prefix).await?,
        (Some(_), Some(_)) => {
            return Err(ServiceError::invalid_params(
                "/prefix",
                "give `key` or `prefix`, not both",
            ));
        }
        (None, None) => {
            return Err(ServiceError::invalid_params(
                "/key",
                "is required unless `prefix` is given",
            ));
        }
    };
    Ok(Invalidated { invalidated })
}

async fn stats(s: &State, _: CallContext, _: NoParams) -> Result<Stats, ServiceError> {
    Ok(s.cache.stats())
}

impl TableService for CacheService {
    type State = State;

    fn parts(&self) -> TableParts<'_, State> {
        (&METHODS, &self.state, &self.descriptor)
    }
}
