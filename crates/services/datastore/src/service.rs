//! [`DataStoreService`]: the DataStore as a Plexus service (`datastore.*` methods),
//! so every front end (JSON-RPC, MCP, CLI, DSL) reaches it through the call path.
//!
//! Errors: bad input is [`ServiceError::InvalidParams`] naming the field as a JSON
//! pointer (`/filter/and/1/gte`, `/doc`, `/collection`); a lost or refused database
//! connection is [`ServiceError::Unavailable`]; everything else is
//! [`ServiceError::Failed`] whose `data` holds `{"kind": StoreError::kind, …}` with the
//! error's fields (`expected`/`actual` for a version conflict, `index` for a unique
//! violation, `op` for the failing operation of a transaction).
//!
//! Fencing: `put`, `delete`, `patch` and `transaction` take an optional `fence:
//! {lock, token}` (a `lock.acquire` grant's name and token). The write is refused
//! with `data.kind = "fenced"` (and `lock`, `token`, `highest`) when the store has
//! already accepted a fenced write with a greater token of that lock: its holder
//! lost the lock. See `plexus_store::Fence`.
//!
//! Durable events: on a node with `[store] durable_topics`, `transaction` takes
//! `events` (`{topic, payload, priority?, headers?}`, each topic durable and allowed
//! by the caller's `publish:` scope) and writes them to the outbox in the same
//! transaction as its operations: both commit or neither does.

use std::sync::LazyLock;

use plexus_core::methods::{Effect, MethodTable, NoParams, TableParts, TableService};
use plexus_core::{CallContext, ServiceDescriptor, ServiceError, async_trait};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use plexus_store::{
    CollectionSpec, DataStore, Document, Fence, FieldPath, Filter, IndexSpec, Op, OpResult,
    PutMode, Query, SlowQuery, Sort, StoreError,
};

/// The DataStore behind the `datastore` service.
#[derive(Debug, Clone)]
pub struct DataStoreService {
    store: Backing,
    descriptor: ServiceDescriptor,
}

/// What the methods work on: the store, and its outbox when topics are durable.
#[derive(Clone, Debug)]
pub struct Backing {
    store: DataStore,
    outbox: Option<plexus_store::Outbox>,
}

impl std::ops::Deref for Backing {
    type Target = DataStore;

    fn deref(&self) -> &DataStore {
        &self.store
    }
}

impl DataStoreService {
    /// The service over `store`, instance `datastore-1`.
    pub fn new(store: DataStore) -> Self {
        Self {
            store: Backing {
                store,
                outbox: None,
            },
            descriptor: descriptor(),
        }
    }

    /// Lets `transaction` write durable events to `outbox` with its operations.
    pub fn with_outbox(mut self, outbox: plexus_store::Outbox) -> Self {
        self.store.outbox = Some(outbox);
        self
    }

    /// Sets the instance id.
    pub fn with_instance(mut self, instance: &str) -> Self {
        self.descriptor = self.descriptor.with_instance(instance);
        self
    }

    /// The data store underneath.
    pub fn store(&self) -> &DataStore {
        &self.store.store
    }
}

/// The `datastore.*` methods, built once.
static METHODS: LazyLock<MethodTable<Backing>> = LazyLock::new(|| {
    MethodTable::new()
        .method::<PutParams, Written, _>(
            "put",
            "Insert, replace or upsert a document, optionally only at an expected version",
            Effect::Mutating,
            put,
        )
        .method::<GetParams, Option<Doc>, _>(
            "get",
            "Read a document by id; null when there is none",
            Effect::Idempotent,
            get,
        )
        .method::<DeleteParams, Deleted, _>(
            "delete",
            "Delete a document by id, optionally only at an expected version",
            Effect::Mutating,
            delete,
        )
        .method::<PatchParams, Written, _>(
            "patch",
            "Apply a JSON merge patch (RFC 7386) to a document",
            Effect::Mutating,
            patch,
        )
        .method::<QueryParams, QueryPage, _>(
            "query",
            "One page of the documents a filter selects, sorted, projected, with a cursor to the next page",
            Effect::Idempotent,
            query,
        )
        .method::<CountParams, Count, _>(
            "count",
            "How many documents a filter selects",
            Effect::Idempotent,
            count,
        )
        .method::<CreateCollectionParams, Created, _>(
            "create_collection",
            "Create a collection with secondary indexes (a no-op when it exists with the same indexes)",
            Effect::Mutating,
            create_collection,
        )
        .method::<TransactionParams, TransactionResults, _>(
            "transaction",
            "Run several put/get/delete/patch operations all-or-nothing",
            Effect::Mutating,
            transaction,
        )
        .method::<NoParams, SlowQueries, _>(
            "slow_queries",
            "Statements that took at least the slow-query threshold, oldest first",
            Effect::Idempotent,
            slow_queries,
        )
});

