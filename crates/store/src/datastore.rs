//! [`DataStore`]: collections of JSON documents with ids and versions, on any
//! backend, with the same results on each.
//!
//! Each collection is a table `doc_<name>` (`id`, `version`, `doc`) and is listed with
//! its [`CollectionSpec`] in `plexus_collections`; secondary indexes are expression
//! indexes on the declared field paths, and the query builder emits the same
//! expressions so the planner can use them.
//!
//! Versions: a document is version 1 when inserted and one more at each write. An
//! `expected_version` makes a write conditional: any mismatch, including an absent
//! document (version 0), is a [`StoreError::VersionConflict`] carrying the version
//! found. Without one, replacing or patching an absent document is
//! [`StoreError::NotFound`].

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::backend::{Dialect, DocRow, Param, Statement};
use crate::document::{check_id, encode_document, merge_patch, project};
use crate::metrics::{SlowQuery, StatementKind};
use crate::query::Cursor;
use crate::sql::{FieldPath, SqlBuilder, check_identifier};
use crate::store::StoreSession;
use crate::{
    CollectionSpec, Document, Fence, Filter, Op, OpResult, Page, PutMode, Query, Store,
    StoreConfig, StoreError, Stored,
};

/// The longest collection name, in bytes.
pub const MAX_COLLECTION_NAME: usize = 32;
/// The longest index name, in bytes.
pub const MAX_INDEX_NAME: usize = 24;
/// The most fields one index may cover.
pub const MAX_INDEX_FIELDS: usize = 8;
/// How often a patch without an expected version re-reads after losing a race with
/// another writer before it gives up with [`StoreError::Busy`].
pub const PATCH_ATTEMPTS: usize = 16;

/// Reads a collection's spec, shaped as a document row.
const READ_COLLECTION: &str = "SELECT name AS id, CAST(1 AS BIGINT) AS version, spec AS doc \
                               FROM plexus_collections WHERE name = $1";

/// The prepared SQL of one collection.
struct Collection {
    name: String,
    spec: CollectionSpec,
    /// `(SQL index name, declared name)`.
    indexes: Vec<(String, String)>,
    insert: Arc<str>,
    replace: Arc<str>,
    replace_if: Arc<str>,
    upsert: Arc<str>,
    get: Arc<str>,
    get_for_update: Arc<str>,
    delete: Arc<str>,
    delete_if: Arc<str>,
    version: Arc<str>,
    table: String,
}

impl Collection {
    fn new(name: &str, spec: CollectionSpec, dialect: &dyn Dialect) -> Self {
        let t = format!("\"doc_{name}\"");
        let doc2 = dialect.json_param(2);
        Self {
            name: name.to_owned(),
            indexes: spec
                .indexes
                .iter()
                .map(|ix| (format!("ix_{name}_{}", ix.name), ix.name.clone()))
                .collect(),
            spec,
            insert: format!(
                "INSERT INTO {t} (id, version, doc) VALUES ($1, 1, {doc2}) \
                 ON CONFLICT (id) DO NOTHING RETURNING version"
            )
            .into(),
            replace: format!(
                "UPDATE {t} SET doc = {doc2}, version = version + 1 WHERE id = $1 RETURNING version"
            )
            .into(),
            replace_if: format!(
                "UPDATE {t} SET doc = {doc2}, version = version + 1 \
                 WHERE id = $1 AND version = $3 RETURNING version"
            )
            .into(),
            upsert: format!(
                "INSERT INTO {t} AS d (id, version, doc) VALUES ($1, 1, {doc2}) \
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, version = d.version + 1 \
                 RETURNING version"
            )
            .into(),
            get: format!("SELECT id, version, doc FROM {t} WHERE id = $1").into(),
            get_for_update: format!(
                "SELECT id, version, doc FROM {t} WHERE id = $1{}",
                dialect.for_update()
            )
            .into(),
            delete: format!("DELETE FROM {t} WHERE id = $1").into(),
            delete_if: format!("DELETE FROM {t} WHERE id = $1 AND version = $2").into(),
            version: format!("SELECT version FROM {t} WHERE id = $1").into(),
            table: t,
        }
    }