fn descriptor() -> ServiceDescriptor {
    METHODS.describe(
        ServiceDescriptor::new("datastore", "datastore")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_description(
                "Collections of JSON documents with filters, sort, pagination, indexes and transactions",
            ),
    )
}

/// The collection's name
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct Collection(#[schemars(regex(pattern = r"^[a-z][a-z0-9_]*$"), length(max = 32))] String);

/// The document's id
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(transparent)]
struct DocId(#[schemars(length(min = 1, max = 256))] String);

/// Params of `datastore.put`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PutParams {
    collection: Collection,
    id: DocId,
    /// The document: a JSON object with at least one field.
    #[schemars(extend("minProperties" = 1))]
    doc: Map<String, Value>,
    /// Insert (only if absent), replace (only if present) or upsert.
    #[serde(default)]
    mode: PutMode,
    /// Write only if the stored version is this one (0: absent)
    #[serde(default)]
    expected_version: Option<u64>,
    /// Write only while this lock's fencing token is not lower than one already
    /// written with (`{lock, token}` of a `lock.acquire` grant)
    #[serde(default)]
    fence: Option<Fence>,
}

/// Params of `datastore.get`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetParams {
    collection: Collection,
    id: DocId,
}

/// Params of `datastore.delete`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    collection: Collection,
    id: DocId,
    /// Delete only if the stored version is this one
    #[serde(default)]
    expected_version: Option<u64>,
    /// Write only while this lock's fencing token is not lower than one already
    /// written with (`{lock, token}` of a `lock.acquire` grant)
    #[serde(default)]
    fence: Option<Fence>,
}

/// Params of `datastore.patch`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PatchParams {
    collection: Collection,
    id: DocId,
    /// A JSON merge patch (RFC 7386): `null` removes a field.
    patch: Map<String, Value>,
    /// Write only if the stored version is this one
    #[serde(default)]
    expected_version: Option<u64>,
    /// Write only while this lock's fencing token is not lower than one already
    /// written with (`{lock, token}` of a `lock.acquire` grant)
    #[serde(default)]
    fence: Option<Fence>,
}

/// Which documents: `{}` (all), `{"and": [filter]}`, `{"or": [filter]}`,
/// `{"not": filter}` or `{"field": "a.b", OP: operand}` with OP one of eq, ne, gt,
/// gte, lt, lte, in, exists, contains.
type FilterParam = Map<String, Value>;

/// Params of `datastore.query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryParams {
    collection: Collection,
    /// Which documents: `{}` (all), `{"and": [filter]}`, `{"or": [filter]}`,
    /// `{"not": filter}` or `{"field": "a.b", OP: operand}` with OP one of eq, ne,
    /// gt, gte, lt, lte, in, exists, contains.
    #[serde(default)]
    filter: Option<FilterParam>,
    /// Sort keys, in order (then by id).
    #[serde(default)]
    #[schemars(length(max = 4))]
    sort: Vec<SortKey>,
    /// Only these field paths of each document; whole documents without it.
    #[serde(default)]
    projection: Option<Vec<String>>,
    /// At most this many documents. Read by the store's own rules (a number too
    /// large for it is held to the top, so its range check words every limit that is
    /// too large the same way).
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    limit: Option<Value>,
    /// Where the previous page ended (its `next_cursor`).
    #[serde(default)]
    cursor: Option<String>,
}

/// One sort key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SortKey {
    /// A field path such as `a.b`.
    field: String,
    /// Smallest first (`asc`) or largest first (`desc`).
    #[serde(default)]
    order: Order,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Order {
    #[default]
    Asc,
    Desc,
}