    /// The declared name of the index a unique violation names.
    fn index_named_in(&self, text: &str) -> String {
        self.indexes
            .iter()
            .filter(|(sql, _)| text.contains(sql.as_str()))
            .max_by_key(|(sql, _)| sql.len())
            .map(|(_, declared)| declared.clone())
            .unwrap_or_default()
    }

    fn fix(&self, err: StoreError) -> StoreError {
        match err {
            StoreError::UniqueViolation { index, .. } => {
                if self.indexes.is_empty() || index.contains("PRIMARY") || index.ends_with("_pkey")
                {
                    // Only the id is unique: an insert raced another one.
                    StoreError::UniqueViolation {
                        collection: self.name.clone(),
                        index: "id".to_owned(),
                    }
                } else {
                    StoreError::UniqueViolation {
                        collection: self.name.clone(),
                        index: self.index_named_in(&index),
                    }
                }
            }
            other => other,
        }
    }
}

fn version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_document(row: DocRow) -> Document {
    Document {
        id: row.id,
        version: version(row.version),
        doc: row.doc,
    }
}

/// Collections of JSON documents on a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct DataStore {
    store: Store,
    collections: Arc<RwLock<HashMap<String, Arc<Collection>>>>,
}

impl std::fmt::Debug for DataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataStore")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A document checked and encoded, ready to write.
struct Encoded {
    text: String,
}

impl DataStore {
    /// A data store on `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            collections: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    /// Connects a store (see [`Store::connect`]) and wraps it.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(Self::new(Store::connect(config).await?))
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The statements that took at least the slow-query threshold, oldest first.
    pub fn slow_queries(&self) -> Vec<SlowQuery> {
        self.store.metrics().slow_queries()
    }

    fn config(&self) -> &StoreConfig {
        self.store.config()
    }

    fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            self.store.metrics().error(e.root().kind());
        }
        result
    }

    fn encode(&self, doc: &Value) -> Result<Encoded, StoreError> {
        let c = self.config();
        Ok(Encoded {
            text: encode_document(doc, c.max_document_bytes, c.max_document_depth)?,
        })
    }

    /// Creates a collection with its indexes. Returns `true` when it was created and
    /// `false` when it already existed with the same spec;
    /// [`StoreError::CollectionExists`] when it exists with another.
    pub async fn create_collection(
        &self,
        name: &str,
        spec: CollectionSpec,
    ) -> Result<bool, StoreError> {
        let result = self.create_collection_inner(name, spec).await;
        self.observe(result)
    }

    fn check_spec(&self, spec: &CollectionSpec) -> Result<Vec<Vec<FieldPath>>, StoreError> {
        if spec.indexes.len() > self.config().max_indexes {
            return Err(StoreError::invalid_argument(
                "indexes",
                format!("at most {} indexes", self.config().max_indexes),
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut all = Vec::new();
        for (i, ix) in spec.indexes.iter().enumerate() {
            check_identifier(&format!("indexes[{i}].name"), &ix.name, MAX_INDEX_NAME)?;
            if !names.insert(ix.name.as_str()) {
                return Err(StoreError::invalid_argument(
                    format!("indexes[{i}].name"),
                    format!("index `{}` is declared twice", ix.name),
                ));
            }
            if ix.fields.is_empty() || ix.fields.len() > MAX_INDEX_FIELDS {
                return Err(StoreError::invalid_argument(
                    format!("indexes[{i}].fields"),
                    format!("must name 1 to {MAX_INDEX_FIELDS} fields"),
                ));
            }
            let paths = ix
                .fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    FieldPath::parse(f).map_err(|r| {
                        StoreError::invalid_argument(format!("indexes[{i}].fields[{j}]"), r)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            all.push(paths);
        }
        Ok(all)
    }

    async fn create_collection_inner(
        &self,
        name: &str,
        spec: CollectionSpec,
    ) -> Result<bool, StoreError> {
        check_identifier("collection", name, MAX_COLLECTION_NAME)?;
        let paths = self.check_spec(&spec)?;
        let dialect = self.store.dialect();
        let spec_json = serde_json::to_string(&spec)
            .map_err(|e| StoreError::invalid_argument("indexes", e.to_string()))?;
        let read = Statement::new(READ_COLLECTION.into(), vec![Param::Text(name.to_owned())]);
        let mut session = self.store.session().await?;
        for _ in 0..3 {
            session.begin().await?;
            let existing = session.fetch_docs(StatementKind::Ddl, name, &read).await?;
            if let Some(row) = existing.into_iter().next() {
                session.rollback().await?;
                let stored: CollectionSpec =
                    serde_json::from_value(row.doc).map_err(|e| StoreError::Backend {
                        reason: format!("stored spec of `{name}` is unreadable: {e}"),
                    })?;
                return if stored == spec {
                    self.cache(name, stored);
                    Ok(false)
                } else {
                    Err(StoreError::CollectionExists {
                        name: name.to_owned(),
                    })
                };
            }
            let insert = Statement::new(
                format!(
                    "INSERT INTO plexus_collections (name, spec) VALUES ($1, {}) \
                     ON CONFLICT (name) DO NOTHING",
                    dialect.json_param(2)
                )
                .into(),
                vec![Param::Text(name.to_owned()), Param::Json(spec_json.clone())],
            );
            if session.execute(StatementKind::Ddl, name, &insert).await? == 0 {
                // Another node created it between our read and insert: read again.
                session.rollback().await?;
                continue;
            }
            let table = format!("doc_{name}");
            let mut ddl = vec![dialect.create_table(&table)];
            for (ix, fields) in spec.indexes.iter().zip(&paths) {
                let exprs: Vec<String> = fields.iter().map(|p| dialect.index_expr(p)).collect();
                ddl.push(format!(
                    "CREATE {}INDEX IF NOT EXISTS \"ix_{name}_{}\" ON \"{table}\" ({})",
                    if ix.unique { "UNIQUE " } else { "" },
                    ix.name,
                    exprs.join(", ")
                ));
            }
            for sql in ddl {
                let stmt = Statement::new(sql.into(), Vec::new());
                session.execute(StatementKind::Ddl, name, &stmt).await?;
            }
            session.commit().await?;
            self.cache(name, spec);
            return Ok(true);
        }
        Err(StoreError::Busy {
            reason: format!("collection `{name}` kept changing while it was created"),
        })
    }

    fn cache(&self, name: &str, spec: CollectionSpec) -> Arc<Collection> {
        let collection = Arc::new(Collection::new(name, spec, self.store.dialect()));
        self.collections
            .write()
            .insert(name.to_owned(), collection.clone());
        collection
    }

    async fn collection(&self, name: &str) -> Result<Arc<Collection>, StoreError> {
        if let Some(c) = self.collections.read().get(name) {
            return Ok(c.clone());
        }
        check_identifier("collection", name, MAX_COLLECTION_NAME)?;
        let read = Statement::new(READ_COLLECTION.into(), vec![Param::Text(name.to_owned())]);
        let mut session = self.store.session().await?;
        let row = session
            .fetch_docs(StatementKind::Ddl, name, &read)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::UnknownCollection {
                name: name.to_owned(),
            })?;
        let spec: CollectionSpec =
            serde_json::from_value(row.doc).map_err(|e| StoreError::Backend {
                reason: format!("stored spec of `{name}` is unreadable: {e}"),
            })?;
        Ok(self.cache(name, spec))
    }

    /// The spec a collection was created with.
    pub async fn collection_spec(&self, name: &str) -> Result<CollectionSpec, StoreError> {
        let result = self.collection(name).await.map(|c| c.spec.clone());
        self.observe(result)
    }

    /// Writes `doc` under `id`. `expected_version` makes the write conditional (0:
    /// the document must not exist).
    pub async fn put(
        &self,
        collection: &str,
        id: &str,
        doc: &Value,
        mode: PutMode,
        expected_version: Option<u64>,
    ) -> Result<Stored, StoreError> {
        let result = async {
            check_id(id)?;
            let encoded = self.encode(doc)?;
            let c = self.collection(collection).await?;
            let mut session = self.store.session().await?;
            put_in(&mut session, &c, id, encoded, mode, expected_version).await
        }
        .await;
        self.observe(result)
    }

    /// The document stored under `id`, if any.
    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<Document>, StoreError> {
        let result = async {
            check_id(id)?;
            let c = self.collection(collection).await?;
            let mut session = self.store.session().await?;
            get_in(&mut session, &c, id, false).await
        }
        .await;
        self.observe(result)
    }

    /// Deletes the document under `id`; `true` when there was one.
    pub async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let result = async {
            check_id(id)?;
            let c = self.collection(collection).await?;
            let mut session = self.store.session().await?;
            delete_in(&mut session, &c, id, expected_version).await
        }
        .await;
        self.observe(result)
    }

    /// Applies a JSON merge patch (RFC 7386) to the document under `id`. Without an
    /// expected version, a patch that loses a race with another writer reads again
    /// (up to [`PATCH_ATTEMPTS`] times).
    pub async fn patch(
        &self,
        collection: &str,
        id: &str,
        patch: &Value,
        expected_version: Option<u64>,
    ) -> Result<Stored, StoreError> {
        let result = async {
            check_id(id)?;
            let c = self.collection(collection).await?;
            let mut session = self.store.session().await?;
            patch_in(self, &mut session, &c, id, patch, expected_version, false).await
        }
        .await;
        self.observe(result)
    }

    /// One page of the documents `query` selects.
    pub async fn query(&self, collection: &str, query: &Query) -> Result<Page, StoreError> {
        let result = self.query_inner(collection, query).await;
        self.observe(result)
    }

    fn check_filter(&self, filter: &Filter) -> Result<(), StoreError> {
        filter.check_terms(self.config().max_filter_terms)
    }

    async fn query_inner(&self, collection: &str, query: &Query) -> Result<Page, StoreError> {
        let plan = query.plan(self.config())?;
        let limit = plan.limit();
        let c = self.collection(collection).await?;
        let stmt = plan.statement(&c.table, self.store.dialect());
        let mut session = self.store.session().await?;
        let (rows, cut) = session
            .fetch_docs_within(
                StatementKind::Query,
                collection,
                &stmt,
                self.config().max_result_bytes,
            )
            .await?;
        drop(session);
        let mut docs: Vec<Document> = rows.into_iter().map(to_document).collect();
        // One more row than the limit was asked for: it says whether a next page
        // exists. A page cut short by the byte budget has one too.
        let more = docs.len() > limit as usize;
        docs.truncate(limit as usize);
        let next_cursor = (more || cut)
            .then(|| docs.last())
            .flatten()
            .map(|last| Cursor::after(&query.sort, last).encode());
        if let Some(fields) = &query.projection {
            for d in &mut docs {
                d.doc = project(&d.doc, fields);
            }
        }
        Ok(Page { docs, next_cursor })
    }

    /// How many documents `filter` selects.
    pub async fn count(&self, collection: &str, filter: &Filter) -> Result<u64, StoreError> {
        let result = async {
            self.check_filter(filter)?;
            let c = self.collection(collection).await?;
            let mut b = SqlBuilder::new(self.store.dialect());
            b.push("SELECT COUNT(*) FROM ")
                .push(&c.table)
                .push(" WHERE ")
                .filter(filter);
            let stmt = b.finish();
            let mut session = self.store.session().await?;
            let n = session
                .fetch_i64(StatementKind::Count, collection, &stmt)
                .await?;
            Ok(n.map_or(0, version))
        }
        .await;
        self.observe(result)
    }

    /// Runs `ops` in one transaction: all take effect or none does. On failure the
    /// error is [`StoreError::Transaction`] naming the failing operation.
    pub async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, StoreError> {
        let result = self.transaction_inner(ops).await;
        self.observe(result)
    }

    async fn transaction_inner(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let (results, ()) = self
            .transaction_then(None, ops, |_| Box::pin(async { Ok::<(), StoreError>(()) }))
            .await?;
        Ok(results)
    }

    /// Runs `ops` in one transaction under `fence`: the fence is checked first, in
    /// the same transaction, and a token lower than one already accepted for the
    /// lock is [`StoreError::Fenced`] with nothing written (see [`Fence`]). Any other
    /// failure is [`StoreError::Transaction`] naming the failing operation.
    pub async fn fenced(&self, fence: &Fence, ops: Vec<Op>) -> Result<Vec<OpResult>, StoreError> {
        let result = async {
            fence.check()?;
            let (results, ()) = self
                .transaction_then(Some(fence), ops, |_| {
                    Box::pin(async { Ok::<(), StoreError>(()) })
                })
                .await?;
            Ok(results)
        }
        .await;
        self.observe(result)
    }

    /// Runs `ops` as [`DataStore::transaction`] does, then `then` on the same
    /// session inside the same transaction, and commits only if both succeed: other
    /// families write their rows with the data this way (the job queue's
    /// transactional enqueue), in the same database. An error of `then` rolls
    /// everything back and is returned as it is; the store's own errors are
    /// converted into `E`.
    pub async fn transaction_with<T, E, F>(
        &self,
        ops: Vec<Op>,
        then: F,
    ) -> Result<(Vec<OpResult>, T), E>
    where
        E: From<StoreError>,
        F: for<'s> FnOnce(&'s mut StoreSession) -> futures::future::BoxFuture<'s, Result<T, E>>
            + Send,
    {
        self.transaction_then(None, ops, then).await
    }

    /// Runs `ops` as [`DataStore::transaction`] does (after checking `fence`, when
    /// given, first), then `then` on the same
    /// session inside the same transaction, and commits only if both succeed: the
    /// durable outbox writes a data change's events this way. An error of `then`
    /// rolls everything back and is returned as it is.
    pub(crate) async fn transaction_then<T, E, F>(
        &self,
        fence: Option<&Fence>,
        ops: Vec<Op>,
        then: F,
    ) -> Result<(Vec<OpResult>, T), E>
    where
        E: From<StoreError>,
        F: for<'s> FnOnce(&'s mut StoreSession) -> futures::future::BoxFuture<'s, Result<T, E>>
            + Send,
    {
        let max = self.config().max_transaction_ops;
        if ops.len() > max {
            return Err(StoreError::invalid_argument(
                "ops",
                format!("{} operations, more than {max}", ops.len()),
            )
            .into());
        }
        let at = |index: usize| {
            move |e: StoreError| StoreError::Transaction {
                index,
                source: Box::new(e),
            }
        };
        // Check everything that needs no database before taking a connection.
        let mut prepared = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let (collection, id) = match op {
                Op::Put { collection, id, .. }
                | Op::Get { collection, id }
                | Op::Delete { collection, id, .. }
                | Op::Patch { collection, id, .. } => (collection, id),
            };
            check_id(id).map_err(at(i))?;
            let encoded = match op {
                Op::Put { doc, .. } => Some(self.encode(doc).map_err(at(i))?),
                _ => None,
            };
            let c = self.collection(collection).await.map_err(at(i))?;
            prepared.push((c, encoded));
        }
        let mut session = self.store.session().await?;
        session.begin().await?;
        if let Some(fence) = fence
            && let Err(e) = fence.claim(&mut session).await
        {
            let _ = session.rollback().await;
            return Err(e.into());
        }
        let mut results = Vec::with_capacity(ops.len());
        for (i, (op, (c, encoded))) in ops.iter().zip(prepared).enumerate() {
            let outcome = match (op, encoded) {
                (
                    Op::Put {
                        id,
                        mode,
                        expected_version,
                        ..
                    },
                    Some(encoded),
                ) => put_in(&mut session, &c, id, encoded, *mode, *expected_version)
                    .await
                    .map(OpResult::Put),
                (Op::Get { id, .. }, _) => get_in(&mut session, &c, id, true)
                    .await
                    .map(|doc| OpResult::Get { doc }),
                (
                    Op::Delete {
                        id,
                        expected_version,
                        ..
                    },
                    _,
                ) => delete_in(&mut session, &c, id, *expected_version)
                    .await
                    .map(|deleted| OpResult::Delete { deleted }),
                (
                    Op::Patch {
                        id,
                        patch,
                        expected_version,
                        ..
                    },
                    _,
                ) => patch_in(self, &mut session, &c, id, patch, *expected_version, true)
                    .await
                    .map(OpResult::Patch),
                (Op::Put { .. }, None) => Err(StoreError::Backend {
                    reason: "put without its encoded document".to_owned(),
                }),
            };
            match outcome {
                Ok(r) => results.push(r),
                Err(e) => {
                    // The error is what the caller needs; a failed rollback also ends
                    // the transaction (the connection rolls back when dropped).
                    let _ = session.rollback().await;
                    return Err(at(i)(e).into());
                }
            }
        }
        let extra = match then(&mut session).await {
            Ok(extra) => extra,
            Err(e) => {
                let _ = session.rollback().await;
                return Err(e);
            }
        };
        session.commit().await?;
        Ok((results, extra))
    }
}