/// Params of `datastore.count`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CountParams {
    collection: Collection,
    /// Which documents: `{}` (all), `{"and": [filter]}`, `{"or": [filter]}`,
    /// `{"not": filter}` or `{"field": "a.b", OP: operand}` with OP one of eq, ne,
    /// gt, gte, lt, lte, in, exists, contains.
    #[serde(default)]
    filter: Option<FilterParam>,
}

/// Params of `datastore.create_collection`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateCollectionParams {
    /// The collection's name
    name: Collection,
    /// Its secondary indexes.
    #[serde(default)]
    #[schemars(with = "Vec<IndexSpec>")]
    indexes: Whole<Vec<IndexSpec>>,
}

/// Params of `datastore.transaction`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TransactionParams {
    /// The operations, applied in order; all or none take effect.
    #[schemars(with = "Vec<Op>")]
    ops: Vec<Whole<Op>>,
    /// Durable events written with the operations, in the same transaction (each
    /// topic must be one of `[store] durable_topics`).
    #[serde(default)]
    #[schemars(length(max = 256))]
    events: Vec<plexus_node::own::PublishParams>,
    /// Apply the operations only while this lock's fencing token is not lower than one already
    /// written with (`{lock, token}` of a `lock.acquire` grant)
    #[serde(default)]
    fence: Option<Fence>,
}

/// A value read as one piece: an error anywhere inside it names the value itself
/// (`/indexes`, `/ops/2`), not a path inside it.
#[derive(Debug, Default)]
struct Whole<T>(T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        T::deserialize(value)
            .map(Whole)
            .map_err(|e| serde::de::Error::custom(format_args!("is not valid: {e}")))
    }
}

/// What a write left: the id and the version now stored.
#[derive(Debug, Serialize, JsonSchema)]
struct Written {
    /// The document's id.
    id: String,
    /// The version now stored.
    version: u64,
}

/// A stored document.
#[derive(Debug, Serialize, JsonSchema)]
struct Doc {
    /// Its id.
    id: String,
    /// Its version: 1 when inserted, one more at each write.
    version: u64,
    /// The JSON object.
    #[schemars(with = "Map<String, Value>")]
    doc: Value,
}

impl From<Document> for Doc {
    fn from(d: Document) -> Self {
        Self {
            id: d.id,
            version: d.version,
            doc: d.doc,
        }
    }
}

/// Whether a document was deleted.
#[derive(Debug, Serialize, JsonSchema)]
struct Deleted {
    /// Whether one was.
    deleted: bool,
}

/// One page of documents.
#[derive(Debug, Serialize, JsonSchema)]
struct QueryPage {
    /// The documents, in order.
    docs: Vec<Doc>,
    /// Pass it back as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

/// How many documents a filter selects.
#[derive(Debug, Serialize, JsonSchema)]
struct Count {
    /// How many.
    count: u64,
}

/// Whether the collection was created.
#[derive(Debug, Serialize, JsonSchema)]
struct Created {
    /// `false` when it existed with the same indexes.
    created: bool,
}

/// The outcome of each operation, in order.
#[derive(Debug, Serialize, JsonSchema)]
struct TransactionResults {
    /// `{"op": "put", "version": n}`, `{"op": "get", "doc": …}`, `{"op": "delete",
    /// "deleted": b}` or `{"op": "patch", "version": n}`.
    #[schemars(with = "Vec<Value>")]
    results: Vec<OpResult>,
    /// The durable events written with them: `{id, offset}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events: Vec<Value>,
}

/// The slow-query log.
#[derive(Debug, Serialize, JsonSchema)]
struct SlowQueries {
    /// Oldest first.
    queries: Vec<SlowQuery>,
}

/// A store error as a service error whose document errors point at `doc_field`.
fn fail(doc_field: &'static str) -> impl Fn(StoreError) -> ServiceError {
    move |e| service_error(&e, doc_field, "")
}

fn filter_of(filter: Option<FilterParam>) -> Result<Filter, ServiceError> {
    match filter {
        None => Ok(Filter::All),
        Some(map) => Filter::from_json(&Value::Object(map)).map_err(fail("/doc")),
    }
}

/// One write under `fence`: its own error (not a transaction's), or its result.
async fn fenced(s: &DataStore, fence: &Fence, op: Op) -> Result<OpResult, StoreError> {
    let results = s.fenced(fence, vec![op]).await.map_err(|e| match e {
        StoreError::Transaction { source, .. } => *source,
        other => other,
    })?;
    results
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Backend {
            reason: "a fenced write answered nothing".to_owned(),
        })
}