async fn current_version(
    s: &mut StoreSession,
    c: &Collection,
    id: &str,
) -> Result<u64, StoreError> {
    let stmt = Statement::new(c.version.clone(), vec![Param::Text(id.to_owned())]);
    Ok(s.fetch_i64(StatementKind::Version, &c.name, &stmt)
        .await?
        .map_or(0, version))
}

async fn put_in(
    s: &mut StoreSession,
    c: &Collection,
    id: &str,
    doc: Encoded,
    mode: PutMode,
    expected: Option<u64>,
) -> Result<Stored, StoreError> {
    put_unchecked(s, c, id, doc, mode, expected)
        .await
        .map_err(|e| c.fix(e))
}

async fn put_unchecked(
    s: &mut StoreSession,
    c: &Collection,
    id: &str,
    doc: Encoded,
    mode: PutMode,
    expected: Option<u64>,
) -> Result<Stored, StoreError> {
    let conflict = |expected: u64, actual: u64| StoreError::VersionConflict {
        collection: c.name.clone(),
        id: id.to_owned(),
        expected,
        actual,
    };
    let id_param = Param::Text(id.to_owned());
    let doc_param = Param::Json(doc.text);
    let run = |sql: &Arc<str>, params: Vec<Param>| Statement::new(sql.clone(), params);
    match (mode, expected) {
        (PutMode::Insert, Some(v)) if v != 0 => Err(StoreError::invalid_argument(
            "expected_version",
            "an insert can only expect version 0 (absent)",
        )),
        (PutMode::Replace, Some(0)) => Err(StoreError::invalid_argument(
            "expected_version",
            "a replace cannot expect version 0 (absent)",
        )),
        (PutMode::Insert, _) | (PutMode::Upsert, Some(0)) => {
            let stmt = run(&c.insert, vec![id_param, doc_param]);
            match s.fetch_i64(StatementKind::Insert, &c.name, &stmt).await? {
                Some(v) => Ok(Stored {
                    version: version(v),
                }),
                None if expected.is_none() => Err(StoreError::AlreadyExists {
                    collection: c.name.clone(),
                    id: id.to_owned(),
                }),
                None => Err(conflict(0, current_version(s, c, id).await?)),
            }
        }
        (PutMode::Replace | PutMode::Upsert, Some(v)) => {
            let stmt = run(
                &c.replace_if,
                vec![
                    id_param,
                    doc_param,
                    Param::Int(i64::try_from(v).unwrap_or(i64::MAX)),
                ],
            );
            match s.fetch_i64(StatementKind::Replace, &c.name, &stmt).await? {
                Some(v) => Ok(Stored {
                    version: version(v),
                }),
                None => Err(conflict(v, current_version(s, c, id).await?)),
            }
        }
        (PutMode::Replace, None) => {
            let stmt = run(&c.replace, vec![id_param, doc_param]);
            match s.fetch_i64(StatementKind::Replace, &c.name, &stmt).await? {
                Some(v) => Ok(Stored {
                    version: version(v),
                }),
                None => Err(StoreError::NotFound {
                    collection: c.name.clone(),
                    id: id.to_owned(),
                }),
            }
        }
        (PutMode::Upsert, None) => {
            let stmt = run(&c.upsert, vec![id_param, doc_param]);
            let v = s.fetch_i64(StatementKind::Upsert, &c.name, &stmt).await?;
            Ok(Stored {
                version: v.map_or(0, version),
            })
        }
    }
}

async fn get_in(
    s: &mut StoreSession,
    c: &Collection,
    id: &str,
    for_update: bool,
) -> Result<Option<Document>, StoreError> {
    let sql = if for_update {
        &c.get_for_update
    } else {
        &c.get
    };
    let stmt = Statement::new(sql.clone(), vec![Param::Text(id.to_owned())]);
    let rows = s.fetch_docs(StatementKind::Get, &c.name, &stmt).await?;
    Ok(rows.into_iter().next().map(to_document))
}

async fn delete_in(
    s: &mut StoreSession,
    c: &Collection,
    id: &str,
    expected: Option<u64>,
) -> Result<bool, StoreError> {
    let id_param = Param::Text(id.to_owned());
    match expected {
        None => {
            let stmt = Statement::new(c.delete.clone(), vec![id_param]);
            Ok(s.execute(StatementKind::Delete, &c.name, &stmt).await? > 0)
        }
        Some(v) => {
            let stmt = Statement::new(
                c.delete_if.clone(),
                vec![id_param, Param::Int(i64::try_from(v).unwrap_or(i64::MAX))],
            );
            if s.execute(StatementKind::Delete, &c.name, &stmt).await? > 0 {
                return Ok(true);
            }
            let actual = current_version(s, c, id).await?;
            if actual == v {
                // Expected absent (0) and it is absent.
                return Ok(false);
            }
            Err(StoreError::VersionConflict {
                collection: c.name.clone(),
                id: id.to_owned(),
                expected: v,
                actual,
            })
        }
    }
}