/// The stored version a fenced put or patch answered.
fn stored(result: OpResult) -> Result<plexus_store::Stored, StoreError> {
    match result {
        OpResult::Put(stored) | OpResult::Patch(stored) => Ok(stored),
        other => Err(StoreError::Backend {
            reason: format!("a fenced write answered {other:?}"),
        }),
    }
}

async fn put(s: &Backing, _: CallContext, p: PutParams) -> Result<Written, ServiceError> {
    let doc = Value::Object(p.doc);
    let stored = match &p.fence {
        None => {
            s.put(&p.collection.0, &p.id.0, &doc, p.mode, p.expected_version)
                .await
        }
        Some(fence) => {
            let op = Op::Put {
                collection: p.collection.0.clone(),
                id: p.id.0.clone(),
                doc,
                mode: p.mode,
                expected_version: p.expected_version,
            };
            fenced(s, fence, op).await.and_then(stored)
        }
    }
    .map_err(fail("/doc"))?;
    Ok(Written {
        id: p.id.0,
        version: stored.version,
    })
}

async fn get(s: &Backing, _: CallContext, p: GetParams) -> Result<Option<Doc>, ServiceError> {
    let doc = s
        .get(&p.collection.0, &p.id.0)
        .await
        .map_err(fail("/doc"))?;
    Ok(doc.map(Doc::from))
}

async fn delete(s: &Backing, _: CallContext, p: DeleteParams) -> Result<Deleted, ServiceError> {
    let deleted = match &p.fence {
        None => s.delete(&p.collection.0, &p.id.0, p.expected_version).await,
        Some(fence) => {
            let op = Op::Delete {
                collection: p.collection.0.clone(),
                id: p.id.0.clone(),
                expected_version: p.expected_version,
            };
            fenced(s, fence, op)
                .await
                .map(|r| matches!(r, OpResult::Delete { deleted: true }))
        }
    }
    .map_err(fail("/doc"))?;
    Ok(Deleted { deleted })
}

async fn patch(s: &Backing, _: CallContext, p: PatchParams) -> Result<Written, ServiceError> {
    let patch = Value::Object(p.patch);
    let stored = match &p.fence {
        None => {
            s.patch(&p.collection.0, &p.id.0, &patch, p.expected_version)
                .await
        }
        Some(fence) => {
            let op = Op::Patch {
                collection: p.collection.0.clone(),
                id: p.id.0.clone(),
                patch,
                expected_version: p.expected_version,
            };
            fenced(s, fence, op).await.and_then(stored)
        }
    }
    .map_err(fail("/patch"))?;
    Ok(Written {
        id: p.id.0,
        version: stored.version,
    })
}

async fn query(s: &Backing, _: CallContext, p: QueryParams) -> Result<QueryPage, ServiceError> {
    let path = |field: String| move |reason: String| StoreError::invalid_argument(field, reason);
    let sort = p
        .sort
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let field = FieldPath::parse(&key.field).map_err(path(format!("sort[{i}].field")))?;
            Ok(Sort {
                field,
                descending: key.order == Order::Desc,
            })
        })
        .collect::<Result<_, StoreError>>()
        .map_err(fail("/doc"))?;
    let projection = p
        .projection
        .map(|fields| {
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| FieldPath::parse(f).map_err(path(format!("projection[{i}]"))))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(fail("/doc"))?;
    let limit = match p.limit {
        None | Some(Value::Null) => None,
        Some(limit) => {
            Query::from_json(&json!({ "limit": limit }))
                .map_err(fail("/doc"))?
                .limit
        }
    };
    let query = Query {
        filter: filter_of(p.filter)?,
        sort,
        projection,
        limit,
        cursor: p.cursor,
    };
    let page = s
        .query(&p.collection.0, &query)
        .await
        .map_err(fail("/doc"))?;
    Ok(QueryPage {
        docs: page.docs.into_iter().map(Doc::from).collect(),
        next_cursor: page.next_cursor,
    })
}