async fn patch_in(
    store: &DataStore,
    s: &mut StoreSession,
    c: &Collection,
    id: &str,
    patch: &Value,
    expected: Option<u64>,
    in_transaction: bool,
) -> Result<Stored, StoreError> {
    for _ in 0..PATCH_ATTEMPTS {
        let Some(current) = get_in(s, c, id, in_transaction).await? else {
            return Err(match expected {
                Some(v) => StoreError::VersionConflict {
                    collection: c.name.clone(),
                    id: id.to_owned(),
                    expected: v,
                    actual: 0,
                },
                None => StoreError::NotFound {
                    collection: c.name.clone(),
                    id: id.to_owned(),
                },
            });
        };
        if let Some(v) = expected
            && v != current.version
        {
            return Err(StoreError::VersionConflict {
                collection: c.name.clone(),
                id: id.to_owned(),
                expected: v,
                actual: current.version,
            });
        }
        let mut merged = current.doc;
        merge_patch(&mut merged, patch);
        let encoded = store.encode(&merged)?;
        match put_in(s, c, id, encoded, PutMode::Replace, Some(current.version)).await {
            Err(StoreError::VersionConflict { .. }) if expected.is_none() && !in_transaction => {
                continue;
            }
            other => return other,
        }
    }
    Err(StoreError::Busy {
        reason: format!(
            "patch of `{}/{id}` lost {PATCH_ATTEMPTS} races with other writers",
            c.name
        ),
    })
}