async fn count(s: &Backing, _: CallContext, p: CountParams) -> Result<Count, ServiceError> {
    let filter = filter_of(p.filter)?;
    let count = s
        .count(&p.collection.0, &filter)
        .await
        .map_err(fail("/doc"))?;
    Ok(Count { count })
}

async fn create_collection(
    s: &Backing,
    _: CallContext,
    p: CreateCollectionParams,
) -> Result<Created, ServiceError> {
    let spec = CollectionSpec {
        indexes: p.indexes.0,
    };
    let created = s
        .create_collection(&p.name.0, spec)
        .await
        .map_err(|e| match e {
            StoreError::InvalidArgument { field, reason } if field == "collection" => {
                ServiceError::invalid_params("/name", reason)
            }
            e => service_error(&e, "/doc", ""),
        })?;
    Ok(Created { created })
}

async fn transaction(
    s: &Backing,
    ctx: CallContext,
    p: TransactionParams,
) -> Result<TransactionResults, ServiceError> {
    let ops: Vec<Op> = p.ops.into_iter().map(|op| op.0).collect();
    if !p.events.is_empty() {
        return transaction_with_events(s, &ctx, ops, p.events, p.fence.is_some()).await;
    }
    let patch_at: Vec<bool> = ops
        .iter()
        .map(|op| matches!(op, Op::Patch { .. }))
        .collect();
    let results = match &p.fence {
        None => s.transaction(ops).await,
        Some(fence) => s.fenced(fence, ops).await,
    };
    let results = results.map_err(|e| {
        let doc_field = match &e {
            StoreError::Transaction { index, .. }
                if patch_at.get(*index).copied().unwrap_or(false) =>
            {
                "/patch"
            }
            _ => "/doc",
        };
        service_error(&e, doc_field, "")
    })?;
    Ok(TransactionResults {
        results,
        events: Vec::new(),
    })
}

/// A transaction that also writes durable events, through the outbox.
async fn transaction_with_events(
    s: &Backing,
    ctx: &CallContext,
    ops: Vec<Op>,
    events: Vec<plexus_node::own::PublishParams>,
    fenced: bool,
) -> Result<TransactionResults, ServiceError> {
    let Some(outbox) = &s.outbox else {
        return Err(ServiceError::invalid_params(
            "/events",
            "no topic is durable on this node: declare patterns in `[store] durable_topics`",
        ));
    };
    if fenced {
        return Err(ServiceError::invalid_params(
            "/fence",
            "a transaction with events cannot be fenced yet; send the events apart",
        ));
    }
    let mut envelopes = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let envelope = event
            .envelope()
            .map_err(|(field, reason)| {
                ServiceError::invalid_params(format!("/events/{i}{field}"), reason)
            })?
            .with_correlation_id(ctx.correlation_id)
            .with_causation_id(ctx.causation_id);
        ctx.check(plexus_core::scope::Need::Publish(envelope.topic().as_str()))
            .map_err(ServiceError::Forbidden)?;
        envelopes.push(envelope);
    }
    let (results, appended) = outbox
        .transaction(ops, envelopes)
        .await
        .map_err(|e| match e {
            plexus_store::OutboxError::Store(store) => service_error(&store, "/doc", ""),
            other => crate::outbox_error(other, "/events"),
        })?;
    Ok(TransactionResults {
        results,
        events: appended
            .iter()
            .map(|a| json!({"id": a.id.to_string(), "offset": a.offset}))
            .collect(),
    })
}

async fn slow_queries(
    s: &Backing,
    _: CallContext,
    _: NoParams,
) -> Result<SlowQueries, ServiceError> {
    Ok(SlowQueries {
        queries: s.slow_queries(),
    })
}

/// `sort[0].order` as a JSON pointer: `/sort/0/order`.
fn pointer(field: &str) -> String {
    let mut out = String::from("/");
    for c in field.chars() {
        match c {
            '.' | '[' => out.push('/'),
            ']' => {}
            c => out.push(c),
        }
    }
    out.replace("//", "/")
}

/// Maps a store error to the service error the gateway turns into JSON-RPC.
/// `doc_field` names the param a document error points at (`/doc` or `/patch`);
/// `prefix` is prepended to every field (`/ops/3` in a transaction).
pub fn service_error(err: &StoreError, doc_field: &str, prefix: &str) -> ServiceError {
    match err {
        StoreError::InvalidDocument { .. } | StoreError::DocumentTooLarge { .. } => {
            ServiceError::invalid_params(format!("{prefix}{doc_field}"), err.to_string())
        }
        StoreError::InvalidFilter { path, reason } => {
            ServiceError::invalid_params(format!("{prefix}/filter{path}"), reason.clone())
        }
        StoreError::InvalidArgument { field, reason } => {
            ServiceError::invalid_params(format!("{prefix}{}", pointer(field)), reason.clone())
        }
        StoreError::UnknownCollection { .. } => {
            ServiceError::invalid_params(format!("{prefix}/collection"), err.to_string())
        }
        StoreError::Unavailable { reason } => ServiceError::unavailable(reason.clone()),
        StoreError::Transaction { index, source } => {
            let doc_field = match source.as_ref() {
                StoreError::InvalidDocument { .. } | StoreError::DocumentTooLarge { .. } => {
                    doc_field
                }
                _ => "/doc",
            };
            match service_error(source, doc_field, &format!("{prefix}/ops/{index}")) {
                ServiceError::Failed {
                    message,
                    data,
                    retryable,
                } => {
                    let mut data = data.unwrap_or_else(|| json!({}));
                    data["op"] = json!(index);
                    ServiceError::Failed {
                        message: format!(
                            "transaction rolled back: operation {index} failed: {message}"
                        ),
                        data: Some(data),
                        retryable,
                    }
                }
                other => other,
            }
        }
        other => {
            let mut data = json!({"kind": other.kind()});
            match other {
                StoreError::NotFound { collection, id }
                | StoreError::AlreadyExists { collection, id } => {
                    data["collection"] = json!(collection);
                    data["id"] = json!(id);
                }
                StoreError::VersionConflict {
                    collection,
                    id,
                    expected,
                    actual,
                } => {
                    data["collection"] = json!(collection);
                    data["id"] = json!(id);
                    data["expected"] = json!(expected);
                    data["actual"] = json!(actual);
                }
                StoreError::Fenced {
                    lock,
                    token,
                    highest,
                } => {
                    data["lock"] = json!(lock);
                    data["token"] = json!(token);
                    data["highest"] = json!(highest);
                }
                StoreError::UniqueViolation { collection, index } => {
                    data["collection"] = json!(collection);
                    data["index"] = json!(index);
                }
                StoreError::CollectionExists { name } => data["collection"] = json!(name),
                StoreError::PoolTimeout { waited } => {
                    data["waited_ms"] = json!(waited.as_millis() as u64);
                }
                _ => {}
            }
            ServiceError::Failed {
                message: other.to_string(),
                data: Some(data),
                retryable: other.is_retryable(),
            }
        }
    }
}

#[async_trait]
impl TableService for DataStoreService {
    type State = Backing;

    fn parts(&self) -> TableParts<'_, Backing> {
        (&METHODS, &self.store, &self.descriptor)
    }

    /// Healthy when a pooled connection can be had within the acquire timeout. The
    /// pool belongs to the [`DataStore`]'s owner, so stopping the service leaves it
    /// open for a restart.
    async fn check_health(&self) -> Result<plexus_core::HealthReport, ServiceError> {
        match self.store.store().session().await {
            Ok(_) => Ok(plexus_core::HealthReport::healthy()),
            Err(e) => Ok(plexus_core::HealthReport::unhealthy(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_validates_and_marks_reads_idempotent() {
        let d = METHODS.describe(ServiceDescriptor::new("datastore", "datastore"));
        d.validate().unwrap();
        for m in ["get", "query", "count", "slow_queries"] {
            assert!(d.method(m).unwrap().idempotent, "{m}");
        }
        for m in ["put", "delete", "patch", "create_collection", "transaction"] {
            assert!(!d.method(m).unwrap().idempotent, "{m}");
        }
    }

    #[test]
    fn fields_become_pointers() {
        assert_eq!(pointer("sort[0].order"), "/sort/0/order");
        assert_eq!(pointer("collection"), "/collection");
    }

    /// The cases the hand-written schemas decided, decided the same by the derived ones.
    #[test]
    fn the_derived_schemas_accept_and_refuse_what_the_hand_written_ones_did() {
        let d = descriptor();
        let check = |method: &str, params: Value, valid: bool| {
            let schema = &d.method(method).unwrap().params;
            let v = jsonschema::validator_for(schema).unwrap();
            assert_eq!(v.is_valid(&params), valid, "{method} {params}: {schema}");
        };
        let c = |extra: Value| {
            let mut p = json!({"collection": "cases", "id": "c1"});
            p.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            p
        };
        check("put", c(json!({"doc": {"a": 1}})), true);
        check(
            "put",
            c(json!({"doc": {"a": 1}, "mode": "insert", "expected_version": 0})),
            true,
        );
        check("put", c(json!({"doc": {}})), false);
        check("put", c(json!({"doc": [1]})), false);
        check("put", c(json!({"doc": {"a": 1}, "mode": "merge"})), false);
        check(
            "put",
            c(json!({"doc": {"a": 1}, "expected_version": -1})),
            false,
        );
        check("put", c(json!({"doc": {"a": 1}, "extra": 1})), false);
        check(
            "put",
            json!({"collection": "cases", "id": "", "doc": {"a": 1}}),
            false,
        );
        check(
            "put",
            json!({"collection": "Cases", "id": "x", "doc": {"a": 1}}),
            false,
        );
        check(
            "put",
            json!({"collection": "c".repeat(33), "id": "x", "doc": {"a": 1}}),
            false,
        );
        check(
            "put",
            json!({"collection": "cases", "id": "x".repeat(257), "doc": {"a": 1}}),
            false,
        );
        check("put", json!({"id": "x", "doc": {"a": 1}}), false);
        check("get", c(json!({})), true);
        check("get", json!({"collection": 3, "id": "x"}), false);
        check("delete", c(json!({"expected_version": 2})), true);
        check("patch", c(json!({"patch": {"a": null}})), true);
        check("patch", c(json!({"patch": 1})), false);
        check("patch", c(json!({})), false);
        let q = |extra: Value| {
            let mut p = json!({"collection": "cases"});
            p.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            p
        };
        check(
            "query",
            q(
                json!({"filter": {"field": "a", "eq": 1}, "sort": [{"field": "a", "order": "desc"}], "projection": ["a"], "limit": 5, "cursor": null}),
            ),
            true,
        );
        check(
            "query",
            q(json!({"sort": [{"field": "a", "order": "sideways"}]})),
            false,
        );
        check("query", q(json!({"sort": [{"order": "asc"}]})), false);
        check("query", q(json!({"sort": [{"field": "a", "x": 1}]})), false);
        check(
            "query",
            q(
                json!({"sort": [{"field": "a"}, {"field": "b"}, {"field": "c"}, {"field": "d"}, {"field": "e"}]}),
            ),
            false,
        );
        check("query", q(json!({"limit": 0})), false);
        check("query", q(json!({"limit": 4_294_967_296_u64})), true);
        check("query", q(json!({"limit": "10"})), false);
        check("query", q(json!({"filter": 3})), false);
        check("count", q(json!({"filter": {}})), true);
        check(
            "create_collection",
            json!({"name": "cases", "indexes": [{"name": "by_ref", "fields": ["ref"], "unique": true}]}),
            true,
        );
        check(
            "create_collection",
            json!({"name": "cases", "indexes": [{"name": "i"}]}),
            false,
        );
        check(
            "create_collection",
            json!({"name": "cases", "indexes": [{"name": "i", "fields": []}]}),
            false,
        );
        check(
            "create_collection",
            json!({"name": "cases", "indexes": [{"name": "Bad", "fields": ["a"]}]}),
            false,
        );
        check(
            "create_collection",
            json!({"name": "cases", "indexes": [{"name": "i", "fields": ["a"], "x": 1}]}),
            false,
        );
        check(
            "transaction",
            json!({"ops": [{"op": "put", "collection": "cases", "id": "t", "doc": {"a": 1}}, {"op": "delete", "collection": "cases", "id": "u"}]}),
            true,
        );
        check("transaction", json!({"ops": [{"op": "smash"}]}), false);
        check(
            "transaction",
            json!({"ops": [{"op": "get", "collection": "cases"}]}),
            false,
        );
        check("transaction", json!({}), false);
        check("slow_queries", json!({}), true);
        check("slow_queries", json!({"x": 1}), false);
    }
}
